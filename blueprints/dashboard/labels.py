"""Words and numbers as the dashboard shows them: labels, and the templates' filters."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint

from services.formatting import filesize, format_duration, tables

KIND_LABELS = {"full": "Full (schema + data)",
               "incremental": "Incremental (changes since the last backup)",
               "schema-only": "Schema only"}
LEVEL_LABELS = {"integrity": "Integrity check", "restore": "Test restore"}
MODE_LABELS = {"overwrite": "Over the database", "new-database": "Into a new database",
               "rehearsal": "Rehearsal"}


def register(bp: Blueprint) -> None:
    """Make the filters and label tables available to every template."""
    for name, function in {"filesize": filesize, "duration": format_duration, "ago": ago,
                           "signed": signed, "thousands": thousands, "tables": tables}.items():
        bp.add_app_template_filter(function, name)
    bp.add_app_template_global(LEVEL_LABELS, "LEVEL_LABELS")
    bp.add_app_template_global(MODE_LABELS, "MODE_LABELS")


def ago(delta: timedelta) -> str:
    """A short, rounded-down age: 'just now', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def signed(number: int | None) -> str:
    """'+1,204', '0', '—' for unknown; negatives get a real minus sign (U+2212)."""
    if number is None:
        return "—"
    if number > 0:
        return f"+{number:,}"
    if number < 0:
        return f"\u2212{-number:,}"
    return "0"


def thousands(number: int | None) -> str:
    """'16,044'; '—' for unknown."""
    return "—" if number is None else f"{number:,}"
