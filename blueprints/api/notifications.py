"""JSON API for notification channels, deliveries and alerts, under /api/system.

Write-only channel settings (webhook ``secret``, email ``password``, Slack ``url``) read
back as ``"set"`` or null. A PUT that leaves one out of ``config`` keeps it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from flask import jsonify, request
from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    model_validator,
)

from blueprints.api import bp
from blueprints.api.schemas import Name, Printable, Strict, json_body
from blueprints.api.serializers import iso
from services import alerts, notifications
from services.models import Alert, Delivery, NotificationChannel

# ---- request schemas ----------------------------------------------------------------

def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    return value


def _address(value: str) -> str:
    local, at, domain = value.partition("@")
    if not (local and at and domain) or any(c.isspace() or c in "<>,;\"" for c in value):
        raise ValueError(f"{value!r} is not an email address (user@example.com)")
    return value


HttpUrl = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_http_url)]
Address = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_address)]
Secret = Annotated[str, Field(min_length=1, max_length=1024)]


class WebhookConfig(Strict):
    url: HttpUrl
    secret: Secret | None = None


class SlackConfig(Strict):
    url: HttpUrl


class EmailConfig(Strict):
    host: Annotated[str, Field(min_length=1, max_length=255), Printable]
    port: StrictInt = Field(default=587, ge=1, le=65535)
    from_: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1, max_length=50)
    starttls: StrictBool = True
    ssl: StrictBool = False
    username: Annotated[str, Field(min_length=1, max_length=255), Printable] | None = None
    password: Secret | None = None

    @model_validator(mode="after")
    def consistent(self) -> EmailConfig:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls exclude each other: ssl is TLS from the start "
                             "(usually port 465), starttls upgrades a plain connection "
                             "(usually port 587)")
        if self.password and not self.username:
            raise ValueError("a password needs a username")
        return self


class _Channel(Strict):
    name: Name
    enabled: StrictBool = True


class WebhookChannel(_Channel):
    kind: Literal["webhook"]
    config: WebhookConfig


class SlackChannel(_Channel):
    kind: Literal["slack"]
    config: SlackConfig


class EmailChannel(_Channel):
    kind: Literal["email"]
    config: EmailConfig


CHANNEL_REQUEST = TypeAdapter(Annotated[WebhookChannel | SlackChannel | EmailChannel,
                                        Field(discriminator="kind")])


class DeliveriesQuery(Strict):
    limit: int = Field(default=100, ge=1, le=500)


def channel_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A channel request, validated, as the columns store it (raises ValidationError)."""
    channel = CHANNEL_REQUEST.validate_python(body)
    return {"name": channel.name, "kind": channel.kind, "enabled": channel.enabled,
            "config": channel.config.model_dump(by_alias=True, exclude_none=True)}


# ---- responses ----------------------------------------------------------------------

def channel_json(channel: NotificationChannel) -> dict[str, Any]:
    return {"id": channel.id, "name": channel.name, "kind": channel.kind,
            "enabled": channel.enabled, "config": notifications.public_config(channel),
            "createdAt": iso(channel.created_at)}


def alert_json(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "key": alert.key, "severity": alert.severity,
            "message": alert.message, "open": alert.cleared_at is None,
            "startedAt": iso(alert.started_at),
            "lastNotifiedAt": iso(alert.last_notified_at),
            "clearedAt": iso(alert.cleared_at)}


def delivery_json(delivery: Delivery, channel: NotificationChannel,
                  alert: Alert | None) -> dict[str, Any]:
    return {"id": delivery.id, "channelId": channel.id, "channelName": channel.name,
            "alertId": delivery.alert_id, "alertKey": alert.key if alert else None,
            "event": delivery.event, "status": delivery.status,
            "attempts": delivery.attempts, "lastError": delivery.last_error,
            "createdAt": iso(delivery.created_at),
            "sentAt": iso(delivery.sent_at)}


# ---- routes -------------------------------------------------------------------------

@bp.get("/system/notifications/channels")
def list_channels():
    return jsonify(channels=[channel_json(c) for c in notifications.list_channels()])


@bp.post("/system/notifications/channels")
def create_channel():
    fields = channel_fields(json_body())
    return jsonify(channel_json(notifications.save_channel(NotificationChannel(), fields))), 201


@bp.put("/system/notifications/channels/<id:channel_id>")
def update_channel(channel_id: int):
    channel = notifications.get_channel(channel_id)
    fields = channel_fields(notifications.with_kept_secrets(channel, json_body()))
    return jsonify(channel_json(notifications.save_channel(channel, fields)))


@bp.delete("/system/notifications/channels/<id:channel_id>")
def delete_channel(channel_id: int):
    notifications.delete_channel(channel_id)
    return jsonify(deleted=channel_id)


@bp.post("/system/notifications/channels/<id:channel_id>/test")
def test_channel(channel_id: int):
    delivery = notifications.send_test(notifications.get_channel(channel_id))
    return jsonify(ok=delivery.status == "sent", error=delivery.last_error,
                   deliveryId=delivery.id)


@bp.get("/system/notifications/deliveries")
def list_deliveries():
    limit = DeliveriesQuery.model_validate(request.args.to_dict()).limit
    return jsonify(deliveries=[delivery_json(*row)
                               for row in notifications.recent_deliveries(limit)])


@bp.get("/system/alerts")
def list_alerts():
    return jsonify(alerts=[alert_json(alert) for alert in alerts.recent_alerts()])
