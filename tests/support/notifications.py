"""Notification channels' other ends, for real: an HTTP receiver (webhooks, Slack hooks),
an SMTP server (aiosmtpd), the channels' secrets and bodies, and running the notifications
queue in a real RQ worker."""

from __future__ import annotations

import contextlib
import email
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from rq import SimpleWorker

from jobs.queues import NOTIFY_QUEUE, redis_connection
from jobs.worker import PromptStopMixin
from tools.localservices import free_port

SECRET = "whsec-7f3a9c-never-shown"
SMTP_PASSWORD = "smtp-pw-4b1e-never-shown"
SLACK_TOKEN = "T0000/B0000/slacktoken9d2c"
CHANNELS = "/api/system/notifications/channels"


@dataclass
class Received:
    path: str
    headers: Message  # case-insensitive, as HTTP headers are
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    """POST /ok/...: 204. /status/<code>: that code. /flaky/<n>: 500 for the first n.
    Any other path: 204. The server's ``status``, once set, answers every path."""

    server: HttpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        code = self.server.answer(self.path)
        self.server.received.append(Received(self.path, self.headers, body))
        reply = b"receiver says no" if code >= 400 else b""
        self.send_response(code)
        if 300 <= code < 400:
            self.send_header("Location", "/ok/redirected")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


class HttpReceiver(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 that records every POST."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.status: int | None = None  # set it to answer every POST with that code
        self._seen: dict[str, int] = {}

    def answer(self, path: str) -> int:
        kind, _, arg = path.strip("/").partition("/")
        self._seen[path] = self._seen.get(path, 0) + 1
        if self.status is not None:
            return self.status
        if kind == "status":
            return int(arg)
        if kind == "flaky":
            return 500 if self._seen[path] <= int(arg) else 204
        return 204

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]


@contextlib.contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message, and the logins it was offered."""

    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    password: str | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, data) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=password == self.password, handled=False)


@contextlib.contextmanager
def smtp_receiver(password: str | None = None) -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port; with ``password``, it wants a login."""
    mailbox, port = Mailbox(password=password), free_port()
    options = ({"authenticator": mailbox.authenticate, "auth_require_tls": False,
                "auth_required": True} if password else {})
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    yield mailbox, port
    controller.stop()


class NotificationsWorker(PromptStopMixin, SimpleWorker):
    """A real RQ SimpleWorker that stops at once: rq's own waits up to 60 s for its pubsub
    thread when it stops (jobs/worker.py)."""


def run_notifications(app) -> None:
    """Run the notifications queue now in a real RQ SimpleWorker (burst)."""
    with app.app_context():
        NotificationsWorker([NOTIFY_QUEUE], connection=redis_connection()).work(burst=True)


def verify_signature(request: Received, secret: str) -> None:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-PGBackup-Signature"], expected)


def webhook(url: str, name: str = "hook", **config: Any) -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "config": {"url": url, **config}}


def mail(port: int, name: str = "mail", **config: Any) -> dict[str, Any]:
    return {"name": name, "kind": "email", "config": {
        "host": "127.0.0.1", "port": port, "starttls": False, "from": "pgbackup@example.com",
        "to": ["ops@example.com", "dba@example.com"], **config}}


def slack(url: str, name: str = "slack") -> dict[str, Any]:
    return {"name": name, "kind": "slack", "config": {"url": url}}
