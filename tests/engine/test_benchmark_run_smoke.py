"""A tiny run of the whole-table benchmark (``python -m tools.benchmarks.run``), so that it
cannot rot: every row is printed with numbers, and no process it started outlives it.
Nothing here asserts a timing."""

from __future__ import annotations

import re
import secrets

import pytest

from tests.engine.helpers import require_tool
from tests.support.workers import processes_with_env
from tools.benchmarks import run

ROWS = (
    "full backup, checksums on, s",
    "full backup, checksums off, s",
    "peak Pss, backup: worker tree, MB",
    "peak Pss, backup: Python processes, MB",
    "peak Rss summed, backup: worker tree, MB",
    "artifact size, MB (vs plain pg_dump -Fc)",
    "restore into a new database, RESTORE_JOBS=1, s",
    "restore, RESTORE_JOBS=1: pg_restore jobs used",
    "peak Pss, restore: worker tree, MB",
    "peak Pss, restore: Python processes, MB",
    "peak Rss summed, restore: worker tree, MB",
    "restore into a new database, RESTORE_JOBS=auto, s",
    "restore, RESTORE_JOBS=auto: pg_restore jobs used",
    "GET /api/system/backup, 5 clients: p50 ms",
    "GET /api/system/backup, 5 clients: p95 ms",
    "GET /api/system/backup, 5 clients: req/s",
    "same, unchanged (If-None-Match: 304), 5 clients: p95 ms",
    "list fragment /system/backup/list, 5 clients: p50 ms",
    "list fragment /system/backup/list, 5 clients: p95 ms",
    "list fragment /system/backup/list, 5 clients: req/s",
    "same, unchanged poll (seen=: 204), 5 clients: p95 ms",
    "dashboard index, KB of HTML",
    "dashboard index, ms for one request",
)
WITH_BASELINE = {ROWS[i] for i in (0, 1, 2, 4, 5, 6, 8, 10, 11)}
NUMBER = r"[0-9]+\.[0-9]{2}"


def test_every_row_is_printed_with_numbers(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("pg_dump", "pg_restore", "psql", "zstd"):
        require_tool(tool)
    marker = f"BENCH_SMOKE={secrets.token_hex(8)}"  # inherited by every process it starts
    monkeypatch.setenv(*marker.split("="))
    try:
        assert run.main(["--scale", "0.02", "--repeat", "1", "--clients", "5",
                         "--requests", "4", "--catalog-rows", "50"]) == 0
    finally:
        left = processes_with_env(marker)
    assert left == [], f"processes left running: {left}"
    out = capsys.readouterr().out
    assert re.search(r"PostgreSQL [0-9.]+; [0-9]+ CPUs", out)
    for what in ROWS:
        baseline = rf"{NUMBER} \| +{NUMBER}x" if what in WITH_BASELINE else r"— \| +—"
        line = rf"^\| {re.escape(what)} +\| +{NUMBER} \| +{baseline} \|$"
        assert re.search(line, out, re.MULTILINE), f"no row {what!r} in:\n{out}"
