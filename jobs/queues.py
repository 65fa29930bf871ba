"""Redis connection and the app's named queues."""

from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue

BACKUP_QUEUE = "backups"
RESTORE_QUEUE = "restores"
VERIFY_QUEUE = "verifications"
NOTIFY_QUEUE = "notifications"
QUEUES = (NOTIFY_QUEUE, RESTORE_QUEUE, BACKUP_QUEUE, VERIFY_QUEUE)  # a worker's priority order
JOB_TIMEOUT = 24 * 3600
RESULT_TTL = 7 * 24 * 3600


def redis_connection() -> Redis:
    """One Redis client per app, built from REDIS_URL."""
    client = current_app.extensions.get("redis")
    if client is None:
        client = Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=5)
        current_app.extensions["redis"] = client
    return client


def queue(name: str = BACKUP_QUEUE) -> Queue:
    return Queue(name, connection=redis_connection())
