"""The recovery kit: the RESTORE file at a destination's root (its content, when it is
rewritten, and its commands followed to the letter with the stock tools), and scanning a
storage's manifests (pgbackup.scan)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrage import x25519

from pgbackup import (
    ConnectionInfo,
    LocalStorage,
    Manifest,
    S3Storage,
    TableInfo,
    new_backup_id,
    run_dump,
    write_manifest,
)
from pgbackup.recoverykit import RESTORE_NAME, restore_text, write_restore_file
from pgbackup.scan import scan
from tests.engine.helpers import copy_public_schema_owner, require_tool
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer, S3Server

KEY = b"m" * 32
OTHER_KEY = b"n" * 32
_SEQ = itertools.count()  # distinct, ascending backup ids


# -- the RESTORE file ------------------------------------------------------------------------


def commands(text: str, **values: str) -> list[str]:
    """The ``$ `` command lines of a RESTORE text, placeholders replaced by ``values``
    (``id``, ``artifact`` -> ``<id>``, ``<artifact>``; ``NEWDB``, ``key.txt`` as is)."""
    lines = [line.strip().removeprefix("$ ") for line in text.splitlines()
             if line.strip().startswith("$ ")]
    for placeholder, value in values.items():
        token = placeholder if placeholder in ("NEWDB", "key.txt") else f"<{placeholder}>"
        lines = [line.replace(token, value) for line in lines]
    return lines


def test_restore_file_for_a_directory(storage: LocalStorage) -> None:
    text = restore_text(storage)
    assert f"Where: {storage.root}/" in text
    assert commands(text)[:3] == [f"cd {storage.root}/", "sha256sum <artifact>",
                                  "grep '\"sha256\"' <id>.manifest.json"]
    assert ("age -d -i key.txt <id>.dump.zst.age | zstd -dc | pg_restore --no-owner -d NEWDB"
            in commands(text))
    assert "flask --app app backup rescan --destination NAME" in commands(text)


def test_restore_file_for_a_bucket_names_it_without_secrets(s3_server: S3Server,
                                                             bucket: str) -> None:
    storage = S3Storage(bucket, prefix="team/pg", **s3_server.storage_settings())
    text = restore_text(storage)
    endpoint = s3_server.endpoint_url
    assert commands(text)[:2] == [
        f"aws s3 cp s3://{bucket}/team/pg/<id>.manifest.json <id>.manifest.json "
        f"--endpoint-url {endpoint}",
        f"aws s3 cp s3://{bucket}/team/pg/<artifact> <artifact> --endpoint-url {endpoint}"]
    assert S3Server.SECRET_ACCESS_KEY not in text
    assert S3Server.ACCESS_KEY_ID not in text


def test_restore_file_is_written_only_when_its_content_changes(storage: LocalStorage) -> None:
    assert write_restore_file(storage) is True
    path = storage.path(RESTORE_NAME)
    assert path.read_text() == restore_text(storage)
    before = path.stat().st_mtime_ns
    assert write_restore_file(storage) is False
    assert path.stat().st_mtime_ns == before
    path.write_text(restore_text(storage) + "an older version's words\n")
    assert write_restore_file(storage) is True
    assert path.read_text() == restore_text(storage)
    assert storage.list_names() == [RESTORE_NAME]


def test_restore_file_on_s3_round_trips(s3_server: S3Server, bucket: str) -> None:
    storage = S3Storage(bucket, prefix="shop", **s3_server.storage_settings())
    assert write_restore_file(storage) is True
    assert write_restore_file(storage) is False
    assert storage.list_names() == [RESTORE_NAME]


@pytest.fixture
def source(pg_server: PostgresServer, pagila_template: str):
    name = f"kit_{new_backup_id()[-8:].lower()}"
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pagila_template}"')
    yield pg_server.url(name)
    pg_server.drop_database(name)


def test_the_restore_file_s_commands_restore_an_encrypted_backup(
        source: str, tmp_path: Path, pg_server: PostgresServer) -> None:
    """Steps 1 to 3 for an encrypted artifact, run as written (placeholders filled in)
    with bash and the stock age, zstd, sha256sum, createdb and pg_restore."""
    identity = x25519.Identity.generate()
    (tmp_path / "key.txt").write_text(f"{identity}\n")
    storage = LocalStorage(tmp_path / "backups")
    manifest = run_dump(ConnectionInfo.from_url(source), storage, new_backup_id(), "full",
                        encrypt_to=[str(identity.to_public())], manifest_key=KEY)
    write_restore_file(storage)
    text = storage.path(RESTORE_NAME).read_text()
    newdb = f"kit_restored_{manifest.backup_id[-8:].lower()}"
    steps = [line for line in commands(text, id=manifest.backup_id,
                                       artifact=manifest.artifact, NEWDB=newdb,
                                       **{"key.txt": str(tmp_path / "key.txt")})
             if not line.startswith(("zstd -dc", "pg_restore --no-owner -d", "flask"))]
    for tool in ("age", "zstd", "sha256sum", "createdb", "pg_restore"):
        require_tool(tool)
    env = {**os.environ, "PGHOST": pg_server.host, "PGPORT": str(pg_server.port),
           "PGUSER": pg_server.user}
    try:
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(steps)],
                                capture_output=True, text=True, env=env, check=False)
        assert result.returncode == 0, result.stderr
        digest, _ = result.stdout.split("\n", 1)
        assert digest.split()[0] == manifest.sha256
        assert f'"sha256": "{manifest.sha256}"' in result.stdout
        restored = pg_server.url(newdb)
        copy_public_schema_owner(source, restored)
        assert schema_dump(restored) == schema_dump(source)
        assert table_fingerprints(restored) == table_fingerprints(source)
    finally:
        pg_server.drop_database(newdb)


# -- scanning manifests ----------------------------------------------------------------------


def stored_backup(storage: LocalStorage, key: bytes | None = KEY, data: bytes = b"x" * 100,
                  **overrides: object) -> Manifest:
    """An artifact and its manifest (signed with ``key``), written by hand."""
    backup_id = new_backup_id(datetime(2024, 1, 15, tzinfo=UTC) + timedelta(seconds=next(_SEQ)))
    artifact = f"{backup_id}.dump.zst"
    storage.path(artifact).write_bytes(data)
    fields: dict[str, object] = {
        "backup_id": backup_id, "type": "full", "created": datetime.now(UTC),
        "database": "shop", "server_version": "15", "pg_dump_version": "15",
        "tool": "pg-backup-manager test", "artifact": artifact, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "compression": "zstd",
        "tables": [TableInfo("public", "t", 1, None)], "snapshot": "1-1", "duration_ms": 5,
    }
    manifest = Manifest.model_validate(fields | overrides)
    write_manifest(storage, manifest, key)
    return manifest.signed(key) if key else manifest


def resealed(storage: LocalStorage, manifest: Manifest,
             edit: Callable[[dict], None]) -> None:
    """Change the manifest file's fields and recompute its self-checksum."""
    path = storage.path(f"{manifest.backup_id}.manifest.json")
    data = json.loads(path.read_text())
    del data["manifest_sha256"]
    edit(data)
    canonical = json.dumps(data, sort_keys=True, indent=2) + "\n"
    data["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")


def verdicts(storage: LocalStorage, **options: bool) -> dict[str, tuple[str | None, str]]:
    return {item.name.removesuffix(".manifest.json"): (item.reason, item.detail)
            for item in scan(storage, KEY, **options)}


def test_scan_finds_authenticated_backups_and_ignores_other_files(
        storage: LocalStorage) -> None:
    first, second = stored_backup(storage), stored_backup(storage)
    write_restore_file(storage)
    (storage.root / "notes.txt").write_text("not a backup")
    found = list(scan(storage, KEY))
    assert [item.manifest for item in found] == [first, second]
    assert {item.authenticity for item in found} == {"authenticated"}


def test_scan_skips_tampered_forged_foreign_and_unsigned_manifests(
        storage: LocalStorage) -> None:
    tampered, forged = stored_backup(storage), stored_backup(storage)
    foreign, unsigned = stored_backup(storage, OTHER_KEY), stored_backup(storage, None)
    path = storage.path(f"{tampered.backup_id}.manifest.json")
    path.write_text(path.read_text().replace('"database": "shop"', '"database": "shap"'))
    resealed(storage, forged, lambda data: data.update(database="elsewhere"))

    found = verdicts(storage)
    assert found[tampered.backup_id][0] == "tampered"
    assert "was modified" in found[tampered.backup_id][1]
    assert found[forged.backup_id][0] == "forged"
    assert found[foreign.backup_id][0] == "foreign"
    assert found[unsigned.backup_id][0] == "unsigned"
    assert "--accept-foreign" in found[unsigned.backup_id][1]

    accepting = {item.name: item for item in scan(storage, KEY, accept_foreign=True)}
    assert {name.split(".")[0] for name, item in accepting.items() if item.found} == {
        foreign.backup_id, unsigned.backup_id}
    assert accepting[f"{forged.backup_id}.manifest.json"].reason == "forged"


def test_scan_checks_the_artifact_against_its_manifest(storage: LocalStorage) -> None:
    missing, short, swapped = (stored_backup(storage) for _ in range(3))
    storage.delete(missing.artifact)
    storage.path(short.artifact).write_bytes(b"x" * 99)
    storage.path(swapped.artifact).write_bytes(b"y" * 100)  # same size, other bytes

    found = verdicts(storage)
    assert found[missing.backup_id][0] == "artifact-missing"
    assert found[short.backup_id] == ("size-mismatch", f"its artifact {short.artifact} is 99 "
                                      "bytes, the manifest says 100")
    assert found[swapped.backup_id][0] == "sha256-mismatch"
    assert verdicts(storage, quick=True)[swapped.backup_id] == (None, "")


def test_scan_refuses_a_manifest_under_another_backup_s_name(storage: LocalStorage) -> None:
    manifest = stored_backup(storage)
    other = new_backup_id()
    os.rename(storage.path(f"{manifest.backup_id}.manifest.json"),
              storage.path(f"{other}.manifest.json"))
    (storage.root / "backup-not-an-id.manifest.json").write_text("{}")

    found = verdicts(storage)
    assert found[other][0] == "mismatch"
    assert re.search(f"describes {manifest.backup_id}", found[other][1])
    assert found["backup-not-an-id"] == (
        "unreadable", "backup-not-an-id.manifest.json is not named after a backup id")
