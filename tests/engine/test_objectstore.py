"""S3Storage against a real S3 endpoint (moto in server mode, a subprocess), and the
LocalStorage methods added for symmetry with it."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pgbackup import (
    CHUNK_SIZE,
    ConfigError,
    LocalStorage,
    ObjectLock,
    ObjectStoreError,
    S3Storage,
    Storage,
    part_size_for,
)
from tools.localservices import S3Server, free_port

MiB = 1024 * 1024
PART = 5 * MiB  # S3's (and moto's) smallest part: keeps multipart tests small
SECRET = f"SECRET-{secrets.token_hex(12)}"


def s3(server: S3Server, bucket: str, **overrides: Any) -> S3Storage:
    settings: dict[str, Any] = {"prefix": "backups", "part_size": PART,
                                **server.storage_settings(), **overrides}
    return S3Storage(bucket, **settings)


def record_calls(storage: S3Storage, *operations: str) -> list[tuple[str, dict[str, Any]]]:
    """(operation, parameters) of every call of ``operations`` the storage's client makes."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def on_call(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, params))

    for operation in operations:
        storage.client.meta.events.register(f"provide-client-params.s3.{operation}", on_call)
    return calls


def record_headers(storage: S3Storage, *operations: str) -> list[tuple[str, set[str]]]:
    """(operation, lower-cased header names) of every request of ``operations`` sent."""
    sent: list[tuple[str, set[str]]] = []

    def on_send(request: Any, event_name: str, **_: Any) -> None:
        sent.append((event_name.rsplit(".", 1)[1], {key.lower() for key in request.headers}))

    for operation in operations:
        storage.client.meta.events.register(f"before-send.s3.{operation}", on_send)
    return sent


def uploads_in(server: S3Server, bucket: str) -> list[dict[str, Any]]:
    return list(server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def read_all(storage: Storage, name: str) -> bytes:
    with storage.open_read(name) as reader:
        return b"".join(iter(lambda: reader.read(CHUNK_SIZE), b""))


def assert_no_secret(exc: BaseException) -> None:
    """Neither the error nor anything chained to it shows the secret."""
    seen: BaseException | None = exc
    while seen is not None:
        assert SECRET not in str(seen)
        assert SECRET not in repr(seen)
        seen = seen.__cause__ or seen.__context__


# -- part sizes ------------------------------------------------------------------------------


def test_part_size_for() -> None:
    assert part_size_for(None) == 8 * MiB
    assert part_size_for(0) == 8 * MiB
    assert part_size_for(100 * MiB) == 8 * MiB
    terabyte = 10**12
    size = part_size_for(terabyte)
    assert size % MiB == 0
    assert -(-terabyte // size) <= 1_000
    assert size == 954 * MiB
    assert -(-(2**40) // part_size_for(2**40)) <= 1_000
    assert part_size_for(10**16) == 5 * 1024 * MiB  # capped at S3's largest part
    assert part_size_for(12 * MiB, minimum=PART) == PART
    with pytest.raises(ValueError, match="5 MiB"):
        part_size_for(None, minimum=MiB)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="together"):
        S3Storage("bucket", access_key_id="AKIAEXAMPLE")
    with pytest.raises(ConfigError, match="part size"):
        S3Storage("bucket", part_size=MiB)
    with pytest.raises(ConfigError, match=r"'\.\.'"):
        S3Storage("bucket", prefix="a/../b")
    with pytest.raises(ConfigError, match="GOVERNANCE or COMPLIANCE"):
        ObjectLock("FOREVER", 1)
    with pytest.raises(ConfigError, match="whole days"):
        S3Storage("bucket", object_lock=("GOVERNANCE", timedelta(hours=5)))
    lock = S3Storage("bucket", object_lock=("COMPLIANCE", timedelta(days=30))).object_lock
    assert lock == ObjectLock("COMPLIANCE", 30)


def test_secret_is_never_shown() -> None:
    storage = S3Storage("bucket", prefix="/a//b/", endpoint_url="http://127.0.0.1:9000",
                        access_key_id="AKIAEXAMPLE", secret_access_key=SECRET)
    assert SECRET not in repr(storage)
    assert "secret_access_key='***'" in repr(storage)
    assert storage.describe() == "S3 bucket s3://bucket/a/b/ at http://127.0.0.1:9000"
    assert storage.location("x.dump") == "s3://bucket/a/b/x.dump"


# -- the Storage contract, for both storages -------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "backups")
    server: S3Server = request.getfixturevalue("s3_server")
    return s3(server, request.getfixturevalue("bucket"))


def test_storage_contract(any_storage: Storage) -> None:
    storage: Any = any_storage  # list_names, location, describe: on both, not in Storage
    with storage.atomic_writer("b.dump") as writer:
        writer.write(b"bee")
        assert storage.list_names() == []
        assert not storage.exists("b.dump")
    with storage.atomic_writer("a.dump") as writer:
        writer.write(b"a" * 1000)
    assert storage.list_names() == ["a.dump", "b.dump"]
    assert storage.exists("a.dump")
    assert storage.size("a.dump") == 1000
    assert read_all(storage, "b.dump") == b"bee"
    assert storage.location("a.dump").endswith("/backups/a.dump")
    assert "backups" in storage.describe()

    storage.delete("a.dump")
    storage.delete("a.dump")  # a missing object is not an error
    assert not storage.exists("a.dump")
    assert storage.list_names() == ["b.dump"]
    with pytest.raises(FileNotFoundError):
        read_all(storage, "a.dump")
    with pytest.raises(FileNotFoundError):
        storage.size("a.dump")
    with pytest.raises(ValueError, match="invalid storage name"):
        storage.exists("../a.dump")


def test_s3_storage_satisfies_the_protocol(s3_server: S3Server, bucket: str) -> None:
    storage: Storage = S3Storage(bucket, **s3_server.storage_settings())
    with storage.atomic_writer("x") as writer:
        writer.write(b"x")
    assert storage.size("x") == 1


def test_local_list_names_skips_partials_and_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "backups")
    (storage.root / ".c.dump.partial").write_bytes(b"half")
    (storage.root / "subdir").mkdir()
    (storage.root / "b.dump").write_bytes(b"b")
    (storage.root / "a.dump").write_bytes(b"a")
    assert storage.list_names() == ["a.dump", "b.dump"]
    assert storage.list_partials() == ["c.dump"]
    assert storage.location("a.dump") == str(storage.root / "a.dump")
    assert storage.describe() == f"local directory {storage.root}"


# -- uploads ---------------------------------------------------------------------------------


def test_multipart_round_trip(s3_server: S3Server, bucket: str) -> None:
    storage = s3(s3_server, bucket)
    calls = record_calls(storage, "CreateMultipartUpload", "UploadPart",
                         "CompleteMultipartUpload", "PutObject")
    data = os.urandom(12 * MiB + 123)
    step = 1_000_003  # writes that straddle part boundaries
    with storage.atomic_writer("big.dump") as writer:
        for offset in range(0, len(data), step):
            assert writer.write(data[offset:offset + step]) == len(data[offset:offset + step])
        assert storage.abandoned_uploads() == ["big.dump"]  # visible only as an upload
        assert not storage.exists("big.dump")
    assert writer.bytes_written == len(data)
    assert [operation for operation, _ in calls] == [
        "CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart",
        "CompleteMultipartUpload",
    ]
    parts = [params for operation, params in calls if operation == "UploadPart"]
    assert [part["ContentLength"] for part in parts] == [PART, PART, 2 * MiB + 123]
    assert all(part["ChecksumSHA256"] for part in parts)

    head = s3_server.client().head_object(Bucket=bucket, Key="backups/big.dump")
    assert head["ETag"].endswith('-3"')
    assert storage.size("big.dump") == len(data)
    with storage.open_read("big.dump") as reader:
        assert reader.read(10) == data[:10]
        rest = hashlib.sha256(data[:10])
        while chunk := reader.read(CHUNK_SIZE):
            rest.update(chunk)
    assert rest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert uploads_in(s3_server, bucket) == []


@pytest.mark.parametrize(("size", "operations"), [
    (0, ["PutObject"]),
    (1000, ["PutObject"]),
    (PART, ["PutObject"]),  # a part is only sent once the next byte needs its room
    (PART + 1, ["CreateMultipartUpload", "UploadPart", "UploadPart",
                "CompleteMultipartUpload"]),
])
def test_small_objects_are_one_put(s3_server: S3Server, bucket: str, size: int,
                                   operations: list[str]) -> None:
    storage = s3(s3_server, bucket)
    calls = record_calls(storage, "CreateMultipartUpload", "UploadPart",
                         "CompleteMultipartUpload", "PutObject")
    data = os.urandom(size)
    with storage.atomic_writer("small.dump") as writer:
        writer.write(data)
    assert [operation for operation, _ in calls] == operations
    assert read_all(storage, "small.dump") == data
    assert storage.size("small.dump") == size


@pytest.mark.parametrize("size", [1000, PART + 1], ids=["before-any-part", "mid-upload"])
@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()],
                         ids=["exception", "keyboard-interrupt"])
def test_failed_write_leaves_no_object_and_no_upload(
    s3_server: S3Server, bucket: str, size: int, error: BaseException
) -> None:
    storage = s3(s3_server, bucket)
    with pytest.raises(type(error)), storage.atomic_writer("a.dump") as writer:
        writer.write(os.urandom(size))
        assert (writer.upload_id is not None) == (size > PART)
        raise error
    assert not storage.exists("a.dump")
    assert storage.list_names() == []
    assert uploads_in(s3_server, bucket) == []
    assert storage.abandoned_uploads() == []


def test_too_many_parts_is_refused_and_aborted(s3_server: S3Server, bucket: str) -> None:
    storage = s3(s3_server, bucket, max_parts=2)
    with pytest.raises(ObjectStoreError, match="needs more than 2 parts of 5 MiB"), \
            storage.atomic_writer("a.dump") as writer:
        writer.write(os.urandom(2 * PART + 1))
    assert uploads_in(s3_server, bucket) == []
    assert not storage.exists("a.dump")


def test_server_stopped_mid_upload(caplog: pytest.LogCaptureFixture) -> None:
    """The endpoint dies between two parts: the write fails with a readable error and the
    writer tries to abort the multipart upload.

    Limitation: moto keeps its state in memory, so a restarted server has forgotten the
    upload; that the abort really frees the parts is shown by
    test_failed_write_leaves_no_object_and_no_upload, here only that it was attempted (and,
    the server being gone, that its failure is logged for abort_abandoned_uploads).
    """
    server = S3Server().start()  # our own: the session's must stay up
    try:
        server.client().create_bucket(Bucket="mid-upload")
        storage = s3(server, "mid-upload", max_attempts=1, connect_timeout=2)
        aborts = record_calls(storage, "AbortMultipartUpload")
        with pytest.raises(ObjectStoreError) as caught, storage.atomic_writer("a.dump") as writer:
            writer.write(os.urandom(PART + 1))
            assert writer.parts_uploaded == 1
            upload_id = writer.upload_id
            server.stop()
            writer.write(os.urandom(PART))
    finally:
        server.stop()
    message = str(caught.value)
    assert re.fullmatch(
        rf"cannot reach S3 endpoint {re.escape(server.endpoint_url)} \(connection refused\)"
        r"|S3 endpoint .* closed the connection while uploading part 2 of .*",
        message,
    ), message
    assert_no_secret(caught.value)
    assert [params["UploadId"] for _, params in aborts] == [upload_id]
    assert "could not abort the unfinished upload" in caplog.text


# -- object lock -----------------------------------------------------------------------------


@pytest.fixture
def lock_bucket(s3_server: S3Server) -> str:
    name = f"locked-{secrets.token_hex(8)}"
    s3_server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.mark.parametrize("size", [1000, PART + 1], ids=["put-object", "multipart"])
def test_locked_object_cannot_be_deleted(s3_server: S3Server, lock_bucket: str,
                                         size: int) -> None:
    storage = s3(s3_server, lock_bucket, object_lock=ObjectLock("GOVERNANCE", 1))
    sent = record_headers(storage, "PutObject", "CreateMultipartUpload", "UploadPart")
    before = datetime.now(UTC)
    with storage.atomic_writer("locked.dump") as writer:
        writer.write(os.urandom(size))
    after = datetime.now(UTC)

    until = storage.locked_until("locked.dump")
    assert until is not None
    assert before + timedelta(days=1) - timedelta(seconds=2) <= until
    assert until <= after + timedelta(days=1)
    with pytest.raises(ObjectStoreError, match=(
        rf"^s3://{lock_bucket}/backups/locked\.dump is locked \(GOVERNANCE mode\) until "
        rf"{until:%Y-%m-%d %H:%M:%S} UTC and cannot be deleted before then$"
    )):
        storage.delete("locked.dump")
    assert storage.exists("locked.dump")
    # the bucket enforces it too: the version itself cannot be removed
    client = s3_server.client()
    version = client.head_object(Bucket=lock_bucket, Key="backups/locked.dump")["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=lock_bucket, Key="backups/locked.dump", VersionId=version)

    # every upload request carried a checksum (S3 requires one with Object Lock)
    uploads = [headers for operation, headers in sent if operation != "CreateMultipartUpload"]
    assert uploads
    assert all({"x-amz-sdk-checksum-algorithm", "x-amz-checksum-sha256"} <= headers
               for headers in uploads)
    assert all("x-amz-object-lock-mode" in headers for operation, headers in sent
               if operation != "UploadPart")


def test_unlocked_object_reports_no_lock(s3_server: S3Server, lock_bucket: str) -> None:
    storage = s3(s3_server, lock_bucket)
    with storage.atomic_writer("free.dump") as writer:
        writer.write(b"free")
    assert storage.locked_until("free.dump") is None
    storage.delete("free.dump")
    assert not storage.exists("free.dump")
    with pytest.raises(FileNotFoundError):
        storage.locked_until("free.dump")


# -- listing and cleanup ---------------------------------------------------------------------


def test_list_names_is_flat_and_valid_only(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    for key in ["team/pg/x.dump", "team/pg/sub/y.dump", "team/pg/.hidden", "team/pg/bad name",
                "team/other.dump", "elsewhere.dump"]:
        client.put_object(Bucket=bucket, Key=key, Body=b".")
    storage = s3(s3_server, bucket, prefix="/team//pg/")
    assert storage.prefix == "team/pg"
    assert storage.list_names() == ["x.dump"]
    assert s3(s3_server, bucket, prefix="").list_names() == ["elsewhere.dump"]


def test_list_names_reads_every_page(s3_server: S3Server, bucket: str) -> None:
    """S3 answers at most 1,000 keys a request: a rescan of a bigger prefix must see all."""
    storage = s3(s3_server, bucket, prefix="many")
    calls = record_calls(storage, "ListObjectsV2")
    client = s3_server.client()
    names = [f"backup-{number:04d}.manifest.json" for number in range(1003)]
    for name in names:
        client.put_object(Bucket=bucket, Key=f"many/{name}", Body=b"")
    assert storage.list_names() == names
    assert len(calls) == 2


def test_abandoned_uploads_are_listed_and_aborted(s3_server: S3Server, bucket: str) -> None:
    client = s3_server.client()
    client.create_multipart_upload(Bucket=bucket, Key="backups/killed.dump")
    client.create_multipart_upload(Bucket=bucket, Key="elsewhere/other.dump")
    storage = s3(s3_server, bucket)
    assert storage.abandoned_uploads() == ["killed.dump"]
    assert storage.abort_abandoned_uploads(older_than=timedelta(days=365 * 100)) == 0
    # moto reports every upload as initiated in 2010: "older than an hour" matches
    assert storage.abort_abandoned_uploads(older_than=timedelta(hours=1)) == 1
    assert storage.abandoned_uploads() == []
    assert [upload["Key"] for upload in uploads_in(s3_server, bucket)] == [
        "elsewhere/other.dump"
    ]


# -- errors ----------------------------------------------------------------------------------


def test_unreachable_endpoint_is_one_sentence() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage = S3Storage("backups", endpoint_url=endpoint, region="us-east-1",
                        access_key_id="AKIAEXAMPLE", secret_access_key=SECRET, max_attempts=1)
    expected = f"cannot reach S3 endpoint {endpoint} (connection refused)"
    for attempt in (lambda: storage.exists("a"), storage.list_names, storage.check):
        with pytest.raises(ObjectStoreError) as caught:
            attempt()
        assert str(caught.value) == expected
        assert_no_secret(caught.value)
    with pytest.raises(ObjectStoreError, match=re.escape(expected)), \
            storage.atomic_writer("a.dump") as writer:
        writer.write(b"data")


def test_unknown_host_is_one_sentence() -> None:
    storage = S3Storage("backups", endpoint_url="http://no-such-host.invalid:9000",
                        region="us-east-1", access_key_id="AKIAEXAMPLE",
                        secret_access_key=SECRET, max_attempts=1)
    with pytest.raises(ObjectStoreError) as caught:
        storage.list_names()
    assert str(caught.value) == (
        "cannot reach S3 endpoint http://no-such-host.invalid:9000 (unknown host)"
    )


def test_missing_bucket_is_one_sentence(s3_server: S3Server) -> None:
    storage = s3(s3_server, "no-such-bucket")
    with pytest.raises(ObjectStoreError) as caught:
        storage.list_names()
    assert str(caught.value) == (
        f"bucket no-such-bucket does not exist at S3 endpoint {s3_server.endpoint_url}"
    )


@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[S3Server, str, str]]:
    """A moto server that checks credentials after its first 3 actions (which create an IAM
    user without any permission, its access key, and a bucket); yields (server, key id,
    secret)."""
    server = S3Server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}).start()
    try:
        iam = server.client("iam")
        iam.create_user(UserName="backup")
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        server.client().create_bucket(Bucket="guarded")
        yield server, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        server.stop()


@pytest.mark.parametrize(("credentials", "expected"), [
    ("unknown key", r"S3 endpoint \S+ does not know the access key ID AKIAUNKNOWN00000000: "
                    r"check the credentials"),
    ("wrong secret", r"S3 endpoint \S+ rejected the request signature: check the secret "
                     r"access key"),
    ("no permission", r"access denied to bucket guarded while listing s3://guarded/backups/: "
                      r"check the key's permissions"),
], ids=["unknown-key", "wrong-secret", "no-permission"])
def test_credential_errors_are_one_sentence(
    auth_server: tuple[S3Server, str, str], credentials: str, expected: str
) -> None:
    server, key_id, key_secret = auth_server
    access_key_id, secret = {
        "unknown key": ("AKIAUNKNOWN00000000", SECRET),
        "wrong secret": (key_id, SECRET),
        "no permission": (key_id, key_secret),
    }[credentials]
    storage = S3Storage("guarded", prefix="backups", endpoint_url=server.endpoint_url,
                        region="us-east-1", force_path_style=True, max_attempts=1,
                        access_key_id=access_key_id, secret_access_key=secret)
    with pytest.raises(ObjectStoreError) as caught:
        storage.list_names()
    assert re.fullmatch(expected, str(caught.value)), str(caught.value)
    assert_no_secret(caught.value)
    # a HEAD response has no body to tell which: the sentence says what to check
    with pytest.raises(ObjectStoreError, match=(
        r"^access denied to bucket guarded while looking up s3://guarded/backups/a\.dump: "
        r"check the credentials and the key's permissions$"
    )):
        storage.exists("a.dump")


def test_credentials_come_from_the_environment_when_not_given(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = {**s3_server.storage_settings(), "access_key_id": None,
                "secret_access_key": None}
    with pytest.raises(ObjectStoreError, match=r"^no S3 credentials found"):
        S3Storage(bucket, **settings).list_names()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3Server.ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3Server.SECRET_ACCESS_KEY)
    assert S3Storage(bucket, **settings).list_names() == []


def test_a_killed_writer_s_upload_is_removed_by_name(s3_server: S3Server, bucket: str) -> None:
    """What reconciliation calls for a backup whose worker died mid-upload: only that
    name's unfinished upload goes, not another write's."""
    client = s3_server.client()
    client.create_multipart_upload(Bucket=bucket, Key="backups/killed.dump")
    client.create_multipart_upload(Bucket=bucket, Key="backups/running.dump")
    storage = s3(s3_server, bucket)
    assert storage.remove_partial_for("killed.dump") is True
    assert storage.remove_partial_for("killed.dump") is False
    assert storage.abandoned_uploads() == ["running.dump"]
