"""JSON below the API layer: the one timestamp format, and a verification result as stored.

:func:`iso` is the only way the app writes a time as text, for the API
(``blueprints/api/serializers.py`` re-exports it), the activity exports, the schedules' JSON
and the notifications' payloads. It lives here, not in ``blueprints``, because services and
jobs use it too and must not import blueprints. The one time in another form is a schedule's
``nextRunLocal``, on purpose: its next run on its own wall clock, with the UTC offset.

:func:`verification_record` is the shape of a verification result in the catalog
(``backup.verification_result``, a JSON column), written by the verification job and the
presence check, and served as is by the API: rows already stored keep reading back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pgbackup import VerifyResult


def iso(value: datetime | None) -> str | None:
    """``2026-11-26T13:53:43.388Z``: UTC, milliseconds, ``Z``; None stays None.

    A naive value is UTC (the catalog stores naive UTC); an aware one is converted.
    """
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def verification_record(result: VerifyResult) -> dict[str, Any]:
    """``result`` as ``backup.verification_result`` keeps it (camelCase keys)."""
    return {
        "isValid": result.is_valid,
        "level": result.level,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
        "warnings": list(result.warnings),
        "checkedAt": iso(result.checked_at),
    }
