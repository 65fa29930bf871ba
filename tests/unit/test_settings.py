"""Configuration errors are caught at start-up, with a sentence instead of a stack trace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"DATABASE_URL": "postgresql://backup:pw@db.example:5432/shop"}


def settings(tmp_path, **env):
    return load_settings({**GOOD, **env}, tmp_path / "instance")


def test_defaults_are_embedded(tmp_path):
    config = settings(tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["SQLALCHEMY_DATABASE_URI"].endswith("instance/catalog.sqlite3")
    assert config["BACKUP_DIR"].endswith("/backups")
    assert config["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert config["TARGET_DATABASE"] == "shop"
    key_file = tmp_path / "instance" / "secret_key"
    assert config["SECRET_KEY"] == key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert settings(tmp_path)["SECRET_KEY"] == config["SECRET_KEY"]


def test_compression_defaults_to_the_measured_level_on_every_cpu(tmp_path):
    from pgbackup import DEFAULT_ZSTD_LEVEL, DEFAULT_ZSTD_THREADS

    config = settings(tmp_path)
    assert (config["ZSTD_LEVEL"], config["ZSTD_THREADS"]) == (DEFAULT_ZSTD_LEVEL,
                                                            DEFAULT_ZSTD_THREADS) == (3, 1)
    config = settings(tmp_path, ZSTD_LEVEL=" 19 ", ZSTD_THREADS="0")
    assert (config["ZSTD_LEVEL"], config["ZSTD_THREADS"]) == (19, 0)


def test_postgres_catalog_uses_psycopg(tmp_path):
    config = settings(tmp_path, METADATA_DATABASE_URL="postgresql://app@db.example/catalog")
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"DATABASE_URL": "postgresql://host:notaport/db"}, "DATABASE_URL is malformed"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL must start with"),
        ({"METADATA_DATABASE_URL": "mysql://x/y"}, "sqlite:// or postgresql://"),
        ({"METADATA_DATABASE_URL": "::::"}, "METADATA_DATABASE_URL is malformed"),
        ({"METADATA_DATABASE_URL": "postgresql://other@db.example/shop"},
         "points at the protected database"),
        ({"APP_ENV": "production"}, "SECRET_KEY is not set"),
        ({"APP_ENV": "production", "SECRET_KEY": "short"}, "at least 32"),
        ({"TABLE_CHECKSUMS": "maybe"}, "TABLE_CHECKSUMS must be true or false"),
        ({"MANUAL_RETENTION_DAYS": "0"}, "MANUAL_RETENTION_DAYS must be a whole number"),
        ({"ZSTD_LEVEL": "0"}, r"ZSTD_LEVEL must be a whole number from 1 \(fastest\) to 19"),
        ({"ZSTD_LEVEL": "22"}, r"ZSTD_LEVEL must be .* \(got '22'\)"),
        ({"ZSTD_LEVEL": "fast"}, r"ZSTD_LEVEL must be .* \(got 'fast'\)"),
        ({"ZSTD_THREADS": "-2"}, r"ZSTD_THREADS must be -1 \(one per CPU\), 0"),
        ({"ZSTD_THREADS": "all"}, r"ZSTD_THREADS must be .* \(got 'all'\)"),
        ({"ZSTD_THREADS": "1000"}, r"ZSTD_THREADS must be .* up to 256"),
    ],
)
def test_bad_values_are_named(tmp_path, env, message):
    from pgbackup import ConfigError

    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, **env)


def test_the_app_exits_with_a_sentence_not_a_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "backup", "list"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "configuration error: DATABASE_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr
