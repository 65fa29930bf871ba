"""Server-rendered SVG charts from plain data: no JavaScript, no chart library.

Pure functions: they take numbers, datetimes and strings and return an SVG document as a
string, ready to embed inline in HTML (the dashboard marks it ``|safe``). Every piece of
text that comes from the data goes through :func:`markupsafe.escape`, and everything else
is a number or a constant of this module, so a hostile label cannot inject markup.

Colours are SVG presentation attributes (``fill=``, ``stroke=``), never ``style=``: the
app's Content-Security-Policy (``style-src 'self'``) blocks inline styles.

- :func:`time_chart`: one line with dots per series, over time; y from 0, with readable
  ticks in bytes or durations, x ticks in UTC, and a legend.
- :func:`storage_bar`: a disk's use against its capacity: used by backups, used by
  others, free.

The drawing is pure; the data the dashboard draws comes from the catalog through
:func:`completed_backups` and :func:`completed_bytes`, the module's only reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from markupsafe import escape
from sqlalchemy import func, select

from services.extensions import db
from services.formatting import filesize, format_duration
from services.models import Backup

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"
TEXT = "#1c2430"
MUTED = "#5b6675"
GRID = "#e4e7ec"
AXIS = "#98a2b3"
PALETTE = ("#2f5d8a", "#0e9384", "#7a5af8", "#c4320a", "#4e5ba6", "#a15c07")
BACKUPS_FILL, OTHERS_FILL, FREE_FILL = "#2f5d8a", "#98a2b3", "#f2f4f7"
WARN_STROKE, CRITICAL_STROKE = "#dc6803", "#d92d20"

# time_chart's geometry, in SVG user units (the SVG scales to its box, text with it)
WIDTH, HEIGHT = 320, 220
LEFT, RIGHT, TOP, BOTTOM = 54, 12, 38, 38
FONT_SIZE = 11
LEGEND_ROW = 16
Y_TICKS = 5  # at most, including 0
X_TICKS = 5  # intervals between x ticks, at most
SINGLE_PADDING = timedelta(minutes=30)  # each side of a lone instant
BYTE_UNITS = (("B", 1), ("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3), ("TiB", 1024**4))
DURATION_UNITS = (("ms", 1), ("s", 1000), ("min", 60_000), ("h", 3_600_000))
TIME_STEPS = (  # seconds between x ticks, smallest first
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600,
    12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400,
)


@dataclass(frozen=True)
class Point:
    """One measurement: when, how much, and an optional label for its tooltip."""

    at: datetime  # naive datetimes are taken as UTC, as the catalog stores them
    value: float
    label: str | None = None


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point] = field(default_factory=tuple)
    color: str | None = None  # one of this module's constants or a #rrggbb; default: palette


@dataclass(frozen=True)
class Tick:
    value: float
    label: str


# ---- formatting --------------------------------------------------------------------------

def format_bytes(size: float) -> str:
    return filesize(round(size))


def format_percent(fraction: float) -> str:
    """'62%'; '<1%' and '>99%' rather than a misleading 0% or 100%."""
    percent = 100 * fraction
    if 0 < percent < 1:
        return "<1%"
    if 99 < percent < 100:
        return ">99%"
    return f"{percent:.0f}%"


# ---- ticks -------------------------------------------------------------------------------

def nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten that cuts ``span`` into at most
    ``count`` parts."""
    if span <= 0:
        return 1.0
    raw = span / count
    magnitude: float = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw * (1 - 1e-9):
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def unit_ticks(maximum: float, units: Sequence[tuple[str, float]], *, reach: float = 1,
               carry: bool = True) -> list[Tick]:
    """Ticks from 0 to at least ``maximum``, labelled like '200 KiB' or '30 s', in the
    largest unit of which ``maximum`` is ``reach`` or more. With ``carry``, the next unit
    up when the top tick gets there ('1.25 MiB', not '1280 KiB'). The smallest unit is
    never cut finer than 1."""
    index = 0
    for candidate, (_, size) in enumerate(units):
        if maximum >= reach * size:
            index = candidate
    while True:
        name, size = units[index]
        scaled = maximum / size
        step = nice_step(scaled, Y_TICKS - 1) if scaled > 0 else 1.0
        if index == 0:
            step = max(step, 1.0)
        top = max(1, math.ceil(scaled / step - 1e-9)) * step
        if carry and index + 1 < len(units) and top * size >= units[index + 1][1]:
            index += 1
            continue
        count = round(top / step)
        return [Tick(i * step * size, f"{_number(i * step)} {name}") for i in range(count + 1)]


def byte_ticks(maximum: float) -> list[Tick]:
    return unit_ticks(maximum, BYTE_UNITS)


def duration_ticks(maximum: float) -> list[Tick]:
    """Seconds up to 2 min and minutes up to 2 h read better than '0.5 min'."""
    return unit_ticks(maximum, DURATION_UNITS, reach=2, carry=False)


def time_ticks(start: float, end: float) -> tuple[list[Tick], float]:
    """Ticks at round UTC times between two epoch seconds, and the step. A label shows the
    time of day, with the date where the day changes (and on the first tick); steps of a
    day or more show dates only."""
    span = end - start
    step = next((s for s in TIME_STEPS if span / s <= X_TICKS), TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    ticks, previous_day = [], None
    value = first
    while value <= end + 1e-6:
        moment = datetime.fromtimestamp(value, UTC)
        day = moment.date()
        if step >= 86400:
            label = f"{moment:%b} {moment.day}" + (f" {moment:%Y}" if step >= 91 * 86400 else "")
        else:
            clock = f"{moment:%H:%M:%S}" if step < 60 else f"{moment:%H:%M}"
            label = clock if day == previous_day else f"{clock}\n{moment:%b} {moment.day}"
        ticks.append(Tick(value, label))
        previous_day = day
        value += step
    return ticks, step


def _number(value: float) -> str:
    """2.0 -> '2', 2.5 -> '2.5', 0.30000000000000004 -> '0.3'."""
    return f"{round(value, 9):g}"


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


# ---- SVG helpers -------------------------------------------------------------------------

def _n(value: float) -> str:
    """A coordinate: at most one decimal, no '-0'."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _color(color: str | None, index: int) -> str:
    """A #rrggbb colour, else the palette's; nothing else reaches an attribute."""
    if color and len(color) == 7 and color[0] == "#" and all(
            c in "0123456789abcdefABCDEF" for c in color[1:]):
        return color
    return PALETTE[index % len(PALETTE)]


def _text(x: float, y: float, content: str, *, anchor: str = "start", fill: str = MUTED,
          size: float = FONT_SIZE, weight: str | None = None, css: str | None = None) -> str:
    """A <text>; lines after the first become <tspan>s below it."""
    lines = content.split("\n")
    bold = f' font-weight="{weight}"' if weight else ""
    klass = f' class="{escape(css)}"' if css else ""
    first, *rest = lines
    spans = "".join(f'<tspan x="{_n(x)}" dy="{_n(size * 1.25)}">{escape(line)}</tspan>'
                    for line in rest)
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{fill}" '
            f'font-size="{_n(size)}"{bold}{klass}>{escape(first)}{spans}</text>')


def _svg(width: float, height: float, title: str, description: str, body: list[str],
         chart_id: str, css: str) -> str:
    ident = escape(chart_id)
    return (
        f'<svg xmlns="{SVG_NS}" viewBox="0 0 {_n(width)} {_n(height)}" class="{escape(css)}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'font-family="{FONT}" id="{ident}">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>'
        + "".join(body) + "</svg>"
    )


def _legend(series: Sequence[Series], width: float) -> tuple[list[str], int]:
    """Swatches and names in rows across the top; returns the markup and the row count."""
    parts: list[str] = []
    x: float = LEFT
    row = 0
    for index, one in enumerate(series):
        label = f"{one.name} ({len(one.points)})"
        item = 16 + _text_width(label) + 14
        if x > LEFT and x + item > width - RIGHT:
            x, row = LEFT, row + 1
        y = 14 + row * LEGEND_ROW
        color = _color(one.color, index)
        parts.append(
            f'<g class="legend-item"><rect x="{_n(x)}" y="{_n(y - 8)}" width="10" height="10" '
            f'rx="2" fill="{color}"/>'
            + _text(x + 15, y + 1, label, fill=TEXT) + "</g>")
        x += item
    return parts, row + 1 if series else 0


def _text_width(text: str, size: float = FONT_SIZE) -> float:
    """A rough width for laying out the legend: 0.6 em per character."""
    return len(text) * size * 0.6


# ---- the charts --------------------------------------------------------------------------

def time_chart(series: Sequence[Series], *, title: str, formatter: Callable[[float], str],
               ticks: Callable[[float], list[Tick]], chart_id: str,
               empty_text: str = "No data yet") -> str:
    """Each series as dots joined by a line, in time order, on a y axis from 0.

    ``formatter`` writes one value ('1.4 MiB'), ``ticks`` makes the y ticks for the largest
    value (:func:`byte_ticks`, :func:`duration_ticks`). With no points at all the chart
    keeps its frame and says ``empty_text``; a single instant is centred.
    """
    shown = [one for one in series if one.points]
    legend, rows = _legend(shown, WIDTH)
    top = TOP + max(0, rows - 1) * LEGEND_ROW
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - top - BOTTOM
    body = [*legend]
    points = [point for one in shown for point in one.points]
    values = [max(0.0, float(point.value)) for point in points]
    headroom = 1.03  # a dot at the very top would touch the frame
    y_ticks = ticks(max(values, default=0.0) * headroom) if points else [Tick(0, "")]
    y_top = y_ticks[-1].value or 1.0

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * max(0.0, value) / y_top

    for tick in y_ticks:  # horizontal grid lines with their labels
        y = y_of(tick.value)
        body.append(f'<line x1="{LEFT}" y1="{_n(y)}" x2="{_n(LEFT + plot_w)}" y2="{_n(y)}" '
                    f'stroke="{GRID if tick.value else AXIS}" stroke-width="1"/>')
        if tick.label:
            body.append(_text(LEFT - 6, y + 4, tick.label, anchor="end", css="tick"))
    body.append(f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{_n(top + plot_h)}" '
                f'stroke="{AXIS}" stroke-width="1"/>')

    if not points:
        body.append(_text(LEFT + plot_w / 2, top + plot_h / 2, empty_text, anchor="middle",
                          size=FONT_SIZE + 1, css="empty"))
        return _svg(WIDTH, HEIGHT, title, f"{title}: {empty_text}", body, chart_id,
                    "chart chart-empty")

    times = [_epoch(point.at) for point in points]
    start, end = min(times), max(times)
    pad = SINGLE_PADDING.total_seconds() if end - start < 1 else (end - start) * 0.04
    start, end = start - pad, end + pad

    def x_of(moment: datetime) -> float:
        return LEFT + plot_w * (_epoch(moment) - start) / (end - start)

    x_ticks, _step = time_ticks(start, end)
    for tick in x_ticks:
        x = LEFT + plot_w * (tick.value - start) / (end - start)
        body.append(f'<line x1="{_n(x)}" y1="{_n(top + plot_h)}" x2="{_n(x)}" '
                    f'y2="{_n(top + plot_h + 4)}" stroke="{AXIS}" stroke-width="1"/>')
        half = max(_text_width(line) for line in tick.label.split("\n")) / 2
        label_x = min(max(x, half + 2), WIDTH - half - 2)  # the edges cut no label
        body.append(_text(label_x, top + plot_h + 16, tick.label, anchor="middle", css="tick"))

    radius = 3.5 if len(points) <= 40 else 2.5 if len(points) <= 150 else 1.8
    for index, one in enumerate(shown):
        color = _color(one.color, index)
        ordered = sorted(one.points, key=lambda point: _epoch(point.at))
        coords = [(x_of(point.at), y_of(float(point.value))) for point in ordered]
        group = [f'<g class="series" data-series="{escape(one.name)}">']
        if len(coords) > 1:
            path = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
            group.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                         'stroke-width="1.75" stroke-linejoin="round" stroke-linecap="round"/>')
        for point, (x, y) in zip(ordered, coords, strict=True):
            tip = f"{one.name} · {_utc_text(point.at)} · {formatter(float(point.value))}"
            if point.label:
                tip += f" · {point.label}"
            group.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{radius}" fill="{color}" '
                         f'stroke="#ffffff" stroke-width="1"><title>{escape(tip)}</title>'
                         "</circle>")
        group.append("</g>")
        body.append("".join(group))
    summary = "; ".join(
        f"{one.name}: {len(one.points)} point{'s' if len(one.points) != 1 else ''}, latest "
        f"{formatter(float(max(one.points, key=lambda p: _epoch(p.at)).value))}"
        for one in shown)
    return _svg(WIDTH, HEIGHT, title, f"{title} over time (UTC). {summary}", body, chart_id,
                "chart")


def size_chart(series: Sequence[Series], chart_id: str = "chart-size") -> str:
    return time_chart(series, title="Backup size", formatter=format_bytes, ticks=byte_ticks,
                      chart_id=chart_id, empty_text="No completed backups yet")


def duration_chart(series: Sequence[Series], chart_id: str = "chart-duration") -> str:
    return time_chart(series, title="Backup duration", formatter=format_duration,
                      ticks=duration_ticks, chart_id=chart_id,
                      empty_text="No completed backups yet")


BAR_WIDTH, BAR_HEIGHT = 320, 116
BAR_X, BAR_Y, BAR_H = 8, 26, 22


def storage_bar(*, backups: int, used: int, free: int, warning_percent: float | None = None,
                critical_percent: float | None = None, location: str = "",
                chart_id: str = "chart-storage") -> str:
    """A disk's use as df shows it (capacity = used + free): one bar cut into the bytes of
    the backups, the rest of ``used``, and ``free``; optional marks at the warning and
    critical percentages. ``backups`` above ``used`` (files outside the filesystem, a
    stale catalog) is capped at ``used``."""
    used, free = max(0, int(used)), max(0, int(free))
    capacity = used + free
    backups = min(max(0, int(backups)), used)
    others = used - backups
    span = BAR_WIDTH - 2 * BAR_X
    body: list[str] = []
    where = f" of {location}" if location else ""
    if capacity <= 0:
        body.append(_text(BAR_X, 16, f"Disk{where}: no capacity reported", fill=TEXT))
        return _svg(BAR_WIDTH, BAR_HEIGHT, "Storage use", "no capacity reported", body,
                    chart_id, "chart chart-bar")

    headline = f"{format_percent(used / capacity)} used of {format_bytes(capacity)}"
    body.append(_text(BAR_X, 16, headline, fill=TEXT, size=FONT_SIZE + 2, weight="600"))
    body.append(f'<rect x="{BAR_X}" y="{BAR_Y}" width="{_n(span)}" height="{BAR_H}" rx="4" '
                f'fill="{FREE_FILL}" stroke="{AXIS}" stroke-width="1"/>')
    x = float(BAR_X)
    segments = [("backups", backups, BACKUPS_FILL), ("others", others, OTHERS_FILL)]
    for name, amount, color in segments:
        if amount <= 0:
            continue
        width = max(2.0, span * amount / capacity)  # a sliver stays visible
        width = min(width, BAR_X + span - x)
        body.append(f'<rect class="segment-{name}" x="{_n(x)}" y="{BAR_Y}" '
                    f'width="{_n(width)}" height="{BAR_H}" fill="{color}">'
                    f"<title>{escape(_part(name, amount, capacity))}</title></rect>")
        x += width
    for percent, color, label in ((warning_percent, WARN_STROKE, "warning"),
                                  (critical_percent, CRITICAL_STROKE, "critical")):
        if percent is not None and 0 < percent < 100:
            mark = BAR_X + span * percent / 100
            body.append(f'<line class="mark-{label}" x1="{_n(mark)}" y1="{BAR_Y - 3}" '
                        f'x2="{_n(mark)}" y2="{BAR_Y + BAR_H + 3}" stroke="{color}" '
                        f'stroke-width="2"><title>{escape(f"{label} at {percent:g}%")}'
                        "</title></line>")
    rows = (("backups", backups, BACKUPS_FILL), ("others", others, OTHERS_FILL),
            ("free", free, FREE_FILL))
    for index, (name, amount, color) in enumerate(rows):
        y = BAR_Y + BAR_H + 18 + index * 17
        body.append(f'<rect x="{BAR_X}" y="{_n(y - 9)}" width="10" height="10" rx="2" '
                    f'fill="{color}" stroke="{AXIS if name == "free" else color}" '
                    'stroke-width="1"/>')
        body.append(_text(BAR_X + 16, y, _part(name, amount, capacity), fill=TEXT,
                          css=f"legend-{name}"))
    description = (f"{headline}{where}: " + ", ".join(
        _part(name, amount, capacity) for name, amount, _ in rows))
    return _svg(BAR_WIDTH, BAR_HEIGHT, "Storage use", description, body, chart_id,
                "chart chart-bar")


def _part(name: str, amount: int, capacity: int) -> str:
    label = {"backups": "Backups", "others": "Other files", "free": "Free"}[name]
    return f"{label}: {format_bytes(amount)} ({format_percent(amount / capacity)})"


# ---- the data: completed backups in the catalog ----------------------------------------

def completed_backups(limit: int) -> list[Backup]:
    """The newest ``limit`` completed backups, oldest first: the trend charts' points."""
    rows = list(db.session.scalars(
        select(Backup).where(Backup.status == "completed")
        .order_by(Backup.created_at.desc(), Backup.id.desc()).limit(limit)))
    rows.reverse()
    return rows


def completed_bytes() -> int:
    """The size of every completed backup together: the storage bar's part for backups."""
    return db.session.scalar(select(func.coalesce(func.sum(Backup.size), 0)).where(
        Backup.status == "completed")) or 0
