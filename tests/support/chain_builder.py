"""A source database and the chain of backups taken from it with the real writers (a full
that starts a chain, then incrementals), with moments recorded along the way for
point-in-time restores.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg
import zstandard

from pgbackup.connection import ConnectionInfo
from pgbackup.dump import run_dump
from pgbackup.incremental import run_incremental_to
from pgbackup.manifest import Manifest, write_manifest
from pgbackup.slots import drop_slot, list_slots
from pgbackup.storage import LocalStorage
from pgbackup.streams import HashingWriter
from pgbackup.targets import Target
from tests.engine.helpers import unique_backup_id
from tests.support.dbcompare import table_fingerprints
from tools.localservices import PostgresServer


@dataclass(frozen=True)
class Moment:
    """A moment of the source right after a marker row's commit, and its tables then."""

    label: str
    at: datetime
    fingerprints: dict[str, tuple[int, str]]


class ChainSource:
    """A source database of its own (schema ``schema_sql``) and the chain built from it
    into ``storage``; ``encrypt_to`` (age public keys) encrypts every artifact."""

    def __init__(self, server: PostgresServer, storage: LocalStorage, schema_sql: str,
                 encrypt_to: list[str] | None = None) -> None:
        token = secrets.token_hex(4)
        self.server, self.storage = server, storage
        self.name = f"chain_src_{token}"
        self.slot_prefix = f"test_chain_{token}_"
        self.url = server.create_database(self.name)
        self.conn = ConnectionInfo.from_url(self.url)
        self.encrypt_to = encrypt_to
        self.manifests: list[Manifest] = []
        self.moments: list[Moment] = []
        self._slot: str | None = None  # holds the changes after the last backup
        self._slots = 0
        self.execute(schema_sql)

    @property
    def links(self) -> list[tuple[LocalStorage, Manifest]]:
        return [(self.storage, manifest) for manifest in self.manifests]

    def execute(self, *transactions: str) -> None:
        """Each argument is one transaction (statements separated by ``;``), flushed at
        once: decoding reads only flushed WAL and the test server commits asynchronously."""
        with psycopg.connect(self.url, autocommit=True) as pg:
            pg.execute("SET synchronous_commit = on")
            for statements in transactions:
                with pg.transaction():
                    pg.execute(statements)

    def marker(self, label: str) -> Moment:
        """Commit a marker row, read the clock just after, record the tables then."""
        with psycopg.connect(self.url, autocommit=True) as pg:
            pg.execute("SET synchronous_commit = on")
            pg.execute("INSERT INTO markers (label) VALUES (%s)", [label])
            at = _scalar(pg, "SELECT clock_timestamp()")
        moment = Moment(label, at, table_fingerprints(self.url))
        self.moments.append(moment)
        return moment

    def now(self) -> datetime:
        with psycopg.connect(self.url) as pg:
            return _scalar(pg, "SELECT clock_timestamp()")

    def start_chain(self) -> Manifest:
        """The full backup, starting the chain on a new slot."""
        slot = self._next_slot()
        manifest = run_dump(self.conn, self.storage, unique_backup_id(self.storage), "full",
                            encrypt_to=self.encrypt_to, capture_slot=slot)
        self.manifests.append(manifest)
        self._slot = slot
        return manifest

    def incremental(self, end_marker: bool = True) -> Manifest:
        """The changes since the last backup; ``end_marker=False`` then cuts the script's
        end marker off (a truncated script whose manifest matches it)."""
        slot = self._next_slot()
        [copy] = run_incremental_to(
            self.conn, [Target("local", self.storage, tuple(self.encrypt_to or ()))],
            unique_backup_id(self.storage), self.manifests[-1], slot)
        assert copy.manifest is not None, copy.error
        manifest = copy.manifest if end_marker else self._cut_end_marker(copy.manifest)
        assert self._slot is not None
        drop_slot(self.conn, self._slot)
        self._slot = slot
        self.manifests.append(manifest)
        return manifest

    def _cut_end_marker(self, manifest: Manifest) -> Manifest:
        """Rewrite an unencrypted script without its last line, and its manifest to match."""
        path = self.storage.path(manifest.artifact)
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())) as raw:
            script = raw.read()
        cut = zstandard.ZstdCompressor(write_checksum=True).compress(
            script[:script.rindex(b"-- pgbackup end")])
        path.write_bytes(cut)
        hashed = HashingWriter(io.BytesIO())
        hashed.write(cut)
        changed = manifest.model_copy(update={"size": len(cut), "sha256": hashed.hexdigest(),
                                              "signature": None})
        write_manifest(self.storage, changed)
        return changed

    def close(self) -> None:
        for slot in list_slots(self.conn, self.slot_prefix):
            drop_slot(self.conn, slot.name)
        self.server.drop_database(self.name)

    def _next_slot(self) -> str:
        self._slots += 1
        return f"{self.slot_prefix}{self._slots}"


def _scalar(pg: psycopg.Connection, query: str) -> datetime:
    row = pg.execute(query).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value
