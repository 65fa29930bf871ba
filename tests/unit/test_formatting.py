"""Figures in the words and units a person reads."""

from __future__ import annotations

import pytest

from services.formatting import days_left, filesize, tables


@pytest.mark.parametrize(("days", "text"), [
    (0.25, "about 0.2 days"), (3.46, "about 3.5 days"), (40.4, "about 40 days"),
    (365, "about 365 days"), (153451.0, "more than a year"),
])
def test_days_left_reads_as_words(days: float, text: str) -> None:
    assert days_left(days) == text


@pytest.mark.parametrize(("size", "text"), [
    (None, "—"), (1000, "1000 B"), (1536, "1.5 KiB"), (735816, "718.6 KiB"),
])
def test_one_size_format(size: int | None, text: str) -> None:
    assert filesize(size) == text


def test_tables_count_partitions_under_their_table() -> None:
    listed = [{"name": "actor", "partitionOf": None}, {"name": "old_row"},
              *({"name": f"payment_{month}", "partitionOf": "public.payment"}
                for month in range(1, 26))]
    assert tables(listed) == "3 tables (25 partitions)"
    assert tables(listed[:1]) == "1 table"
    assert tables([]) == "0 tables"
