"""Finding the backups a storage holds, from their manifests alone (a rescan).

Every ``<id>.manifest.json`` at the storage's root is read and judged: readable and intact
(its self-checksum), naming its own backup, authenticated with the caller's manifest key
(or, when the caller accepts them, unsigned or signed with another key), and describing an
artifact that is there with the recorded size and, unless ``quick``, SHA-256 of its stored
bytes. A backup that passes is ``found``; any other is skipped with the reason. Reading
every artifact whole is what makes a found backup trustworthy; ``quick`` skips that read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pgbackup.errors import ObjectStoreError
from pgbackup.ids import is_backup_id
from pgbackup.manifest import Authenticity, Manifest, ManifestError, authenticate, read_manifest
from pgbackup.storage import Storage
from pgbackup.streams import CHUNK_SIZE, HashingReader
from pgbackup.verify import mismatch

MANIFEST_SUFFIX = ".manifest.json"

# Why a manifest was skipped. "tampered" and "forged" are what an attacker (or a broken
# disk) leaves; the others are what another install, a half-deleted backup or an older
# version leaves.
Reason = Literal["tampered", "forged", "foreign", "unsigned", "unreadable", "mismatch",
                 "artifact-missing", "size-mismatch", "sha256-mismatch"]
ALARMING: tuple[Reason, ...] = ("tampered", "forged")


@dataclass(frozen=True)
class Scanned:
    """One manifest file: the backup it describes (``manifest``) when it is found, else
    why it was skipped (``reason`` and a sentence, ``detail``)."""

    name: str
    manifest: Manifest | None
    authenticity: Authenticity | None = None
    reason: Reason | None = None
    detail: str = ""

    @property
    def found(self) -> bool:
        return self.reason is None


def manifest_names(storage: Storage) -> list[str]:
    """The manifest files at the storage's root, oldest backup first."""
    return [name for name in storage.list_names() if name.endswith(MANIFEST_SUFFIX)]


def scan(storage: Storage, key: bytes | None, accept_foreign: bool = False,
         quick: bool = False) -> Iterator[Scanned]:
    """Judge every manifest of ``storage`` (see the module's docstring), one at a time."""
    for name in manifest_names(storage):
        yield judge(storage, name, key, accept_foreign, quick)


def judge(storage: Storage, name: str, key: bytes | None, accept_foreign: bool = False,
          quick: bool = False) -> Scanned:
    """The verdict on the manifest file ``name``; a storage error is ``unreadable``."""
    try:
        return _judge(storage, name, key, accept_foreign, quick)
    except (OSError, ObjectStoreError) as exc:
        return Scanned(name, None, reason="unreadable", detail=f"{name}: {exc}")


def _judge(storage: Storage, name: str, key: bytes | None, accept_foreign: bool,
           quick: bool) -> Scanned:
    backup_id = name.removesuffix(MANIFEST_SUFFIX)
    if not is_backup_id(backup_id):
        return Scanned(name, None, reason="unreadable",
                       detail=f"{name} is not named after a backup id")
    try:
        manifest = read_manifest(storage, backup_id)
    except FileNotFoundError:
        return Scanned(name, None, reason="unreadable", detail=f"{name} disappeared")
    except ManifestError as exc:
        tampered = "was modified" in str(exc)
        return Scanned(name, None, reason="tampered" if tampered else "unreadable",
                       detail=str(exc))
    if problem := mismatch(manifest, backup_id):
        return Scanned(name, None, reason="mismatch", detail=f"{name}: {problem}")
    authenticity = authenticate(manifest, key)
    if skipped := _unauthenticated(name, authenticity, accept_foreign):
        return skipped
    problem_reason, detail = _artifact_problem(storage, manifest, quick)
    if problem_reason is not None:
        return Scanned(name, None, authenticity, problem_reason, detail)
    return Scanned(name, manifest, authenticity)


def _unauthenticated(name: str, authenticity: Authenticity,
                     accept_foreign: bool) -> Scanned | None:
    if authenticity == "forged":
        return Scanned(name, None, authenticity, "forged",
                       f"{name}: its signature does not match its content (forged, or "
                       "changed after it was written)")
    if authenticity in ("foreign", "unsigned") and not accept_foreign:
        what = ("is signed with another key than this install's manifest key"
                if authenticity == "foreign" else "is not signed")
        return Scanned(name, None, authenticity, authenticity,
                       f"{name} {what}; import it with --accept-foreign if you trust it")
    return None


def _artifact_problem(storage: Storage, manifest: Manifest,
                      quick: bool) -> tuple[Reason | None, str]:
    artifact = manifest.artifact
    if not storage.exists(artifact):
        return "artifact-missing", f"its artifact {artifact} is missing"
    size = storage.size(artifact)
    if size != manifest.size:
        return "size-mismatch", (f"its artifact {artifact} is {size} bytes, the manifest "
                                 f"says {manifest.size}")
    if not quick:
        digest = stored_sha256(storage, artifact)
        if digest != manifest.sha256:
            return "sha256-mismatch", (f"its artifact {artifact} has SHA-256 {digest}, the "
                                       f"manifest says {manifest.sha256}")
    return None, ""


def stored_sha256(storage: Storage, name: str) -> str:
    """SHA-256 of ``name``'s stored bytes, streamed."""
    with storage.open_read(name) as handle:
        reader = HashingReader(handle)
        while reader.read(CHUNK_SIZE):
            pass
    return reader.hexdigest()
