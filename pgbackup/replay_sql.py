"""Decoded changes as a plain SQL script that stock ``psql`` replays onto a copy.

Each source transaction becomes::

    -- pgbackup xact <xid> committed <ISO 8601 UTC> lsn <commit lsn>
    BEGIN;
    …one statement per change…
    COMMIT;

so a point-in-time restore can stop before the first transaction committed after its target
by reading the comment lines alone: every statement is one line (a line break inside a
value is written as an escape string, see :func:`one_line`). The script must run after
:data:`REPLAY_SETTINGS_SQL`:
``session_replication_role = replica`` keeps user triggers (a BEFORE trigger already did its
work on the source) and foreign-key checks (deferrable, cyclic) from running again.

Rules that keep the replay faithful:

- values are written as untyped literals holding the source's text output, so each column's
  input function reads them back exactly; bare numbers are quoted too (``-0`` as an SQL
  number would lose its sign, ``NaN`` and ``Infinity`` are not SQL numbers);
- INSERT says OVERRIDING SYSTEM VALUE (accepted on any table) so identity ALWAYS columns
  keep the source's values; stored generated columns are never written, they are recomputed;
- an UPDATE sets only the columns it knows: one the decoder reports as an unchanged TOASTed
  value keeps the copy's value; an identity ALWAYS column cannot be SET, so a row whose
  identity value changed is deleted and inserted again;
- rows are found by their replica identity key; under REPLICA IDENTITY FULL by every column
  (duplicates are possible, so only one row is touched, through its ctid);
- tables with no usable key (no primary key, identity DEFAULT or NOTHING) are not written:
  their changes are counted in :attr:`ReplayStats.unkeyed` so the caller copies them whole.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Literal

import psycopg

from pgbackup.decoding import (
    NULL,
    UNCHANGED_TOAST,
    Begin,
    Change,
    Column,
    Commit,
    Event,
    Marker,
    Message,
    Truncate,
)
from pgbackup.tablestats import STATS_SETTINGS

TableName = tuple[str, str]
ReplicaIdentity = Literal["default", "full", "index", "nothing"]


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# What the script runs under: the literals are UTF-8, escaped as if standard_conforming_strings
# were on, and printed under STATS_SETTINGS by the peeking session (text comparisons need the
# same output settings here); replica mode keeps triggers and foreign-key checks from firing.
REPLAY_SETTINGS_SQL = "".join(
    f"SET {name} = {_quote_literal(value)};\n"
    for name, value in {
        "client_encoding": "UTF8",
        "standard_conforming_strings": "on",
        **{k: v for k, v in STATS_SETTINGS.items() if k != "search_path"},
        "session_replication_role": "replica",
    }.items()
)

_XACT_COMMENT = re.compile(r"-- pgbackup xact (\d+) committed (\S+) lsn ([0-9A-F]+/[0-9A-F]+)")
_SPOOL_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024


class ReplayError(ValueError):
    """Decoded changes that cannot be turned into SQL that replays them exactly."""


@dataclass(frozen=True)
class TableMeta:
    """What the renderer must know about a table. ``key_columns`` is its replica identity
    key (the primary key, or the REPLICA IDENTITY USING INDEX index), None when there is
    none; ``columns`` lists every column in order (under REPLICA IDENTITY FULL the decoder
    leaves NULL ones out of the old row); ``text_compared`` are the columns that a FULL
    match compares through their text output: composites (an untyped literal cannot be
    compared with one) and types without a default btree equality (json, xml, point…)."""

    schema: str
    table: str
    key_columns: tuple[str, ...] | None
    generated_columns: frozenset[str]
    identity_always: frozenset[str]
    replica_identity: ReplicaIdentity
    columns: tuple[str, ...]
    text_compared: frozenset[str] = frozenset()

    @property
    def usable_key(self) -> bool:
        return self.replica_identity == "full" or self.key_columns is not None


_IDENTITY_NAMES: dict[str, ReplicaIdentity] = {
    "d": "default", "f": "full", "i": "index", "n": "nothing",
}

# Tables whose changes are decoded (permanent heap tables and leaf partitions), each with its
# replica identity key: the primary key under DEFAULT, the chosen index under INDEX.
_TABLES_SQL = """
SELECT n.nspname, c.relname, c.relreplident,
  ARRAY(SELECT a.attname::text FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum),
  ARRAY(SELECT a.attname::text FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attgenerated <> ''),
  ARRAY(SELECT a.attname::text FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attidentity = 'a'),
  ARRAY(SELECT a.attname::text
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        JOIN pg_type b ON b.oid = CASE t.typtype WHEN 'd' THEN t.typbasetype ELSE t.oid END
        JOIN pg_type s ON s.oid = CASE WHEN b.typsubscript = 'array_subscript_handler'::regproc
                                       THEN b.typelem ELSE b.oid END
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND (s.typtype = 'c'
               OR s.typtype NOT IN ('e', 'r', 'm') AND NOT EXISTS (
                   SELECT FROM pg_opclass o JOIN pg_am m ON m.oid = o.opcmethod
                   WHERE m.amname = 'btree' AND o.opcdefault AND o.opcintype = s.oid))),
  (SELECT ARRAY(SELECT a.attname::text
                FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                ORDER BY k.ord)
   FROM pg_index i
   WHERE i.indrelid = c.oid
     AND CASE c.relreplident WHEN 'd' THEN i.indisprimary
                             WHEN 'i' THEN i.indisreplident ELSE false END)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p'
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
"""


def table_metadata(pg: psycopg.Connection) -> dict[TableName, TableMeta]:
    """Every table whose changes logical decoding reports, partitions included."""
    tables: dict[TableName, TableMeta] = {}
    for schema, table, ident, columns, generated, identity, as_text, key in pg.execute(
        _TABLES_SQL
    ):
        tables[(schema, table)] = TableMeta(
            schema, table, tuple(key) if key is not None else None, frozenset(generated),
            frozenset(identity), _IDENTITY_NAMES[ident], tuple(columns), frozenset(as_text),
        )
    return tables


@dataclass
class ReplayStats:
    """What a rendering wrote: transactions, changes per table, and changes left out
    because their table has no usable key (the caller copies those tables whole)."""

    transactions: int = 0
    changes: Counter[TableName] = field(default_factory=Counter)
    unkeyed: Counter[TableName] = field(default_factory=Counter)


def quote_ident(name: str) -> str:
    if "\n" in name or "\r" in name:  # the script is read line by line (one_line)
        raise ReplayError(f"identifier {name[:40]!r} holds a line break: not replayable")
    return '"' + name.replace('"', '""') + '"'


def one_line(literal: str) -> str:
    """A quoted literal on one line: with a line break inside, as an escape string
    (``E'…'``) that means the same. A point-in-time replay reads the script line by line,
    and a line of a value must never pass for a comment line."""
    if "\n" not in literal and "\r" not in literal:
        return literal
    text = literal[1:-1].replace("''", "'")
    escaped = (text.replace("\\", "\\\\").replace("'", "\\'")
               .replace("\n", "\\n").replace("\r", "\\r"))
    return f"E'{escaped}'"


def xact_comment(commit: Commit) -> str:
    """The line before each transaction's BEGIN."""
    at = commit.committed_at.astimezone(UTC).isoformat(timespec="microseconds")
    return f"-- pgbackup xact {commit.xid} committed {at} lsn {commit.lsn}\n"


def parse_xact_comment(line: str) -> Commit | None:
    """The transaction a comment line announces (None for any other line): what a
    point-in-time replay reads to decide where to stop."""
    found = _XACT_COMMENT.fullmatch(line.rstrip("\n"))
    if found is None:
        return None
    return Commit(int(found[1]), found[3], datetime.fromisoformat(found[2]))


class ReplayRenderer:
    """Turns an event stream into script text, one transaction at a time.

    A transaction's statements are spooled (to disk beyond a few MiB) until its COMMIT
    tells the commit time that its comment line carries, so memory stays flat whatever the
    transaction's size.
    """

    def __init__(self, tables: Mapping[TableName, TableMeta]) -> None:
        self.tables = tables
        self.stats = ReplayStats()

    def render(self, events: Iterable[Event]) -> Iterator[str]:
        spool: IO[str] | None = None
        xid = None
        try:
            for event in events:
                if isinstance(event, Begin):
                    if spool is not None:
                        raise ReplayError(f"BEGIN {event.xid} inside transaction {xid}")
                    spool, xid = _new_spool(), event.xid
                elif isinstance(event, Commit):
                    if spool is None or event.xid != xid:
                        raise ReplayError(f"COMMIT {event.xid} without its BEGIN")
                    yield from self._transaction(event, spool)
                    spool = None
                elif isinstance(event, Change | Truncate):
                    if spool is None:
                        raise ReplayError("a change outside any transaction")
                    spool.write(self._statement(event))
                elif not isinstance(event, Message):
                    raise ReplayError(f"unknown event {event!r}")
            if spool is not None:
                raise ReplayError(f"the changes end inside transaction {xid}")
        finally:
            if spool is not None:
                spool.close()

    def _transaction(self, commit: Commit, spool: IO[str]) -> Iterator[str]:
        yield xact_comment(commit) + "BEGIN;\n"
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            yield chunk
        spool.close()
        yield "COMMIT;\n"
        self.stats.transactions += 1

    def _statement(self, event: Change | Truncate) -> str:
        if isinstance(event, Truncate):
            return self._truncate(event)
        meta = self._meta((event.schema, event.table))
        if not meta.usable_key:
            self.stats.unkeyed[(meta.schema, meta.table)] += 1
            return ""
        self.stats.changes[(meta.schema, meta.table)] += 1
        if event.action == "INSERT":
            return insert_sql(meta, _tuple(event.new, event))
        if event.action == "UPDATE":
            return update_sql(meta, _tuple(event.new, event), event.old_key)
        return delete_sql(meta, _tuple(event.old_key, event))

    def _truncate(self, event: Truncate) -> str:
        keyed = []
        for name in event.tables:
            if self._meta(name).usable_key:
                keyed.append(name)
                self.stats.changes[name] += 1
            else:
                self.stats.unkeyed[name] += 1
        if not keyed:
            return ""
        flags = " RESTART IDENTITY" * event.restart_identity + " CASCADE" * event.cascade
        return f"TRUNCATE ONLY {', '.join(_table(*name) for name in keyed)}{flags};\n"

    def _meta(self, name: TableName) -> TableMeta:
        meta = self.tables.get(name)
        if meta is None:
            raise ReplayError(f"table {_table(*name)} is not among the tables read from the "
                              "catalog (created or renamed since?)")
        return meta


def insert_sql(meta: TableMeta, new: list[Column]) -> str:
    columns = [c for c in new if c.name not in meta.generated_columns]
    if not columns:
        return f"INSERT INTO {_table(meta.schema, meta.table)} DEFAULT VALUES;\n"
    names = ", ".join(quote_ident(c.name) for c in columns)
    values = ", ".join(_literal(c, "INSERT") for c in columns)
    return (f"INSERT INTO {_table(meta.schema, meta.table)} ({names}) "
            f"OVERRIDING SYSTEM VALUE VALUES ({values});\n")


def update_sql(meta: TableMeta, new: list[Column], old_key: list[Column] | None) -> str:
    where = _where(meta, old_key if old_key is not None else _key_of(meta, new))
    if _identity_changes(meta, new, old_key):
        return _reinsert(meta, new, where)
    assignments = [
        f"{quote_ident(c.name)} = {_literal(c, 'UPDATE')}" for c in new
        if c.name not in meta.generated_columns and c.value is not UNCHANGED_TOAST
        and c.name not in meta.identity_always
    ]
    if not assignments:
        return ""
    return f"UPDATE {_table(meta.schema, meta.table)} SET {', '.join(assignments)} WHERE {where};\n"


def delete_sql(meta: TableMeta, old_key: list[Column]) -> str:
    return f"DELETE FROM {_table(meta.schema, meta.table)} WHERE {_where(meta, old_key)};\n"


def _identity_changes(meta: TableMeta, new: list[Column], old_key: list[Column] | None) -> bool:
    """Whether an identity ALWAYS column may have a new value (it cannot be SET). Its old
    value is known from the old row, or, without one, when it is part of the unchanged key."""
    for column in new:
        if column.name not in meta.identity_always:
            continue
        if old_key is None:
            if column.name not in (meta.key_columns or ()):
                return True
        elif _old_value(meta, old_key, column.name) != column.value:
            return True
    return False


def _old_value(meta: TableMeta, old_key: list[Column], name: str) -> str | Marker | None:
    """The column's value in the old row: NULL when FULL left it out, None when unknown."""
    found = next((c.value for c in old_key if c.name == name), None)
    if found is None and meta.replica_identity == "full":
        return NULL
    return found


def _reinsert(meta: TableMeta, new: list[Column], where: str) -> str:
    """DELETE then INSERT. Values the decoder did not read (unchanged TOAST) come from the
    deleted row: the scalar subqueries read the DELETE's RETURNING, so it runs first."""
    table = _table(meta.schema, meta.table)
    columns = [c for c in new if c.name not in meta.generated_columns]
    if all(c.value is not UNCHANGED_TOAST for c in columns):
        return f"DELETE FROM {table} WHERE {where};\n" + insert_sql(meta, new)
    names = ", ".join(quote_ident(c.name) for c in columns)
    values = ", ".join(
        f"(SELECT {quote_ident(c.name)} FROM gone)" if c.value is UNCHANGED_TOAST
        else _literal(c, "UPDATE") for c in columns
    )
    return (f"WITH gone AS (DELETE FROM {table} WHERE {where} RETURNING *) "
            f"INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE VALUES ({values});\n")


def _key_of(meta: TableMeta, new: list[Column]) -> list[Column]:
    """The key columns of the new row: an UPDATE without old-key left its key unchanged."""
    if meta.key_columns is None:
        raise ReplayError(f"an UPDATE of {_table(meta.schema, meta.table)} carries no old row")
    by_name = {c.name: c for c in new}
    missing = [name for name in meta.key_columns if name not in by_name]
    if missing:
        raise ReplayError(f"key column {missing[0]!r} of {_table(meta.schema, meta.table)} "
                          "is not in the decoded row")
    return [by_name[name] for name in meta.key_columns]


def _where(meta: TableMeta, old_key: list[Column]) -> str:
    if meta.replica_identity != "full":
        if not old_key:
            raise ReplayError(f"a change of {_table(meta.schema, meta.table)} has an empty key")
        return " AND ".join(_equals(c, as_text=False) for c in old_key)
    by_name = {c.name: c for c in old_key}
    conditions = [
        _equals(by_name[name], name in meta.text_compared) if name in by_name
        else f"{quote_ident(name)} IS NULL"
        for name in meta.columns if name not in meta.generated_columns
    ]
    table = _table(meta.schema, meta.table)
    match = " AND ".join(conditions) or "true"
    return f"ctid = (SELECT ctid FROM {table} WHERE {match} LIMIT 1)"


def _equals(column: Column, as_text: bool) -> str:
    """``=`` (index-friendly, same as IS NOT DISTINCT FROM for a value), IS NULL for NULL;
    ``as_text`` compares the column's text output (format's %s) with the literal."""
    name = quote_ident(column.name)
    if column.value is NULL:
        return f"{name} IS NULL"
    if as_text:
        name = f"format('%s', {name})"
    return f"{name} = {_literal(column, 'key')}"


def _literal(column: Column, where: str) -> str:
    value = column.value
    if value is NULL:
        return "NULL"
    if value is UNCHANGED_TOAST:
        raise ReplayError(f"column {column.name!r} has no value (unchanged TOAST) in {where}")
    assert isinstance(value, str)
    if value.startswith("'"):
        return one_line(value)
    if value.startswith("B'") or value in ("true", "false"):
        return value
    return f"'{value}'"


def _tuple(columns: list[Column] | None, change: Change) -> list[Column]:
    if columns is None:
        raise ReplayError(f"{change.action} on {_table(change.schema, change.table)} "
                          "came without row data (no-tuple-data)")
    return columns


def _table(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def _new_spool() -> IO[str]:
    return tempfile.SpooledTemporaryFile(
        max_size=_SPOOL_BYTES, mode="w+", encoding="utf-8", newline=""
    )
