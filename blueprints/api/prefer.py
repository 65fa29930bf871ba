"""``Prefer: wait=N`` (RFC 7240) on the routes that queue a job: create, verify, restore.

A client that sends it is answered 200 with the job's final result, and
``Preference-Applied: wait=N``, when the job ends within N seconds (at most MAX_WAIT);
otherwise with the usual 202 and no Preference-Applied. Without the preference, with
``wait=0`` or with a value that is not a number of seconds, nothing waits: RFC 7240 has a
server ignore a preference it does not understand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from services.job_wait import Ended, ended_within

# Each waiting request holds a web thread (the Procfile: 2 gunicorn workers of 8 threads,
# with a 120 s timeout).
MAX_WAIT = 60
_DIGITS = re.compile(r"[0-9]+")


def requested_wait() -> int:
    """The seconds the request's first ``wait`` preference asks for, capped at MAX_WAIT;
    0 for none, or for one whose value is not a number of seconds."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == "wait":  # only the first instance counts (RFC 7240)
                value = value.strip().removeprefix('"').removesuffix('"')
                return _seconds(value) if _DIGITS.fullmatch(value) else 0
    return 0


def _seconds(digits: str) -> int:
    """At most MAX_WAIT; a number too long for int() is just very many seconds."""
    digits = digits.lstrip("0") or "0"
    return MAX_WAIT if len(digits) > 9 else min(int(digits), MAX_WAIT)


def answer(job_id: str | None, accepted: dict[str, Any],
           final: Callable[[Ended], dict[str, Any]]) -> tuple[Response, int]:
    """202 with ``accepted``; or, when the request prefers to wait and the job ends in
    time, 200 with ``final(how it ended)`` and Preference-Applied."""
    seconds = requested_wait()
    ended = ended_within(job_id, seconds) if seconds and job_id else None
    if ended is None:
        return jsonify(accepted), 202
    response = jsonify(final(ended))
    response.headers["Preference-Applied"] = f"wait={seconds}"
    return response, 200
