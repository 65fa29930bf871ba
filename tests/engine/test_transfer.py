"""transfer: a stored backup copied to another storage (local or S3), decrypted and
encrypted again as the target wants, checked against the source's manifest, and nothing
left at the target when the source turns out to be corrupted."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrage import x25519

from pgbackup import (
    BackupError,
    ConnectionInfo,
    DecryptionError,
    LocalStorage,
    Manifest,
    S3Storage,
    check_integrity,
    manifest_name,
    new_backup_id,
    read_manifest,
    run_dump,
)
from pgbackup.globals import globals_name, read_globals
from pgbackup.transfer import transfer
from tests.engine.helpers import copy_backup
from tools.localservices import S3Server


@pytest.fixture(scope="module")
def dumped(pg_server, pagila_template, tmp_path_factory) -> Iterator[tuple[LocalStorage,
                                                                           Manifest]]:
    """One unencrypted backup of a Pagila copy, shared read-only by the module's tests."""
    name = f"transfer_{new_backup_id()[-8:].lower()}"
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pagila_template}"')
    storage = LocalStorage(tmp_path_factory.mktemp("transfer-source"))
    try:
        manifest = run_dump(ConnectionInfo.from_url(pg_server.url(name)), storage,
                            new_backup_id(), "full")
    finally:
        pg_server.drop_database(name)
    yield storage, manifest


def key() -> tuple[x25519.Identity, str]:
    identity = x25519.Identity.generate()
    return identity, str(identity.to_public())


def sha256_at(storage, name: str) -> str:
    with storage.open_read(name) as reader:
        return hashlib.sha256(reader.read()).hexdigest()


def test_local_to_local_copies_the_bytes_as_they_are(dumped, tmp_path: Path) -> None:
    source, original = dumped
    target = LocalStorage(tmp_path / "target")

    copied = transfer(source, target, original.backup_id)

    assert copied == original  # same artifact, same bytes: the same manifest
    assert read_manifest(target, original.backup_id) == original
    assert sha256_at(target, original.artifact) == original.sha256
    assert check_integrity(target, original.backup_id).is_valid


def test_local_to_s3_encrypted(dumped, s3_server: S3Server, bucket: str) -> None:
    source, original = dumped
    identity, recipient = key()
    target = S3Storage(bucket, prefix="shop", **s3_server.storage_settings())

    copied = transfer(source, target, original.backup_id, encrypt_to=[recipient])

    assert copied.artifact == original.artifact + ".age"
    assert copied.encryption is not None and copied.encryption.recipients == [recipient]
    assert copied.content_sha256 == original.sha256  # the same archive inside
    assert copied.sha256 == sha256_at(target, copied.artifact) != original.sha256
    assert copied.size == target.size(copied.artifact)
    assert (copied.tables, copied.created) == (original.tables, original.created)
    assert read_manifest(target, original.backup_id) == copied
    result = check_integrity(target, original.backup_id, identities=[identity])
    assert result.is_valid, result.checks
    assert copied.globals is not None and copied.globals.file == globals_name(copied.artifact)
    assert read_globals(target, copied, [identity]) == read_globals(source, original)


def test_encrypted_copy_to_other_recipients_and_back_to_plain(
        dumped, tmp_path: Path) -> None:
    source, original = dumped
    office, office_key = key()
    offline, offline_key = key()
    first = LocalStorage(tmp_path / "first")
    transfer(source, first, original.backup_id, encrypt_to=[office_key])
    second = LocalStorage(tmp_path / "second")

    with pytest.raises(DecryptionError):  # the source is encrypted: its identity is needed
        transfer(first, second, original.backup_id, encrypt_to=[offline_key])
    assert second.list_names() == [] and second.list_partials() == []

    recopied = transfer(first, second, original.backup_id, encrypt_to=[offline_key],
                        identities=[office])
    assert recopied.encryption is not None and recopied.encryption.recipients == [offline_key]
    assert check_integrity(second, original.backup_id, identities=[offline]).is_valid
    assert not check_integrity(second, original.backup_id, identities=[office]).is_valid

    plain = LocalStorage(tmp_path / "plain")
    back = transfer(second, plain, original.backup_id, identities=[offline])
    assert back == original


def test_same_recipients_copy_the_ciphertext_without_an_identity(
        dumped, tmp_path: Path) -> None:
    source, original = dumped
    _identity, recipient = key()
    first = LocalStorage(tmp_path / "first")
    encrypted = transfer(source, first, original.backup_id, encrypt_to=[recipient])
    second = LocalStorage(tmp_path / "second")

    assert transfer(first, second, original.backup_id, encrypt_to=[recipient]) == encrypted


@pytest.mark.parametrize("encrypt", [False, True], ids=["as-is", "re-encrypted"])
def test_a_corrupted_source_is_refused_and_nothing_is_left(
        dumped, tmp_path: Path, s3_server: S3Server, bucket: str, encrypt: bool) -> None:
    source, original = dumped
    broken = copy_backup(source, original, tmp_path / "broken")
    artifact = broken.path(original.artifact)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the hash can tell
    artifact.write_bytes(bytes(data))
    target = S3Storage(bucket, **s3_server.storage_settings())

    with pytest.raises(BackupError, match="is corrupted"):
        transfer(broken, target, original.backup_id,
                 encrypt_to=[key()[1]] if encrypt else ())

    assert target.list_names() == []
    assert target.abandoned_uploads() == []


def test_a_target_already_holding_the_backup_is_refused(dumped, tmp_path: Path) -> None:
    source, original = dumped
    target = copy_backup(source, original, tmp_path / "target")
    with pytest.raises(BackupError, match="already exists"):
        transfer(source, target, original.backup_id)
    assert target.exists(manifest_name(original.backup_id))
