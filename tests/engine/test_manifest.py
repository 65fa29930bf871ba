import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pgbackup import (
    Encryption,
    LocalStorage,
    Manifest,
    TableInfo,
    check_integrity,
    read_manifest,
    write_manifest,
)
from pgbackup.manifest import ManifestError, authenticate, key_id

BACKUP_ID = "backup-2024-01-15T10-30-00-000Z"


def make_manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "backup_id": BACKUP_ID, "type": "full", "created": datetime(2024, 1, 15, tzinfo=UTC),
        "database": "pagila", "server_version": "15.19", "pg_dump_version": "15.19",
        "tool": "pg-backup-manager 0.1.0", "artifact": f"{BACKUP_ID}.dump.zst", "size": 10,
        "sha256": "a" * 64, "compression": "zstd", "snapshot": "00000003-0000001B-1",
        "tables": [TableInfo("public", "actor", 200, "-123456789012345")], "duration_ms": 1200,
    }
    return Manifest(**(fields | overrides))


def test_round_trip_through_storage(storage: LocalStorage) -> None:
    manifest = make_manifest()
    write_manifest(storage, manifest)
    assert read_manifest(storage, BACKUP_ID) == manifest


def manifest_path(storage: LocalStorage):
    return storage.path(f"{BACKUP_ID}.manifest.json")


def test_json_is_stable_and_snake_case(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest())
    text = manifest_path(storage).read_text()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert text.startswith('{\n  "artifact"') and text.endswith("}\n")
    assert data["format_version"] == 1 and data["dump_format"] == "custom"
    assert data["created"] == "2024-01-15T00:00:00Z"
    assert data["tables"] == [
        {"schema": "public", "name": "actor", "rows": 200, "checksum": "-123456789012345"}
    ]
    assert data["parent_id"] is None


def test_self_checksum_covers_every_other_field(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest())
    data = json.loads(manifest_path(storage).read_text())
    claimed = data.pop("manifest_sha256")
    canonical = json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert claimed == hashlib.sha256(canonical.encode()).hexdigest()


def test_every_flipped_byte_is_detected(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest())
    original = manifest_path(storage).read_bytes()
    for offset in range(len(original)):
        for mask in (0x01, 0x20, 0x80):
            corrupt = bytearray(original)
            corrupt[offset] ^= mask
            manifest_path(storage).write_bytes(corrupt)
            with pytest.raises(ManifestError, match=f"manifest {BACKUP_ID}.manifest.json "):
                read_manifest(storage, BACKUP_ID)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace('"size": 10', '"size": 11'), "self-checksum does not match"),
    (lambda text: text.replace("\n", "\r\n"), "not in canonical form"),
    (lambda text: json.dumps(json.loads(text)), "not in canonical form"),
    (lambda text: text.replace('"size": 10', '"size": "ten"'), r"is invalid: size: "),
    (lambda text: text.replace('"tool"', '"tools"'), r"is invalid: tool: .* \(and 1 more\)"),
    (lambda text: text.replace('"manifest_sha256"', '"other"'), "has no self-checksum"),
    (lambda text: text[:-10], "is not valid JSON"),
    (lambda text: "[]", "is not a JSON object"),
])
def test_damaged_manifests_raise_manifest_error(
    storage: LocalStorage, edit, message: str
) -> None:
    write_manifest(storage, make_manifest())
    manifest_path(storage).write_text(edit(manifest_path(storage).read_text()))
    with pytest.raises(ManifestError, match=message):
        read_manifest(storage, BACKUP_ID)


def test_invalid_utf8_raises_manifest_error(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest())
    manifest_path(storage).write_bytes(manifest_path(storage).read_bytes() + b"\xff")
    with pytest.raises(ManifestError, match="is not valid JSON"):
        read_manifest(storage, BACKUP_ID)


CAPTURE = {"slot": "pgbackup_chain_1", "start_lsn": "0/16B3748", "end_lsn": "0/16C0000",
           "covers_until": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
           "consistent_at": datetime(2024, 1, 15, 10, 30, 1, tzinfo=UTC),
           "schema_fingerprint": "b" * 64}


def test_an_incremental_round_trips_with_its_capture(storage: LocalStorage) -> None:
    manifest = make_manifest(
        type="incremental", parent_id="backup-2024-01-14T10-30-00-000Z", dump_format="sql",
        artifact=f"{BACKUP_ID}.sql.zst", tables=[],
        capture={**CAPTURE, "first_commit": datetime(2024, 1, 15, 10, 0, tzinfo=UTC),
                 "last_commit": datetime(2024, 1, 15, 10, 29, tzinfo=UTC), "transactions": 3,
                 "changes": 7, "table_changes": {"public.rental": 7}})
    write_manifest(storage, manifest)
    assert read_manifest(storage, BACKUP_ID) == manifest
    assert manifest.capture is not None and manifest.capture.table_changes == {
        "public.rental": 7}


def test_a_full_without_capture_keeps_its_canonical_form() -> None:
    assert "capture" not in make_manifest().to_json()
    assert '"capture"' in make_manifest(capture=CAPTURE).to_json()


@pytest.mark.parametrize("overrides", [
    {"type": "incremental", "parent_id": "backup-2024-01-14T10-30-00-000Z",
     "dump_format": "sql"},  # no capture
    {"dump_format": "sql"},  # a full is an archive
    {"capture": {**CAPTURE, "slot": "Bad-Name"}},
    {"capture": {**CAPTURE, "end_lsn": "16C0000"}},
    {"capture": {**CAPTURE, "covers_until": datetime(2024, 1, 15, 10, 31, tzinfo=UTC)}},

    {"backup_id": "nope"},
    {"parent_id": "../etc"},
    {"type": "incremental"},
    {"sha256": "XYZ"},
    {"size": -1},
    {"artifact": "../x.dump"},
    {"compression": "gzip"},
    {"created": datetime(2024, 1, 15)},
    {"created": datetime(2024, 1, 15, tzinfo=timezone(timedelta(hours=1)))},
    {"host": "db.example"},
])
def test_invalid_manifests_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make_manifest(**overrides)


def test_missing_manifest(storage: LocalStorage) -> None:
    with pytest.raises(FileNotFoundError):
        read_manifest(storage, BACKUP_ID)


RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def make_encrypted(**overrides: object) -> Manifest:
    return make_manifest(**({
        "artifact": f"{BACKUP_ID}.dump.zst.age", "encryption": Encryption(recipients=[RECIPIENT]),
        "content_sha256": "b" * 64,
    } | overrides))


def test_a_manifest_written_before_encryption_existed_still_reads(
    storage: LocalStorage,
) -> None:
    """Such a file has neither ``encryption`` nor ``content_sha256``, and its self-checksum
    covers the other fields only."""
    data = {key: value for key, value in make_manifest().model_dump(mode="json").items()
            if value is not None or key == "parent_id"}  # the fields an older version wrote
    assert {"encryption", "content_sha256", "signature"}.isdisjoint(data)
    for table in data["tables"]:
        del table["partition_of"]  # nor a table's partition_of
    canonical = json.dumps(data, sort_keys=True, indent=2) + "\n"
    data["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    manifest_path(storage).write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")

    manifest = read_manifest(storage, BACKUP_ID)

    assert manifest == make_manifest()
    assert (manifest.encryption, manifest.content_sha256) == (None, None)
    write_manifest(storage, manifest)  # and is written back byte for byte
    assert json.loads(manifest_path(storage).read_text()) == data


def test_encrypted_manifest_round_trip(storage: LocalStorage) -> None:
    manifest = make_encrypted()
    write_manifest(storage, manifest)
    data = json.loads(manifest_path(storage).read_text())
    assert data["encryption"] == {"format": "age", "recipients": [RECIPIENT]}
    assert data["content_sha256"] == "b" * 64
    assert read_manifest(storage, BACKUP_ID) == manifest


@pytest.mark.parametrize("overrides", [
    {"content_sha256": None},
    {"encryption": None},
    {"content_sha256": "XYZ"},
    {"encryption": {"format": "age", "recipients": []}},
    {"encryption": {"format": "gpg", "recipients": [RECIPIENT]}},
    {"encryption": {"format": "age", "recipients": ["AGE-SECRET-KEY-1QQQQ"]}},
    {"encryption": {"format": "age", "recipients": [RECIPIENT], "identity": "x"}},
])
def test_invalid_encryption_fields_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make_encrypted(**overrides)


# -- signatures --------------------------------------------------------------------------

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def resealed(text: str, edit) -> str:
    """``text`` (a manifest file) with ``edit`` applied to its fields and its self-checksum
    recomputed: only a signature can tell it from the original."""
    data = json.loads(text)
    del data["manifest_sha256"]
    edit(data)
    canonical = json.dumps(data, sort_keys=True, indent=2) + "\n"
    data["manifest_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def test_a_signed_manifest_round_trips_and_authenticates(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest(), KEY)
    data = json.loads(manifest_path(storage).read_text())
    assert data["signature"] == make_manifest().signed(KEY).signature
    assert data["signature"].startswith(f"hmac-sha256:{key_id(KEY)}:")
    manifest = read_manifest(storage, BACKUP_ID)
    assert manifest == make_manifest().signed(KEY)
    assert authenticate(manifest, KEY) == "authenticated"
    assert authenticate(manifest, None) == "unchecked"
    assert KEY.decode() not in manifest_path(storage).read_text()


def test_the_signature_is_covered_by_the_self_checksum(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest(), KEY)
    text = manifest_path(storage).read_text()
    manifest_path(storage).write_text(text.replace('"signature": "hmac-sha256:',
                                                   '"signature": "hmac-sha256:0', 1)[:-1])
    with pytest.raises(ManifestError):
        read_manifest(storage, BACKUP_ID)


@pytest.mark.parametrize("edit", [
    lambda data: data.update(size=11),
    lambda data: data.update(sha256="c" * 64),
    lambda data: data["tables"][0].update(rows=201),
    lambda data: data.update(database="elsewhere"),
])
def test_a_changed_field_with_a_recomputed_self_checksum_is_forged(
    storage: LocalStorage, edit
) -> None:
    write_manifest(storage, make_manifest(), KEY)
    manifest_path(storage).write_text(resealed(manifest_path(storage).read_text(), edit))
    manifest = read_manifest(storage, BACKUP_ID)  # the self-checksum is satisfied
    assert authenticate(manifest, KEY) == "forged"


def test_a_manifest_signed_with_another_key_is_foreign(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest(), OTHER_KEY)
    manifest = read_manifest(storage, BACKUP_ID)
    assert authenticate(manifest, KEY) == "foreign"
    assert authenticate(manifest, OTHER_KEY) == "authenticated"
    assert key_id(KEY) != key_id(OTHER_KEY)


def test_an_unsigned_manifest_still_reads_and_says_so(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest())
    assert "signature" not in json.loads(manifest_path(storage).read_text())
    assert authenticate(read_manifest(storage, BACKUP_ID), KEY) == "unsigned"


def test_a_stripped_signature_makes_it_unsigned_not_authenticated(
    storage: LocalStorage,
) -> None:
    write_manifest(storage, make_manifest(), KEY)
    manifest_path(storage).write_text(
        resealed(manifest_path(storage).read_text(), lambda data: data.pop("signature")))
    assert authenticate(read_manifest(storage, BACKUP_ID), KEY) == "unsigned"


@pytest.mark.parametrize("signature", ["hmac-sha256:xyz", "sha1:" + "a" * 40,
                                       f"hmac-sha256:{'a' * 16}:{'b' * 63}"])
def test_malformed_signatures_are_invalid(signature: str) -> None:
    with pytest.raises(ValidationError):
        make_manifest(signature=signature)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        make_manifest().signed(b"")


def test_verification_checks_the_signature_when_given_a_key(storage: LocalStorage) -> None:
    """``manifest-signature`` fails for a forged manifest only; without a key it is not
    among the checks."""
    def signature_check(key: bytes | None):
        return [(c.ok, c.detail) for c in check_integrity(storage, BACKUP_ID,
                                                          manifest_key=key).checks
                if c.name == "manifest-signature"]

    write_manifest(storage, make_manifest(), KEY)
    assert signature_check(KEY) == [(True, "signed with this install's manifest key")]
    assert signature_check(None) == []
    assert signature_check(OTHER_KEY)[0][0] is True
    assert "signed with another key" in signature_check(OTHER_KEY)[0][1]
    manifest_path(storage).write_text(resealed(manifest_path(storage).read_text(),
                                               lambda data: data.update(size=11)))
    assert signature_check(KEY)[0][0] is False
    write_manifest(storage, make_manifest())
    assert signature_check(KEY) == [(True, "not checked: the manifest is not signed "
                                           "(written before manifests were signed)")]
