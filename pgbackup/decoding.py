"""Typed events from the text that the test_decoding plugin writes for each change.

Input: rows of ``pg_logical_slot_peek_changes(slot, upto, NULL, 'include-timestamp', '1',
'include-xids', '1', 'skip-empty-xacts', '1')`` (lsn, xid, data). The formats follow
PostgreSQL's contrib/test_decoding/test_decoding.c:

- ``BEGIN <xid>`` and ``COMMIT <xid> (at <timestamptz>)``;
- ``table <schema>.<table>: INSERT|UPDATE|DELETE:`` then `` (no-tuple-data)`` or columns
  `` <name>[<type>]:<value>``; an UPDATE that carries its old row writes `` old-key:`` columns
  then `` new-tuple:`` columns; the old row of UPDATE and DELETE leaves out NULL columns;
- ``table <a>, <b>: TRUNCATE:`` then `` restart_seqs``, `` cascade`` or `` (no-flags)``;
- ``message: transactional: <0|1> prefix: <prefix>, sz: <bytes> content:<content>``.

Identifiers are printed by ``quote_identifier`` (bare when ``[a-z_][a-z0-9_]*``, else double
quoted with ``""`` doubling), type names by ``format_type_be`` (they depend on the peeking
session's search_path, so they are kept as text and never used to cast). A value is ``null``,
``unchanged-toast-datum``, or a literal from ``print_literal``: a bare number (integers,
oid, floats, numeric, including NaN and ±Infinity), ``true``/``false``, ``B'0101'`` for bit
strings, else the type's text output quoted with ``''`` doubling (as if
standard_conforming_strings were on). Values are the types' text output in the peeking
session: it should fix the settings they depend on first
(:func:`pgbackup.tablestats.stats_session_setup`).

The parser reads each line with a small scanner and refuses, with :class:`DecodingError`,
anything it does not recognise: guessing would replay wrong data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal, NamedTuple


class DecodingError(ValueError):
    """A row of test_decoding output that cannot be read exactly."""


class Marker(Enum):
    """Values that are not literals."""

    NULL = "null"
    UNCHANGED_TOAST = "unchanged-toast-datum"


NULL = Marker.NULL
UNCHANGED_TOAST = Marker.UNCHANGED_TOAST

Action = Literal["INSERT", "UPDATE", "DELETE"]


class Column(NamedTuple):
    """One column of a decoded row. ``value`` is NULL, UNCHANGED_TOAST (an UPDATE left this
    TOASTed value alone, so the decoder did not read it), or a literal exactly as printed:
    ``'it''s'``, ``B'101'``, ``true``, ``42``, ``NaN``, ``-Infinity``."""

    name: str
    type_name: str
    value: str | Marker


@dataclass(frozen=True, slots=True)
class Begin:
    xid: int
    lsn: str


@dataclass(frozen=True, slots=True)
class Commit:
    xid: int
    lsn: str
    committed_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """A row change. ``old_key`` is the replica identity of the old row (every non-NULL
    column under REPLICA IDENTITY FULL): always for DELETE, for UPDATE only when the key
    changed or the identity is FULL. ``no_tuple_data``: the decoder knew no row at all."""

    schema: str
    table: str
    action: Action
    new: list[Column] | None
    old_key: list[Column] | None
    no_tuple_data: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    tables: list[tuple[str, str]]
    restart_identity: bool
    cascade: bool


@dataclass(frozen=True, slots=True)
class Message:
    """A pg_logical_emit_message() record: carries no table data."""

    transactional: bool
    prefix: str
    content: str


Event = Begin | Commit | Change | Truncate | Message

_BARE_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|NaN|-?Infinity")
_BITS = re.compile(r"[01]*")
_TYPE_CHARS = re.compile(r"[a-z0-9_. ]+")
# timestamptz_to_str(): ISO date style, the session's time zone as +HH[:MM[:SS]].
_COMMIT_TIME = re.compile(
    r"\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?[-+]\d\d(?::\d\d(?::\d\d)?)?"
)
_BEGIN = re.compile(r"BEGIN (\d+)")
_COMMIT = re.compile(r"COMMIT (\d+) \(at ([^)]*)\)")
_MESSAGE = re.compile(r"message: transactional: ([01]) prefix: ")
_MESSAGE_SIZE = re.compile(r", sz: (\d+) content:")
_ACTIONS: tuple[Action, ...] = ("INSERT", "UPDATE", "DELETE")


def parse_rows(rows: Iterable[tuple[object, object, str]]) -> Iterator[Event]:
    """Events from (lsn, xid, data) rows, lazily, in order."""
    for lsn, xid, data in rows:
        yield parse_row(str(lsn), xid, data)


def parse_row(lsn: str, xid: object, data: str) -> Event:
    """One event; ``xid`` is the row's xid column (int or its text), checked against the
    xid that BEGIN and COMMIT print."""
    if data.startswith("table "):
        return _Scanner(data).change_or_truncate()
    if data.startswith("BEGIN"):
        begin = _BEGIN.fullmatch(data)
        if begin is None:
            raise DecodingError(f"unexpected BEGIN line: {_excerpt(data, 0)}")
        return Begin(_same_xid(begin[1], xid, data), lsn)
    if data.startswith("COMMIT"):
        commit = _COMMIT.fullmatch(data)
        if commit is None:
            raise DecodingError(f"unexpected COMMIT line: {_excerpt(data, 0)}")
        return Commit(_same_xid(commit[1], xid, data), lsn, _commit_time(commit[2]))
    if data.startswith("message: "):
        return _message(data)
    raise DecodingError(f"unknown test_decoding line: {_excerpt(data, 0)}")


def _same_xid(printed: str, column: object, data: str) -> int:
    if str(column) != printed:
        raise DecodingError(f"xid column {column} does not match the line {_excerpt(data, 0)}")
    return int(printed)


def _commit_time(text: str) -> datetime:
    if _COMMIT_TIME.fullmatch(text) is None:
        raise DecodingError(f"unexpected commit time {text!r} (want ISO DateStyle output)")
    return datetime.fromisoformat(text)


def _message(data: str) -> Message:
    """The prefix is printed raw, so the header's end is the one ``, sz: N content:`` whose
    N is the byte length of what follows it."""
    head = _MESSAGE.match(data)
    if head is None:
        raise DecodingError(f"unexpected message line: {_excerpt(data, 0)}")
    fits = [
        found for found in _MESSAGE_SIZE.finditer(data, head.end())
        if len(data[found.end():].encode()) == int(found[1])
    ]
    if len(fits) != 1:
        raise DecodingError(f"cannot tell a message's prefix from its content: {_excerpt(data, 0)}")
    return Message(head[1] == "1", data[head.end():fits[0].start()], data[fits[0].end():])


def _excerpt(data: str, pos: int) -> str:
    """Where the problem is, without dumping a whole (possibly huge) row into a log."""
    start = max(0, pos - 40)
    before, after = "…" * (start > 0), "…" * (pos + 40 < len(data))
    return f"at offset {pos}: {before}{data[start:pos + 40]!r}{after}"


class _Scanner:
    """Reads one ``table …`` line left to right."""

    def __init__(self, data: str) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> DecodingError:
        return DecodingError(f"{what} {_excerpt(self.data, self.pos)}")

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def looking_at(self, text: str) -> bool:
        return self.data.startswith(text, self.pos)

    def expect(self, text: str) -> None:
        if not self.looking_at(text):
            raise self.fail(f"expected {text!r}")
        self.pos += len(text)

    def accept(self, text: str) -> bool:
        if self.looking_at(text):
            self.pos += len(text)
            return True
        return False

    def change_or_truncate(self) -> Change | Truncate:
        self.expect("table ")
        tables = [self.qualified_name()]
        while self.accept(", "):
            tables.append(self.qualified_name())
        self.expect(": ")
        if self.accept("TRUNCATE:"):
            return self.truncate(tables)
        action = next((a for a in _ACTIONS if self.accept(f"{a}:")), None)
        if action is None:
            raise self.fail("expected INSERT:, UPDATE:, DELETE: or TRUNCATE:")
        if len(tables) != 1:
            raise self.fail(f"{action} names several tables")
        return self.change(*tables[0], action)

    def truncate(self, tables: list[tuple[str, str]]) -> Truncate:
        if self.accept(" (no-flags)"):
            restart, cascade = False, False
        else:
            restart = self.accept(" restart_seqs")
            cascade = self.accept(" cascade")
            if not (restart or cascade):
                raise self.fail("expected TRUNCATE flags")
        if not self.at_end():
            raise self.fail("unexpected text after TRUNCATE flags")
        return Truncate(tables, restart, cascade)

    def change(self, schema: str, table: str, action: Action) -> Change:
        old_key: list[Column] | None = None
        if action == "UPDATE" and self.accept(" old-key:"):
            old_key = self.columns(until_new_tuple=True)
            self.expect(" new-tuple:")
        if self.accept(" (no-tuple-data)"):
            if not self.at_end():
                raise self.fail("unexpected text after (no-tuple-data)")
            return Change(schema, table, action, None, old_key, True)
        columns = self.columns(until_new_tuple=False)
        if action == "DELETE":
            return Change(schema, table, action, None, columns, False)
        return Change(schema, table, action, columns, old_key, False)

    def columns(self, until_new_tuple: bool) -> list[Column]:
        """`` name[type]:value`` repeated; a bare ``new-tuple:`` cannot be a column (a
        name with ``-`` is always quoted)."""
        found: list[Column] = []
        while not self.at_end() and not (until_new_tuple and self.looking_at(" new-tuple:")):
            self.expect(" ")
            name = self.identifier()
            self.expect("[")
            type_name = self.type_name()
            self.expect(":")
            found.append(Column(name, type_name, self.value()))
        return found

    def qualified_name(self) -> tuple[str, str]:
        schema = self.identifier()
        self.expect(".")
        return schema, self.identifier()

    def identifier(self) -> str:
        if self.looking_at('"'):
            return self.quoted('"')
        bare = _BARE_IDENT.match(self.data, self.pos)
        if bare is None:
            raise self.fail("expected an identifier")
        self.pos = bare.end()
        return bare[0]

    def quoted(self, quote: str) -> str:
        """Text between ``quote`` characters, a doubled one standing for itself."""
        self.expect(quote)
        parts: list[str] = []
        while True:
            end = self.data.find(quote, self.pos)
            if end < 0:
                raise self.fail(f"unterminated {quote}-quoted text")
            parts.append(self.data[self.pos:end])
            self.pos = end + 1
            if not self.accept(quote):
                return quote.join(parts)

    def type_name(self) -> str:
        """format_type_be()'s text up to the closing ``]``: words, dots, spaces, quoted
        identifiers (which may hold ``]``) and ``[]`` array suffixes."""
        start = self.pos
        while not self.looking_at("]"):
            if self.looking_at('"'):
                self.quoted('"')
            elif not self.accept("[]") and not self.accept_type_chars():
                raise self.fail("unexpected character in a type name")
        if self.pos == start:
            raise self.fail("empty type name")
        text = self.data[start:self.pos]
        self.pos += 1
        return text

    def accept_type_chars(self) -> bool:
        plain = _TYPE_CHARS.match(self.data, self.pos)
        if plain is None:
            return False
        self.pos = plain.end()
        return True

    def value(self) -> str | Marker:
        for marker in Marker:
            end = self.pos + len(marker.value)
            if self.looking_at(marker.value) and (end == len(self.data) or self.data[end] == " "):
                self.pos = end
                return marker
        if self.looking_at("'"):
            start = self.pos
            self.quoted("'")
            return self.token_end(self.data[start:self.pos])
        if self.looking_at("B'"):
            start = self.pos
            self.pos += 1
            bits = self.quoted("'")
            if _BITS.fullmatch(bits) is None:
                raise self.fail("bit string with characters other than 0 and 1")
            return self.token_end(self.data[start:self.pos])
        return self.bare()

    def bare(self) -> str:
        end = self.data.find(" ", self.pos)
        end = len(self.data) if end < 0 else end
        token = self.data[self.pos:end]
        if token not in ("true", "false") and _NUMBER.fullmatch(token) is None:
            raise self.fail("unrecognised value")
        self.pos = end
        return token

    def at_token_end(self) -> bool:
        return self.at_end() or self.looking_at(" ")

    def token_end(self, literal: str) -> str:
        if not self.at_token_end():
            raise self.fail("unexpected text after a value")
        return literal
