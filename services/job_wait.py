"""Waiting for a queued job to end, for a request that asked to (``Prefer: wait=N``).

RQ appends a job's result to a Redis stream when the job ends (``rq:results:<job id>``).
Blocking on that stream (``XREAD BLOCK``, through ``Job.latest_result``) returns the moment
the worker writes it: nothing polls. The worker writes it after the job's own catalog
changes and after its failure callback, so the catalog is final once the result is there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.results import Result

from jobs.queues import redis_connection
from services.backups import target_connection
from services.extensions import db


@dataclass(frozen=True)
class Ended:
    """How a job ended: ``ok`` when it returned ``value``; else ``error``, the last line
    of its exception (``RuntimeError: backup ... no longer exists``)."""

    ok: bool
    value: Any = None
    error: str | None = None


# One blocking read at most this long: the app's Redis client gives up on a reply after
# 5 s (redis-py's default socket timeout), so a longer wait is several reads in a row.
SLICE_SECONDS = 3


def ended_within(job_id: str, seconds: int) -> Ended | None:
    """The job's end once it has ended, waiting at most ``seconds`` (at least 1); None if
    it has not by then, or if Redis cannot say (the job goes on either way)."""
    # End the request's transaction first: no catalog connection is held idle in a
    # transaction while waiting, and the rows the request loaded are read again afterwards.
    db.session.commit()
    deadline = time.monotonic() + max(1, seconds)
    result = None
    try:
        job = Job.fetch(job_id, connection=redis_connection())
        while result is None and (left := math.ceil(deadline - time.monotonic())) > 0:
            result = job.latest_result(timeout=min(left, SLICE_SECONDS))
    except (NoSuchJobError, RedisError):
        return None
    if result is None:
        return None
    if result.type == Result.Type.SUCCESSFUL:
        return Ended(ok=True, value=result.return_value)
    return Ended(ok=False, error=_exception_line(result.exc_string))


def _exception_line(traceback: str | None) -> str:
    """The exception line of a formatted traceback, with the protected database's
    password masked (a connection error may quote its DSN)."""
    lines = [line.strip() for line in (traceback or "").splitlines() if line.strip()]
    return target_connection().redact_text(lines[-1]) if lines else "the job did not finish"
