"""The worker-memory and dump-format benchmarks at a tiny scale, so they cannot rot (no
timing or memory figure is asserted, only that every row is printed with numbers)."""

from __future__ import annotations

import re

import pytest

from tests.engine.helpers import require_tool
from tools.benchmarks import dump_format_cost, worker_memory

FIGURE = r"[0-9]+\.[0-9]"


def test_dump_format_cost_prints_every_way(capsys: pytest.CaptureFixture[str]) -> None:
    for tool in ("pg_dump", "zstd", "tar"):
        require_tool(tool)
    assert dump_format_cost.main(["--scale", "0.02", "--repeat", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    labels = [way.label.replace("|", "\\|") for way in dump_format_cost.ways(2)]
    assert [row.split(" | ")[0][2:] for row in rows[1:]] == labels
    assert rows[1].split(" | ")[2] == "1.00"  # the raw pipeline against itself


def test_worker_memory_prints_each_kind_of_process(capsys: pytest.CaptureFixture[str]) -> None:
    for tool in ("pg_dump", "pg_restore", "psql"):
        require_tool(tool)
    assert worker_memory.main(["--scales", "0.02", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for operation, kind in (("backup", "worker"), ("backup", "horse"),
                            ("backup", "pg_dump/pg_restore"), ("restore", "horse"),
                            ("restore", "**whole tree**")):
        line = rf"^\| 0\.02 \| {operation} \| {re.escape(kind)} \| {FIGURE} \| {FIGURE} \|"
        assert re.search(line, out, re.MULTILINE), f"no {kind} row for {operation} in:\n{out}"
