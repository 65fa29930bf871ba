"""Partitions are counted under their partitioned table, as a person counts tables: the
engine records each partition's root, the manifest keeps it (and manifests without it keep
their canonical form), and the dry run counts "15 tables (7 partitions)", not 22."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg

from pgbackup import (
    ConnectionInfo,
    LocalStorage,
    TableCount,
    count_tables,
    new_backup_id,
    read_manifest,
    run_dump,
    table_stats,
)
from pgbackup.dryrun import analyze_restore, table_count
from pgbackup.ids import manifest_name

# Two levels: readings by year, 2025 split again by site; plus a plain table.
SCHEMA = """
CREATE TABLE site (id int PRIMARY KEY);
CREATE TABLE reading (site int, taken date, value int) PARTITION BY RANGE (taken);
CREATE TABLE reading_2024 PARTITION OF reading FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE reading_2025 PARTITION OF reading FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
  PARTITION BY LIST (site);
CREATE TABLE reading_2025_a PARTITION OF reading_2025 FOR VALUES IN (1);
CREATE TABLE reading_2025_b PARTITION OF reading_2025 DEFAULT;
INSERT INTO site VALUES (1), (2);
INSERT INTO reading VALUES (1, '2024-05-01', 10), (1, '2025-05-01', 11), (2, '2025-06-01', 12);
"""


def partitioned(scratch_db: Callable[[], str]) -> str:
    url = scratch_db()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return url


def test_each_partition_names_the_root_of_its_tree(scratch_db) -> None:
    with psycopg.connect(partitioned(scratch_db)) as conn:
        tables = table_stats(conn, count_rows=True, checksums=False)
    assert {t.qualified_name: (t.partition_of, t.rows) for t in tables} == {
        "public.site": (None, 2),
        "public.reading_2024": ("public.reading", 1),
        "public.reading_2025_a": ("public.reading", 1),  # a sub-partition: the root, too
        "public.reading_2025_b": ("public.reading", 1),
    }
    count = count_tables(t.partition_of for t in tables)
    assert count == TableCount(tables=2, partitions=3)
    assert str(count) == "2 tables (3 partitions)"


def test_the_words_for_a_count() -> None:
    assert str(count_tables([None])) == "1 table"
    assert str(count_tables([])) == "0 tables"
    assert str(count_tables(["s.p"])) == "1 table (1 partition)"
    assert str(count_tables([None] * 1200)) == "1,200 tables"


def test_the_manifest_keeps_partitions_and_leaves_the_key_out_for_other_tables(
        scratch_db, storage: LocalStorage) -> None:
    url = partitioned(scratch_db)
    manifest = run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), "full")
    raw = json.loads(storage.path(manifest_name(manifest.backup_id)).read_text())
    keys = {table["name"]: set(table) for table in raw["tables"]}
    assert keys["site"] == {"schema", "name", "rows", "checksum"}  # as before partitions
    assert keys["reading_2024"] == {"schema", "name", "rows", "checksum", "partition_of"}
    again = read_manifest(storage, manifest.backup_id)  # canonical form and self-checksum
    assert [t.partition_of for t in again.tables] == [
        "public.reading", "public.reading", "public.reading", None]


def test_the_dry_run_counts_partitions_under_their_table(
        pagila: str, storage: LocalStorage) -> None:
    with psycopg.connect(pagila) as conn:
        tables, partitions = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT c.relispartition),"
            "       count(*) FILTER (WHERE c.relispartition AND c.relkind = 'r')"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchone()
    assert partitions > 0  # Pagila's payment is partitioned by month
    target = ConnectionInfo.from_url(pagila)
    manifest = run_dump(target, storage, new_backup_id(), "full")
    report = analyze_restore(target, storage, manifest, mode="overwrite")
    assert table_count(report.backup.tables) == TableCount(tables, partitions)
    assert table_count(report.target.tables) == TableCount(tables, partitions)
    assert table_count(report.changes.replaced) == TableCount(tables, partitions)
    payment = [t for t in report.backup.tables if t.partition_of == "public.payment"]
    assert len(payment) == partitions and all(t.rows for t in payment)
