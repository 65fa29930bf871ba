"""RQ entry points for alerts: the periodic evaluation, and delivering one notification."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any
from uuid import uuid4

from rq.exceptions import NoSuchJobError

from jobs.context import app_context
from jobs.progress import tag_job
from jobs.queues import FAILURE_TTL, NOTIFY_QUEUE, RESULT_TTL, queue, redis_connection
from services import alerts, notifications

EVALUATE_LOCK = "pgbackup:alerts:evaluate"
WATCHDOG_PREFIX = "alerts-watchdog-"
WATCHDOG_DELAY = timedelta(minutes=5)


def evaluate_alerts() -> dict[str, Any]:
    """Every minute (registered in rq-scheduler): notify the problems that started, lasted
    a day or cleared. One evaluation at a time, so an alert never fires twice."""
    with app_context():
        tag_job(kind="alerts")
        with redis_connection().lock(EVALUATE_LOCK, timeout=300, blocking_timeout=120):
            events = alerts.evaluate()
        _arm_watchdog()
        return {"events": [{"event": event.kind, "key": event.alert.key} for event in events]}


def _arm_watchdog() -> None:
    """Put off a spare evaluation in RQ's own scheduler (workers run --with-scheduler).
    Each evaluation puts it off again, so it fires only when rq-scheduler has stopped:
    then alerts, "scheduler gone" among them, are still evaluated every 5 minutes."""
    notify_queue = queue(NOTIFY_QUEUE)
    registry = notify_queue.scheduled_job_registry
    for job_id in registry.get_job_ids():
        if job_id.startswith(WATCHDOG_PREFIX):
            with contextlib.suppress(NoSuchJobError):
                registry.remove(job_id, delete_job=True)
    notify_queue.enqueue_in(WATCHDOG_DELAY, "jobs.alerts.evaluate_alerts",
                            job_id=f"{WATCHDOG_PREFIX}{uuid4().hex}",
                            description="evaluate alerts (watchdog for rq-scheduler)",
                            result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL)


def deliver(delivery_id: int) -> dict[str, Any]:
    """Send one notification. A failed try raises, and RQ retries it with backoff."""
    with app_context():
        tag_job(kind="notification", deliveryId=delivery_id)
        delivery = notifications.attempt(delivery_id)
        return {"deliveryId": delivery_id, "status": delivery.status if delivery else "gone"}
