"""Notification channels, and sending alert events to them: webhook, email and Slack.

Write-only settings (a webhook's signing secret, the SMTP password, a Slack webhook URL,
whose path is its credential) are never shown by the API, never passed as job arguments
(delivery jobs get a delivery id) and never put in an error message or a log line. The
catalog keeps them encrypted (secretbox.py): ``channel.config`` holds them encrypted, and
:func:`config_of` gives the config with them decrypted.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from flask import current_app
from rq import Retry
from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError

from jobs.queues import FAILURE_TTL, NOTIFY_QUEUE, RESULT_TTL, queue
from pgbackup import TOOL_NAME, __version__
from services import activity, secretbox
from services.errors import CatalogError
from services.extensions import db
from services.json_shapes import iso
from services.models import Alert, Delivery, NotificationChannel, utcnow

KINDS = ("webhook", "email", "slack")
WRITE_ONLY = {"webhook": ("secret",), "email": ("password",), "slack": ("url",)}
SEND_TIMEOUT = 10  # seconds, for a delivery job
TEST_TIMEOUT = 5  # seconds, for "send test", which answers an HTTP request
RETRY_INTERVALS = (10, 30, 60, 300, 900)  # seconds before each retry; NOTIFY_RETRY_INTERVALS
SIGNATURE_HEADER = "X-PGBackup-Signature"
EVENT_HEADER = "X-PGBackup-Event"
SUBJECT_PREFIX = "[pg-backup]"
SEND_ERRORS = (OSError, http.client.HTTPException, ValueError)  # OSError covers URL and SMTP


class DeliveryError(Exception):
    """A notification did not go through; the message holds no secret."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without its body: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Notice:
    """What one notification says: an event about an alert."""

    event: str  # fired, reminder, cleared, test
    key: str
    severity: str
    message: str
    started_at: datetime
    cleared_at: datetime | None = None

    @classmethod
    def of(cls, event: str, alert: Alert) -> Notice:
        return cls(event, alert.key, alert.severity, alert.message, alert.started_at,
                   alert.cleared_at)

    @classmethod
    def test(cls, channel: NotificationChannel) -> Notice:
        return cls("test", "test", "info", f"test notification to channel {channel.name}",
                   utcnow())

    @property
    def summary(self) -> str:
        """One line: 'CRITICAL: no recent backup ...', 'RESOLVED: ...', 'TEST: ...'."""
        label = {"cleared": "RESOLVED", "test": "TEST"}.get(self.event, self.severity.upper())
        reminder = " (reminder)" if self.event == "reminder" else ""
        return " ".join(f"{label}{reminder}: {self.message}".split())

    def payload(self, sent_at: datetime) -> dict[str, Any]:
        return {
            "event": self.event,
            "alert": {"key": self.key, "severity": self.severity, "message": self.message,
                      "startedAt": iso(self.started_at), "clearedAt": iso(self.cleared_at)},
            "app": {"name": TOOL_NAME, "version": __version__,
                    "database": current_app.config["TARGET_DATABASE"]},
            "sentAt": iso(sent_at),
        }


# ---- channels -------------------------------------------------------------------------

def list_channels() -> list[NotificationChannel]:
    return list(db.session.scalars(select(NotificationChannel).order_by(NotificationChannel.name)))


def get_channel(channel_id: int) -> NotificationChannel:
    channel = db.session.get(NotificationChannel, channel_id)
    if channel is None:
        raise CatalogError(f"no notification channel with id {channel_id}", status=404,
                           code="not_found")
    return channel


def save_channel(channel: NotificationChannel, fields: dict[str, Any]) -> NotificationChannel:
    """Store validated fields (name, kind, enabled, config) on a new or existing channel.

    A ``config`` in ``fields`` is plaintext, and its write-only settings are encrypted.
    Without one, the stored config's settings from before encryption are encrypted now.
    """
    action = "channel.update" if channel.id else "channel.create"
    plaintext = "config" in fields
    for name, value in fields.items():
        setattr(channel, name, value)
    channel.config = {key: _encrypted(value, plaintext)
                      if key in WRITE_ONLY[channel.kind] and value else value
                      for key, value in (channel.config or {}).items()}
    name = channel.name  # as asked for: the rollback expires an edited row's
    db.session.add(channel)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise CatalogError(f"a channel named {name!r} exists already", status=409,
                           code="channel_exists") from None
    activity.record(action, channel.name, detail=f"{channel.kind}, "
                    f"{'enabled' if channel.enabled else 'disabled'}")
    return channel


def with_kept_secrets(channel: NotificationChannel, body: dict[str, Any]) -> dict[str, Any]:
    """The stored channel with the request's fields over it. A write-only setting that the
    request's config leaves out keeps its stored value (send null to remove it)."""
    kind = body.get("kind", channel.kind)
    hidden = WRITE_ONLY[channel.kind]
    config = body.get("config", {key: value for key, value in channel.config.items()
                                 if key not in hidden})
    if kind == channel.kind and isinstance(config, dict):
        kept = {key: _kept(value) for key, value in channel.config.items()
                if key in hidden and key not in config}
        config = {**kept, **config}
    return {"name": channel.name, "enabled": channel.enabled, **body, "kind": kind,
            "config": config}


def _encrypted(value: str, plaintext: bool) -> str:
    """A write-only setting as stored: encrypted, whether it comes from a request or was
    stored before encryption."""
    return value if not plaintext and secretbox.is_encrypted(value) else secretbox.encrypt(value)


def _kept(stored: str) -> str:
    """A stored write-only setting, decrypted to be validated with the request's."""
    try:
        return secretbox.decrypt(stored)
    except secretbox.SecretBoxError as exc:
        raise CatalogError(str(exc), status=409, code="secret_unreadable") from None


def config_of(channel: NotificationChannel) -> dict[str, Any]:
    """The channel's config with its write-only settings decrypted (SecretBoxError)."""
    return {key: secretbox.decrypt(value) if key in WRITE_ONLY[channel.kind] and value
            else value for key, value in channel.config.items()}


def delete_channel(channel_id: int) -> None:
    """Its deliveries go with it; their queued jobs then find nothing to send."""
    channel = get_channel(channel_id)
    db.session.delete(channel)
    activity.record("channel.delete", channel.name, detail=channel.kind)


def public_config(channel: NotificationChannel) -> dict[str, Any]:
    """The channel's settings with each write-only one shown as "set" or None."""
    hidden = WRITE_ONLY[channel.kind]
    shown = {key: value for key, value in channel.config.items() if key not in hidden}
    return shown | {key: "set" if channel.config.get(key) else None for key in hidden}


# ---- deliveries -----------------------------------------------------------------------

def add_deliveries(events: Iterable[tuple[str, Alert]]) -> list[Delivery]:
    """One pending delivery per event and enabled channel (flushed, not committed)."""
    channels = db.session.scalars(
        select(NotificationChannel).where(NotificationChannel.enabled)).all()
    db.session.flush()  # new alerts get their ids
    deliveries = [Delivery(channel_id=channel.id, alert_id=alert.id, event=event)
                  for event, alert in events for channel in channels]
    db.session.add_all(deliveries)
    db.session.flush()
    return deliveries


def retry_intervals() -> list[int]:
    return list(current_app.config.get("NOTIFY_RETRY_INTERVALS", RETRY_INTERVALS))


def enqueue(deliveries: Iterable[Delivery]) -> None:
    """A job per committed delivery; RQ retries a failed send with backoff."""
    intervals = retry_intervals()
    notify_queue = queue(NOTIFY_QUEUE)
    for delivery in deliveries:
        notify_queue.enqueue(
            "jobs.alerts.deliver", delivery.id,
            job_id=f"delivery-{delivery.id}",
            retry=Retry(max=len(intervals), interval=intervals),
            description=f"{delivery.event} notification {delivery.id} to channel "
                        f"{delivery.channel_id}",
            job_timeout=4 * SEND_TIMEOUT, result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
        )


def attempt(delivery_id: int) -> Delivery | None:
    """Try a pending delivery once and record how it went; raises DeliveryError after
    recording a failed try (the last one marks it failed). None: it is gone."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return delivery
    channel = db.session.get(NotificationChannel, delivery.channel_id)
    assert channel is not None  # deleting a channel deletes its deliveries
    if not channel.enabled:
        _record(delivery, "failed", "not sent: the channel was disabled")
        return delivery
    alert = db.session.get(Alert, delivery.alert_id)
    assert alert is not None  # only a test delivery has none, and it is sent at once
    notice = Notice.of(delivery.event, alert)
    last_try = delivery.attempts + 1 > len(retry_intervals())
    _try(delivery, channel, notice, SEND_TIMEOUT, "failed" if last_try else "pending")
    return delivery


def send_test(channel: NotificationChannel) -> Delivery:
    """Send a "test" event now, once, and record it as a delivery."""
    delivery = Delivery(channel_id=channel.id, event="test")
    db.session.add(delivery)
    db.session.flush()
    with contextlib.suppress(DeliveryError):  # recorded on the delivery
        _try(delivery, channel, Notice.test(channel), TEST_TIMEOUT, "failed")
    activity.record("channel.test", channel.name,
                    outcome="ok" if delivery.status == "sent" else "failed",
                    detail=delivery.last_error)
    return delivery


DeliveryRow = Row[Delivery, NotificationChannel, Alert | None]


def last_delivery(channel_id: int) -> Delivery | None:
    """The channel's newest delivery, test or alert (None before its first)."""
    return db.session.scalars(
        select(Delivery).where(Delivery.channel_id == channel_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(1)).first()


def recent_deliveries(limit: int) -> Sequence[DeliveryRow]:
    """Newest first, each with its channel and its alert (None for a test)."""
    return db.session.execute(
        select(Delivery, NotificationChannel, Alert)
        .join(NotificationChannel, Delivery.channel_id == NotificationChannel.id)
        .outerjoin(Alert, Delivery.alert_id == Alert.id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)).all()


def _try(delivery: Delivery, channel: NotificationChannel, notice: Notice, timeout: float,
         status_on_error: str) -> None:
    delivery.attempts += 1
    try:
        send(channel, notice, delivery.id, timeout)
    except DeliveryError as exc:
        _record(delivery, status_on_error, str(exc))
        raise
    _record(delivery, "sent", None)


def _record(delivery: Delivery, status: str, error: str | None) -> None:
    delivery.status = status
    delivery.last_error = error
    if status == "sent":
        delivery.sent_at = utcnow()
    db.session.commit()


# ---- sending --------------------------------------------------------------------------

def send(channel: NotificationChannel, notice: Notice, delivery_id: int,
         timeout: float) -> None:
    """Send ``notice`` through ``channel``; raises DeliveryError with a redacted reason."""
    sender = {"webhook": _send_webhook, "slack": _send_slack, "email": _send_email}
    try:
        config = config_of(channel)
    except secretbox.SecretBoxError as exc:
        raise DeliveryError(str(exc)) from None
    try:
        sender[channel.kind](config, notice, delivery_id, timeout)
    except SEND_ERRORS as exc:
        raise DeliveryError(_redact(_describe(exc), channel.kind, config)) from None


def signature(secret: str, body: bytes) -> str:
    """The X-PGBackup-Signature value: HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _send_webhook(config: dict[str, Any], notice: Notice, delivery_id: int,
                  timeout: float) -> None:
    body = json.dumps(notice.payload(utcnow()), separators=(",", ":")).encode()
    headers = {EVENT_HEADER: notice.event, "X-PGBackup-Delivery": str(delivery_id)}
    if config.get("secret"):
        headers[SIGNATURE_HEADER] = signature(config["secret"], body)
    _post_json(config["url"], body, headers, timeout)


def _send_slack(config: dict[str, Any], notice: Notice, _delivery_id: int,
                timeout: float) -> None:
    text = f"{notice.summary}\n`{notice.key}` since {iso(notice.started_at)}"
    _post_json(config["url"], json.dumps({"text": text}).encode(), {}, timeout)


def _post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"{TOOL_NAME}/{__version__}",
        **headers})
    with _OPENER.open(request, timeout=timeout) as response:
        response.read(65536)


def _send_email(config: dict[str, Any], notice: Notice, _delivery_id: int,
                timeout: float) -> None:
    message = _email(config, notice)
    smtp: smtplib.SMTP
    if config.get("ssl"):
        smtp = smtplib.SMTP_SSL(config["host"], config["port"], timeout=timeout,
                                context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(config["host"], config["port"], timeout=timeout)
    with smtp:
        if config.get("starttls"):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("username"):
            smtp.login(config["username"], config.get("password") or "")
        smtp.send_message(message)


def _email(config: dict[str, Any], notice: Notice) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"{SUBJECT_PREFIX} {notice.summary}"[:200]
    message["From"] = config["from"]
    message["To"] = ", ".join(config["to"])
    message[EVENT_HEADER] = notice.event
    message["X-PGBackup-Alert"] = notice.key
    message.set_content(
        f"{notice.summary}\n\n"
        f"Alert:    {notice.key}\nSeverity: {notice.severity}\n"
        f"Started:  {iso(notice.started_at)}\nCleared:  {iso(notice.cleared_at) or '-'}\n"
        f"Database: {current_app.config['TARGET_DATABASE']}\n\n{notice.message}\n\n"
        f"-- \n{TOOL_NAME} {__version__}\n")
    return message


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        detail = _start_of_body(exc)
        return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        return f"SMTP {exc.smtp_code}: {text}"
    return f"{type(exc).__name__}: {exc}"


def _start_of_body(response: urllib.error.HTTPError) -> str:
    """What the receiver said, as far as it says it at once."""
    try:
        return response.read(300).decode(errors="replace").strip()
    except OSError:
        return ""


def _redact(text: str, kind: str, config: dict[str, Any]) -> str:
    for key in WRITE_ONLY[kind]:
        value = config.get(key)
        if value:
            text = text.replace(value, "***")
    return text
