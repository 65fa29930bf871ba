"""Driving the app as a browser and htmx do, through Flask's test client."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

from tests.conftest import ADMIN_PASSWORD

HX = {"HX-Request": "true"}


def csrf_from(html: str) -> str:
    """The CSRF token of a page's form."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def login(client, password: str = ADMIN_PASSWORD, next_url: str = "",
          username: str = "admin"):
    """Post the login form with the login page's CSRF token; returns the response."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(f"/login{next_url}", data={
        "username": username, "password": password, "csrf_token": token})


class HtmxClient:
    """A logged-in client sending what htmx sends: HX-Request and the page's CSRF header."""

    def __init__(self, client, username: str = "admin", password: str = ADMIN_PASSWORD):
        assert login(client, password, username=username).status_code == 302
        page = client.get("/system/backup").get_data(as_text=True)
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        self.client, self.headers = client, {**HX, "X-CSRFToken": token}

    def request(self, method: str, path: str, **kwargs):
        return self.client.open(path, method=method, headers=self.headers, **kwargs)


class BackupsClient(HtmxClient):
    def create(self, kind: str = "full", compress: bool = True):
        data = {"type": kind, **({"compress": "on"} if compress else {})}
        return self.request("POST", "/system/backup", data=data)


class BearerClient:
    """A test client sending the bearer ``token`` on every request (``api.get(path)``).
    Give it a client of its own when the test also logs in: a session cookie on the same
    client would take precedence over the token."""

    def __init__(self, client, token: str) -> None:
        self.client, self.token = client, token

    def __getattr__(self, method: str):
        def call(path: str, **kwargs):
            headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
            return getattr(self.client, method)(path, headers=headers, **kwargs)

        return call


@contextmanager
def served(app) -> Iterator[str]:
    """The app on a real threaded HTTP server on loopback (a browser or node needs one);
    yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
