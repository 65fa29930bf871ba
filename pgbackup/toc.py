"""An archive's table of contents, read with pg_restore and no database connection.

The artifact is streamed from storage (decrypted and zstd-decompressed on the fly) into
pg_restore's stdin. Two passes are made; each ends as soon as pg_restore has read the TOC,
which sits at the start of a custom-format archive, so the table data is never read:

* ``pg_restore --schema-only -f -`` prints a header per entry, ``-- Name: <name>; Type:
  <desc>; Schema: <schema>; Owner: <owner>``. It gives the exact schema and owner names, and
  its ACL sections give the grantees (``GRANT ... TO``, ``REVOKE ... FROM``) and grantors
  (``SET SESSION AUTHORIZATION``), which the listing does not show. GRANT-like text in a
  function body is never taken for a grant: only ACL sections are read.
* ``pg_restore --list`` prints ``<id>; <tableoid> <oid> <desc> <schema> <name> <owner>``,
  unquoted and space-separated. Descriptions come from pg_dump's fixed vocabulary, and the
  schema and owner names found in the first pass tell where names with spaces end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO

import zstandard

from pgbackup.archive import ArchiveSource, missing_identities
from pgbackup.connection import tool_env
from pgbackup.encryption import Identity
from pgbackup.errors import DecryptionError
from pgbackup.manifest import Manifest
from pgbackup.pgdump import StderrCollector
from pgbackup.processes import die_with_parent
from pgbackup.storage import Storage
from pgbackup.streams import Readable, copy_stream

# Every entry description pg_dump 15 to 18 writes; several have spaces.
DESCS = frozenset({
    "ACCESS METHOD", "ACL", "AGGREGATE", "BLOB", "BLOB METADATA", "BLOBS", "CAST",
    "CHECK CONSTRAINT", "COLLATION", "COMMENT", "CONSTRAINT", "CONVERSION", "DATABASE",
    "DATABASE PROPERTIES", "DEFAULT", "DEFAULT ACL", "DOMAIN", "ENCODING", "EVENT TRIGGER",
    "EXTENSION", "FK CONSTRAINT", "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "FOREIGN TABLE",
    "FUNCTION", "INDEX", "INDEX ATTACH", "LARGE OBJECT", "MATERIALIZED VIEW",
    "MATERIALIZED VIEW DATA", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "POLICY",
    "PROCEDURAL LANGUAGE", "PROCEDURE", "PUBLICATION", "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "RULE", "SCHEMA", "SEARCHPATH",
    "SECURITY LABEL", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "SHELL TYPE",
    "STATISTICS", "STATISTICS DATA", "STDSTRINGS", "SUBSCRIPTION", "SUBSCRIPTION TABLE",
    "TABLE", "TABLE ATTACH", "TABLE DATA", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "TRANSFORM",
    "TRIGGER", "TYPE", "USER MAPPING", "VIEW",
})
_DESCS_LONGEST_FIRST = tuple(sorted(DESCS, key=len, reverse=True))
ACL_DESCS = frozenset({"ACL", "DEFAULT ACL"})
_NONE = "-"  # pg_restore's placeholder for "no schema" / "no owner"

_LIST_LINE_RE = re.compile(r"^(?P<dump_id>\d+); \d+ \d+ (?P<rest>.*)$")
_HEADER_RE = re.compile(
    r"^-- Name: .*; Type: (?P<desc>.*); Schema: (?P<schema>.*); "
    r"Owner: (?P<owner>.*?)(?:; Tablespace: .*)?$"
)
# Quoted identifiers, string literals, words, and the punctuation that separates them.
_TOKEN_RE = re.compile(r"\"(?:[^\"]|\"\")*\"|'(?:[^']|'')*'|[^\s\"',;()]+|[,;()]")
_GRANTEE_LIST_END = frozenset({"WITH", "GRANTED", "CASCADE", "RESTRICT", ";"})


class TocError(RuntimeError):
    """An archive's table of contents could not be read."""


@dataclass(frozen=True)
class TocEntry:
    """One line of ``pg_restore --list``; ``schema`` and ``owner`` are None where empty."""

    dump_id: int
    desc: str
    schema: str | None
    name: str
    owner: str | None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class Toc:
    """What an archive holds; ``grantees`` and ``grantors`` come from its ACL entries."""

    entries: tuple[TocEntry, ...]
    grantees: frozenset[str]
    grantors: frozenset[str]

    def schemas(self) -> list[str]:
        """Schemas the archive creates or puts objects in."""
        created = {entry.name for entry in self.entries if entry.desc == "SCHEMA"}
        used = {entry.schema for entry in self.entries if entry.schema}
        return sorted(created | used)

    def tables(self) -> list[str]:
        """Qualified names (``schema.name``, unquoted) of all tables, partitioned ones too."""
        return sorted(entry.qualified_name for entry in self.entries if entry.desc == "TABLE")

    def extensions(self) -> list[str]:
        return sorted(entry.name for entry in self.entries if entry.desc == "EXTENSION")

    def owners(self) -> frozenset[str]:
        return frozenset(entry.owner for entry in self.entries if entry.owner)

    def roles(self) -> frozenset[str]:
        """Every role a restore with owners and privileges needs (PUBLIC is not a role)."""
        return self.owners() | self.grantees | self.grantors


@dataclass
class _ScriptFacts:
    """What the schema script's headers and ACL sections name exactly."""

    schemas: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)
    grantees: set[str] = field(default_factory=set)
    grantors: set[str] = field(default_factory=set)


def read_toc(
    storage: Storage, manifest: Manifest, pg_restore: str = "pg_restore",
    identities: Sequence[Identity] | None = None,
) -> Toc:
    """The table of contents of ``manifest``'s artifact; TocError if it cannot be read (an
    encrypted backup needs ``identities`` holding one of its keys)."""
    if problem := missing_identities(manifest, identities):
        raise TocError(problem)
    source = ArchiveSource(storage, manifest, identities, TocError)
    facts = _scan_script(_pg_restore_lines(source, pg_restore, ["--schema-only", "--file=-"]))
    schemas, owners = _longest_first(facts.schemas | {_NONE}), _longest_first(facts.owners)
    listing = _pg_restore_lines(source, pg_restore, ["--list"])
    entries = tuple(
        entry for line in listing
        if (entry := _parse_list_line(line, schemas, owners)) is not None
    )
    return Toc(entries, frozenset(facts.grantees), frozenset(facts.grantors))


def _scan_script(lines: Iterable[str]) -> _ScriptFacts:
    facts = _ScriptFacts()
    in_acl = False
    for line in lines:
        header = _HEADER_RE.match(line)
        if header:
            in_acl = header["desc"] in ACL_DESCS
            facts.schemas.add(header["schema"])
            facts.owners.add(header["owner"])
        elif in_acl:
            _scan_acl_statement(_TOKEN_RE.findall(line), facts)
    facts.schemas.discard(_NONE)
    facts.owners -= {_NONE, ""}
    return facts


def _scan_acl_statement(tokens: list[str], facts: _ScriptFacts) -> None:
    """Record the roles of one GRANT, REVOKE (also under ALTER DEFAULT PRIVILEGES) or
    SET SESSION AUTHORIZATION statement, as pg_dump writes them: one per line."""
    words = [token.upper() for token in tokens]
    if words[:3] == ["SET", "SESSION", "AUTHORIZATION"] and len(tokens) > 3:
        facts.grantors.add(_unquote(tokens[3]))
        return
    verb = next((word for word in words if word in ("GRANT", "REVOKE")), None)
    if verb is None:
        return
    keyword = "TO" if verb == "GRANT" else "FROM"
    top_level = _top_level_positions(tokens)
    keyword_at = [i for i in top_level if words[i] == keyword]
    if not keyword_at:
        return
    for i in (i for i in top_level if i > keyword_at[-1]):  # the last: names may hold a TO
        if words[i] in _GRANTEE_LIST_END:
            if words[i] == "GRANTED" and i + 2 < len(tokens):
                facts.grantors.add(_unquote(tokens[i + 2]))
            break
        if words[i] not in (",", "GROUP", "PUBLIC"):
            facts.grantees.add(_unquote(tokens[i]))


def _top_level_positions(tokens: list[str]) -> list[int]:
    """Indexes of the tokens outside parentheses (a function's argument list)."""
    positions, depth = [], 0
    for i, token in enumerate(tokens):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            positions.append(i)
    return positions


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(values, key=len, reverse=True))


def _parse_list_line(
    line: str, schemas: Sequence[str], owners: Sequence[str]
) -> TocEntry | None:
    """A ``--list`` entry line, or None for comments and blank lines; ``schemas`` and
    ``owners`` are the known names, longest first."""
    match = _LIST_LINE_RE.match(line)
    if match is None:
        return None
    desc, rest = _split_head(match["rest"], _DESCS_LONGEST_FIRST)
    schema, rest = _split_head(rest, schemas)
    name, owner = _split_owner(rest, owners)
    return TocEntry(
        int(match["dump_id"]), desc, None if schema == _NONE else schema, name, owner or None
    )


def _split_head(text: str, known: Sequence[str]) -> tuple[str, str]:
    """``text`` split after the first ``known`` value it starts with, else after its first
    word."""
    for value in known:
        if text.startswith(f"{value} "):
            return value, text[len(value) + 1:]
    head, _, tail = text.partition(" ")
    return head, tail


def _split_owner(text: str, owners: Sequence[str]) -> tuple[str, str]:
    """``<name> <owner>`` split before the first of ``owners`` it ends with, else before its
    last word (an empty owner leaves a trailing space, hence an empty last word)."""
    for owner in owners:
        if text.endswith(f" {owner}"):
            return text[: -len(owner) - 1], owner
    name, _, owner = text.rpartition(" ")
    return name, owner


def _pg_restore_lines(
    source: ArchiveSource, pg_restore: str, options: list[str]
) -> Iterator[str]:
    """pg_restore's output lines (trailing spaces kept: they mark an empty owner)."""
    artifact = source.manifest.artifact
    with (
        source.open() as archive,
        _running_pg_restore([pg_restore, *options], archive) as (process, feeder, stderr),
    ):
        assert process.stdout is not None  # started with stdout=PIPE
        for raw in process.stdout:
            yield raw.decode("utf-8", "replace").rstrip("\r\n")
        returncode = process.wait()
    if feeder.error is not None:
        raise TocError(f"cannot read {artifact}: {feeder.error}")
    if returncode != 0:
        raise TocError(
            f"pg_restore {' '.join(options)} failed on {artifact} with exit status "
            f"{returncode}:\n{stderr.failure_text()}"
        )


class _Feeder:
    """Copies a stream into a process's stdin from a thread, so that the caller can read
    the process's stdout meanwhile; stops quietly when the process stops reading."""

    def __init__(self, source: Readable, sink: IO[bytes]) -> None:
        self.error: OSError | zstandard.ZstdError | DecryptionError | None = None
        self._thread = threading.Thread(target=self._run, args=(source, sink), daemon=True)
        self._thread.start()

    def _run(self, source: Readable, sink: IO[bytes]) -> None:
        try:
            copy_stream(source, sink)
        except BrokenPipeError:
            pass  # pg_restore has read what it needs (the TOC) and exited
        except (OSError, zstandard.ZstdError, DecryptionError) as exc:
            self.error = exc
        finally:
            with suppress(BrokenPipeError):
                sink.close()

    def join(self) -> None:
        self._thread.join()


@contextmanager
def _running_pg_restore(
    args: list[str], source: Readable
) -> Iterator[tuple[subprocess.Popen[bytes], _Feeder, StderrCollector]]:
    """Start pg_restore fed from ``source``; on exit it is reaped (its process group killed
    if it still runs), the feeding and stderr threads joined and its pipes closed."""
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env=tool_env(), preexec_fn=die_with_parent(),
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise TocError(
            f"pg_restore not found: {args[0]!r} is not an executable on PATH; install the "
            "PostgreSQL client tools"
        ) from exc
    assert process.stdin and process.stdout and process.stderr
    feeder = _Feeder(source, process.stdin)
    stderr = StderrCollector(process.stderr)
    try:
        yield process, feeder, stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        feeder.join()
        stderr.join()
        process.stdout.close()
        process.stderr.close()
