"""Opening a backup's archive: its artifact decrypted (age) and decompressed (zstd) on the
fly, as its manifest says, for restores, TOC listings and verification alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import zstandard

from pgbackup.encryption import IDENTITIES_SETTING, Identity, decrypting_reader
from pgbackup.errors import DecryptionError
from pgbackup.manifest import Manifest
from pgbackup.storage import Storage
from pgbackup.streams import Readable, archive_reader


def missing_identities(manifest: Manifest, identities: Sequence[Identity] | None) -> str | None:
    """Why the archive cannot be opened: the backup is encrypted and no identity is given."""
    if manifest.encryption is None or identities:
        return None
    return (f"backup {manifest.backup_id} is encrypted with age: set {IDENTITIES_SETTING} to "
            "an identity file holding one of its keys")


@contextmanager
def decrypted(
    raw: Readable, manifest: Manifest, identities: Sequence[Identity] | None
) -> Iterator[Readable]:
    """The artifact's bytes ``raw`` yields, decrypted when the manifest says they are
    encrypted: see :func:`pgbackup.encryption.decrypting_reader` for the errors."""
    if manifest.encryption is None:
        yield raw
        return
    if problem := missing_identities(manifest, identities):
        raise DecryptionError(problem)
    assert identities is not None  # checked just above
    recipients = manifest.encryption.recipients
    with decrypting_reader(raw, identities, manifest.artifact, recipients) as plain:
        yield plain


@contextmanager
def open_archive(
    storage: Storage, manifest: Manifest, identities: Sequence[Identity] | None = None
) -> Iterator[Readable]:
    """The custom-format archive inside ``manifest``'s artifact, streamed from storage.

    Raises DecryptionError for an encrypted backup without ``identities`` (before reading
    anything) or one age cannot decrypt with them, zstandard.ZstdError for a broken zstd
    stream, and FileNotFoundError for a missing artifact.
    """
    with (
        storage.open_read(manifest.artifact) as raw,
        decrypted(raw, manifest, identities) as plain,
        archive_reader(plain, manifest.compression) as reader,
    ):
        yield reader


@dataclass(frozen=True)
class ArchiveSource:
    """A backup's archive, opened anew for each pass (pg_restore reads it more than once);
    what goes wrong is raised as ``error`` (RestoreError, TocError) with its sentence."""

    storage: Storage
    manifest: Manifest
    identities: Sequence[Identity] | None
    error: type[Exception]

    @contextmanager
    def open(self) -> Iterator[Readable]:
        artifact = self.manifest.artifact
        if not self.storage.exists(artifact):
            raise self.error(f"artifact {artifact} is missing from storage")
        try:
            with open_archive(self.storage, self.manifest, self.identities) as reader:
                yield reader
        except zstandard.ZstdError as exc:
            raise self.error(f"cannot decompress {artifact}: {exc}") from None
        except DecryptionError as exc:  # raised on exit even if a reader thread caught it
            raise self.error(str(exc)) from None
