"""The benchmarks run at a tiny scale, so they cannot rot (no timing is asserted)."""

from __future__ import annotations

import pytest

from pgbackup import DEFAULT_ZSTD_LEVEL
from tools.benchmarks import checksum_cost, compression_cost


def test_compression_cost_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert compression_cost.main(["--scale", "0.02", "--repeat", "1", "--levels", "1,3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "time / raw" in table[2] and "size / pg_dump" in table[2]
    labels = [line[:32].strip() for line in table[3:]]
    assert labels == [compression_cost.RAW, compression_cost.PG_DUMP, "ours, level 1, all CPUs",
                      "ours, level 3, all CPUs", f"ours, level {DEFAULT_ZSTD_LEVEL}, 1 thread"]
    assert table[3].split()[-2] == "1.00"  # the raw pipeline's time against itself
    assert table[4].split()[-1] == "1.00"  # pg_dump -Fc against itself


def test_checksum_cost_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert checksum_cost.main(["--scale", "0.02", "--repeat", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "/ raw" in table[2] and "worker CPU s" in table[2]
    assert [line[:28].strip() for line in table[3:6]] == list(checksum_cost.BACKUPS)
    assert table[3].split()[3] == "1.00"  # the raw pipeline's time against itself
    assert [line[:28].strip() for line in table[8:10]] == list(checksum_cost.ALONE)
