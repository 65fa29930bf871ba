from datetime import UTC, datetime, timedelta, timezone

import pytest

from pgbackup import artifact_name, backup_id_time, is_backup_id, manifest_name, new_backup_id


def test_format_is_utc_with_milliseconds() -> None:
    now = datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)
    assert new_backup_id(now) == "backup-2024-01-15T10-30-00-123Z"


def test_other_timezones_are_converted_to_utc() -> None:
    now = datetime(2024, 1, 15, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert new_backup_id(now) == "backup-2024-01-15T10-30-00-000Z"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_backup_id(datetime(2024, 1, 15))


def test_round_trip() -> None:
    backup_id = new_backup_id()
    assert is_backup_id(backup_id)
    parsed = backup_id_time(backup_id)
    assert new_backup_id(parsed) == backup_id
    assert abs(datetime.now(UTC) - parsed) < timedelta(minutes=1)


@pytest.mark.parametrize("value", [
    "", "backup-2024-01-15T10-30-00Z", "backup-2024-01-15T10:30:00-000Z",
    "backup-2024-13-15T10-30-00-000Z", "backup-2024-02-30T10-30-00-000Z",
    "backup-2024-01-15T10-30-00-000Z.dump", "../backup-2024-01-15T10-30-00-000Z",
    " backup-2024-01-15T10-30-00-000Z", "backup-2024-01-15T10-30-00-000Z\n",
])
def test_is_backup_id_is_strict(value: str) -> None:
    assert not is_backup_id(value)


def test_storage_names() -> None:
    backup_id = "backup-2024-01-15T10-30-00-000Z"
    assert artifact_name(backup_id, compressed=True) == f"{backup_id}.dump.zst"
    assert artifact_name(backup_id, compressed=False) == f"{backup_id}.dump"
    assert manifest_name(backup_id) == f"{backup_id}.manifest.json"


def test_encrypted_artifact_names() -> None:
    backup_id = "backup-2024-01-15T10-30-00-000Z"
    assert artifact_name(backup_id, True, encrypted=True) == f"{backup_id}.dump.zst.age"
    assert artifact_name(backup_id, False, encrypted=True) == f"{backup_id}.dump.age"
