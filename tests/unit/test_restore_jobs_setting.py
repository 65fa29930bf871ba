"""RESTORE_JOBS and RESTORE_TEMP_DIR: parsed once at start-up, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgbackup import ConfigError
from services.settings import load_settings

GOOD = {"DATABASE_URL": "postgresql://backup:pw@db.example:5432/shop"}


def settings(tmp_path: Path, **env: str) -> dict[str, object]:
    return load_settings({**GOOD, **env}, tmp_path / "instance")


@pytest.mark.parametrize(("value", "jobs"), [
    (None, None), ("", None), ("auto", None), (" AUTO ", None), ("1", 1), (" 4 ", 4),
    ("64", 64),
])
def test_restore_jobs_values(tmp_path: Path, value: str | None, jobs: int | None) -> None:
    env = {} if value is None else {"RESTORE_JOBS": value}
    assert settings(tmp_path, **env)["RESTORE_JOBS"] == jobs


@pytest.mark.parametrize("value", ["0", "-1", "65", "two", "2.5", "parallel"])
def test_bad_restore_jobs_are_refused_with_a_sentence(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(tmp_path, RESTORE_JOBS=value)
    assert str(error.value) == (
        "RESTORE_JOBS must be auto (the default: parallel when it pays), 1 (always serial) "
        f"or a number of parallel jobs up to 64 (got {value.lower()!r})")


def test_restore_temp_dir_defaults_to_the_system_temporary_directory(tmp_path: Path) -> None:
    assert settings(tmp_path)["RESTORE_TEMP_DIR"] is None
    assert settings(tmp_path, RESTORE_TEMP_DIR=" /srv/tmp ")["RESTORE_TEMP_DIR"] == "/srv/tmp"
