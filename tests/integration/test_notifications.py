"""Notification channels against a real local HTTP receiver and a real local SMTP server
(aiosmtpd): the API, "send test", signatures, retries, and secrets that never come back."""

from __future__ import annotations

import pytest
from rq.job import Job, JobStatus

from jobs.alerts import deliver
from jobs.queues import redis_connection
from services import notifications
from services.extensions import db
from services.models import Alert, Delivery, utcnow
from services.notifications import DeliveryError
from tests.support.notifications import (
    CHANNELS,
    SECRET,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    mail,
    run_notifications,
    slack,
    smtp_receiver,
    verify_signature,
    webhook,
)
from tools.localservices import free_port

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


def no_secret_in(response_text: str) -> bool:
    return not any(secret in response_text for secret in (SECRET, SMTP_PASSWORD, SLACK_TOKEN))


# ---- the API ------------------------------------------------------------------------

def test_channels_are_created_listed_edited_and_deleted_with_write_only_secrets(
        api, receiver, smtp):
    _, port = smtp
    hook = api.post(CHANNELS, json=webhook(receiver.url("/ok/hook"), secret=SECRET))
    assert hook.status_code == 201, hook.get_json()
    assert hook.get_json()["config"] == {"url": receiver.url("/ok/hook"), "secret": "set"}
    mail_channel = api.post(CHANNELS, json=mail(port, username="ops", password=SMTP_PASSWORD))
    assert mail_channel.get_json()["config"]["password"] == "set"
    slack_channel = api.post(CHANNELS, json=slack(receiver.url(f"/ok/{SLACK_TOKEN}")))
    assert slack_channel.get_json()["config"] == {"url": "set"}
    listing = api.get(CHANNELS)
    assert [c["name"] for c in listing.get_json()["channels"]] == ["hook", "mail", "slack"]
    hook_id = hook.get_json()["id"]

    moved = api.put(f"{CHANNELS}/{hook_id}", json={"config": {"url": receiver.url("/ok/new")}})
    assert moved.get_json()["config"] == {"url": receiver.url("/ok/new"), "secret": "set"}
    assert api.post(f"{CHANNELS}/{hook_id}/test").get_json()["ok"] is True
    verify_signature(receiver.at("/ok/new")[-1], SECRET)  # the secret was kept

    renamed = api.put(f"{CHANNELS}/{hook_id}", json={"name": "hook2", "enabled": False})
    assert renamed.get_json()["config"]["secret"] == "set"
    assert renamed.get_json()["enabled"] is False
    cleared = api.put(f"{CHANNELS}/{hook_id}",
                      json={"config": {"url": receiver.url("/ok/new"), "secret": None}})
    assert cleared.get_json()["config"]["secret"] is None
    assert api.post(f"{CHANNELS}/{hook_id}/test").get_json()["ok"] is True
    assert "X-PGBackup-Signature" not in receiver.at("/ok/new")[-1].headers

    assert api.delete(f"{CHANNELS}/{hook_id}").get_json() == {"deleted": hook_id}
    assert api.put(f"{CHANNELS}/{hook_id}", json={"enabled": True}).status_code == 404
    assert api.delete(f"{CHANNELS}/{hook_id}").status_code == 404
    assert len(api.get(CHANNELS).get_json()["channels"]) == 2

    responses = [hook, mail_channel, slack_channel, listing, moved, renamed, cleared,
                 api.get(CHANNELS), api.get("/api/system/notifications/deliveries"),
                 api.get("/api/system/alerts"), api.get("/api/system/activity")]
    assert all(no_secret_in(response.get_data(as_text=True)) for response in responses)
    actions = [e["action"] for e in api.get("/api/system/activity").get_json()["events"]]
    assert {"channel.create", "channel.update", "channel.delete", "channel.test"} <= set(actions)


def test_send_test_reaches_a_webhook_a_slack_hook_and_a_mailbox(api, receiver, smtp):
    mailbox, port = smtp
    ids = [api.post(CHANNELS, json=body).get_json()["id"] for body in (
        webhook(receiver.url("/ok/hook"), secret=SECRET),
        slack(receiver.url(f"/ok/{SLACK_TOKEN}")), mail(port))]
    for channel_id in ids:
        result = api.post(f"{CHANNELS}/{channel_id}/test").get_json()
        assert result["ok"] is True and result["error"] is None

    [hook] = receiver.at("/ok/hook")
    verify_signature(hook, SECRET)
    assert hook.headers["X-PGBackup-Event"] == "test"
    assert hook.headers["Content-Type"] == "application/json"
    payload = hook.json
    assert payload["event"] == "test" and payload["app"]["name"] == "pg-backup-manager"
    assert set(payload["alert"]) == {"key", "severity", "message", "startedAt", "clearedAt"}
    assert payload["sentAt"].endswith("Z")
    [slack_post] = receiver.at(f"/ok/{SLACK_TOKEN}")
    assert slack_post.json["text"].startswith("TEST: test notification to channel slack")
    [message] = mailbox.messages
    assert message["Subject"] == "[pg-backup] TEST: test notification to channel mail"
    assert message["From"] == "pgbackup@example.com"
    assert message["To"] == "ops@example.com, dba@example.com"
    assert "test notification" in message.get_content()

    deliveries = api.get("/api/system/notifications/deliveries").get_json()["deliveries"]
    assert [(d["event"], d["status"], d["attempts"], d["lastError"]) for d in deliveries] == [
        ("test", "sent", 1, None)] * 3
    assert {d["channelName"] for d in deliveries} == {"hook", "slack", "mail"}


def test_send_test_reports_what_went_wrong_without_the_secret(api, receiver):
    closed = f"http://127.0.0.1:{free_port()}/hook"
    cases = [
        (webhook(closed, name="closed", secret=SECRET), "Connection refused"),
        (webhook(receiver.url("/status/500"), name="fails", secret=SECRET),
         "HTTP 500 Internal Server Error: receiver says no"),
        (webhook(receiver.url("/status/302"), name="moves"), "HTTP 302"),
        (slack(f"http://127.0.0.1:{free_port()}/{SLACK_TOKEN}"), "Connection refused"),
        (mail(free_port()), "Connection refused"),
    ]
    for body, error in cases:
        channel_id = api.post(CHANNELS, json=body).get_json()["id"]
        response = api.post(f"{CHANNELS}/{channel_id}/test")
        assert response.status_code == 200
        result = response.get_json()
        assert result["ok"] is False and error in result["error"], result
        assert no_secret_in(response.get_data(as_text=True))
    assert [r.path for r in receiver.received] == ["/status/500", "/status/302"]  # no follow
    deliveries = api.get("/api/system/notifications/deliveries?limit=5").get_json()
    assert {(d["status"], d["attempts"]) for d in deliveries["deliveries"]} == {("failed", 1)}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_logs_in_with_the_write_only_password(api):
    with smtp_receiver(password=SMTP_PASSWORD) as (mailbox, port):
        good = api.post(CHANNELS, json=mail(port, username="ops", password=SMTP_PASSWORD))
        assert api.post(f"{CHANNELS}/{good.get_json()['id']}/test").get_json()["ok"] is True
        wrong = api.post(CHANNELS, json=mail(port, name="wrong", username="ops",
                                             password="not-" + SMTP_PASSWORD))
        result = api.post(f"{CHANNELS}/{wrong.get_json()['id']}/test")
    assert mailbox.logins[0] == ("ops", SMTP_PASSWORD)
    assert set(mailbox.logins[1:]) == {("ops", "not-" + SMTP_PASSWORD)}  # PLAIN, then LOGIN
    assert len(mailbox.messages) == 1
    assert result.get_json()["ok"] is False and "SMTP 535" in result.get_json()["error"]
    assert SMTP_PASSWORD not in result.get_data(as_text=True)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"name": "x", "kind": "sms", "config": {}}, "sms"),
    ({"name": "x", "config": {"url": "http://a"}}, "kind"),
    (webhook("ftp://example.com/hook"), "http"),
    (webhook("javascript:alert(1)"), "http"),
    (webhook("http:///no-host"), "host"),
    ({"name": "x", "kind": "webhook", "config": {}}, "url"),
    ({**slack("https://hooks.example.com/x"), "colour": "red"}, "colour"),
    ({"name": "x", "kind": "slack", "config": {"url": "https://h/x", "token": 1}}, "token"),
    (webhook("https://example.com", name=""), "name"),
    ({**webhook("https://example.com"), "enabled": "yes"}, "enabled"),
    (mail(25, ssl=True, starttls=True), "exclude"),
    (mail(25, to=[]), "to"),
    (mail(25, to=["not-an-address"]), "not-an-address"),
    (mail(25, to=["a@b.example\nBcc: x@y.example"]), "not an email address"),
    (mail(70000), "port"),
    (mail("25"), "port"),
    (mail(25, password=SMTP_PASSWORD), "username"),
    ({"name": "x", "kind": "email", "config": {"host": "h", "to": ["a@b.c"]}}, "from"),
])
def test_invalid_channels_get_a_400_that_says_what_is_wrong(api, body, fragment):
    response = api.post(CHANNELS, json=body)
    assert response.status_code == 400, response.get_json()
    assert fragment in response.get_json()["error"]["message"]
    assert no_secret_in(response.get_data(as_text=True))
    assert api.get(CHANNELS).get_json()["channels"] == []


def test_other_bad_requests_get_json_errors(api):
    assert api.post(CHANNELS, data="{nope", content_type="application/json").get_json()[
        "error"]["code"] == "invalid_json"
    assert api.post(CHANNELS, json=webhook("https://example.com/a")).status_code == 201
    duplicate = api.post(CHANNELS, json=webhook("https://example.com/b"))
    assert duplicate.status_code == 409
    assert duplicate.get_json()["error"]["code"] == "channel_exists"
    [channel] = api.get(CHANNELS).get_json()["channels"]
    switched = api.put(f"{CHANNELS}/{channel['id']}", json={"kind": "email"})
    assert switched.status_code == 400  # a webhook's config is no email config
    assert api.post(f"{CHANNELS}/999/test").status_code == 404
    for query in ("limit=0", "limit=501", "limit=x", "colour=red"):
        response = api.get(f"/api/system/notifications/deliveries?{query}")
        assert response.status_code == 400, query


# ---- delivery jobs: retries with backoff, then failed --------------------------------

def queue_delivery(app, channel_id: int) -> int:
    """An alert event for one channel, queued as the evaluation would."""
    with app.app_context():
        alert = Alert(key="backup-failed:test", severity="critical",
                      message="full backup failed", started_at=utcnow())
        db.session.add(alert)
        [delivery] = notifications.add_deliveries([("fired", alert)])
        db.session.commit()
        notifications.enqueue([delivery])
        return delivery.id


def delivery_row(app, delivery_id: int) -> Delivery:
    with app.app_context():
        delivery = db.session.get(Delivery, delivery_id)
        db.session.expunge(delivery)
        return delivery


def delivery_job(app) -> Job:
    with app.app_context():
        connection = redis_connection()
        ids = {key.decode().removeprefix("rq:job:") for key in connection.scan_iter("rq:job:*")}
        [job] = [job for job in Job.fetch_many(list(ids), connection=connection)
                 if job and job.func_name == "jobs.alerts.deliver"]
        return job


def test_a_failed_delivery_is_retried_with_backoff_and_then_shown_failed(app, api, receiver):
    channel = api.post(CHANNELS, json=webhook(receiver.url("/status/500"), secret=SECRET))
    delivery_id = queue_delivery(app, channel.get_json()["id"])
    job = delivery_job(app)
    assert job.args == (delivery_id,) and job.kwargs == {}  # ids only, no secret
    assert (job.retries_left, job.retry_intervals) == (5, [10, 30, 60, 300, 900])

    run_notifications(app)  # the first try fails; RQ schedules the retry 10 s later
    job.refresh()
    assert job.get_status() == JobStatus.SCHEDULED and job.retries_left == 4
    row = delivery_row(app, delivery_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "HTTP 500 Internal Server Error: receiver says no"

    with app.app_context():  # the five retries, without waiting for the backoff
        for _ in range(5):
            with pytest.raises(DeliveryError):
                deliver(delivery_id)
        assert deliver(delivery_id) == {"deliveryId": delivery_id, "status": "failed"}
    assert len(receiver.at("/status/500")) == 6
    shown = api.get("/api/system/notifications/deliveries").get_json()["deliveries"]
    assert [(d["status"], d["attempts"], d["alertKey"], d["lastError"]) for d in shown] == [
        ("failed", 6, "backup-failed:test", "HTTP 500 Internal Server Error: receiver says no")]


def test_rq_runs_the_retries_and_a_later_success_clears_the_error(app, api, receiver):
    app.config["NOTIFY_RETRY_INTERVALS"] = [0, 0, 0]
    flaky = api.post(CHANNELS, json=webhook(receiver.url("/flaky/2"), secret=SECRET))
    delivery_id = queue_delivery(app, flaky.get_json()["id"])
    run_notifications(app)
    row = delivery_row(app, delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert row.sent_at is not None
    assert len(receiver.at("/flaky/2")) == 3
    for request in receiver.at("/flaky/2"):
        verify_signature(request, SECRET)
        assert request.headers["X-PGBackup-Delivery"] == str(delivery_id)


def test_rq_gives_up_after_the_last_retry_and_keeps_no_secret(app, api):
    app.config["NOTIFY_RETRY_INTERVALS"] = [0, 0]
    closed = slack(f"http://127.0.0.1:{free_port()}/{SLACK_TOKEN}")
    delivery_id = queue_delivery(app, api.post(CHANNELS, json=closed).get_json()["id"])
    run_notifications(app)
    row = delivery_row(app, delivery_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "Connection refused" in row.last_error
    job = delivery_job(app)
    assert job.get_status() == JobStatus.FAILED
    error = job.latest_result().exc_string
    assert SLACK_TOKEN not in error and "Connection refused" in error


def test_a_channel_disabled_meanwhile_gets_nothing(app, api, receiver):
    channel = api.post(CHANNELS, json=webhook(receiver.url("/ok/hook")))
    delivery_id = queue_delivery(app, channel.get_json()["id"])
    api.put(f"{CHANNELS}/{channel.get_json()['id']}", json={"enabled": False})
    run_notifications(app)
    row = delivery_row(app, delivery_id)
    assert (row.status, row.attempts) == ("failed", 0)
    assert row.last_error == "not sent: the channel was disabled"
    assert receiver.received == []
    assert delivery_job(app).get_status() == JobStatus.FINISHED
    with app.app_context():  # and no delivery at all for a disabled channel
        assert notifications.add_deliveries([("fired", db.session.get(Alert, 1))]) == []
