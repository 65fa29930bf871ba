"""tools.benchmarks.restore_cost runs at a tiny scale, so it cannot rot (no timing is
asserted)."""

from __future__ import annotations

import pytest

from tools.benchmarks import restore_cost


def test_restore_cost_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert restore_cost.main(["--scale", "0.02", "--repeat", "1", "--jobs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scale 0.02, artifact ") and "2 jobs, medians of 1" in lines[0]
    rows = [line.split(" | ") for line in lines[4:]]
    assert [row[0].lstrip("| ") for row in rows] == [
        "raw serial: zstd -dc \\| pg_restore",
        "raw parallel: zstd -d -o file && pg_restore -j 2",
        "ours serial (RESTORE_JOBS=1)", "ours parallel (2 jobs)",
        "ours parallel (2 jobs), archive size not in the manifest",
        "ours serial, no manifest comparison"]
    assert rows[0][-1] == "1.00 |"  # raw serial against itself
