"""charts.py alone: well-formed SVG for 0, 1 and many points, readable ticks, escaped text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from services import charts
from services.charts import Point, Series
from services.formatting import format_duration

NS = {"svg": charts.SVG_NS}
T0 = datetime(2026, 11, 26, 2, 0)
HOSTILE = "<script>alert('x')</script> & \"quoted\""


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{{{charts.SVG_NS}}}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{{{charts.SVG_NS}}}text")]


def circles(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//svg:circle", NS)


def tooltips(root: ET.Element) -> list[str]:
    return [circle.find("svg:title", NS).text for circle in circles(root)]


def nightly(count: int, start: float = 700_000, step: float = 1_000) -> list[Point]:
    return [Point(T0 + timedelta(days=i), start + i * step, f"backup-{i}") for i in range(count)]


def assert_inside(root: ET.Element) -> None:
    """Every dot and line lies in the viewBox."""
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    for circle in circles(root):
        assert 0 <= float(circle.get("cx")) <= width and 0 <= float(circle.get("cy")) <= height
    for line in root.findall(".//svg:polyline", NS):
        for pair in line.get("points").split():
            x, y = (float(v) for v in pair.split(","))
            assert 0 <= x <= width and 0 <= y <= height


def test_no_points_keeps_the_frame_and_says_so():
    for svg in (charts.size_chart([]), charts.size_chart([Series("full", [])]),
                charts.duration_chart([Series("full"), Series("schema-only")])):
        root = parse(svg)
        assert "No completed backups yet" in texts(root)
        assert circles(root) == [] and root.findall(".//svg:polyline", NS) == []
        assert "chart-empty" in root.get("class")
        assert root.find("svg:title", NS).text in ("Backup size", "Backup duration")


def test_one_point_is_a_centred_dot_without_a_line():
    root = parse(charts.size_chart([Series("full", [Point(T0, 734_000, "backup-1")])]))
    [dot] = circles(root)
    assert root.findall(".//svg:polyline", NS) == []
    plot_middle = charts.LEFT + (charts.WIDTH - charts.LEFT - charts.RIGHT) / 2
    assert abs(float(dot.get("cx")) - plot_middle) < 1
    assert tooltips(root) == ["full · 2026-11-26 02:00:00 UTC · 716.8 KiB · backup-1"]
    labels = texts(root)
    assert "full (1)" in labels  # the legend
    assert labels.count("0 KiB") == 1 and "800 KiB" in labels
    assert "02:00" in labels and "01:30Nov 26" in labels  # the date under the first time
    assert_inside(root)


def test_many_points_per_series_with_a_legend_and_day_ticks():
    full = nightly(60)
    schema = [Point(p.at + timedelta(hours=1), 30_000) for p in full[::7]]
    root = parse(charts.size_chart([Series("full", full), Series("schema-only", schema)]))
    series = root.findall(".//svg:g[@class='series']", NS)
    assert [g.get("data-series") for g in series] == ["full", "schema-only"]
    assert len(series[0].findall("svg:circle", NS)) == 60
    assert len(series[1].findall("svg:circle", NS)) == 9
    assert len(root.findall(".//svg:polyline", NS)) == 2
    labels = texts(root)
    assert "full (60)" in labels and "schema-only (9)" in labels
    assert "0 KiB" in labels and any(label.endswith(" KiB") and label != "0 KiB"
                                     for label in labels)
    assert {"Dec 3", "Dec 17", "Dec 31"} <= set(labels)  # dates only, over two months
    colors = {g.find("svg:circle", NS).get("fill") for g in series}
    assert len(colors) == 2
    assert_inside(root)
    # Time order on the x axis, whatever the input order.
    shuffled = parse(charts.size_chart([Series("full", list(reversed(full)))]))
    xs = [float(pair.split(",")[0]) for pair in
          shuffled.find(".//svg:polyline", NS).get("points").split()]
    assert xs == sorted(xs)


def test_hundreds_of_points_get_smaller_dots():
    root = parse(charts.duration_chart([Series("full", nightly(300, start=2_000, step=500))]))
    assert len(circles(root)) == 300
    assert {float(c.get("r")) for c in circles(root)} == {1.8}
    assert_inside(root)


def test_points_seconds_apart_get_second_ticks():
    points = [Point(T0 + timedelta(seconds=i), 1_000 + i) for i in range(4)]
    labels = texts(parse(charts.duration_chart([Series("full", points)])))
    assert "02:00:00Nov 26" in labels and "02:00:02" in labels


def test_hostile_labels_are_escaped_and_the_svg_stays_well_formed():
    series = [Series(HOSTILE, [Point(T0, 1024, HOSTILE), Point(T0 + timedelta(hours=1), 2048)]),
              Series("full", [Point(T0, 5, "fine")], color="red\" onload=\"alert(1)")]
    svg = charts.size_chart(series, chart_id="c\"><script>")
    assert "<script>" not in svg and "onload" not in svg
    root = parse(svg)
    assert HOSTILE in texts(root)[0] or any(HOSTILE in text for text in texts(root))
    assert any(HOSTILE in tip for tip in tooltips(root))
    assert root.find(".//svg:g[@class='series']", NS).get("data-series") == HOSTILE
    # A colour that is not #rrggbb falls back to the palette.
    assert {c.get("fill") for c in circles(root)} <= set(charts.PALETTE)
    bar = charts.storage_bar(backups=1, used=2, free=3, location=HOSTILE)
    assert "<script>" not in bar
    assert HOSTILE in parse(bar).find("svg:desc", NS).text


def test_no_style_attributes_or_scripts_anywhere():
    for svg in (charts.size_chart([Series("full", nightly(5))]), charts.size_chart([]),
                charts.storage_bar(backups=10, used=100, free=100)):
        root = parse(svg)
        for node in root.iter():
            assert "style" not in node.attrib
            assert not any(name.startswith("on") for name in node.attrib)
            assert not node.tag.endswith("script")


@pytest.mark.parametrize(("maximum", "expected"), [
    (0, ["0 B", "1 B"]),
    (3, ["0 B", "1 B", "2 B", "3 B"]),
    (734_000, ["0 KiB", "200 KiB", "400 KiB", "600 KiB", "800 KiB"]),
    (1010 * 1024, ["0 MiB", "0.25 MiB", "0.5 MiB", "0.75 MiB", "1 MiB"]),
    (5_000_000, ["0 MiB", "2 MiB", "4 MiB", "6 MiB"]),
    (3.3 * 1024**3, ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"]),
])
def test_byte_ticks(maximum, expected):
    ticks = charts.byte_ticks(maximum)
    assert [tick.label for tick in ticks] == expected
    assert ticks[0].value == 0 and ticks[-1].value >= maximum


@pytest.mark.parametrize(("maximum", "expected"), [
    (850, ["0 ms", "250 ms", "500 ms", "750 ms", "1000 ms"]),
    (2_500, ["0 s", "1 s", "2 s", "3 s"]),
    (90_000, ["0 s", "25 s", "50 s", "75 s", "100 s"]),
    (130_000, ["0 min", "1 min", "2 min", "3 min"]),
    (9_000_000, ["0 h", "1 h", "2 h", "3 h"]),
])
def test_duration_ticks(maximum, expected):
    assert [tick.label for tick in charts.duration_ticks(maximum)] == expected


def test_time_ticks_are_round_and_few():
    start = datetime(2026, 11, 26, 13, 47, tzinfo=UTC).timestamp()
    ticks, step = charts.time_ticks(start, start + 3 * 3600)
    assert step == 3600 and len(ticks) <= charts.X_TICKS + 1
    assert [tick.label for tick in ticks] == ["14:00\nNov 26", "15:00", "16:00"]
    ticks, step = charts.time_ticks(start, start + 40 * 86400)
    assert step == 14 * 86400 and all("\n" not in tick.label for tick in ticks)
    across = datetime(2026, 11, 26, 20, 0, tzinfo=UTC).timestamp()
    labels = [tick.label for tick in charts.time_ticks(across, across + 9 * 3600)[0]]
    assert labels == ["20:00\nNov 26", "22:00", "00:00\nNov 27", "02:00", "04:00"]


@pytest.mark.parametrize(("millis", "text"), [
    (0, "0 ms"), (850, "850 ms"), (4_200, "4.2 s"), (185_000, "3 min 05 s"),
    (7_620_000, "2 h 07 min"),
])
def test_format_duration(millis, text):
    assert format_duration(millis) == text


def test_storage_bar_splits_used_by_backups_others_and_free():
    gib = 1024**3
    root = parse(charts.storage_bar(backups=3 * gib, used=60 * gib, free=40 * gib,
                                    warning_percent=80, critical_percent=90))
    labels = texts(root)
    assert labels[0] == "60% used of 100.0 GiB"
    assert "Backups: 3.0 GiB (3%)" in labels
    assert "Other files: 57.0 GiB (57%)" in labels
    assert "Free: 40.0 GiB (40%)" in labels
    backups = root.find(".//svg:rect[@class='segment-backups']", NS)
    others = root.find(".//svg:rect[@class='segment-others']", NS)
    span = charts.BAR_WIDTH - 2 * charts.BAR_X
    assert float(backups.get("width")) == pytest.approx(span * 0.03, abs=0.1)
    assert float(others.get("width")) == pytest.approx(span * 0.57, abs=0.1)
    warn = root.find(".//svg:line[@class='mark-warning']", NS)
    assert float(warn.get("x1")) == pytest.approx(charts.BAR_X + span * 0.8, abs=0.1)
    assert root.find(".//svg:line[@class='mark-critical']", NS) is not None


def test_storage_bar_edge_cases():
    tiny = parse(charts.storage_bar(backups=700_000, used=60 * 1024**3, free=40 * 1024**3))
    assert float(tiny.find(".//svg:rect[@class='segment-backups']", NS).get("width")) == 2
    assert "Backups: 683.6 KiB (<1%)" in texts(tiny)
    # The catalog counting more than the disk holds is capped at what is used.
    capped = parse(charts.storage_bar(backups=500, used=100, free=100))
    assert "Backups: 100 B (50%)" in texts(capped) and "Other files: 0 B (0%)" in texts(capped)
    assert capped.find(".//svg:rect[@class='segment-others']", NS) is None
    assert "no capacity reported" in " ".join(texts(parse(
        charts.storage_bar(backups=0, used=0, free=0))))
    full = parse(charts.storage_bar(backups=0, used=999, free=1))
    assert texts(full)[0].startswith(">99% used")
