"""S3-compatible object storage for backup artifacts: the Storage protocol over boto3.

Objects live under ``s3://<bucket>/<prefix>/<name>``. Writes are streamed as multipart
uploads: each part is buffered in a bounded spool (memory up to SPOOL_MEMORY, then a
temporary file) and uploaded as soon as it is full, so a dump of any size never sits whole in
memory or on local disk. An object becomes visible only when the upload is completed; on any
failure the upload is aborted so no invisible (but billed) parts are left behind. A process
killed outright cannot abort: ``abandoned_uploads`` / ``abort_abandoned_uploads`` clean up
after it (as does a bucket lifecycle rule, which is recommended).

Every upload carries a SHA-256 checksum, which S3 verifies (and requires for object-lock
uploads). Errors surface as ObjectStoreError with one readable sentence; the secret access
key is never logged, shown in repr() or put in a message.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from pgbackup.errors import ConfigError, ObjectStoreError
from pgbackup.storage import is_valid_name, validate_name

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
DEFAULT_PART_SIZE = 8 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's maximum part size
TARGET_PARTS = 1_000  # some S3-compatible services allow no more than this
S3_MAX_PARTS = 10_000  # AWS's limit
SPOOL_MEMORY = 8 * MiB  # a part's buffer beyond this spills to a temporary file
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
CHECKSUM_ALGORITHM = "SHA256"

log = logging.getLogger(__name__)


def part_size_for(
    expected_bytes: int | None, minimum: int = DEFAULT_PART_SIZE, max_parts: int = TARGET_PARTS
) -> int:
    """The multipart part size for an object of about ``expected_bytes`` (None: unknown).

    At least ``minimum`` (8 MiB by default; never below S3's 5 MiB), large enough for the
    object to fit in ``max_parts`` parts (1 TB -> 954 MiB parts), rounded up to a whole MiB and
    capped at S3's 5 GiB maximum part size.
    """
    if minimum < MIN_PART_SIZE:
        raise ValueError(f"part size minimum {minimum} is below S3's minimum of 5 MiB")
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    size = minimum
    if expected_bytes is not None and expected_bytes > 0:
        size = max(size, -(-expected_bytes // max_parts))
    size = -(-size // MiB) * MiB
    return min(size, MAX_PART_SIZE)


@dataclass(frozen=True)
class ObjectLock:
    """S3 Object Lock retention given to every object written (the bucket must have Object
    Lock enabled): ``mode`` GOVERNANCE or COMPLIANCE, kept for ``days`` days."""

    mode: str
    days: int

    def __post_init__(self) -> None:
        if self.mode not in LOCK_MODES:
            raise ConfigError(
                f"object lock mode must be GOVERNANCE or COMPLIANCE, not {self.mode!r}"
            )
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 1:
            raise ConfigError(f"object lock days must be a whole number >= 1, not {self.days!r}")

    @classmethod
    def of(cls, value: ObjectLockSetting) -> ObjectLock | None:
        """An ObjectLock from an ObjectLock, a ``(mode, days)`` or ``(mode, timedelta)`` pair
        (whole days), or None."""
        if value is None or isinstance(value, ObjectLock):
            return value
        mode, period = value
        if isinstance(period, timedelta):
            if period % timedelta(days=1):
                raise ConfigError(f"object lock period must be whole days, not {period}")
            period = period.days
        return cls(mode, period)

    def retain_until(self, now: datetime | None = None) -> datetime:
        start = (now or datetime.now(UTC)).replace(microsecond=0)
        return start + timedelta(days=self.days)


ObjectLockSetting = ObjectLock | tuple[str, int] | tuple[str, timedelta] | None


def normalize_prefix(prefix: str) -> str:
    """``prefix`` without leading, trailing or doubled slashes ("" allowed)."""
    parts = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ConfigError(f"S3 prefix {prefix!r} may not contain '.' or '..' segments")
    return "/".join(parts)


def _sha256_b64(digest: Any) -> str:
    return base64.b64encode(digest.digest()).decode("ascii")


def _root_cause(exc: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


class S3Storage:
    """Backup objects under a prefix of an S3 (or S3-compatible) bucket.

    Credentials: ``access_key_id`` and ``secret_access_key`` together, or neither (boto3's
    standard chain then applies: environment, shared config files, instance/task roles).
    ``region`` may be left None for AWS; S3-compatible services usually want "us-east-1".
    ``object_lock``: an ObjectLock, or a ``(mode, days)`` / ``(mode, timedelta)`` pair.
    ``force_path_style`` addresses ``endpoint/bucket/key`` instead of ``bucket.endpoint/key``
    (MinIO, Ceph and most self-hosted services need it).

    Part size: ``part_size`` if given, else ``part_size_for(expected_size)``; an individual
    write may pass its own ``expected_size`` to ``atomic_writer``.

    Requests, including every uploaded part, are retried by botocore's standard retry handler
    (``max_attempts`` attempts in all, with exponential backoff, on throttling, 5xx responses
    and connection errors); a part's body is a seekable spool, so a retry resends it whole.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        force_path_style: bool = False,
        part_size: int | None = None,
        expected_size: int | None = None,
        object_lock: ObjectLockSetting = None,
        max_attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        spool_dir: Path | str | None = None,
        max_parts: int = S3_MAX_PARTS,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}")
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigError(
                "S3 access key ID and secret access key must be given together (or neither, "
                "to use the environment's credentials)"
            )
        if part_size is not None and not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigError(f"S3 part size must be between 5 MiB and 5 GiB, not {part_size}")
        if not 1 <= max_parts <= S3_MAX_PARTS:
            raise ConfigError(f"max_parts must be between 1 and {S3_MAX_PARTS}")
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.endpoint_url = endpoint_url
        self.region = region
        self.access_key_id = access_key_id
        self._secret = secret_access_key  # only to redact it from messages; never shown
        self.force_path_style = force_path_style
        self.part_size = part_size or part_size_for(expected_size)
        self.object_lock = ObjectLock.of(object_lock)
        self.max_parts = max_parts
        self.spool_dir = None if spool_dir is None else str(spool_dir)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # imported here, not at the top: a quarter second that only S3 users pay
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path" if force_path_style else "auto"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)

    def __repr__(self) -> str:
        secret = None if self._secret is None else "***"
        return (
            f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, "
            f"endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"access_key_id={self.access_key_id!r}, secret_access_key={secret!r})"
        )

    # -- names ----------------------------------------------------------------------------

    @property
    def _key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def key(self, name: str) -> str:
        """The object key of ``name`` (validated)."""
        return self._key_prefix + validate_name(name)

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    @property
    def _endpoint(self) -> str:
        return str(self.endpoint_url or self.client.meta.endpoint_url)

    def describe(self) -> str:
        """One line for the operator: where the objects go (no credentials)."""
        where = f"s3://{self.bucket}/{self._key_prefix}"
        text = f"S3 bucket {where} at {self._endpoint}"
        if self.force_path_style:
            text += " (path-style)"
        if self.object_lock:
            days = self.object_lock.days
            text += (f", objects locked ({self.object_lock.mode}) for {days} "
                     f"day{'' if days == 1 else 's'}")
        return text

    # -- errors ---------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return text

    def _error(self, exc: Exception, doing: str) -> ObjectStoreError:
        """One readable sentence for a failed request (never with the secret in it)."""
        endpoint = self._endpoint
        if isinstance(exc, ConnectTimeoutError):
            message = (f"cannot reach S3 endpoint {endpoint} "
                       f"(no answer within {self.connect_timeout:g} s)")
        elif isinstance(exc, EndpointConnectionError):
            message = f"cannot reach S3 endpoint {endpoint} ({_connection_reason(exc)})"
        elif isinstance(exc, ReadTimeoutError):
            message = (f"S3 endpoint {endpoint} did not answer within {self.read_timeout:g} s "
                       f"while {doing}")
        elif isinstance(exc, ConnectionClosedError):
            message = f"S3 endpoint {endpoint} closed the connection while {doing}"
        elif isinstance(exc, ResponseStreamingError | IncompleteReadError):
            message = f"the connection to S3 endpoint {endpoint} broke while {doing}"
        elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
            message = ("no S3 credentials found: set the access key ID and secret access key, "
                       "or provide them through the AWS environment")
        elif isinstance(exc, ClientError):
            message = self._client_error_message(exc, doing)
        else:
            message = f"S3 request failed while {doing}: {exc}"
        return ObjectStoreError(self._redact(message))

    def _client_error_message(self, exc: ClientError, doing: str) -> str:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        bucket = self.bucket
        if code == "NoSuchBucket":
            return f"bucket {bucket} does not exist at S3 endpoint {self._endpoint}"
        if code == "InvalidAccessKeyId":
            return (f"S3 endpoint {self._endpoint} does not know the access key ID "
                    f"{self.access_key_id or '(from the environment)'}: check the credentials")
        if code == "SignatureDoesNotMatch":
            return (f"S3 endpoint {self._endpoint} rejected the request signature: "
                    "check the secret access key")
        if code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
            return f"the S3 session token was rejected ({code}): renew the credentials"
        if code in ("AccessDenied", "AllAccessDisabled"):
            return f"access denied to bucket {bucket} while {doing}: check the key's permissions"
        if code == "403" or status == 403:
            # HEAD responses have no body: a bad key, a bad secret or a missing permission
            return (f"access denied to bucket {bucket} while {doing}: check the credentials "
                    "and the key's permissions")
        if code == "NoSuchUpload":
            return f"the multipart upload was aborted or expired while {doing}"
        detail = str(error.get("Message") or "").rstrip(".")
        detail = f"{code}: {detail}" if detail else code or f"HTTP {status}"
        return f"S3 refused a request while {doing} ({detail})"

    @contextmanager
    def _translated(self, doing: str, missing: str | None = None) -> Iterator[None]:
        """Turn botocore errors into ObjectStoreError; a missing ``missing`` object into
        FileNotFoundError."""
        try:
            yield
        except ClientError as exc:
            if missing is not None and _is_missing_key(exc):
                raise FileNotFoundError(
                    errno.ENOENT, "no such object", self.location(missing)
                ) from None
            raise self._error(exc, doing) from exc
        except BotoCoreError as exc:
            raise self._error(exc, doing) from exc

    # -- the Storage protocol -------------------------------------------------------------

    @contextmanager
    def atomic_writer(self, name: str, expected_size: int | None = None) -> Iterator[S3Writer]:
        """Yield a writer whose bytes appear as ``name`` only if the block succeeds.

        A multipart upload is started once the first part is full (a smaller object is sent
        with one PutObject on exit). On normal exit the upload is completed; on any exception,
        KeyboardInterrupt included, it is aborted (so no invisible parts remain billed) and
        the exception propagates.
        """
        part_size = self.part_size
        if expected_size is not None:
            part_size = max(part_size, part_size_for(expected_size))
        writer = S3Writer(self, self.key(name), part_size)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise

    @contextmanager
    def open_read(self, name: str) -> Iterator[S3Reader]:
        """Stream ``name``'s bytes; a missing object raises FileNotFoundError."""
        key = self.key(name)
        with self._translated(f"opening {self.location(name)}", missing=name):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield S3Reader(self, body, f"reading {self.location(name)}")
        finally:
            body.close()

    def _head(self, name: str) -> dict[str, Any]:
        key = self.key(name)
        with self._translated(f"looking up {self.location(name)}", missing=name):
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key))

    def exists(self, name: str) -> bool:
        try:
            self._head(name)
        except FileNotFoundError:
            return False
        return True

    def size(self, name: str) -> int:
        return int(self._head(name)["ContentLength"])

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing object is not an error.

        An object under Object Lock retention (or a legal hold) is refused with an
        ObjectStoreError naming the date. In a versioned bucket this is a plain delete: it
        hides the object behind a delete marker and older versions stay (for lifecycle rules to
        expire) — S3 itself would accept that even for a locked object, hence the check here.
        """
        try:
            head = self._head(name)
        except FileNotFoundError:
            return
        location = self.location(name)
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            raise ObjectStoreError(f"{location} is under a legal hold and cannot be deleted")
        until = _lock_until(head)
        if until is not None:
            raise ObjectStoreError(
                f"{location} is locked ({head.get('ObjectLockMode')} mode) until "
                f"{until:%Y-%m-%d %H:%M:%S} UTC and cannot be deleted before then"
            )
        with self._translated(f"deleting {location}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    # -- listing, locks, cleanup ----------------------------------------------------------

    def list_names(self) -> list[str]:
        """Sorted names of the objects directly under the prefix (valid names only)."""
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with self._translated(f"listing s3://{self.bucket}/{self._key_prefix}"):
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=self._key_prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(self._key_prefix):]
                    if is_valid_name(name):
                        names.append(name)
        return sorted(names)

    def locked_until(self, name: str) -> datetime | None:
        """When ``name``'s Object Lock retention ends (UTC), or None if it is not retained."""
        return _lock_until(self._head(name))

    def _uploads(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        with self._translated(f"listing the unfinished uploads in s3://{self.bucket}"):
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=self._key_prefix, Delimiter="/"
            )
            for page in pages:
                yield from page.get("Uploads", [])

    def abandoned_uploads(self) -> list[str]:
        """Names with an unfinished multipart upload (a running write, or a killed one)."""
        names = {str(upload["Key"])[len(self._key_prefix):] for upload in self._uploads()}
        return sorted(name for name in names if is_valid_name(name))

    def remove_partial_for(self, name: str) -> bool:
        """Abort the unfinished uploads of ``name``: a writer killed mid-upload leaves its
        parts, invisible and billed. True if there was one."""
        return self._abort([upload for upload in self._uploads()
                            if upload["Key"] == self.key(name)]) > 0

    def abort_abandoned_uploads(self, older_than: timedelta) -> int:
        """Abort the unfinished uploads under the prefix started more than ``older_than``
        ago (pick it longer than any write takes: a running write would fail); the count."""
        cutoff = datetime.now(UTC) - older_than
        return self._abort([upload for upload in self._uploads()
                            if upload["Initiated"] <= cutoff])

    def _abort(self, uploads: list[dict[str, Any]]) -> int:
        for upload in uploads:
            key = str(upload["Key"])
            with self._translated(f"aborting the unfinished upload of s3://{self.bucket}/{key}"):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                )
        return len(uploads)

    def check(self) -> None:
        """Raise ObjectStoreError if the bucket cannot be reached with these settings."""
        with self._translated(f"checking bucket {self.bucket}"):
            self.client.head_bucket(Bucket=self.bucket)

    def _lock_params(self) -> dict[str, Any]:
        if self.object_lock is None:
            return {}
        return {
            "ObjectLockMode": self.object_lock.mode,
            "ObjectLockRetainUntilDate": self.object_lock.retain_until(),
        }


def _is_missing_key(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def _lock_until(head: dict[str, Any]) -> datetime | None:
    until = head.get("ObjectLockRetainUntilDate")
    if not isinstance(until, datetime) or not head.get("ObjectLockMode"):
        return None
    until = until.astimezone(UTC)
    return until if until > datetime.now(UTC) else None


def _connection_reason(exc: EndpointConnectionError) -> str:
    for cause in _root_cause(exc.kwargs.get("error")):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if type(cause).__name__ == "NameResolutionError" or "Name or service" in str(cause):
            return "unknown host"
        if isinstance(cause, TimeoutError):
            return "connection timed out"
    return "connection failed"


class S3Writer:
    """The writer ``S3Storage.atomic_writer`` yields: buffers one part at a time in a bounded
    spool and uploads each part as soon as the next byte needs its room."""

    def __init__(self, storage: S3Storage, key: str, part_size: int) -> None:
        self._storage = storage
        self._client = storage.client
        self.key = key
        self.part_size = part_size
        self.bytes_written = 0
        self.upload_id: str | None = None
        self._lock = storage._lock_params()
        self._parts: list[dict[str, Any]] = []
        self._spool = self._new_spool()
        self._filled = 0
        self._sha256 = hashlib.sha256()
        self._done = False

    def _new_spool(self) -> tempfile.SpooledTemporaryFile[bytes]:
        return tempfile.SpooledTemporaryFile(
            max_size=SPOOL_MEMORY, dir=self._storage.spool_dir, prefix="pgbackup-s3-part-"
        )

    @property
    def _location(self) -> str:
        return f"s3://{self._storage.bucket}/{self.key}"

    @property
    def parts_uploaded(self) -> int:
        return len(self._parts)

    def write(self, data: bytes) -> int:
        if self._done:
            raise ValueError("write to a finished S3 upload")
        view = memoryview(data).cast("B")
        count = view.nbytes
        while view:
            if self._filled == self.part_size:
                self._upload_part()
            piece = view[: self.part_size - self._filled]
            self._spool.write(piece)
            self._sha256.update(piece)
            self._filled += len(piece)
            view = view[len(piece):]
        self.bytes_written += count
        return count

    def _body(self) -> dict[str, Any]:
        """The spooled bytes as request parameters, rewound, with their SHA-256."""
        self._spool.seek(0)
        return {
            "Body": self._spool,
            "ContentLength": self._filled,
            "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
            "ChecksumSHA256": _sha256_b64(self._sha256),
        }

    def _upload_part(self) -> None:
        storage = self._storage
        number = len(self._parts) + 1
        if number > storage.max_parts:
            raise ObjectStoreError(
                f"{self._location} needs more than {storage.max_parts} parts of "
                f"{self.part_size // MiB} MiB: give a larger expected size or part size"
            )
        if self.upload_id is None:
            with storage._translated(f"starting the upload of {self._location}"):
                response = self._client.create_multipart_upload(
                    Bucket=storage.bucket, Key=self.key,
                    ChecksumAlgorithm=CHECKSUM_ALGORITHM, **self._lock,
                )
            self.upload_id = str(response["UploadId"])
        body = self._body()
        with storage._translated(f"uploading part {number} of {self._location}"):
            response = self._client.upload_part(
                Bucket=storage.bucket, Key=self.key, UploadId=self.upload_id,
                PartNumber=number, **body,
            )
        self._parts.append({
            "PartNumber": number, "ETag": response["ETag"],
            "ChecksumSHA256": body["ChecksumSHA256"],
        })
        self._spool.close()
        self._spool = self._new_spool()
        self._filled = 0
        self._sha256 = hashlib.sha256()

    def finish(self) -> None:
        """Publish the object: one PutObject if no part was sent, else the last part and
        CompleteMultipartUpload; then make sure a configured Object Lock took effect."""
        storage = self._storage
        if self.upload_id is None:
            with storage._translated(f"uploading {self._location}"):
                response = self._client.put_object(
                    Bucket=storage.bucket, Key=self.key, **self._body(), **self._lock
                )
        else:
            if self._filled:
                self._upload_part()
            with storage._translated(f"completing the upload of {self._location}"):
                response = self._client.complete_multipart_upload(
                    Bucket=storage.bucket, Key=self.key, UploadId=self.upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self.upload_id = None
        self._done = True
        self._spool.close()
        if self._lock:
            self._ensure_locked(response.get("VersionId"))

    def _ensure_locked(self, version_id: str | None) -> None:
        """Some S3-compatible services ignore the retention given when a multipart upload is
        created: check it on the object and set it if missing."""
        storage = self._storage
        wanted = self._lock["ObjectLockRetainUntilDate"]
        version = {"VersionId": version_id} if version_id else {}
        with storage._translated(f"checking the object lock of {self._location}"):
            head = self._client.head_object(Bucket=storage.bucket, Key=self.key, **version)
        until = _lock_until(head)
        if until is not None and until >= wanted:
            return
        with storage._translated(f"locking {self._location}"):
            self._client.put_object_retention(
                Bucket=storage.bucket, Key=self.key, **version,
                Retention={"Mode": self._lock["ObjectLockMode"], "RetainUntilDate": wanted},
            )

    def abort(self) -> None:
        """Drop the spool and abort the multipart upload, if one was started. A failed abort
        is logged (the parts then wait for abort_abandoned_uploads or a lifecycle rule)."""
        self._done = True
        self._spool.close()
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        storage = self._storage
        try:
            with storage._translated(f"aborting the upload of {self._location}"):
                self._client.abort_multipart_upload(
                    Bucket=storage.bucket, Key=self.key, UploadId=upload_id
                )
        except Exception as exc:
            log.warning(
                "could not abort the unfinished upload %s of %s (%s); its parts stay stored "
                "until abort_abandoned_uploads() or a bucket lifecycle rule removes them",
                upload_id, self._location, exc,
            )


class S3Reader:
    """A streamed object body: ``read(n)``, with botocore's errors made readable."""

    def __init__(self, storage: S3Storage, body: Any, doing: str) -> None:
        self._storage = storage
        self._body = body
        self._doing = doing

    def read(self, size: int = -1, /) -> bytes:
        with self._storage._translated(self._doing):
            return bytes(self._body.read(size if size >= 0 else None))
