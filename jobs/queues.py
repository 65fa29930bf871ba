"""Redis connection and the app's named queues."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

BACKUP_QUEUE = "backups"
RESTORE_QUEUE = "restores"
VERIFY_QUEUE = "verifications"
NOTIFY_QUEUE = "notifications"
QUEUES = (NOTIFY_QUEUE, RESTORE_QUEUE, BACKUP_QUEUE, VERIFY_QUEUE)  # a worker's priority order
JOB_TIMEOUT = 24 * 3600
# How long RQ keeps a job once it ends: every job the app creates says so, so that no job
# hash stays in Redis for ever (and RQ never logs "result will never expire").
RESULT_TTL = 7 * 24 * 3600  # finished
FAILURE_TTL = 30 * 24 * 3600  # failed: kept longer, to find out why


def redis_connection() -> Redis:
    """One Redis client per app, built from REDIS_URL."""
    client = current_app.extensions.get("redis")
    if client is None:
        client = Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=5)
        current_app.extensions["redis"] = client
    return client


def queue(name: str = BACKUP_QUEUE) -> Queue:
    return Queue(name, connection=redis_connection())


def queue_unavailable_message(exc: RedisError) -> str:
    """The one sentence for an unreachable Redis: where (REDIS_URL's host and port, never its
    password), why (the socket error, not redis-py's "Error 111 connecting to ..."), what to do."""
    url = urlsplit(current_app.config["REDIS_URL"])
    where = (url.path if url.scheme == "unix"
             else f"{url.hostname or 'localhost'}:{url.port or 6379}")
    cause = exc.__cause__
    why = (cause.strerror if isinstance(cause, OSError) and cause.strerror
           else str(exc) or type(exc).__name__)
    if url.password:
        for secret in (url.password, unquote(url.password)):
            why = why.replace(secret, "***")
    return f"Redis at {where} is unreachable ({why}); start it or check REDIS_URL"
