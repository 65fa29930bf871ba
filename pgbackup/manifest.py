"""The manifest: a JSON description of one backup, written after its artifact.

A backup is complete only when both its artifact and its manifest exist. The manifest
holds no secrets and no connection details beyond the database name.

The file checks itself: ``manifest_sha256`` is the SHA-256 of the canonical serialization
of all the other fields, and the file must be exactly the canonical serialization of its
content, so any changed byte is detected when it is read.

Fields added later (``encryption``, ``content_sha256``, ``signature``, ``globals``,
``capture``, ``compression_level``, ``archive_size``, and a table's ``partition_of``) are
left out of the file
when unset, so manifests written before them keep their canonical form and self-checksum.

The self-checksum catches damage, not a forger (anyone can recompute it). ``signature``
authenticates: ``hmac-sha256:<key id>:<hex>``, an HMAC-SHA256 under a key the caller holds
(the app's manifest key) over the canonical serialization of every field but itself and the
self-checksum. :func:`authenticate` tells a manifest signed with the given key from one
signed with another key, an unsigned one and a forged one. The key is never in the file:
its id is a short HMAC of a fixed label, which names the key without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pgbackup.ids import is_backup_id, manifest_name
from pgbackup.storage import Storage, validate_name

BackupKind = Literal["full", "schema-only", "incremental"]
KINDS: tuple[BackupKind, ...] = ("full", "schema-only", "incremental")
SELF_CHECKSUM_FIELD = "manifest_sha256"
_OMITTED_WHEN_UNSET = ("encryption", "content_sha256", "signature", "globals", "capture",
                       "compression_level", "archive_size")
_SHA256_PATTERN = r"^[0-9a-f]{64}$"
SIGNATURE_FIELD = "signature"
_SIGNATURE_RE = re.compile(r"^hmac-sha256:(?P<key_id>[0-9a-f]{16}):(?P<mac>[0-9a-f]{64})$")
# What authenticate() says of a manifest: signed with the given key; not signed; signed
# with another key (another install, an earlier key); signed with the given key's id but
# not matching (forged, or changed after signing); not checked (no key given).
Authenticity = Literal["authenticated", "unsigned", "foreign", "forged", "unchecked"]


class ManifestError(ValueError):
    """A manifest file is unreadable, invalid, or was modified after it was written."""


@dataclass(frozen=True)
class TableInfo:
    """One dumped table, as seen in the dump's snapshot (see pgbackup.tablestats).

    ``rows`` is the exact count and ``checksum`` the content checksum; both are None for
    schema-only backups, and ``checksum`` is None when checksums were off. A checksum says
    how it was computed: ``copy-xxh3:<hex>`` from pg_dump's stream (pgbackup.copydigest),
    a plain decimal by the server (pgbackup.tablestats: older full backups, an
    incremental's changed tables). A partition
    names the partitioned table at the root of its tree in ``partition_of``
    (``schema.name``; the partitioned table itself holds no rows and is not listed); None
    for other tables, and in manifests written before partitions were told apart.
    """

    schema: str
    name: str
    rows: int | None
    checksum: str | None = None
    partition_of: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


class Encryption(BaseModel):
    """How the artifact is encrypted: the public keys only, never an identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["age"] = "age"
    recipients: list[str] = Field(min_length=1)

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: list[str]) -> list[str]:
        for position, recipient in enumerate(value, 1):
            if not re.fullmatch(r"age1[02-9ac-hj-np-z]+", recipient):
                raise ValueError(f"recipient {position} is not an age public key (age1...)")
        return value


class GlobalsFile(BaseModel):
    """The sidecar holding the roles and database settings (see pgbackup.globals): stored
    compressed and encrypted as the artifact is; ``size`` and ``sha256`` of the stored bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256_PATTERN)

    @field_validator("file")
    @classmethod
    def _check_file(cls, value: str) -> str:
        return validate_name(value)


class Capture(BaseModel):
    """Change capture (logical decoding) around a backup of a chain. A full backup starts a
    chain: its ``slot`` holds every change committed after its snapshot, from ``start_lsn``
    (= ``end_lsn``). An incremental holds the changes from ``start_lsn`` (its parent's
    ``end_lsn``) up to ``end_lsn``, where the next backup's start; ``slot`` then holds the
    chain's later changes. The slot at ``end_lsn`` was created between ``covers_until``
    (read just before: the server waits for the transactions then committing, so all of
    them are held) and ``consistent_at`` (read just after: nothing held committed later).
    A chain reaches from its full's ``consistent_at`` to its last incremental's
    ``covers_until`` (pgbackup.chains). ``schema_fingerprint``
    (pgbackup.schema_fingerprint) must be the same along a chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slot: str = Field(pattern=r"^[a-z0-9_]{1,63}$")
    start_lsn: str = Field(pattern=r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
    end_lsn: str = Field(pattern=r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
    covers_until: datetime  # every commit up to then is in this backup or an earlier one
    consistent_at: datetime  # no commit after then is in this backup or an earlier one
    schema_fingerprint: str = Field(pattern=_SHA256_PATTERN)
    first_commit: datetime | None = None  # of the changes held (incremental only)
    last_commit: datetime | None = None
    transactions: int = Field(default=0, ge=0)
    changes: int = Field(default=0, ge=0)
    table_changes: dict[str, int] = Field(default_factory=dict)  # "schema.table" -> count
    tables_copied: list[str] = Field(default_factory=list)  # copied whole (no usable key)

    @model_validator(mode="after")
    def _check_times(self) -> Capture:
        if self.covers_until > self.consistent_at:
            raise ValueError("covers_until is later than consistent_at")
        return self


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = 1
    backup_id: str
    type: BackupKind
    created: datetime
    database: str
    server_version: str
    pg_dump_version: str
    tool: str
    artifact: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_SHA256_PATTERN)  # of the stored bytes
    compression: Literal["zstd", "none"]
    compression_level: int | None = Field(default=None, ge=1, le=22)  # zstd's, when known
    dump_format: Literal["custom", "sql"] = "custom"  # sql: an incremental's psql script
    # pg_dump's archive as it wrote it (before compression): a parallel restore's
    # temporary file; unset for incrementals and for backups taken before it was recorded
    archive_size: int | None = Field(default=None, ge=0)
    tables: list[TableInfo]
    snapshot: str
    duration_ms: int = Field(ge=0)
    parent_id: str | None = None
    encryption: Encryption | None = None
    # the archive bytes before encryption (after compression); set when encrypted only
    content_sha256: str | None = Field(default=None, pattern=_SHA256_PATTERN)
    signature: str | None = Field(default=None, pattern=_SIGNATURE_RE.pattern)
    globals: GlobalsFile | None = None  # the saved roles and database settings
    capture: Capture | None = None  # the chain of captured changes it starts or continues

    @field_validator("backup_id", "parent_id")
    @classmethod
    def _check_backup_id(cls, value: str | None) -> str | None:
        if value is not None and not is_backup_id(value):
            raise ValueError(f"not a backup id: {value!r}")
        return value

    @field_validator("artifact")
    @classmethod
    def _check_artifact(cls, value: str) -> str:
        return validate_name(value)

    @field_validator("created")
    @classmethod
    def _check_created(cls, value: datetime) -> datetime:
        offset = value.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValueError("created must be a UTC timestamp")
        return value

    @model_validator(mode="after")
    def _check_incremental(self) -> Manifest:
        """An incremental is a psql script of the changes after its parent; the others are
        pg_dump archives."""
        if self.type == "incremental" and (self.parent_id is None or self.capture is None
                                           or self.dump_format != "sql"):
            raise ValueError("an incremental has a parent_id, a capture and dump_format sql")
        if self.type != "incremental" and self.dump_format != "custom":
            raise ValueError(f"a {self.type} backup is a pg_dump archive (dump_format custom)")
        return self

    @model_validator(mode="after")
    def _check_content_sha256(self) -> Manifest:
        if (self.encryption is None) != (self.content_sha256 is None):
            raise ValueError("content_sha256 is recorded for encrypted artifacts, and only then")
        return self

    @property
    def manifest_sha256(self) -> str:
        """SHA-256 of the canonical serialization of the fields (the self-checksum)."""
        return hashlib.sha256(_canonical(self._fields())).hexdigest()

    def to_json(self) -> str:
        """The file's content: the fields plus the self-checksum, in canonical form."""
        data = self._fields() | {SELF_CHECKSUM_FIELD: self.manifest_sha256}
        return _canonical(data).decode("ascii")

    def _fields(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for table in data["tables"]:
            if table["partition_of"] is None:
                del table["partition_of"]
        return {k: v for k, v in data.items() if v is not None or k not in _OMITTED_WHEN_UNSET}

    def signed(self, key: bytes) -> Manifest:
        """This manifest with its signature under ``key``."""
        return self.model_copy(update={SIGNATURE_FIELD: _signature(self, key)})


def key_id(key: bytes) -> str:
    """A short name for ``key`` (16 hex digits) that does not reveal it."""
    if not key:
        raise ValueError("the manifest key is empty")
    return hmac.new(key, b"pgbackup manifest key id", hashlib.sha256).hexdigest()[:16]


def _signature(manifest: Manifest, key: bytes) -> str:
    fields = {k: v for k, v in manifest._fields().items() if k != SIGNATURE_FIELD}
    mac = hmac.new(key, _canonical(fields), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{key_id(key)}:{mac}"


def authenticate(manifest: Manifest, key: bytes | None) -> Authenticity:
    """Whether ``manifest`` was signed with ``key`` (see :data:`Authenticity`)."""
    if manifest.signature is None:
        return "unsigned"
    if key is None:
        return "unchecked"
    match = _SIGNATURE_RE.fullmatch(manifest.signature)
    assert match is not None  # the field is validated against the pattern
    if match["key_id"] != key_id(key):
        return "foreign"
    return ("authenticated" if hmac.compare_digest(manifest.signature, _signature(manifest, key))
            else "forged")


def signature_key_id(manifest: Manifest) -> str | None:
    """The id of the key ``manifest`` says it was signed with."""
    match = _SIGNATURE_RE.fullmatch(manifest.signature or "")
    return match["key_id"] if match else None


def _canonical(data: dict[str, Any]) -> bytes:
    """Stable JSON: sorted keys, two-space indent, ASCII only, trailing newline."""
    return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode("ascii")


def write_manifest(storage: Storage, manifest: Manifest, key: bytes | None = None) -> None:
    """Write ``manifest`` beside its artifact, signed with ``key`` when one is given."""
    if key is not None:
        manifest = manifest.signed(key)
    with storage.atomic_writer(manifest_name(manifest.backup_id)) as handle:
        handle.write(manifest.to_json().encode("ascii"))


def read_manifest(storage: Storage, backup_id: str) -> Manifest:
    """Load and check a manifest: FileNotFoundError if absent, else ManifestError unless it
    is valid and byte for byte what write_manifest wrote."""
    name = manifest_name(backup_id)
    with storage.open_read(name) as handle:
        raw = handle.read()
    try:
        return _parse(raw)
    except ManifestError as exc:
        raise ManifestError(f"manifest {name} {exc}") from exc


def _parse(raw: bytes) -> Manifest:
    try:
        data = json.loads(raw)
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise ManifestError(f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ManifestError("is not a JSON object")
    claimed = data.pop(SELF_CHECKSUM_FIELD, None)
    if claimed is None:
        raise ManifestError(f"has no self-checksum ({SELF_CHECKSUM_FIELD})")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"is invalid: {_first_error(exc)}") from exc
    if claimed != manifest.manifest_sha256:
        raise ManifestError("was modified: its self-checksum does not match its content")
    if raw != manifest.to_json().encode("ascii"):
        raise ManifestError("was modified: it is not in canonical form")
    return manifest


def _first_error(exc: ValidationError) -> str:
    """One line naming the failing field, e.g. ``size: Input should be ... (and 1 more)``."""
    errors = exc.errors()
    where = ".".join(str(part) for part in errors[0]["loc"]) or "manifest"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {errors[0]['msg']}{more}"
