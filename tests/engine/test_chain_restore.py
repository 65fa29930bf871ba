"""Restoring a chain (full + incrementals), to its end or to a moment: the point-in-time
filter on synthetic scripts, then real chains taken with the real writers on the session's
PostgreSQL (tests/support/chain_builder.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519

from pgbackup.chain_restore import (
    ChainRestoreError,
    ReplayReport,
    replay_incremental,
    replay_lines,
    restore_chain,
    text_lines,
)
from pgbackup.connection import ConnectionInfo
from pgbackup.decoding import Commit
from pgbackup.manifest import Manifest
from pgbackup.recovery import describe_database
from pgbackup.replay_sql import REPLAY_SETTINGS_SQL, xact_comment
from pgbackup.script_format import END_MARKER, SEQUENCES_MARKER, TABLES_MARKER, header
from pgbackup.storage import LocalStorage
from pgbackup.verify import compare_tables
from tests.engine.helpers import require_tool, restore_with_stock_tools
from tests.support.chain_builder import ChainSource
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer

T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- the point-in-time filter, on synthetic scripts ---------------------------------------

COPY_DATA = [  # rows of a table copied whole that look like the script's own lines
    "-- pgbackup sequences\n",
    "-- pgbackup end\n",
    xact_comment(Commit(99, "0/99", at(1))),
    "COPY \"public\".\"x\" (\"v\") FROM stdin;\n",
    "\\\\.\n",
]


def xact(xid: int, committed: datetime, *statements: str) -> list[str]:
    return [xact_comment(Commit(xid, f"0/{xid:X}", committed)), "BEGIN;\n",
            *(f"{statement}\n" for statement in statements), "COMMIT;\n"]


def script(*transactions: list[str], end: bool = True) -> list[str]:
    copied = ["BEGIN;\n", 'TRUNCATE ONLY "public"."loose";\n',
              'COPY "public"."loose" ("v") FROM stdin;\n', *COPY_DATA, "\\.\n", "COMMIT;\n"]
    return [
        header("backup-2024-01-15T11-00-00-000Z", "backup-2024-01-15T10-00-00-000Z",
               "0/10", "0/F0"),
        *REPLAY_SETTINGS_SQL.splitlines(keepends=True),
        *(line for transaction in transactions for line in transaction),
        TABLES_MARKER, *copied,
        SEQUENCES_MARKER, "SELECT pg_catalog.setval('\"public\".\"s\"', 42, true);\n",
        *([END_MARKER] if end else []),
    ]


def run(lines: Iterable[str], until: datetime | None) -> tuple[list[str], ReplayReport]:
    filtered = replay_lines(lines, until)
    taken: list[str] = []
    while True:
        try:
            taken.append(next(filtered))
        except StopIteration as end:
            return taken, end.value


def sequences_section(lines: list[str]) -> list[str]:
    """The script's last three lines (a line of COPY_DATA looks like the marker too)."""
    assert lines[-3] == SEQUENCES_MARKER
    return lines[-3:]


X1 = xact(101, at(10), "INSERT INTO t VALUES ('1');")
X2 = xact(102, at(20), "UPDATE t SET v = '2';")
X3 = xact(103, at(15), "DELETE FROM t;")  # committed after X2, with an earlier time


def test_without_a_moment_every_line_goes_through() -> None:
    lines = script(X1, X2, X3)
    taken, report = run(lines, None)
    assert taken == lines
    assert report == ReplayReport(3, 0, at(15), True)


def test_it_stops_at_the_first_transaction_committed_after_the_moment() -> None:
    lines = script(X1, X2, X3)
    taken, report = run(lines, at(17))
    # X3 (at 10:15) is before the moment, but it committed after X2, which is not
    assert taken == [*lines[:lines.index(X2[0])], *sequences_section(lines)]
    assert report == ReplayReport(1, 2, at(10), False)
    assert report.stopped_early


def test_a_moment_before_every_transaction_keeps_only_settings_and_sequences() -> None:
    lines = script(X1, X2)
    taken, report = run(lines, at(5))
    assert taken == [*lines[:lines.index(X1[0])], *sequences_section(lines)]
    assert report == ReplayReport(0, 2, None, False)


def test_the_tables_copied_whole_are_kept_when_every_transaction_is_taken() -> None:
    lines = script(X1, X2, X3)
    for until in (at(20), at(60)):
        taken, report = run(lines, until)
        assert taken == lines
        assert report == ReplayReport(3, 0, at(15), True)
    assert run(script(), at(0)) == (script(), ReplayReport(0, 0, None, True))


def test_copy_data_is_passed_through_untouched_never_read_as_markers() -> None:
    lines = script(X1)
    taken, _ = run(lines, None)
    start = taken.index(TABLES_MARKER) + 4
    assert taken[start:start + len(COPY_DATA)] == COPY_DATA
    stopped, _ = run(lines, at(5))
    assert stopped == [*lines[:lines.index(X1[0])], *sequences_section(lines)]


@pytest.mark.parametrize("cut", [
    pytest.param(lambda lines: lines[:-1], id="no end marker"),
    pytest.param(lambda lines: [*lines[:-1], "-- pgbackup end"], id="end marker cut"),
    pytest.param(lambda lines: lines[:lines.index(TABLES_MARKER) + 4], id="inside COPY"),
    pytest.param(lambda lines: lines[:lines.index(X1[2])], id="inside a transaction"),
])
def test_a_script_without_its_end_marker_is_refused_as_truncated(
    cut: Callable[[list[str]], list[str]],
) -> None:
    for until in (None, at(5)):
        with pytest.raises(ChainRestoreError, match="ends without '-- pgbackup end': it is "
                                                    "truncated"):
            run(cut(script(X1)), until)


@pytest.mark.parametrize(("lines", "message"), [
    pytest.param(script(X1)[1:], "does not start with an incremental's header", id="header"),
    pytest.param([*script(X1), "SELECT 1;\n"], "goes on after its end marker", id="after end"),
    pytest.param([*script()[:-4], *X1, *script()[-4:]], "transactions section comes after",
                 id="transaction after tables"),
    pytest.param([*script()[:3], "-- pgbackup mystery\n", *script()[3:]],
                 "unknown pgbackup line", id="unknown marker"),
])
def test_a_script_out_of_layout_is_refused(lines: list[str], message: str) -> None:
    with pytest.raises(ChainRestoreError, match=message):
        run(lines, None)


def test_a_moment_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        run(script(X1), datetime(2024, 1, 15, 10, 0))


class Trickle:
    """A reader that hands out a few bytes at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    def read(self, _size: int = -1) -> bytes:
        piece, self.data = self.data[:self.size], self.data[self.size:]
        return piece


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
def test_text_lines_reads_utf8_lines_across_chunks(size: int) -> None:
    text = "première ligne\n\n€ deux 😀\nno newline at the end"
    assert list(text_lines(Trickle(text.encode(), size))) == text.splitlines(keepends=True)
    with pytest.raises(ChainRestoreError, match="not valid UTF-8"):
        list(text_lines(Trickle(b"ok\n\xff\xfe\n", size)))


# --- real chains --------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE markers (id serial PRIMARY KEY, label text NOT NULL);
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric, notes text);
CREATE TABLE loose (v text, n int);  -- no key: copied whole into each incremental
CREATE TABLE lines (line text);  -- no key, one column: a row is a whole line of COPY data
CREATE SEQUENCE tickets;
INSERT INTO accounts VALUES (1, 'ann', 10, NULL), (2, 'bob', 20, NULL);
INSERT INTO loose VALUES ('before', 0);
"""


@pytest.fixture(scope="module")
def chain(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[ChainSource]:
    """A full and two incrementals, with marker moments m0..m5 in between. The table
    without a key changes only after the last marker before each incremental, so every
    moment's state is one a point-in-time restore reaches exactly."""
    source = ChainSource(pg_server, LocalStorage(tmp_path_factory.mktemp("chain")), SCHEMA)
    try:
        source.start_chain()
        source.marker("m0")
        source.execute("INSERT INTO accounts VALUES (3, 'cy', 30, NULL)")
        source.marker("m1")
        source.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1; "
                       "SELECT nextval('tickets')")
        source.marker("m2")
        source.execute("DELETE FROM accounts WHERE id = 2",
                       "INSERT INTO accounts VALUES (4, 'dee', 'NaN', "
                       "E'two\\nlines\\n-- pgbackup end')")
        source.marker("m3")
        source.execute("INSERT INTO loose VALUES ('batch one', 1)", "UPDATE loose SET n = n + 10")
        source.incremental()
        source.execute("UPDATE accounts SET id = 5 WHERE id = 4; SELECT nextval('tickets')")
        source.marker("m4")
        source.execute("UPDATE accounts SET notes = 'x' WHERE id = 1")
        source.marker("m5")
        source.execute("DELETE FROM loose WHERE n = 10",
                       "INSERT INTO loose VALUES (E'-- pgbackup sequences', 2), (E'\\\\.', 3), "
                       "(E'line\\n-- pgbackup end', 4), (NULL, 5)",
                       "INSERT INTO lines VALUES ('-- pgbackup sequences'), ('-- pgbackup end'), "
                       "('-- pgbackup xact 1 committed 2024-01-15T10:00:00+00:00 lsn 0/1'), "
                       "('COPY x FROM stdin;'), ('-- pgbackup tables copied whole')")
        source.incremental()
        yield source
    finally:
        source.close()


def new_target(scratch_db: Callable[[], str]) -> tuple[str, ConnectionInfo]:
    url = scratch_db()
    return url, ConnectionInfo.from_url(url)


def sequences(url: str) -> dict[str, tuple[object, ...]]:
    with psycopg.connect(url) as pg:
        names = [row[0] for row in pg.execute(
            "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences")]
        return {name: tuple(pg.execute(f"SELECT last_value, is_called FROM {name}").fetchall()[0])
                for name in names}


def assert_same_as_source(chain: ChainSource, url: str) -> None:
    assert schema_dump(url) == schema_dump(chain.url)
    assert table_fingerprints(url) == table_fingerprints(chain.url)
    assert sequences(url) == sequences(chain.url)


def test_the_chain_restored_to_its_end_equals_the_source(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    first, second = chain.manifests[1:]
    assert first.capture is not None and second.capture is not None
    assert first.capture.tables_copied == ["public.loose"]
    assert second.capture.tables_copied == ["public.lines", "public.loose"]
    url, target = new_target(scratch_db)
    report = restore_chain(target, chain.links, None, None)
    assert_same_as_source(chain, url)
    assert list(report.replayed) == [first.backup_id, second.backup_id]
    assert report.replayed[second.backup_id] == ReplayReport(
        second.capture.transactions, 0, second.capture.last_commit, True)
    actual = describe_database(target, second.tables)
    assert all(check.ok for check in compare_tables(second.tables, actual))


def test_the_chain_restored_to_its_latest_moment_equals_the_source(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    latest = chain.manifests[-1].capture.covers_until  # type: ignore[union-attr]
    url, target = new_target(scratch_db)
    report = restore_chain(target, chain.links, None, latest)
    assert_same_as_source(chain, url)
    assert not any(replayed.stopped_early for replayed in report.replayed.values())


@pytest.mark.parametrize("label", ["m0", "m1", "m2", "m3", "m4", "m5"])
def test_a_point_in_time_restore_equals_the_source_at_that_moment(
    chain: ChainSource, scratch_db: Callable[[], str], label: str,
) -> None:
    moment = next(moment for moment in chain.moments if moment.label == label)
    url, target = new_target(scratch_db)
    report = restore_chain(target, chain.links, None, moment.at)
    assert table_fingerprints(url) == moment.fingerprints
    assert schema_dump(url) == schema_dump(chain.url)
    *taken, last = report.replayed.values()
    assert all(not replayed.stopped_early for replayed in taken)
    assert last.stopped_early and not last.tables_copied_applied
    assert last.last_commit_applied is not None and last.last_commit_applied <= moment.at
    first, second = chain.manifests[1:]
    in_first = moment.at <= first.capture.covers_until  # type: ignore[union-attr]
    assert list(report.replayed) == ([first.backup_id] if in_first
                                     else [first.backup_id, second.backup_id])


def test_after_an_incremental_stopped_early_the_later_ones_are_not_replayed(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    """A transaction committed after the moment can sit in an incremental that does not
    cover the moment (it committed while the next slot was being created): the next
    incremental is then needed, but nothing of it may be taken past the one left out."""
    full, first, second = chain.manifests
    assert full.capture is not None and first.capture is not None
    early = first.model_copy(update={"capture": first.capture.model_copy(
        update={"covers_until": full.capture.consistent_at})})
    moment = next(moment for moment in chain.moments if moment.label == "m2")
    url, target = new_target(scratch_db)
    report = restore_chain(target, [(chain.storage, manifest) for manifest in
                                    (full, early, second)], None, moment.at)
    assert list(report.replayed) == [first.backup_id]
    assert report.replayed[first.backup_id].stopped_early
    assert table_fingerprints(url) == moment.fingerprints


def test_a_moment_outside_the_chains_reach_is_refused_with_its_window(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    full, last = chain.manifests[0].capture, chain.manifests[-1].capture
    assert full is not None and last is not None
    url, target = new_target(scratch_db)
    for moment in (full.consistent_at - timedelta(seconds=1),
                   last.covers_until + timedelta(seconds=1)):
        with pytest.raises(ChainRestoreError) as refused:
            restore_chain(target, chain.links, None, moment)
        assert (f"from {full.consistent_at.isoformat()} to {last.covers_until.isoformat()}"
                in str(refused.value))
    assert table_fingerprints(url) == {}


def test_a_broken_chain_is_refused_before_anything_is_restored(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    url, target = new_target(scratch_db)
    full, first, second = chain.links
    with pytest.raises(ChainRestoreError, match="does not follow"):
        restore_chain(target, [full, second], None, None)
    with pytest.raises(ChainRestoreError, match="has no captured changes"):
        restore_chain(target, [(full[0], full[1].model_copy(update={"capture": None})),
                               first], None, None)
    assert table_fingerprints(url) == {}


def test_a_truncated_artifact_is_refused_before_anything_is_restored(
    chain: ChainSource, scratch_db: Callable[[], str], tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "copy")
    shutil.copytree(chain.storage.root, storage.root, dirs_exist_ok=True)
    last = chain.manifests[-1]
    with storage.path(last.artifact).open("r+b") as artifact:
        artifact.truncate(last.size // 2)
    url, target = new_target(scratch_db)
    links = [(storage, manifest) for manifest in chain.manifests]
    with pytest.raises(ChainRestoreError, match=f"artifact {last.artifact} is {last.size // 2}"
                                                " bytes .*: it is truncated or was altered"):
        restore_chain(target, links, None, None)
    assert table_fingerprints(url) == {}


def test_a_script_without_its_end_marker_is_refused(
    pg_server: PostgresServer, storage: LocalStorage, scratch_db: Callable[[], str],
) -> None:
    source = ChainSource(pg_server, storage, SCHEMA)
    try:
        source.start_chain()
        source.execute("INSERT INTO accounts VALUES (3, 'cy', 30, NULL)")
        source.incremental(end_marker=False)
        _, target = new_target(scratch_db)
        with pytest.raises(ChainRestoreError, match="ends without '-- pgbackup end': it is "
                                                    "truncated"):
            restore_chain(target, source.links, None, None)
    finally:
        source.close()


def test_a_failing_statement_is_reported_with_psqls_error(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    _, target = new_target(scratch_db)  # empty: the full was not restored into it
    with pytest.raises(ChainRestoreError) as failed:
        replay_incremental(target, chain.storage, chain.manifests[1], None, None)
    message = str(failed.value)
    assert message.startswith(f"replaying backup {chain.manifests[1].backup_id} failed: psql "
                              "exited with status 3: ")
    assert 'ERROR:  relation "public.markers" does not exist' in message


def test_only_an_incremental_is_replayed(chain: ChainSource, scratch_db: Callable[[], str],
                                         ) -> None:
    _, target = new_target(scratch_db)
    with pytest.raises(ChainRestoreError, match="is a full backup, not an incremental"):
        replay_incremental(target, chain.storage, chain.manifests[0], None, None)


def test_the_scripts_replay_with_stock_zstd_and_psql(
    chain: ChainSource, scratch_db: Callable[[], str],
) -> None:
    url = scratch_db()
    full, *incrementals = chain.manifests
    restore_with_stock_tools(chain.storage.path(full.artifact), url)
    zstd, psql = require_tool("zstd"), require_tool("psql")
    for manifest in incrementals:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c",
             '"$0" -dc "$1" | "$2" -X -q -v ON_ERROR_STOP=1 -d "$3" >/dev/null',
             zstd, str(chain.storage.path(manifest.artifact)), psql, url],
            capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    assert_same_as_source(chain, url)


def test_an_encrypted_chain_needs_and_uses_its_keys(
    pg_server: PostgresServer, storage: LocalStorage, scratch_db: Callable[[], str],
) -> None:
    identity = x25519.Identity.generate()
    source = ChainSource(pg_server, storage, SCHEMA, encrypt_to=[str(identity.to_public())])
    try:
        source.start_chain()
        source.execute("INSERT INTO accounts VALUES (3, 'cy', 30, NULL)",
                       "INSERT INTO loose VALUES ('enc', 1)")
        last: Manifest = source.incremental()
        assert last.artifact.endswith(".sql.zst.age")
        url, target = new_target(scratch_db)
        with pytest.raises(ChainRestoreError, match="is encrypted with age"):
            restore_chain(target, source.links, None, None)
        assert table_fingerprints(url) == {}
        report = restore_chain(target, source.links, [identity], None)
        assert report.replayed[last.backup_id].transactions_applied == 2
        assert table_fingerprints(url) == table_fingerprints(source.url)
    finally:
        source.close()
