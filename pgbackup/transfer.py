"""Copying a stored backup from one storage to another: how a failed copy is made again
later, from a copy that was stored, without running pg_dump a second time.

The artifact is streamed (bounded memory): decrypted when its copy is encrypted, encrypted
again to the target's recipients when it has any, and hashed as stored. The archive's
bytes must hash to what the source's manifest records, or nothing is kept at the target;
then the saved roles and settings beside it (pgbackup.globals) are copied the same way,
and only then is the target's manifest written (the source's, describing the new files).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext, suppress

from pgbackup.archive import decrypted
from pgbackup.encryption import Identity, Recipient, encrypting_writer, parse_recipients
from pgbackup.errors import BackupError
from pgbackup.globals import globals_name, read_globals, write_globals
from pgbackup.ids import artifact_name, manifest_name
from pgbackup.manifest import (
    Encryption,
    GlobalsFile,
    Manifest,
    read_manifest,
    write_manifest,
)
from pgbackup.storage import Storage
from pgbackup.streams import HashingReader, HashingWriter, copy_stream


def transfer(
    source: Storage, target: Storage, backup_id: str, encrypt_to: Sequence[str] = (),
    identities: Sequence[Identity] | None = None, manifest_key: bytes | None = None,
) -> Manifest:
    """Copy backup ``backup_id`` from ``source`` to ``target``, encrypted to ``encrypt_to``
    (age public keys; none: stored unencrypted); returns the target's manifest, signed
    with ``manifest_key`` when given (the source's signature is not carried over: it
    signed another artifact).

    The bytes are copied as they are when both sides are unencrypted or encrypted to the
    same recipients; otherwise the source is decrypted with ``identities``. Raises
    BackupError when the target already holds the backup or the bytes read do not match
    the source's manifest (a corrupted source), DecryptionError when no identity fits,
    FileNotFoundError or ObjectStoreError from the storages. Nothing is left at the target
    when it raises (a killed process may leave an unfinished write, as a dump does).
    """
    manifest = read_manifest(source, backup_id)
    recipients = parse_recipients(encrypt_to) if encrypt_to else None
    artifact = artifact_name(backup_id, manifest.compression == "zstd",
                             encrypted=recipients is not None, kind=manifest.type)
    sidecar = globals_name(artifact)
    for name in (artifact, sidecar, manifest_name(backup_id)):
        if target.exists(name):
            raise BackupError(f"backup {backup_id} already exists at the target ({name})")
    raw = _same_encryption(manifest, encrypt_to)
    with target.atomic_writer(artifact) as out:  # aborted (nothing kept) if this raises
        stored = HashingWriter(out)
        _copy(source, manifest, stored, None if raw else recipients, identities, raw)
    try:
        saved = _copy_globals(source, target, manifest, sidecar, recipients, identities, raw)
        copied = _manifest_for(manifest, artifact, target.size(artifact), stored.hexdigest(),
                               recipients, saved)
        write_manifest(target, copied, manifest_key)
    except BaseException:
        for name in (artifact, sidecar):
            with suppress(Exception):  # a target that is gone keeps nothing to delete
                target.delete(name)
        raise
    return copied


def _same_encryption(manifest: Manifest, encrypt_to: Sequence[str]) -> bool:
    """Whether the stored bytes can be copied as they are."""
    current = manifest.encryption.recipients if manifest.encryption else []
    return sorted(current) == sorted(value.strip() for value in encrypt_to)


def _copy(
    source: Storage, manifest: Manifest, stored: HashingWriter,
    recipients: list[Recipient] | None, identities: Sequence[Identity] | None, raw: bool,
) -> None:
    """Stream the artifact into ``stored``; raise BackupError if what was read is not what
    the manifest describes (the stored bytes, or the archive inside them)."""
    with source.open_read(manifest.artifact) as reader:
        if raw:
            read = HashingReader(reader)
            copy_stream(read, stored)
            expected = manifest.sha256
        else:
            with decrypted(reader, manifest, identities) as plain:
                read = HashingReader(plain)
                with (encrypting_writer(stored, recipients) if recipients
                      else nullcontext(stored)) as sink:
                    copy_stream(read, sink)
            expected = manifest.content_sha256 or manifest.sha256
    if read.hexdigest() != expected:
        raise BackupError(f"the source copy of {manifest.backup_id} is corrupted: its "
                          f"{'bytes' if raw else 'archive'} do not match the manifest's SHA-256")


def _copy_globals(
    source: Storage, target: Storage, manifest: Manifest, name: str,
    recipients: list[Recipient] | None, identities: Sequence[Identity] | None, raw: bool,
) -> GlobalsFile | None:
    """The saved roles and settings beside the artifact (a small file), if the backup has
    them: copied as they are, or read (checked, decrypted) and written again."""
    info = manifest.globals
    if info is None:
        return None
    if not raw:
        saved = read_globals(source, manifest, identities)
        return write_globals(target, name, saved.to_bytes(), manifest.compression == "zstd",
                             recipients)
    with source.open_read(info.file) as reader, target.atomic_writer(name) as out:
        read = HashingReader(reader)
        copy_stream(read, out)
        if read.hexdigest() != info.sha256:
            raise BackupError(f"the source copy of {manifest.backup_id} is corrupted: "
                              f"{info.file} does not match the manifest's SHA-256")
    return GlobalsFile(file=name, size=read.bytes_read, sha256=info.sha256)


def _manifest_for(source: Manifest, artifact: str, size: int, sha256: str,
                  recipients: list[Recipient] | None, saved: GlobalsFile | None) -> Manifest:
    """The source's manifest describing the target's files (as a dump writes it)."""
    encrypted = recipients is not None
    content_sha256 = source.content_sha256 or source.sha256
    return Manifest.model_validate({
        **source.model_dump(exclude={"signature"}), "artifact": artifact, "size": size,
        "sha256": sha256,
        "encryption": Encryption(recipients=[str(r) for r in recipients or []])
        if encrypted else None,
        "content_sha256": content_sha256 if encrypted else None, "globals": saved})
