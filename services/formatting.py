"""Human-readable figures shared by the dashboard and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pgbackup import count_tables

SIZE_UNITS = ("KiB", "MiB", "GiB", "TiB")


def filesize(size: int | None) -> str:
    """1536 -> '1.5 KiB'; binary units, one decimal."""
    if size is None:
        return "—"
    value, unit = float(size), "B"
    for larger in SIZE_UNITS:
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def format_duration(millis: float | None) -> str:
    """'—', '850 ms', '4.2 s', '3 min 05 s', '2 h 07 min'."""
    if millis is None:
        return "—"
    if millis < 1000:
        return f"{round(millis)} ms"
    seconds = millis / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def days_left(days: float) -> str:
    """How long until something runs out, in words a person reads: 'about 3.5 days',
    'about 40 days', 'more than a year'."""
    if days > 365:
        return "more than a year"
    return f"about {days:.1f} days" if days < 10 else f"about {round(days)} days"


def tables(listed: Iterable[Mapping[str, Any]]) -> str:
    """Tables as the API lists them (``partitionOf`` set on a partition), counted as a
    person counts them: '13 tables (25 partitions)' (pgbackup.TableCount)."""
    return str(count_tables(table.get("partitionOf") for table in listed))
