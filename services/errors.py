"""The error every service raises when it refuses: a sentence for the user, an HTTP status
and a machine-readable code (blueprints/errors.py turns it into the JSON error body)."""

from __future__ import annotations

from redis.exceptions import RedisError

from jobs.queues import queue_unavailable_message


class CatalogError(Exception):
    """An operation refused for a reason the caller can show as is."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.code = code or self.code

    @classmethod
    def queue_unavailable(cls, exc: RedisError, consequence: str = "") -> CatalogError:
        """503 for an unreachable Redis, worded as everywhere else; ``consequence`` is
        added after it ("nothing was created")."""
        message = queue_unavailable_message(exc) + (f"; {consequence}" if consequence else "")
        return cls(message, status=503, code="queue_unavailable")
