import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pgbackup import LocalStorage, Manifest, TableInfo, read_manifest, write_manifest

BACKUP_ID = "backup-2024-01-15T10-30-00-000Z"


def make_manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "backup_id": BACKUP_ID, "type": "full", "created": datetime(2024, 1, 15, tzinfo=UTC),
        "database": "pagila", "server_version": "15.19", "pg_dump_version": "15.19",
        "tool": "pg-backup-manager 0.1.0", "artifact": f"{BACKUP_ID}.dump.zst", "size": 10,
        "sha256": "a" * 64, "compression": "zstd", "snapshot": "00000003-0000001B-1",
        "tables": [TableInfo("public", "actor", 200)], "duration_ms": 1200,
    }
    return Manifest(**(fields | overrides))


def test_round_trip_through_storage(storage: LocalStorage) -> None:
    manifest = make_manifest()
    write_manifest(storage, manifest)
    assert read_manifest(storage, BACKUP_ID) == manifest


def test_json_is_stable_and_snake_case(storage: LocalStorage) -> None:
    write_manifest(storage, make_manifest())
    text = storage.open_read(f"{BACKUP_ID}.manifest.json").read().decode()
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert text.startswith('{\n  "artifact"') and text.endswith("}\n")
    assert data["format_version"] == 1 and data["dump_format"] == "custom"
    assert data["created"] == "2024-01-15T00:00:00Z"
    assert data["tables"] == [{"schema": "public", "name": "actor", "rows": 200}]
    assert data["parent_id"] is None


@pytest.mark.parametrize("overrides", [
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
