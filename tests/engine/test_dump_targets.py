"""run_dump_to: one pg_dump written to a local directory and an S3 bucket (moto) at once,
each copy checked where it is stored, encrypted to its own recipients when asked."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pyrage import x25519

from pgbackup import (
    BackupError,
    ConnectionInfo,
    LocalStorage,
    S3Storage,
    check_integrity,
    new_backup_id,
)
from pgbackup.dump import run_dump_to
from pgbackup.encryption import load_identities
from pgbackup.targets import Target
from tests.engine.helpers import restore_with_stock_tools
from tests.support.dbcompare import table_fingerprints
from tools.localservices import S3Server


@pytest.fixture
def source(pg_server, pagila_template) -> Callable[[], str]:
    """A private Pagila copy (the template may not be dumped while tests copy it)."""
    name = f"targets_{new_backup_id()[-8:].lower()}"
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pagila_template}"')
    yield pg_server.url(name)
    pg_server.drop_database(name)


def unreachable_s3() -> S3Storage:
    return S3Storage("nowhere", endpoint_url="http://127.0.0.1:9", connect_timeout=1,
                     access_key_id="AKIAEXAMPLEKEY",
                     secret_access_key="wJalrXUtnFEMIexampleSECRETkey00000000000")


def stored_sha256(storage, name: str) -> str:
    with storage.open_read(name) as reader:
        return hashlib.sha256(reader.read()).hexdigest()


def test_one_dump_two_destinations_each_checked_where_it_lies(
        source, tmp_path: Path, s3_server: S3Server, bucket: str, scratch_db) -> None:
    identity = x25519.Identity.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"{identity}\n")
    local = Target("local", LocalStorage(tmp_path / "local"))
    offsite = Target("offsite", S3Storage(bucket, prefix="shop",
                                          **s3_server.storage_settings()),
                     encrypt_to=(str(identity.to_public()),), required=False)

    plain, encrypted = run_dump_to(ConnectionInfo.from_url(source), [local, offsite],
                                   new_backup_id(), "full")

    assert plain.error is None and encrypted.error is None
    assert plain.manifest and encrypted.manifest
    assert encrypted.manifest.artifact == plain.manifest.artifact + ".age"
    assert encrypted.manifest.content_sha256 == plain.manifest.sha256  # one archive
    for copy in (plain, encrypted):
        assert stored_sha256(copy.target.storage, copy.manifest.artifact) == copy.manifest.sha256
    identities = load_identities(key_file)
    assert check_integrity(offsite.storage, encrypted.manifest.backup_id,
                           identities=identities).is_valid
    downloaded = tmp_path / encrypted.manifest.artifact
    with offsite.storage.open_read(encrypted.manifest.artifact) as reader:
        downloaded.write_bytes(reader.read())
    target = scratch_db()
    restore_with_stock_tools(downloaded, target, identity_file=key_file)
    assert table_fingerprints(target) == table_fingerprints(source)


def test_an_optional_destination_that_fails_fails_alone(source, tmp_path: Path) -> None:
    local = Target("local", LocalStorage(tmp_path / "local"))
    unreachable = Target("offsite", unreachable_s3(), required=False)

    stored, failed = run_dump_to(ConnectionInfo.from_url(source), [local, unreachable],
                                 new_backup_id(), "schema-only")

    assert stored.manifest is not None and stored.error is None
    assert failed.manifest is None and "127.0.0.1:9" in (failed.error or "")


def test_a_required_destination_that_fails_leaves_nothing_anywhere(
        source, tmp_path: Path) -> None:
    local = LocalStorage(tmp_path / "local")
    unreachable = unreachable_s3()

    with pytest.raises(BackupError, match=r"writing to offsite failed: .*127\.0\.0\.1:9"):
        run_dump_to(ConnectionInfo.from_url(source),
                    [Target("local", local), Target("offsite", unreachable)],
                    new_backup_id(), "schema-only")

    assert local.list_names() == [] and local.list_partials() == []


def test_a_failed_dump_leaves_another_run_s_files_alone(source, tmp_path: Path) -> None:
    """An optional target that already holds files under the backup's names is planned as
    failed; when the dump then fails, those files are not ours to delete."""
    backup_id = new_backup_id()
    other_run = LocalStorage(tmp_path / "other")
    for name in (f"{backup_id}.dump.zst", f"{backup_id}.manifest.json"):
        other_run.path(name).write_bytes(b"another run's file")
    local = LocalStorage(tmp_path / "local")
    gone = ConnectionInfo.from_url(source.rsplit("/", 1)[0] + "/no_such_database")

    with pytest.raises(Exception, match="no_such_database"):
        run_dump_to(gone, [Target("local", local), Target("nas", other_run, required=False)],
                    backup_id, "full")

    assert other_run.list_names() == sorted([f"{backup_id}.dump.zst",
                                             f"{backup_id}.manifest.json"])
    assert local.list_names() == [] and local.list_partials() == []
