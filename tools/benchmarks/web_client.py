"""One HTTP client for the benchmark's single requests: the API with a bearer token, the
dashboard with a logged-in session cookie (http.client: no client library needed)."""

from __future__ import annotations

import http.client
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class WebClient:
    def __init__(self, port: int, token: str = "") -> None:
        self.port = port
        self.token = token
        self.cookie = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 600
                ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def answers(self) -> bool:
        try:
            return self.request("GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """A JSON request with the bearer token; the status and the decoded answer."""
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        data = None
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
        status, _, answer = self.request(method, f"/api{path}", data, sent)
        return status, json.loads(answer)

    def login(self, username: str, password: str) -> None:
        """Post the login form as a browser does; keeps the session cookie."""
        status, headers, page = self.request("GET", "/login")
        token = _CSRF.search(page.decode())
        if status != 200 or token is None:
            raise RuntimeError(f"the login page answered {status} without a CSRF token")
        form = urlencode({"username": username, "password": password,
                          "csrf_token": token.group(1)}).encode()
        status, headers, _ = self.request("POST", "/login", form, {
            "Cookie": _cookie(headers), "Content-Type": "application/x-www-form-urlencoded"})
        if status != 302:
            raise RuntimeError(f"logging in answered {status}, not a redirect")
        self.cookie = _cookie(headers)

    def page(self, path: str, htmx: bool = False) -> tuple[bytes, float]:
        """A dashboard page (or htmx fragment) with the session; its body and seconds."""
        started = time.monotonic()
        status, _, body = self.request("GET", path, headers=self.page_headers(htmx))
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        return body, time.monotonic() - started

    def page_headers(self, htmx: bool = False) -> dict[str, str]:
        return {"Cookie": self.cookie, **({"HX-Request": "true"} if htmx else {})}


def _cookie(headers: dict[str, str]) -> str:
    """The ``name=value`` of the response's session cookie."""
    found = headers.get("Set-Cookie") or headers.get("set-cookie") or ""
    return found.split(";", 1)[0]
