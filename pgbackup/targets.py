"""Writing one backup to several targets at once: each target's artifact encrypted to its
own recipients and hashed as stored, its manifest after it; a target that fails alone
(optional) or fails the whole write (required); whatever a failed write left discarded.

Used by the full backup (pgbackup.dump: pg_dump's archive) and the incremental
(pgbackup.incremental: the script of captured changes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass

from pgbackup.encryption import Recipient, encrypting_writer, parse_recipients
from pgbackup.errors import BackupError
from pgbackup.fanout import Branch, FanOutError, fan_out
from pgbackup.globals import globals_name, write_globals
from pgbackup.ids import artifact_name, manifest_name
from pgbackup.manifest import BackupKind, Encryption, Manifest, write_manifest
from pgbackup.storage import Storage
from pgbackup.streams import DEFAULT_ZSTD, HashingWriter, Writable, Zstd, zstd_writer


@dataclass(frozen=True)
class Target:
    """One place a dump is written to, encrypted to its own recipients (if any). A
    ``required`` target that fails fails the backup; an optional one fails alone."""

    name: str
    storage: Storage
    encrypt_to: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class Copy:
    """What one target got: its manifest, or the error that stopped it."""

    target: Target
    manifest: Manifest | None
    error: str | None = None


@dataclass
class TargetWrite:
    """One target's part of a backup: its artifact's name, hashes and outcome."""

    target: Target
    backup_id: str
    artifact: str
    recipients: list[Recipient] | None
    stored: HashingWriter | None = None
    error: BaseException | None = None

    @classmethod
    def of(cls, target: Target, backup_id: str, compress: bool,
           kind: BackupKind = "full") -> TargetWrite:
        """The write to ``target``; an optional target that cannot be reached (or already
        holds the backup) is planned as failed, a required one raises BackupError."""
        recipients = parse_recipients(target.encrypt_to) if target.encrypt_to else None
        artifact = artifact_name(backup_id, compress, encrypted=recipients is not None,
                                 kind=kind)
        plan = cls(target, backup_id, artifact, recipients)
        try:
            for name in (artifact, manifest_name(backup_id)):
                if target.storage.exists(name):
                    raise BackupError(f"backup {backup_id} already exists in {target.name}")
        except BackupError as exc:
            if target.required:
                raise
            plan.error = exc
        except Exception as exc:
            if target.required:
                raise BackupError(f"writing to {target.name} failed: {sentence(exc)}") from exc
            plan.error = exc
        return plan

    @contextmanager
    def writer(self) -> Iterator[Writable]:
        """The sink for the archive's bytes: encrypted when asked, hashed as stored."""
        with self.target.storage.atomic_writer(self.artifact) as raw:
            self.stored = HashingWriter(raw)
            with (encrypting_writer(self.stored, self.recipients) if self.recipients
                  else nullcontext(self.stored)) as sink:
                yield sink

    def finish(self, base: dict[str, object], content_sha256: str,
               manifest_key: bytes | None = None, *, saved_globals: bytes | None) -> Copy:
        """Write the globals sidecar (when given) and the manifest of a stored artifact,
        or report why there is none."""
        if self.error is not None:
            return Copy(self.target, None, sentence(self.error))
        assert self.stored is not None
        sidecar = None
        try:
            if saved_globals is not None:
                sidecar = write_globals(self.target.storage, globals_name(self.artifact),
                                        saved_globals, base["compression"] == "zstd",
                                        self.recipients)
        except Exception as exc:
            return self._failed(exc)
        encrypted = self.recipients is not None
        manifest = Manifest.model_validate({
            **base, "artifact": self.artifact, "size": self.target.storage.size(self.artifact),
            "sha256": self.stored.hexdigest(),
            "encryption": Encryption(recipients=[str(r) for r in self.recipients or []])
            if encrypted else None,
            "content_sha256": content_sha256 if encrypted else None, "globals": sidecar})
        if manifest_key is not None:
            manifest = manifest.signed(manifest_key)
        try:
            write_manifest(self.target.storage, manifest)
        except Exception as exc:
            return self._failed(exc)
        return Copy(self.target, manifest)

    def _failed(self, exc: Exception) -> Copy:
        """A write after the artifact failed: nothing stays; a required target raises."""
        self.discard()
        if self.target.required:
            raise exc
        return Copy(self.target, None, sentence(exc))

    def discard(self) -> None:
        """Delete what this dump wrote here. Only a target whose writer was opened (so both
        names were free at the start) is touched: a target planned as failed may hold
        another run's files under these names, or be unreachable."""
        if self.stored is None:
            return
        sidecar = [globals_name(self.artifact)] if ".dump" in self.artifact else []
        for name in (manifest_name(self.backup_id), *sidecar, self.artifact):
            with suppress(Exception):  # a target that is gone keeps nothing to delete
                self.target.storage.delete(name)


def sentence(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def streaming_to(writes: list[TargetWrite], compress: bool,
                 zstd: Zstd = DEFAULT_ZSTD) -> Iterator[tuple[Writable, HashingWriter]]:
    """A sink for the backup's bytes, compressed once (``zstd``) and fanned out to every write
    still planned, and the hashing writer of the bytes after compression (the archive,
    before any encryption: its ``hexdigest`` is the content SHA-256). A required target's
    failure raises BackupError; an optional one's is kept on its write."""
    live = [write for write in writes if write.error is None]
    branches = [Branch(write.target.name, write.writer, write.target.required)
                for write in live]
    try:
        with fan_out(branches) as out:
            archive = HashingWriter(out)
            with zstd_writer(archive, zstd) if compress else nullcontext(archive) as sink:
                yield sink, archive
    except FanOutError as exc:
        raise BackupError(f"writing to {exc.branch.name} failed: "
                          f"{sentence(exc.branch.error or exc)}") from exc
    for write, branch in zip(live, branches, strict=True):
        write.error = branch.error
