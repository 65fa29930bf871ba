"""Client-side encryption with age: pgbackup.encryption, and encrypted backups of Pagila end
to end, checked against the stock age, zstd and pg_restore tools."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgbackup import (
    CHUNK_SIZE,
    BackupError,
    ConfigError,
    ConnectionInfo,
    DecryptionError,
    DryRunError,
    Encryption,
    LocalStorage,
    Manifest,
    RestoreError,
    TocError,
    analyze_restore,
    check_integrity,
    decrypting_reader,
    encrypting_writer,
    load_identities,
    manifest_name,
    parse_recipients,
    read_manifest,
    read_toc,
    recipients_of,
    restore_into_new_database,
    run_dump,
    scratch_name,
    scratch_restore,
)
from pgbackup.dbadmin import database_exists
from pgbackup.verify import NOT_DECRYPTED, VerifyResult
from tests.engine.helpers import (
    copy_backup,
    copy_public_schema_owner,
    require_tool,
    restore_with_stock_tools,
    row_counts_of_tables,
    unique_backup_id,
)
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
SEED = 20240115
STORED_CHECKS = ["manifest", "artifact-exists", "size", "sha256"]
DECRYPTED_CHECKS = [*STORED_CHECKS, "decrypt", "content-sha256", "decompress", "toc", "globals"]
AGE_CHUNK = 64 * 1024 + 16  # a STREAM chunk on disk: 64 KiB of plaintext and its tag


@dataclass(frozen=True)
class Key:
    identity_file: Path
    public: str


def make_key(path: Path) -> Key:
    """A new X25519 key, made by the stock age-keygen."""
    keygen = require_tool("age-keygen")
    subprocess.run([keygen, "-o", str(path)], check=True, capture_output=True)
    public = subprocess.run([keygen, "-y", str(path)], check=True, capture_output=True,
                            text=True).stdout.strip()
    return Key(path, public)


@dataclass(frozen=True)
class Encrypted:
    source_url: str
    storage: LocalStorage
    a: Key
    b: Key
    c: Key  # encrypts nothing here: the wrong key
    rotated: Path  # an identity file holding B's key, then A's
    to_ab: Manifest  # full, compressed, to A and B
    raw_to_a: Manifest  # full, uncompressed, to A only


@pytest.fixture(scope="module")
def enc(
    pg_server: PostgresServer, pagila_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Encrypted]:
    """Encrypted backups of a private Pagila copy, shared by the module's tests (which copy
    them before damaging anything)."""
    keys_dir = tmp_path_factory.mktemp("keys")
    a, b, c = (make_key(keys_dir / f"{name}.txt") for name in "abc")
    rotated = keys_dir / "rotated.txt"
    rotated.write_text(f"# the new key\n{b.identity_file.read_text()}\n"
                       f"# the old key, kept for old backups\n{a.identity_file.read_text()}")
    pg_server.drop_database("encryption_source")
    with pg_server.connect() as conn:
        conn.execute(f'CREATE DATABASE encryption_source TEMPLATE "{pagila_template}"')
    source_url = pg_server.url("encryption_source")
    conn_info = ConnectionInfo.from_url(source_url)
    storage = LocalStorage(tmp_path_factory.mktemp("encryption") / "backups")

    def backup(encrypt_to: list[str], compress: bool = True) -> Manifest:
        return run_dump(conn_info, storage, unique_backup_id(storage), "full",
                        compress=compress, encrypt_to=encrypt_to)

    try:
        yield Encrypted(source_url, storage, a, b, c, rotated,
                    backup([a.public, b.public]), backup([a.public], compress=False))
    finally:
        pg_server.drop_database("encryption_source")


def age_decrypt(key: Key, artifact: Path) -> bytes:
    """The plaintext of an age file, decrypted by the stock age CLI."""
    return subprocess.run([require_tool("age"), "-d", "-i", str(key.identity_file),
                           str(artifact)], check=True, capture_output=True).stdout


def payload_start(ciphertext: bytes) -> int:
    """Where an age file's payload starts: after the header's MAC line and the nonce."""
    mac_line = ciphertext.index(b"\n---") + 1
    return ciphertext.index(b"\n", mac_line) + 1 + 16


def failing(result: VerifyResult) -> list[str]:
    return [check.name for check in result.checks if not check.ok]


def detail(result: VerifyResult, name: str) -> str:
    return next(check.detail for check in result.checks if check.name == name)


def other_recipients(artifact: str) -> str:
    return (f"no identity in the configured identities can decrypt {artifact}: it was "
            "encrypted to other recipients")


def altered(artifact: str) -> str:
    return (f"the encrypted artifact {artifact} is truncated or was altered (age "
            "authentication failed)")


def needs_identity(manifest: Manifest) -> str:
    return (f"backup {manifest.backup_id} is encrypted with age: set BACKUP_AGE_IDENTITIES "
            "to an identity file holding one of its keys")


# --- encrypted backups, end to end -------------------------------------------------------


def test_encrypted_backup_restores_with_stock_tools_only(
    enc: Encrypted, scratch_db: Callable[[], str]
) -> None:
    """age -d -i key artifact | zstd -d | pg_restore: no pgbackup code on the way back."""
    manifest = enc.to_ab
    artifact = enc.storage.path(manifest.artifact)
    assert artifact.name == f"{manifest.backup_id}.dump.zst.age"
    with artifact.open("rb") as handle:
        assert handle.read(22) == b"age-encryption.org/v1\n"

    target = scratch_db()
    restore_with_stock_tools(artifact, target, enc.a.identity_file)
    copy_public_schema_owner(enc.source_url, target)

    assert schema_dump(target) == schema_dump(enc.source_url)
    assert table_fingerprints(target) == table_fingerprints(enc.source_url)
    # the other recipient's key opens it too
    listing = subprocess.run(
        f"{require_tool('age')} -d -i {enc.b.identity_file} {artifact} | zstd -d"
        f" | {require_tool('pg_restore')} --list",
        shell=True, capture_output=True, check=True, executable="/bin/bash",
    ).stdout
    assert b"TABLE DATA public actor" in listing


def test_uncompressed_encrypted_backup_restores_with_stock_tools(
    enc: Encrypted, scratch_db: Callable[[], str]
) -> None:
    artifact = enc.storage.path(enc.raw_to_a.artifact)
    assert artifact.name == f"{enc.raw_to_a.backup_id}.dump.age"
    assert age_decrypt(enc.a, artifact)[:5] == b"PGDMP"

    target = scratch_db()
    restore_with_stock_tools(artifact, target, enc.a.identity_file)

    assert row_counts_of_tables(target) == row_counts_of_tables(enc.source_url)


def test_manifest_records_the_recipients_and_no_identity(enc: Encrypted) -> None:
    manifest = enc.to_ab
    artifact = enc.storage.path(manifest.artifact)

    assert read_manifest(enc.storage, manifest.backup_id) == manifest
    assert manifest.encryption == Encryption(recipients=[enc.a.public, enc.b.public])
    assert manifest.compression == "zstd" and manifest.size == artifact.stat().st_size
    assert manifest.sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
    plaintext = age_decrypt(enc.b, artifact)
    assert manifest.content_sha256 == hashlib.sha256(plaintext).hexdigest()
    data = json.loads(enc.storage.path(manifest_name(manifest.backup_id)).read_text())
    assert data["encryption"] == {"format": "age", "recipients": [enc.a.public, enc.b.public]}
    secrets_ = [line for key in (enc.a, enc.b) for line in
                key.identity_file.read_text().splitlines() if not line.startswith("#")]
    for path in enc.storage.root.iterdir():
        content = path.read_bytes()
        assert b"AGE-SECRET-KEY" not in content.upper(), path.name
        assert not any(secret.encode() in content for secret in secrets_), path.name


def test_verify_decrypts_with_either_identity(enc: Encrypted) -> None:
    for key in (enc.a, enc.b):
        result = check_integrity(enc.storage, enc.to_ab.backup_id,
                                 identities=load_identities(key.identity_file))

        assert result.is_valid, result.checks
        assert [check.name for check in result.checks] == DECRYPTED_CHECKS
        assert result.warnings == []
        assert detail(result, "content-sha256") == enc.to_ab.content_sha256
        assert detail(result, "decrypt").endswith("bytes decrypted, age authentication verified")
        assert detail(result, "decompress").endswith("zstd frame checksum verified")
        assert int(detail(result, "toc").split()[0]) > 150


def test_verify_without_identities_checks_the_stored_bytes_and_warns(enc: Encrypted) -> None:
    result = check_integrity(enc.storage, enc.to_ab.backup_id)

    assert result.is_valid, result.checks
    assert [check.name for check in result.checks] == [*STORED_CHECKS, "globals"]
    assert result.warnings == [NOT_DECRYPTED]
    assert NOT_DECRYPTED == ("not decrypted: no identity configured; the age layer, "
                             "compression and archive were not checked")


def test_rotation_keeps_old_backups_restorable(
    enc: Encrypted, server: ConnectionInfo
) -> None:
    """After rotating from A to B, one identity file holding both opens backups made to A
    only (restored and checked against the manifest) and backups made to B only."""
    identities = load_identities(enc.rotated)
    assert recipients_of(identities) == [enc.b.public, enc.a.public]
    with scratch_restore(server, enc.storage, enc.raw_to_a, scratch_name("encryption"),
                         identities=identities) as report:
        assert report.matches, report.checks
        assert len(report.checks) == len(enc.raw_to_a.tables)

    after = run_dump(ConnectionInfo.from_url(enc.source_url), enc.storage,
                     unique_backup_id(enc.storage), "schema-only", encrypt_to=[enc.b.public])
    try:
        result = check_integrity(enc.storage, after.backup_id, identities=identities)
        assert result.is_valid, result.checks
        assert failing(check_integrity(enc.storage, after.backup_id,
                                       identities=load_identities(enc.a.identity_file))) \
            == ["decrypt"]
    finally:
        enc.storage.delete(manifest_name(after.backup_id))
        enc.storage.delete(after.artifact)


def test_toc_and_dry_run_decrypt(enc: Encrypted, server: ConnectionInfo) -> None:
    identities = load_identities(enc.a.identity_file)
    artifact = enc.storage.path(enc.to_ab.artifact)
    stock = subprocess.run(
        f"{require_tool('age')} -d -i {enc.a.identity_file} {artifact} | zstd -d"
        f" | {require_tool('pg_restore')} --list",
        shell=True, capture_output=True, check=True, executable="/bin/bash",
    ).stdout.decode()
    entries = [line for line in stock.splitlines() if line.strip() and not line.startswith(";")]

    toc = read_toc(enc.storage, enc.to_ab, identities=identities)
    report = analyze_restore(server, enc.storage, enc.to_ab, mode="new-database",
                             new_database=scratch_name("dryrun"), identities=identities)

    assert len(toc.entries) == len(entries)
    assert "public.actor" in toc.tables()
    assert report.can_restore, report.errors
    assert report.backup.toc_entries == len(entries)


# --- refusals and failures ---------------------------------------------------------------


def test_without_identities_restore_toc_and_dry_run_refuse(
    enc: Encrypted, server: ConnectionInfo, new_name: str
) -> None:
    manifest = enc.to_ab
    message = f"^{re.escape(needs_identity(manifest))}$"
    with pytest.raises(RestoreError, match=message):
        restore_into_new_database(server, new_name, enc.storage, manifest)
    assert not database_exists(server, new_name)
    with pytest.raises(TocError, match=message):
        read_toc(enc.storage, manifest)
    with pytest.raises(DryRunError, match=message):
        analyze_restore(server, enc.storage, manifest, mode="new-database",
                        new_database=new_name)
    with pytest.raises(TocError, match=message), scratch_restore(
        server, enc.storage, manifest, new_name, identities=[]
    ):
        pass


def test_a_wrong_identity_is_one_clear_sentence(
    enc: Encrypted, server: ConnectionInfo, new_name: str
) -> None:
    manifest = enc.to_ab
    wrong = load_identities(enc.c.identity_file)
    sentence = other_recipients(manifest.artifact)

    result = check_integrity(enc.storage, manifest.backup_id, identities=wrong)
    assert [check.name for check in result.checks] == [*STORED_CHECKS, "decrypt", "globals"]
    assert failing(result) == ["decrypt"]
    assert detail(result, "decrypt") == sentence
    with pytest.raises(RestoreError) as restore_error:
        restore_into_new_database(server, new_name, enc.storage, manifest, identities=wrong)
    assert str(restore_error.value) == sentence
    assert not database_exists(server, new_name)
    with pytest.raises(TocError) as toc_error:
        read_toc(enc.storage, manifest, identities=wrong)
    assert str(toc_error.value) == sentence
    report = analyze_restore(server, enc.storage, manifest, mode="new-database",
                             new_database=new_name, identities=wrong)
    assert report.errors == [f"The backup's table of contents cannot be read: {sentence}"]


@pytest.mark.parametrize("which", ["to_ab", "raw_to_a"])
def test_a_flipped_byte_is_found_by_sha256_and_by_age(
    enc: Encrypted, tmp_path: Path, which: str
) -> None:
    manifest: Manifest = getattr(enc, which)
    identities = load_identities(enc.a.identity_file)
    rng = random.Random(SEED)
    artifact = enc.storage.path(manifest.artifact).read_bytes()
    mac, payload = artifact.index(b"\n---") + 10, payload_start(artifact)
    offsets = [0, 30, mac, payload - 5, payload + 5, manifest.size - 1,
               *rng.sample(range(payload, manifest.size - 1), 4)]
    for offset in offsets:
        storage = copy_backup(enc.storage, manifest, tmp_path / f"flip-{offset}")
        path = storage.path(manifest.artifact)
        data = bytearray(path.read_bytes())
        data[offset] ^= rng.randrange(1, 256)
        path.write_bytes(data)

        assert failing(check_integrity(storage, manifest.backup_id)) == ["sha256"], offset
        result = check_integrity(storage, manifest.backup_id, identities=identities)
        assert failing(result) == ["sha256", "decrypt"], offset
        assert detail(result, "decrypt") == altered(manifest.artifact), offset


def test_a_truncated_artifact_is_found_by_size_sha256_and_age(
    enc: Encrypted, tmp_path: Path
) -> None:
    manifest = enc.to_ab
    storage = copy_backup(enc.storage, manifest, tmp_path)
    with storage.path(manifest.artifact).open("r+b") as handle:
        handle.truncate(manifest.size // 2)

    assert failing(check_integrity(storage, manifest.backup_id)) == ["size", "sha256"]
    result = check_integrity(storage, manifest.backup_id,
                             identities=load_identities(enc.b.identity_file))
    assert failing(result) == ["size", "sha256", "decrypt"]
    assert detail(result, "decrypt") == altered(manifest.artifact)


def test_a_failing_pg_dump_leaves_no_encrypted_file(
    enc: Encrypted, storage: LocalStorage, fake_pg_dump: Callable[[str], str]
) -> None:
    with pytest.raises(BackupError, match="pg_dump failed with exit status 3"):
        run_dump(ConnectionInfo.from_url(enc.source_url), storage, unique_backup_id(storage),
                 "full", encrypt_to=[enc.a.public], pg_dump=fake_pg_dump("exit 3"))
    assert list(storage.root.iterdir()) == []


def test_bad_recipients_are_refused_before_anything_is_stored(
    enc: Encrypted, storage: LocalStorage
) -> None:
    conn = ConnectionInfo.from_url(enc.source_url)
    with pytest.raises(ConfigError, match=r"^age recipient 2 is not an age X25519 public key"):
        run_dump(conn, storage, unique_backup_id(storage), "full",
                 encrypt_to=[enc.a.public, "age1notakey"])
    with pytest.raises(ConfigError, match=r"^no age recipient given"):
        run_dump(conn, storage, unique_backup_id(storage), "full", encrypt_to=[])
    assert list(storage.root.iterdir()) == []


# --- pgbackup.encryption on its own -------------------------------------------------------


def test_stock_age_and_the_engine_read_each_others_files(enc: Encrypted, tmp_path: Path) -> None:
    data = os.urandom(200_000) + b"pagila " * 50_000
    plain, by_cli, by_engine = tmp_path / "plain", tmp_path / "cli.age", tmp_path / "engine.age"
    plain.write_bytes(data)
    subprocess.run([require_tool("age"), "-r", enc.a.public, "-o", str(by_cli), str(plain)],
                   check=True)

    with by_cli.open("rb") as raw, decrypting_reader(
        raw, load_identities(enc.a.identity_file)
    ) as reader:
        assert reader.read() == data
    with by_engine.open("wb") as raw, encrypting_writer(
        raw, parse_recipients([enc.b.public])
    ) as writer:
        writer.write(data)
    assert age_decrypt(enc.b, by_engine) == data


def encrypted(data: bytes, key: Key) -> bytes:
    raw = io.BytesIO()
    with encrypting_writer(raw, parse_recipients([key.public])) as writer:
        writer.write(data)
    return raw.getvalue()


def read_all(ciphertext: bytes, key: Key, recipients: list[str] | None = None) -> bytes:
    with decrypting_reader(io.BytesIO(ciphertext), load_identities(key.identity_file), "x",
                           recipients) as reader:
        return b"".join(iter(lambda: reader.read(CHUNK_SIZE), b""))


def test_decrypting_reader_detects_tampering_itself(enc: Encrypted) -> None:
    """No sha256 to catch it first: age's own authentication does, at the read that reaches
    the damage, including a file cut exactly at a chunk boundary."""
    data = os.urandom(3 * 64 * 1024 + 1000)
    good = encrypted(data, enc.a)
    payload = payload_start(good)
    assert read_all(good, enc.a) == data
    flips = [payload - 20, payload + 3, payload + AGE_CHUNK + 7, len(good) - 1, 60]
    cuts = [10, payload - 5, payload + AGE_CHUNK, payload + 2 * AGE_CHUNK, len(good) - 1]
    for damaged in [*(_flipped(good, offset) for offset in flips), *(good[:n] for n in cuts)]:
        with pytest.raises(DecryptionError) as error:
            read_all(damaged, enc.a, recipients=[enc.a.public])
        assert str(error.value) == altered("x")
    with pytest.raises(DecryptionError) as error:
        read_all(good, enc.c)
    assert str(error.value) == other_recipients("x")


def _flipped(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0x01
    return bytes(damaged)


@pytest.mark.timeout(30)
def test_stopping_early_is_no_error_but_a_failure_found_still_is(enc: Encrypted) -> None:
    ciphertext = encrypted(os.urandom(5 * 1024 * 1024), enc.a)
    threads = threading.active_count()

    with decrypting_reader(io.BytesIO(ciphertext), load_identities(enc.a.identity_file)) \
            as reader:
        assert len(reader.read(1000)) == 1000  # the consumer stops here, like pg_restore --list
    with pytest.raises(DecryptionError, match="encrypted to other recipients"), \
            decrypting_reader(io.BytesIO(ciphertext), load_identities(enc.c.identity_file)):
        pass  # reads nothing: the failure is raised on exit
    with pytest.raises(KeyError), decrypting_reader(
        io.BytesIO(ciphertext), load_identities(enc.a.identity_file)
    ) as reader:
        reader.read(10)
        raise KeyError("the consumer's own error wins")
    assert threading.active_count() == threads


class FailingSink:
    def __init__(self, fail_after: int) -> None:
        self.written = 0
        self.fail_after = fail_after
        self.error = OSError(errno.ENOSPC, "No space left on device")

    def write(self, data: bytes) -> int:
        if self.written + len(data) > self.fail_after:
            raise self.error
        self.written += len(data)
        return len(data)


class FailingSource:
    def __init__(self, data: bytes, fail_after: int) -> None:
        self.stream = io.BytesIO(data)
        self.fail_after = fail_after
        self.error = OSError(errno.EIO, "Input/output error")

    def read(self, size: int = -1) -> bytes:
        if self.stream.tell() >= self.fail_after:
            raise self.error
        return self.stream.read(size)


@pytest.mark.timeout(30)
def test_failures_on_either_side_propagate_without_deadlock(enc: Encrypted) -> None:
    recipients = parse_recipients([enc.a.public])
    threads = threading.active_count()

    sink = FailingSink(fail_after=300_000)
    with pytest.raises(OSError) as error, encrypting_writer(sink, recipients) as writer:
        for _ in range(50):
            writer.write(b"\0" * CHUNK_SIZE)
    assert error.value is sink.error
    with pytest.raises(KeyError), encrypting_writer(io.BytesIO(), recipients) as writer:
        writer.write(b"abc")
        raise KeyError("the producer's own error")
    source = FailingSource(encrypted(os.urandom(1_000_000), enc.a), fail_after=300_000)
    with pytest.raises(OSError) as error, decrypting_reader(
        source, load_identities(enc.a.identity_file)
    ) as reader:
        reader.read()
    assert error.value is source.error
    assert threading.active_count() == threads


MEMORY_PROBE = """
import hashlib, resource, sys
from pgbackup.encryption import encrypting_writer, parse_recipients

class Hasher:
    def __init__(self): self.sha256, self.size = hashlib.sha256(), 0
    def write(self, data):
        self.sha256.update(data); self.size += len(data); return len(data)

sink, chunk = Hasher(), bytes(1024 * 1024)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with encrypting_writer(sink, parse_recipients([sys.argv[1]])) as writer:
    for _ in range(200):
        writer.write(chunk)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, sink.size)
"""


@pytest.mark.timeout(60)
def test_encrypting_200_mb_takes_little_memory(enc: Encrypted) -> None:
    probe = subprocess.run([sys.executable, "-c", MEMORY_PROBE, enc.a.public], cwd=ROOT,
                           check=True, capture_output=True, text=True, timeout=30)
    grown_kib, size = map(int, probe.stdout.split())
    assert size > 200 * 1024 * 1024  # all of it went through, plus age's overhead
    assert grown_kib < 32 * 1024, f"peak RSS grew by {grown_kib} KiB"


def test_recipients_and_identity_files_are_checked_without_echoing_keys(
    enc: Encrypted, tmp_path: Path
) -> None:
    secret_a = enc.a.identity_file.read_text().splitlines()[-1]
    secret_b = enc.b.identity_file.read_text().splitlines()[-1]
    with pytest.raises(ConfigError) as error:
        parse_recipients([enc.a.public, secret_a])
    assert str(error.value) == ("age recipient 2 is a secret key, not a public key: give its "
                                "public key (age-keygen -y prints it)")
    assert [str(r) for r in parse_recipients([f" {enc.b.public}\n"])] == [enc.b.public]

    keys = tmp_path / "keys.txt"
    keys.write_text(f"# two keys\n\n{secret_a}\r\n  # indented comment\n{secret_b}\n")
    assert recipients_of(load_identities(keys)) == [enc.a.public, enc.b.public]
    damaged = secret_b[:-3] + ("A" if secret_b[-3] != "A" else "C") + secret_b[-2:]
    keys.write_text(f"# header\n{secret_a}\n{damaged}\n")
    with pytest.raises(ConfigError) as error:
        load_identities(keys)
    assert str(error.value) == f"BACKUP_AGE_IDENTITIES file {keys}: line 3 is not an age identity"
    for text, problem in [("# nothing\n\n", "holds no age identity"),
                          (enc.a.public, "line 1 is not an age identity")]:
        keys.write_text(text)
        with pytest.raises(ConfigError, match=problem):
            load_identities(keys)
    with pytest.raises(ConfigError, match="cannot be read: No such file or directory"):
        load_identities(tmp_path / "missing.txt")
