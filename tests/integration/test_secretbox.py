"""Notification secrets are stored encrypted with a key derived from SECRET_KEY: the raw
catalog never holds them, the app still uses them, and a changed SECRET_KEY is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from services import secretbox
from services.extensions import db
from services.models import NotificationChannel
from tests.support.notifications import (
    CHANNELS,
    SECRET,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    http_receiver,
    mail,
    slack,
    verify_signature,
    webhook,
)

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data

KEY = "a-secret-key-of-at-least-32-characters"


def test_a_value_is_encrypted_with_a_version_prefix_and_decrypted():
    sealed = secretbox.encrypt("hunter2", KEY)
    assert sealed.startswith("enc:v1:") and "hunter2" not in sealed
    assert sealed != secretbox.encrypt("hunter2", KEY)  # a fresh IV each time
    assert secretbox.decrypt(sealed, KEY) == "hunter2"
    assert secretbox.decrypt("stored before encryption", KEY) == "stored before encryption"


def test_another_secret_key_gives_a_sentence_that_names_the_fix():
    sealed = secretbox.encrypt("hunter2", KEY)
    with pytest.raises(secretbox.SecretBoxError, match="SECRET_KEY") as caught:
        secretbox.decrypt(sealed, "another-key-of-at-least-32-characters")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(secretbox.SecretBoxError, match="SECRET_KEY"):
        secretbox.decrypt("enc:v1:not-a-token", KEY)


def catalog_dump(app) -> str:
    """The channels' rows as stored, and the raw SQLite files (with -wal)."""
    with app.app_context():
        rows = db.session.execute(text("SELECT config FROM notification_channels")).all()
    path = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    files = [Path(f"{path}{suffix}") for suffix in ("", "-wal")]
    raw = b"".join(file.read_bytes() for file in files if file.exists())
    return repr(rows) + raw.decode("latin-1")


def test_the_catalog_keeps_channel_secrets_encrypted_and_the_app_uses_them(app, api):
    with http_receiver() as receiver:
        hook = api.post(CHANNELS, json=webhook(receiver.url("/ok/hook"), secret=SECRET))
        api.post(CHANNELS, json=slack(receiver.url(f"/ok/{SLACK_TOKEN}")))
        api.post(CHANNELS, json=mail(25, username="ops", password=SMTP_PASSWORD))
        hook_id = hook.get_json()["id"]
        api.put(f"{CHANNELS}/{hook_id}", json={"name": "hook2"})  # the secret is kept
        assert api.post(f"{CHANNELS}/{hook_id}/test").get_json()["ok"] is True
        verify_signature(receiver.at("/ok/hook")[-1], SECRET)
    stored = catalog_dump(app)
    assert "enc:v1:" in stored and "ops" in stored  # the dump sees the rows
    for secret in (SECRET, SLACK_TOKEN, SMTP_PASSWORD):
        assert secret not in stored


def test_a_plaintext_secret_from_before_keeps_working_and_is_encrypted_on_next_save(app, api):
    with http_receiver() as receiver:
        with app.app_context():
            channel = NotificationChannel(name="old", kind="webhook", config={
                "url": receiver.url("/ok/old"), "secret": SECRET})
            db.session.add(channel)
            db.session.commit()
            channel_id = channel.id
        assert api.post(f"{CHANNELS}/{channel_id}/test").get_json()["ok"] is True
        verify_signature(receiver.at("/ok/old")[-1], SECRET)
        assert SECRET in catalog_dump(app)
        api.put(f"{CHANNELS}/{channel_id}", json={"enabled": False})
        with app.app_context():
            stored = db.session.get(NotificationChannel, channel_id).config["secret"]
        assert stored.startswith("enc:v1:")
        assert secretbox.decrypt(stored, app.config["SECRET_KEY"]) == SECRET


def test_a_changed_secret_key_is_named_not_a_crash(app, api):
    hook = api.post(CHANNELS, json=webhook("http://127.0.0.1:9/hook", secret=SECRET))
    hook_id = hook.get_json()["id"]
    app.config["SECRET_KEY"] = "a-new-secret-key-of-at-least-32-chars"
    result = api.post(f"{CHANNELS}/{hook_id}/test").get_json()
    assert result["ok"] is False and "SECRET_KEY" in result["error"]
    kept = api.put(f"{CHANNELS}/{hook_id}", json={"config": {"url": "http://127.0.0.1:9/x"}})
    assert kept.status_code == 409 and "SECRET_KEY" in kept.get_json()["error"]["message"]
    again = api.put(f"{CHANNELS}/{hook_id}", json={"config": {
        "url": "http://127.0.0.1:9/x", "secret": "entered again"}})
    assert again.status_code == 200 and again.get_json()["config"]["secret"] == "set"
