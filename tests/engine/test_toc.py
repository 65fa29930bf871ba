"""read_toc on real archives: Pagila, and a database of odd names, extensions and grants."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgbackup import ConnectionInfo, LocalStorage, Manifest, new_backup_id, run_dump
from pgbackup.toc import Toc, TocEntry, TocError, read_toc
from tests.engine.helpers import decompressed, require_tool
from tools.localservices import PostgresServer

# Contrib extensions, any of which the archive may require (Debian's postgresql-15 has all).
EXTENSIONS = ("pg_trgm", "citext", "hstore")
PAYMENT_PARTITIONS = [f"public.payment_p2022_0{month}" for month in range(1, 8)]


def backup(url: str, storage: LocalStorage, compress: bool = True) -> Manifest:
    return run_dump(ConnectionInfo.from_url(url), storage, new_backup_id(), "full", compress)


def stock_listing(artifact: Path) -> dict[int, str]:
    """``pg_restore --list`` run by hand: dump id -> ``<desc> <schema> <name> <owner>``."""
    archive = decompressed(artifact) if artifact.name.endswith(".zst") else artifact.read_bytes()
    listing = subprocess.run(
        [require_tool("pg_restore"), "--list"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    entries = {}
    for line in listing.splitlines():
        if line and not line.startswith(";"):
            dump_id, _tableoid, _oid, rest = line.split(" ", 3)
            entries[int(dump_id.rstrip(";"))] = rest
    return entries


def as_listed(entry: TocEntry) -> str:
    """The entry as pg_restore prints it: '-' for no schema, nothing for no owner."""
    return f"{entry.desc} {entry.schema or '-'} {entry.name} {entry.owner or ''}"


def entry(toc: Toc, desc: str, name: str) -> TocEntry:
    (found,) = [e for e in toc.entries if (e.desc, e.name) == (desc, name)]
    return found


def test_pagila_toc(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage)
    toc = read_toc(storage, manifest)

    assert {as_listed(e) for e in toc.entries} == set(
        stock_listing(storage.path(manifest.artifact)).values()
    )
    assert {"public.actor", "public.payment", *PAYMENT_PARTITIONS} <= set(toc.tables())
    assert len(toc.tables()) == len(manifest.tables) + 1  # + the partitioned parent
    assert toc.owners() == {"postgres"} and toc.roles() == {"postgres"}
    assert (toc.extensions(), toc.schemas(), toc.grantees) == ([], ["public"], set())
    actor = entry(toc, "TABLE", "actor")
    assert (actor.qualified_name, actor.owner) == ("public.actor", "postgres")
    assert entry(toc, "SCHEMA", "public").schema is None
    assert entry(toc, "DOMAIN", "b\u0131g\u0131nt").schema == "public"  # dotless i
    assert entry(toc, "FK CONSTRAINT", "address address_city_id_fkey").owner == "postgres"
    assert {"TABLE DATA", "SEQUENCE SET", "ACL", "TABLE ATTACH", "INDEX ATTACH",
            "MATERIALIZED VIEW", "TRIGGER"} <= {e.desc for e in toc.entries}


@dataclass(frozen=True)
class OddDatabase:
    url: str
    extension: str
    reader: str  # a plain role that is granted things
    odd: str  # a role with a space in its name that owns a table and grants on


ODD_STATEMENTS = [
    "CREATE EXTENSION {extension}",
    'CREATE SCHEMA "my schema"',
    'CREATE TABLE "my schema"."my ""table"" TO x" (id int)',
    'COMMENT ON TABLE "my schema"."my ""table"" TO x" IS \'GRANT ALL ON t TO fake_role\'',
    'GRANT USAGE ON SCHEMA "my schema" TO {odd}',
    'GRANT SELECT ON "my schema"."my ""table"" TO x" TO {odd} WITH GRANT OPTION',
    "SET ROLE {odd}",
    'GRANT SELECT ON "my schema"."my ""table"" TO x" TO {reader}',
    "RESET ROLE",
    "CREATE TABLE public.plain (id int PRIMARY KEY)",
    "ALTER TABLE public.plain OWNER TO {odd}",
    "GRANT SELECT ON public.plain TO {reader}",
    "GRANT UPDATE (id) ON public.plain TO {reader}",
    "REVOKE ALL ON SCHEMA public FROM PUBLIC",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
    # A line of the function's body reads like a GRANT.
    "CREATE FUNCTION public.grant_text() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN '\n"
    "GRANT SELECT ON public.plain TO fake_role;\n"
    "'; END $$",
    "CREATE MATERIALIZED VIEW public.mv AS SELECT 1 AS x",
]


@pytest.fixture
def odd_database(pg_server: PostgresServer) -> Iterator[OddDatabase]:
    """A database with spaces and quotes in names, an extension, grants, a grantor that is
    not the owner, and GRANT-like text in a comment and in a function body."""
    suffix = secrets.token_hex(3)
    name, reader, odd = f"odd_{suffix}", f"reader_{suffix}", f"Odd Role {suffix}"
    with pg_server.connect() as conn:
        extension = available_extension(conn)
        for role in (reader, odd):
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    url = pg_server.create_database(name)
    try:
        names = {"extension": extension, "reader": reader, "odd": odd}
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in ODD_STATEMENTS:
                conn.execute(sql.SQL(statement).format(
                    **{key: sql.Identifier(value) for key, value in names.items()}
                ))
        yield OddDatabase(url, extension, reader, odd)
    finally:
        pg_server.drop_database(name)
        with pg_server.connect() as conn:
            for role in (reader, odd):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def available_extension(conn: psycopg.Connection) -> str:
    """The first of EXTENSIONS the server offers; none at all fails (contrib is missing)."""
    available = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
    for name in EXTENSIONS:
        if name in available:
            return name
    pytest.fail(f"none of {EXTENSIONS} is available: install postgresql-contrib", pytrace=False)


def test_odd_names_owners_extensions_and_grants(
    odd_database: OddDatabase, storage: LocalStorage
) -> None:
    manifest = backup(odd_database.url, storage, compress=False)
    toc = read_toc(storage, manifest)
    reader, odd = odd_database.reader, odd_database.odd

    assert {as_listed(e) for e in toc.entries} == set(
        stock_listing(storage.path(manifest.artifact)).values()
    )
    assert toc.extensions() == [odd_database.extension]
    assert toc.schemas() == ["my schema", "public"]
    assert toc.tables() == ['my schema.my "table" TO x', "public.plain"]
    assert toc.owners() == {"postgres", odd, "pg_database_owner"}
    assert (toc.grantees, toc.grantors) == ({reader, odd}, {odd})
    assert toc.roles() == {"postgres", odd, "pg_database_owner", reader}
    weird = entry(toc, "TABLE", 'my "table" TO x')
    assert (weird.schema, weird.owner) == ("my schema", "postgres")
    assert entry(toc, "TABLE DATA", "plain").owner == odd
    assert entry(toc, "CONSTRAINT", "plain plain_pkey").owner == odd
    extension = entry(toc, "EXTENSION", odd_database.extension)
    assert (extension.schema, extension.owner) == (None, None)
    assert entry(toc, "COMMENT", f"EXTENSION {odd_database.extension}").owner is None
    assert entry(toc, "DEFAULT ACL", "DEFAULT PRIVILEGES FOR TABLES").schema == "public"
    assert entry(toc, "MATERIALIZED VIEW DATA", "mv").qualified_name == "public.mv"


@pytest.mark.parametrize(("damage", "message"), [
    ("garbage", "cannot read"),  # not zstd at all
    ("delete", "is missing from storage"),
])
def test_unreadable_compressed_artifact(
    pagila: str, storage: LocalStorage, damage: str, message: str
) -> None:
    manifest = backup(pagila, storage)
    artifact = storage.path(manifest.artifact)
    if damage == "delete":
        artifact.unlink()
    else:
        artifact.write_bytes(b"not a zstd frame" * 1000)
    with pytest.raises(TocError, match=message):
        read_toc(storage, manifest)


def test_pg_restore_failure_is_a_toc_error(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage, compress=False)
    storage.path(manifest.artifact).write_bytes(b"PGDMP but not really an archive\n" * 100)
    with pytest.raises(TocError, match=r"pg_restore .* failed .* exit status 1:\n.*pg_restore"):
        read_toc(storage, manifest)


def test_missing_pg_restore(pagila: str, storage: LocalStorage) -> None:
    manifest = backup(pagila, storage)
    with pytest.raises(TocError, match="pg_restore not found"):
        read_toc(storage, manifest, pg_restore="/nonexistent/bin/pg_restore")
