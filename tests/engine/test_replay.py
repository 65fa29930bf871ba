"""Decoded changes rendered as SQL and replayed with psql onto a copy: the copy ends equal to
the source. Each case runs on a real PostgreSQL with a test_decoding slot of its own."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pgbackup import replay_sql
from pgbackup.decoding import (
    UNCHANGED_TOAST,
    Begin,
    Change,
    Column,
    Commit,
    Event,
    Message,
    Truncate,
    parse_rows,
)
from pgbackup.replay_sql import (
    REPLAY_SETTINGS_SQL,
    ReplayError,
    ReplayRenderer,
    ReplayStats,
    TableMeta,
    parse_xact_comment,
    table_metadata,
)
from pgbackup.tablestats import stats_session_setup
from tests.engine.helpers import require_tool
from tests.support.dbcompare import table_fingerprints
from tools.localservices import PostgresServer

PEEK_SQL = """
SELECT lsn, xid, data FROM pg_logical_slot_peek_changes(
    %s, NULL, NULL, 'include-timestamp', '1', 'include-xids', '1', 'skip-empty-xacts', '1')
"""


@dataclass
class Replayed:
    events: list[Event]
    script: str
    stats: ReplayStats


class ReplayPair:
    """A source database with a test_decoding slot, and a copy with the same schema."""

    def __init__(self, server: PostgresServer, tmp_path: Path) -> None:
        token = secrets.token_hex(4)
        self.server, self.tmp_path = server, tmp_path
        self.source_name, self.copy_name = f"replay_src_{token}", f"replay_copy_{token}"
        self.slot = f"replay_slot_{token}"
        self.source_url = server.create_database(self.source_name)
        self.copy_url = server.create_database(self.copy_name)

    def both(self, statements: str) -> None:
        """Schema and starting data, the same on both sides, before capture starts."""
        for url in (self.source_url, self.copy_url):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(statements)

    def capture(self) -> None:
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
                         [self.slot])

    def source(self, *transactions: str) -> None:
        """Each argument runs as one statement batch in autocommit mode. Commits are flushed
        at once: decoding reads only flushed WAL, and the test server commits asynchronously."""
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = on")
            for statements in transactions:
                conn.execute(statements)

    def replay(self) -> Replayed:
        with psycopg.connect(self.source_url, autocommit=True) as conn:
            stats_session_setup(conn)
            events = list(parse_rows(conn.execute(PEEK_SQL, [self.slot]).fetchall()))
        with psycopg.connect(self.copy_url, autocommit=True) as conn:
            renderer = ReplayRenderer(table_metadata(conn))
        script = "".join(renderer.render(events))
        path = self.tmp_path / f"{self.slot}.sql"
        path.write_text(REPLAY_SETTINGS_SQL + script, encoding="utf-8")
        result = subprocess.run(
            [require_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.copy_url,
             "-f", str(path)],
            capture_output=True, text=True,
        )
        assert result.returncode == 0, result.stderr
        return Replayed(events, script, renderer.stats)

    def assert_equal(self) -> None:
        source, copy = table_fingerprints(self.source_url), table_fingerprints(self.copy_url)
        assert copy == source

    def rows(self, url: str, query: str) -> list[tuple]:
        with psycopg.connect(url) as conn:
            return conn.execute(query).fetchall()

    def close(self) -> None:
        with self.server.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                         " WHERE slot_name = %s", [self.slot])
        self.server.drop_database(self.source_name)
        self.server.drop_database(self.copy_name)


@pytest.fixture
def pair(pg_server: PostgresServer, tmp_path: Path) -> Iterator[ReplayPair]:
    created = ReplayPair(pg_server, tmp_path)
    yield created
    created.close()


def changes(replayed: Replayed) -> list[Change]:
    return [event for event in replayed.events if isinstance(event, Change)]


def test_update_leaves_an_untouched_toasted_value_alone(pair: ReplayPair) -> None:
    big = secrets.token_hex(6000)  # 12 kB of random hex: out of line, not compressible
    pair.both(f"""
        CREATE TABLE docs (id int PRIMARY KEY, body text, note text);
        INSERT INTO docs VALUES (1, '{big}', 'before'), (2, '{big[::-1]}', 'before');
    """)
    pair.capture()
    pair.source(
        "UPDATE docs SET note = 'after' WHERE id = 1",
        f"INSERT INTO docs VALUES (3, '{big[:5000]}x', 'new')",
        "UPDATE docs SET note = 'later' WHERE id = 3",
        "UPDATE docs SET id = 4 WHERE id = 2",
    )
    replayed = pair.replay()
    bodies = [
        column.value for change in changes(replayed) if change.action == "UPDATE"
        for column in change.new or [] if column.name == "body"
    ]
    assert bodies == [UNCHANGED_TOAST] * 3
    assert big not in replayed.script
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT id, md5(body) FROM docs ORDER BY id") == [
        (1, _md5(big)), (3, _md5(big[:5000] + "x")), (4, _md5(big[::-1])),
    ]


def test_identity_generated_always_keeps_the_source_values(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
        CREATE TABLE stamped (k int PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY,
                              body text, note text);
        ALTER TABLE stamped ALTER body SET STORAGE EXTERNAL;
        INSERT INTO stamped (k, body, note) VALUES (1, repeat('b', 5000), 'x');
        SELECT setval(pg_get_serial_sequence('tickets', 'id'), 100);
        SELECT setval(pg_get_serial_sequence('stamped', 'n'), 100);
    """)
    pair.capture()
    pair.source(
        "INSERT INTO tickets (v) VALUES ('a'), ('b'), ('c')",
        "UPDATE tickets SET v = 'B' WHERE v = 'b'",
        "DELETE FROM tickets WHERE v = 'c'",
        "UPDATE tickets SET id = DEFAULT WHERE v = 'a'",
        "UPDATE stamped SET n = DEFAULT, note = 'y' WHERE k = 1",
        "INSERT INTO stamped (k, body) VALUES (2, 'short')",
        "UPDATE stamped SET n = DEFAULT WHERE k = 2",
    )
    replayed = pair.replay()
    assert "WITH gone AS (DELETE FROM" in replayed.script
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT id, v FROM tickets ORDER BY id") == [
        (102, "B"), (104, "a"),
    ]


def test_stored_generated_columns_are_recomputed_not_written(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE boxes (id int PRIMARY KEY, w int, h int,
                            area int GENERATED ALWAYS AS (w * h) STORED);
        INSERT INTO boxes (id, w, h) VALUES (1, 2, 3);
    """)
    pair.capture()
    pair.source(
        "INSERT INTO boxes (id, w, h) VALUES (2, 4, 5), (3, 1, 1)",
        "UPDATE boxes SET w = 10 WHERE id = 1",
        "DELETE FROM boxes WHERE id = 3",
    )
    replayed = pair.replay()
    assert '"area"' not in replayed.script
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT id, area FROM boxes ORDER BY id") == [(1, 30), (2, 20)]


def test_partitioned_rows_move_between_partitions_and_the_default(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE orders (id int, region text, v text, PRIMARY KEY (id, region))
            PARTITION BY LIST (region);
        CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
        CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us') PARTITION BY RANGE (id);
        CREATE TABLE orders_us_low PARTITION OF orders_us FOR VALUES FROM (0) TO (100);
        CREATE TABLE orders_us_high PARTITION OF orders_us FOR VALUES FROM (100) TO (MAXVALUE);
        CREATE TABLE orders_other PARTITION OF orders DEFAULT;
        INSERT INTO orders VALUES (1, 'eu', 'a'), (2, 'us', 'b'), (3, 'asia', 'c');
    """)
    pair.capture()
    pair.source(
        "UPDATE orders SET region = 'us' WHERE id = 1",
        "UPDATE orders SET region = 'mars' WHERE id = 2",
        "UPDATE orders SET region = 'eu', v = 'moved' WHERE id = 3",
        "UPDATE orders SET id = 150 WHERE id = 1",
        "INSERT INTO orders VALUES (4, 'antarctica', 'd'), (5, 'us', 'e')",
        "UPDATE orders SET v = 'same partition' WHERE id = 5",
        "DELETE FROM orders WHERE id = 4",
    )
    replayed = pair.replay()
    touched = {change.table for change in changes(replayed)}
    assert touched == {"orders_eu", "orders_us_low", "orders_us_high", "orders_other"}
    pair.assert_equal()
    placement = "SELECT tableoid::regclass::text, id FROM orders ORDER BY id"
    assert pair.rows(pair.copy_url, placement) == [
        ("orders_other", 2), ("orders_eu", 3), ("orders_us_low", 5), ("orders_us_high", 150),
    ]


def test_truncate_with_restart_identity_and_cascade(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE parents (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);
        CREATE TABLE kids (id int PRIMARY KEY, parent int REFERENCES parents);
        CREATE TABLE logs (id int PRIMARY KEY);
        INSERT INTO parents (v) VALUES ('a'), ('b');
        INSERT INTO kids VALUES (1, 1);
        INSERT INTO logs VALUES (1), (2);
    """)
    pair.capture()
    pair.source(
        "TRUNCATE parents, kids RESTART IDENTITY",
        "INSERT INTO parents (v) VALUES ('c'); INSERT INTO kids VALUES (2, 1)",
        "TRUNCATE parents CASCADE",
        "INSERT INTO parents (v) VALUES ('d')",
        "TRUNCATE logs",
    )
    replayed = pair.replay()
    truncates = [event for event in replayed.events if isinstance(event, Truncate)]
    assert [(t.restart_identity, t.cascade) for t in truncates] == [
        (True, False), (False, True), (False, False),
    ]
    assert 'TRUNCATE ONLY "public"."parents", "public"."kids" RESTART IDENTITY;' in replayed.script
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT id, v FROM parents") == [(2, "d")]


def test_before_trigger_does_not_fire_again_on_replay(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE notes (id int PRIMARY KEY, v text, edits int NOT NULL DEFAULT 0);
        CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.v := upper(NEW.v) || '!';
            IF TG_OP = 'UPDATE' THEN NEW.edits := OLD.edits + 1; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON notes
            FOR EACH ROW EXECUTE FUNCTION shout();
    """)
    pair.capture()
    pair.source(
        "INSERT INTO notes (id, v) VALUES (1, 'hello'), (2, 'bye')",
        "UPDATE notes SET v = 'again' WHERE id = 1",
    )
    pair.replay()
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT id, v, edits FROM notes ORDER BY id") == [
        (1, "AGAIN!", 1), (2, "BYE!", 0),
    ]


def test_deferrable_and_cyclic_foreign_keys(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE hens (id int PRIMARY KEY, egg int);
        CREATE TABLE eggs (id int PRIMARY KEY, hen int NOT NULL
            REFERENCES hens DEFERRABLE INITIALLY DEFERRED);
        ALTER TABLE hens ADD FOREIGN KEY (egg) REFERENCES eggs DEFERRABLE INITIALLY DEFERRED;
        CREATE TABLE nests (id int PRIMARY KEY, hen int REFERENCES hens ON DELETE CASCADE);
    """)
    pair.capture()
    pair.source(
        "BEGIN; INSERT INTO eggs VALUES (1, 1); INSERT INTO hens VALUES (1, 1); COMMIT",
        "BEGIN; INSERT INTO eggs VALUES (2, 2); INSERT INTO hens VALUES (2, 2);"
        " INSERT INTO nests VALUES (1, 2); COMMIT",
        "BEGIN; UPDATE hens SET egg = NULL WHERE id = 2; DELETE FROM eggs WHERE id = 2;"
        " DELETE FROM hens WHERE id = 2; COMMIT",
    )
    replayed = pair.replay()
    assert any(change.table == "nests" and change.action == "DELETE"
               for change in changes(replayed))
    pair.assert_equal()


def test_only_committed_work_is_replayed(pair: ReplayPair) -> None:
    pair.both("CREATE TABLE items (id int PRIMARY KEY, v text)")
    pair.capture()
    pair.source(
        "BEGIN; INSERT INTO items VALUES (1, 'rolled back'); ROLLBACK",
        "BEGIN; INSERT INTO items VALUES (2, 'kept');"
        " SAVEPOINT a; INSERT INTO items VALUES (3, 'undone'); UPDATE items SET v = 'undone'"
        " WHERE id = 2; ROLLBACK TO SAVEPOINT a;"
        " SAVEPOINT b; INSERT INTO items VALUES (4, 'released'); RELEASE SAVEPOINT b;"
        " COMMIT",
        "BEGIN; UPDATE items SET v = 'gone' WHERE id = 2; ROLLBACK",
    )
    replayed = pair.replay()
    assert replayed.stats.transactions == 1
    assert "undone" not in replayed.script and "rolled back" not in replayed.script
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT id, v FROM items ORDER BY id") == [
        (2, "kept"), (4, "released"),
    ]


TYPES_SCHEMA = """
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('calm', 'it''s "odd"');
CREATE DOMAIN positive AS numeric CHECK (VALUE > 0);
CREATE TYPE pair AS (label text, amount numeric);
CREATE TABLE {name} (
    {key}
    n numeric, f8 float8, f4 real, ts timestamptz, d date, iv interval, b bytea,
    texts text[], ints int[][], j jsonb, js json, m mood, dom positive, comp pair,
    r int4range, tr tstzrange, h hstore, ci citext, ip inet, net cidr, x xml,
    bits bit(4), vbits varbit, ok boolean, u uuid, money money, ch "char", fixed char(4),
    big bigint, small smallint, o oid, pt point
);
"""
TYPE_ROWS = r"""
INSERT INTO {name} VALUES
 ({k1} 'NaN', 'Infinity', '-0', 'infinity', '-infinity', '1 year -2 days 03:04:05.5',
  (SELECT string_agg(set_byte('\x00'::bytea, 0, i), '' ORDER BY i) FROM generate_series(0, 255) i),
  ARRAY['a"b', NULL, 'NULL', 'back\slash', 'it''s', '', ' spaced ', '{{x}}'],
  '{{{{1,NULL}},{{3,4}}}}', '{{"k": [1, "x''y", null], "\u00e9": "\\n"}}', '{{"dup": 1, "dup": 2}}',
  'it''s "odd"', 12.5, ROW('a,b "c"', 'NaN'), '[1,5)', '[-infinity,2024-01-01 00:00:00+00)',
  'a=>1, "b c"=>NULL, "q\"t"=>"v"', 'MiXeD', '::ffff:10.0.0.1', '10.0.0.0/8',
  '<a x="1">t &amp; u</a>', B'1010', B'1', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '-12.34', 'x', 'ab', -9223372036854775808, -32768, 4294967295, '(1.5,-0)'),
 ({k2} '-Infinity', '-Infinity', 'NaN', '-infinity', 'infinity', '-1 microsecond',
  '\x', '{{}}', NULL, 'null', 'null', 'calm', 1e-20, ROW(NULL, NULL), 'empty', '(,)',
  '', '', '::1', '::/0', '<?xml version="1.0"?><r/>', B'0000', B'', false,
  '00000000-0000-0000-0000-000000000000', '0', ' ', '', 9223372036854775807, 32767, 0,
  '(0,0)'),
 ({k3} 1e-30, 1.7976931348623157e308, 1.17549435e-38, '2000-02-29 12:34:56.789+05:45',
  '4713-01-01 BC', '0', '\x5c27', ARRAY[E'line\nbreak', E'tab\t'], '{{{{1}}}}',
  '[1.5e300, -0, "\\u0000"]', '[]', 'calm', 0.1, ROW('', 0), '[3,4]', NULL,
  NULL, NULL, NULL, NULL, '<a>&lt;&gt;</a>', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL)
"""


def test_every_common_type_round_trips(pair: ReplayPair) -> None:
    pair.both(TYPES_SCHEMA.format(name="keyed", key="id int PRIMARY KEY,"))
    pair.capture()
    pair.source(
        TYPE_ROWS.format(name="keyed", k1="1,", k2="2,", k3="3,"),
        "UPDATE keyed SET id = id + 10 WHERE id = 3",
        "DELETE FROM keyed WHERE id = 2",
    )
    replayed = pair.replay()
    assert len(changes(replayed)) == 5
    pair.assert_equal()
    special = "SELECT f8::text, f4::text, n::text FROM keyed WHERE id = 1"
    assert pair.rows(pair.copy_url, special) == [
        ("Infinity", "-0", "NaN"),
    ]
    assert pair.rows(pair.copy_url, "SELECT b = (SELECT b FROM keyed WHERE id = 1) FROM keyed"
                     " WHERE id = 1") == [(True,)]
    assert pair.rows(pair.copy_url, "SELECT length(b) FROM keyed WHERE id = 1") == [(256,)]


def test_replica_identity_full_matches_every_column_of_every_type(pair: ReplayPair) -> None:
    pair.both(TYPES_SCHEMA.format(name="loose", key="")
              + "ALTER TABLE loose REPLICA IDENTITY FULL;")
    pair.capture()
    pair.source(
        TYPE_ROWS.format(name="loose", k1="", k2="", k3=""),
        "UPDATE loose SET small = 7 WHERE d = '-infinity'",
        "DELETE FROM loose WHERE ts = '-infinity'",
        "UPDATE loose SET ci = 'changed' WHERE iv = '0'",
    )
    pair.replay()
    pair.assert_equal()


def test_replica_identity_full_touches_one_duplicate_row(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE tally (a int, b text, c text);
        ALTER TABLE tally REPLICA IDENTITY FULL;
        INSERT INTO tally VALUES (1, 'x', NULL), (1, 'x', NULL), (1, 'x', NULL), (2, 'y', 'z');
    """)
    pair.capture()
    pair.source(
        "UPDATE tally SET b = 'changed' WHERE ctid = (SELECT min(ctid) FROM tally WHERE a = 1)",
        "DELETE FROM tally WHERE ctid = (SELECT min(ctid) FROM tally WHERE b = 'x')",
        "INSERT INTO tally VALUES (2, 'y', 'z')",
        "DELETE FROM tally WHERE ctid = (SELECT min(ctid) FROM tally WHERE a = 2)",
    )
    replayed = pair.replay()
    assert "LIMIT 1" in replayed.script and '"c" IS NULL' in replayed.script
    pair.assert_equal()
    assert pair.rows(pair.copy_url, "SELECT a, b, c FROM tally ORDER BY a, b") == [
        (1, "changed", None), (1, "x", None), (2, "y", "z"),
    ]


def test_quoted_mixed_case_spaced_and_non_ascii_identifiers(pair: ReplayPair) -> None:
    pair.both("""
        CREATE SCHEMA "Sch""ema: [1]";
        CREATE TABLE "Sch""ema: [1]"."Tâble, ""Q"" new-tuple: x" (
            "Ключ id" int PRIMARY KEY, "select" text, "MiXed" text, "new-tuple:" text,
            "old-key: a[b]:c" text, "ü" int GENERATED ALWAYS AS ("Ключ id" * 2) STORED);
        CREATE TABLE "UPPER" ("ID" int PRIMARY KEY, "Value" text);
    """)
    pair.capture()
    pair.source(
        """INSERT INTO "Sch""ema: [1]"."Tâble, ""Q"" new-tuple: x"
           VALUES (1, 'a', 'b', 'c: d', 'e'), (2, ' new-tuple: "x"[y]:z ', '', NULL, 'f')""",
        """UPDATE "Sch""ema: [1]"."Tâble, ""Q"" new-tuple: x" SET "Ключ id" = 3, "MiXed" = 'B'
           WHERE "Ключ id" = 1""",
        """DELETE FROM "Sch""ema: [1]"."Tâble, ""Q"" new-tuple: x" WHERE "Ключ id" = 2""",
        """INSERT INTO "UPPER" VALUES (1, 'v'); UPDATE "UPPER" SET "Value" = 'w'""",
    )
    replayed = pair.replay()
    assert {(c.schema, c.table) for c in changes(replayed)} == {
        ('Sch"ema: [1]', 'Tâble, "Q" new-tuple: x'), ("public", "UPPER"),
    }
    pair.assert_equal()


def test_every_statement_is_one_line_whatever_the_values(pair: ReplayPair) -> None:
    """A point-in-time replay reads the script line by line: a value holding line breaks
    and a fake comment line must not break a statement into lines."""
    pair.both("CREATE TABLE note (id int PRIMARY KEY, body text, tags text[])")
    pair.capture()
    trap = ("first\n-- pgbackup xact 1 committed 2000-01-01T00:00:00+00:00 lsn 0/1\r\n"
            "back\\slash 'q'")
    pair.source(f"INSERT INTO note VALUES (1, $${trap}$$, ARRAY[$$a\nb$$, 'x'])")
    replayed = pair.replay()
    statements = [line for line in replayed.script.splitlines()
                  if line and not line.startswith("-- pgbackup xact ")]
    assert all(line.startswith(("SET ", "BEGIN;", "COMMIT;", "INSERT ")) for line in statements)
    pair.assert_equal()


def test_table_without_a_key_is_reported_not_rendered(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE loose (v text);
        CREATE TABLE muted (id int PRIMARY KEY, v text);
        ALTER TABLE muted REPLICA IDENTITY NOTHING;
        CREATE TABLE keyed (id int PRIMARY KEY);
        INSERT INTO loose VALUES ('a');
    """)
    pair.capture()
    pair.source(
        "INSERT INTO loose VALUES ('b'); INSERT INTO keyed VALUES (1);"
        " INSERT INTO muted VALUES (1, 'x')",
        "UPDATE loose SET v = 'c' WHERE v = 'a'; UPDATE muted SET v = 'y'",
        "DELETE FROM loose WHERE v = 'b'; DELETE FROM muted",
        "TRUNCATE loose, keyed",
    )
    replayed = pair.replay()
    assert replayed.stats.unkeyed == {("public", "loose"): 4, ("public", "muted"): 3}
    assert replayed.stats.changes == {("public", "keyed"): 2}
    assert '"loose"' not in replayed.script and '"muted"' not in replayed.script
    assert pair.rows(pair.copy_url, "SELECT v FROM loose") == [("a",)]
    assert pair.rows(pair.copy_url, "SELECT count(*) FROM keyed") == [(0,)]


def test_a_large_transaction_spills_to_disk_and_replays(
    pair: ReplayPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay_sql, "_SPOOL_BYTES", 1024)
    pair.both("CREATE TABLE bulk (id int PRIMARY KEY, v text)")
    pair.capture()
    pair.source("INSERT INTO bulk SELECT i, repeat('x', i % 50) FROM generate_series(1, 2000) i",
                "UPDATE bulk SET v = v || 'y' WHERE id % 3 = 0")
    replayed = pair.replay()
    assert replayed.stats.transactions == 2
    pair.assert_equal()


def test_each_transaction_is_framed_by_its_comment_begin_and_commit(pair: ReplayPair) -> None:
    pair.both("CREATE TABLE t (id int PRIMARY KEY)")
    pair.capture()
    pair.source("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)")
    replayed = pair.replay()
    commits = [event for event in replayed.events if isinstance(event, Commit)]
    lines = replayed.script.splitlines()
    marks = [mark for mark in map(parse_xact_comment, lines) if mark is not None]
    assert [(m.xid, m.lsn, m.committed_at) for m in marks] == [
        (c.xid, c.lsn, c.committed_at) for c in commits
    ]
    assert all(mark.committed_at.tzinfo is not None for mark in marks)
    assert lines[1] == "BEGIN;" and lines[-1] == "COMMIT;"
    assert lines.count("BEGIN;") == lines.count("COMMIT;") == 2


def test_table_metadata_reads_keys_identity_and_generated_columns(pair: ReplayPair) -> None:
    pair.both("""
        CREATE TABLE plain (a int, b int, c int GENERATED ALWAYS AS (a + b) STORED,
                            id int GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (b, a));
        CREATE TABLE chosen (x int NOT NULL, y int NOT NULL, z int);
        CREATE UNIQUE INDEX chosen_xy ON chosen (y, x);
        ALTER TABLE chosen REPLICA IDENTITY USING INDEX chosen_xy;
        CREATE TABLE wide (v int); ALTER TABLE wide REPLICA IDENTITY FULL;
        ALTER TABLE plain DROP COLUMN id;
        CREATE TABLE parts (id int PRIMARY KEY) PARTITION BY RANGE (id);
        CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (10);
        CREATE UNLOGGED TABLE scratch (id int);
    """)
    with psycopg.connect(pair.source_url) as conn:
        tables = table_metadata(conn)
    assert set(tables) == {("public", n) for n in ("plain", "chosen", "wide", "parts_1")}
    assert tables[("public", "plain")] == TableMeta(
        "public", "plain", ("b", "a"), frozenset({"c"}), frozenset(), "default", ("a", "b", "c"))
    assert tables[("public", "chosen")].key_columns == ("y", "x")
    assert tables[("public", "chosen")].replica_identity == "index"
    assert tables[("public", "wide")].usable_key
    assert tables[("public", "parts_1")].key_columns == ("id",)


# Renderer rules that need no server.

META = TableMeta("public", "t", ("id",), frozenset(), frozenset(), "default", ("id", "v"))
AT = datetime(2024, 1, 15, 10, 31, 7, 5, tzinfo=UTC)


def render(*events: Event) -> str:
    return "".join(ReplayRenderer({("public", "t"): META}).render(events))


def insert(value: str) -> Change:
    return Change("public", "t", "INSERT", [Column("id", "integer", "1"),
                                            Column("v", "double precision", value)], None, False)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "-0", "1.5e+300"])
def test_bare_numbers_are_written_as_quoted_literals(value: str) -> None:
    script = render(Begin(5, "0/1"), insert(value), Commit(5, "0/2", AT))
    assert f"VALUES ('1', '{value}');" in script
    assert script.startswith(
        "-- pgbackup xact 5 committed 2024-01-15T10:31:07.000005+00:00 lsn 0/2\nBEGIN;\n")


@pytest.mark.parametrize("events, message", [
    ([insert("1")], "outside any transaction"),
    ([Begin(1, "0/1"), Begin(2, "0/2")], "inside transaction 1"),
    ([Begin(1, "0/1"), Commit(2, "0/2", AT)], "without its BEGIN"),
    ([Begin(1, "0/1"), insert("1")], "end inside transaction 1"),
    ([Begin(1, "0/1"), Change("public", "u", "INSERT", [], None, False)], "not among the tables"),
    ([Begin(1, "0/1"), Change("public", "t", "DELETE", None, None, True)], "no-tuple-data"),
])
def test_malformed_event_streams_are_refused(events: list[Event], message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        render(*events)


def test_messages_are_skipped() -> None:
    script = render(Message(False, "p", "c"), Begin(1, "0/1"), Message(True, "p", "c"),
                    Commit(1, "0/2", AT))
    assert script.endswith("BEGIN;\nCOMMIT;\n")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()
