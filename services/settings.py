"""Configuration from the environment, validated once at start-up.

Every setting has one name in the environment (and in ``.env``). A missing or malformed
value raises :class:`pgbackup.ConfigError` with a sentence that says which variable is
wrong and how to fix it; ``create_app`` turns that into a clean exit.

Every process (web, worker, scheduler, CLI) builds its app from here first, so this is also
where what the app writes is made private to its user: the catalog holds notification
secrets and TOTP keys, the instance folder the generated secret key.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pgbackup import DEFAULT_ZSTD_LEVEL, DEFAULT_ZSTD_THREADS, ConfigError, ConnectionInfo
from pgbackup.restore_jobs import MAX_JOBS as MAX_RESTORE_JOBS

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PRIVATE_UMASK = 0o077  # files 0600, folders 0700
SQLITE_SUFFIXES = ("", "-wal", "-shm")


def load_settings(environ: Mapping[str, str], instance_path: Path) -> dict[str, Any]:
    """Turn environment variables into Flask config keys (and make new files private)."""
    os.umask(PRIVATE_UMASK)
    target = _protected_database(environ.get("DATABASE_URL", ""))
    production = environ.get("APP_ENV", "development") == "production"
    return {
        "DATABASE_URL": environ["DATABASE_URL"],
        "TARGET_DATABASE": target.dbname,
        "REDIS_URL": _redis_url(environ.get("REDIS_URL") or DEFAULT_REDIS_URL),
        "SQLALCHEMY_DATABASE_URI": _metadata_url(
            environ.get("METADATA_DATABASE_URL", ""), target, instance_path
        ),
        "BACKUP_DIR": str(Path(environ.get("BACKUP_DIR") or "./backups").resolve()),
        "TABLE_CHECKSUMS": _flag(environ, "TABLE_CHECKSUMS", default=True),
        # Role password hashes in the saved globals (pgbackup.globals): only if asked.
        "BACKUP_ROLE_PASSWORDS": _flag(environ, "BACKUP_ROLE_PASSWORDS", default=False),
        # Artifacts' compression (docs/performance.md has the measured trade-off).
        "ZSTD_LEVEL": _zstd_level(environ.get("ZSTD_LEVEL", "")),
        "ZSTD_THREADS": _zstd_threads(environ.get("ZSTD_THREADS", "")),
        # Parallel restores (docs/restore.md#parallel-restore): None is auto.
        "RESTORE_JOBS": _restore_jobs(environ.get("RESTORE_JOBS", "")),
        "RESTORE_TEMP_DIR": environ.get("RESTORE_TEMP_DIR", "").strip() or None,
        "DEFAULT_DESTINATIONS": _names(environ, "DEFAULT_DESTINATIONS") or ["local"],
        "BACKUP_AGE_IDENTITIES": environ.get("BACKUP_AGE_IDENTITIES") or None,
        "COPY_RETRY_INTERVALS": _intervals(environ, "COPY_RETRY_INTERVALS", (60, 300, 900)),
        "COPY_FAILURE_ALERT_AFTER": _positive_int(environ, "COPY_FAILURE_ALERT_AFTER") or 3,
        "MANUAL_RETENTION_DAYS": _positive_int(environ, "MANUAL_RETENTION_DAYS"),
        "MANUAL_KEEP_AT_LEAST": _positive_int(environ, "MANUAL_KEEP_AT_LEAST") or 1,
        "LOCAL_RETENTION_DAYS": _positive_int(environ, "LOCAL_RETENTION_DAYS"),
        "LOCAL_KEEP_AT_LEAST": _positive_int(environ, "LOCAL_KEEP_AT_LEAST") or 1,
        "DISK_WARNING_PERCENT": _positive_int(environ, "DISK_WARNING_PERCENT") or 80,
        "DISK_CRITICAL_PERCENT": _positive_int(environ, "DISK_CRITICAL_PERCENT") or 90,
        "DISK_WARNING_DAYS": _positive_int(environ, "DISK_WARNING_DAYS") or 7,
        # Change capture's replication slots (services/capture_slots.py).
        "CHANGE_CAPTURE": _flag(environ, "CHANGE_CAPTURE", default=True),
        "SLOT_WAL_WARNING_BYTES": _positive_int(environ, "SLOT_WAL_WARNING_BYTES") or 2**30,
        "SLOT_WAL_CRITICAL_BYTES": _positive_int(environ, "SLOT_WAL_CRITICAL_BYTES") or 4 * 2**30,
        "CAPTURE_SLOT_MAX_IDLE_DAYS": _positive_int(environ, "CAPTURE_SLOT_MAX_IDLE_DAYS") or 7,
        "SECRET_KEY": _secret_key(environ.get("SECRET_KEY", ""), production, instance_path),
        "MANIFEST_KEY": _manifest_key(environ.get("MANIFEST_KEY", "")),
        "APP_ENV": "production" if production else "development",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Only a request that changes the session sends its cookie. Flask's default sends it
        # on every request, and the dashboard's polls, started before (say) the second
        # factor's setup answered, put back the session they had read: the setup was lost.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "PERMANENT_SESSION_LIFETIME": timedelta(
            hours=_positive_int(environ, "SESSION_HOURS") or 12),
    }


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (got {value!r})")


def _names(environ: Mapping[str, str], name: str) -> list[str]:
    """A comma-separated list of destination names (checked against the catalog at use)."""
    return [part.strip() for part in environ.get(name, "").split(",") if part.strip()]


def _intervals(environ: Mapping[str, str], name: str, default: tuple[int, ...]
               ) -> tuple[int, ...]:
    """Seconds before each retry, comma-separated (``none``: no automatic retry)."""
    value = environ.get(name, "").strip()
    if not value:
        return default
    if value.lower() == "none":
        return ()
    parts = [part.strip() for part in value.split(",")]
    if not all(part.isdigit() for part in parts) or len(parts) > 20:
        raise ConfigError(f"{name} must be up to 20 comma-separated whole numbers of seconds, "
                          f"e.g. 60,300,900, or none (got {value!r})")
    return tuple(int(part) for part in parts)


def _positive_int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1 (got {value!r})")
    return int(value)


def _zstd_level(value: str) -> int:
    value = value.strip()
    if not value:
        return DEFAULT_ZSTD_LEVEL
    if not value.isdigit() or not 1 <= int(value) <= 19:
        raise ConfigError(f"ZSTD_LEVEL must be a whole number from 1 (fastest) to 19 "
                          f"(smallest); the default is {DEFAULT_ZSTD_LEVEL} (got {value!r})")
    return int(value)


def _zstd_threads(value: str) -> int:
    value = value.strip()
    if not value:
        return DEFAULT_ZSTD_THREADS
    if value == "-1" or (value.isdigit() and int(value) <= 256):
        return int(value)
    raise ConfigError("ZSTD_THREADS must be -1 (one per CPU), 0 (compress in the worker's own "
                      "thread) or a number of threads up to 256, 1 by default "
                      f"(got {value!r})")


def _restore_jobs(value: str) -> int | None:
    """``auto`` (or unset): None, the restore chooses; else a number of pg_restore jobs."""
    value = value.strip().lower()
    if value in ("", "auto"):
        return None
    if value.isdigit() and 1 <= int(value) <= MAX_RESTORE_JOBS:
        return int(value)
    raise ConfigError(f"RESTORE_JOBS must be auto (the default: parallel when it pays), 1 "
                      f"(always serial) or a number of parallel jobs up to {MAX_RESTORE_JOBS} "
                      f"(got {value!r})")


def _protected_database(url: str) -> ConnectionInfo:
    if not url:
        raise ConfigError(
            "DATABASE_URL is not set: point it at the PostgreSQL database to protect, "
            "e.g. postgresql://backup@db.example:5432/shop"
        )
    try:
        return ConnectionInfo.from_url(url)
    except ConfigError as exc:
        raise ConfigError(f"DATABASE_URL is malformed: {exc}") from None


def _redis_url(url: str) -> str:
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigError(
            "REDIS_URL must start with redis://, rediss:// or unix://, "
            "e.g. redis://127.0.0.1:6379/0"
        )
    return url


def _metadata_url(url: str, target: ConnectionInfo, instance_path: Path) -> str:
    """The catalog's own database: SQLite in the instance folder unless told otherwise."""
    if not url:
        _private_folder(instance_path)
        catalog = instance_path / "catalog.sqlite3"
        _private_sqlite(str(catalog))
        return f"sqlite:///{catalog}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "METADATA_DATABASE_URL is malformed: use sqlite:///path/catalog.sqlite3 "
            "or postgresql://user@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError("METADATA_DATABASE_URL must be a sqlite:// or postgresql:// URL")
    if backend == "postgresql":
        if _same_database(parsed, target):
            raise ConfigError(
                "METADATA_DATABASE_URL points at the protected database (DATABASE_URL): "
                "the catalog must live elsewhere, or a restore would overwrite it"
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        _private_sqlite(parsed.database)
    return parsed.render_as_string(hide_password=False)


def _private_folder(path: Path) -> None:
    """The instance folder is the app's own: 0700, even if an older version made it 0755."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _private_sqlite(database: str | None) -> None:
    """A SQLite catalog's files are made 0600, those of a catalog that an older version
    made world-readable too (SQLite gives new -wal and -shm files the mode of the database
    file). A missing folder is made 0700; one that exists may be shared, so it is left."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (f"{path}{suffix}" for suffix in SQLITE_SUFFIXES):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(f"cannot make the catalog file {name} private (mode 0600): "
                              f"{exc.strerror}; run the app as the file's owner") from None


def _same_database(parsed: Any, target: ConnectionInfo) -> bool:
    return parsed.database == target.dbname and _server(parsed.host, parsed.port) == _server(
        target.host, target.port
    )


def _server(host: str | None, port: Any) -> tuple[str, int]:
    """Normalise a server address so that 127.0.0.1, a socket and localhost compare equal."""
    if not host or host in ("127.0.0.1", "::1") or host.startswith("/"):
        host = "localhost"
    return host, int(port or 5432)


def _manifest_key(value: str) -> str | None:
    """The secret that signs manifests, when it is not derived from SECRET_KEY."""
    if value and len(value) < 32:
        raise ConfigError("MANIFEST_KEY must be at least 32 characters (or unset, to derive "
                          "the manifest key from SECRET_KEY)")
    return value or None


def _secret_key(value: str, production: bool, instance_path: Path) -> str:
    """Production needs SECRET_KEY; development keeps a generated one in instance/."""
    if value:
        if production and len(value) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")
        return value
    if production:
        raise ConfigError(
            "SECRET_KEY is not set: production mode (APP_ENV=production) needs a random "
            "secret of 32+ characters, e.g. from: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'"
        )
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        _private_folder(instance_path)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return key_file.read_text().strip()
