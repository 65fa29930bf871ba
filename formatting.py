"""Human-readable figures shared by the dashboard and the CLI."""

from __future__ import annotations

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
