"""The catalog's schema, brought to what this version needs whenever a process starts.

The Alembic revisions are in ``migrations/``. Web, worker, scheduler and CLI all create
the app, so all of them come here; a lock (a file lock beside a SQLite catalog, an advisory
lock on PostgreSQL) lets one do the work while the others wait and then find it done.

- An empty catalog is created from the models and stamped at the newest revision (a test
  checks that the revisions build exactly the same schema).
- A catalog at an older revision is upgraded. A SQLite catalog is first copied, with
  SQLite's backup API, to ``<file>.before-<revision>``.
- A catalog made before migrations existed (tables but no ``alembic_version``) is taken to
  be release 0.1.0's, stamped as the baseline, then upgraded.
- A catalog at a revision this version does not know (a newer version made it) is refused.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from services.extensions import db

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
BASELINE = "0001_baseline"
LOCK_KEY = 0x5042_4D5F  # "PBM_": the catalog's advisory lock on PostgreSQL
log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # this module says what it changed


class CatalogSchemaError(RuntimeError):
    """The catalog cannot be used by this version; the message says what to do."""


def bring_up_to_date() -> None:
    """Create or upgrade the catalog (inside an app context) so it matches the models."""
    head = _scripts().get_current_head()
    assert head is not None  # migrations/ has revisions: BASELINE at least
    with _exclusive(db.engine):
        with db.engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        if not tables:
            db.create_all()
            _run(command.stamp, head)
        elif current != head:
            _upgrade(current, head)
    _refuse_missing_columns()


def _upgrade(current: str | None, head: str) -> None:
    if current is not None and not _known(current):
        raise CatalogSchemaError(
            f"the catalog is at revision {current}, which this version does not know: a newer "
            "version made it; run that version, or restore the catalog's copy")
    if current is None:
        _refuse_unless_baseline()
        log.warning("the catalog predates migrations: it is release 0.1.0's (%s)", BASELINE)
    copy = _copy_sqlite_catalog(current or "0.1.0")
    try:
        if current is None:
            _run(command.stamp, BASELINE)
        _run(command.upgrade, head)
    except SQLAlchemyError as exc:
        kept = f"; the catalog as it was is in {copy}" if copy else ""
        raise CatalogSchemaError(f"upgrading the catalog to {head} failed: {exc}{kept}") from exc
    log.warning("catalog upgraded from %s to %s", current or BASELINE, head)


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _refuse_unless_baseline() -> None:
    """An unversioned catalog must have every table and column of release 0.1.0."""
    expected = _columns(_baseline_engine())
    present = _columns(db.engine)
    missing = sorted(table if table not in present else f"{table}.{column}"
                     for table, columns in expected.items()
                     for column in columns - present.get(table, set()))
    missing = list(dict.fromkeys(missing))  # a missing table once, not once per column
    if missing:
        raise CatalogSchemaError(
            f"the catalog lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
            "a development version older than release 0.1.0 made it, and there are no "
            "migrations from there; move it away to start a new catalog (backups in "
            "BACKUP_DIR keep their manifests)")


def _baseline_engine() -> Engine:
    """An in-memory SQLite catalog built by the baseline revision alone."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as connection:
        command.upgrade(_config(connection), BASELINE)
    return engine


def _columns(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names() if table != "alembic_version"}


def _run(step: Callable[[Config, str], None], revision: str) -> None:
    """One Alembic command on a connection of the app's engine."""
    with db.engine.begin() as connection:
        step(_config(connection), revision)


def _config(connection: Connection | None = None) -> Config:
    """Alembic's settings; env.py uses ``connection`` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _copy_sqlite_catalog(label: str) -> Path | None:
    path = _sqlite_path(db.engine)
    if path is None:
        return None
    copy = path.with_name(f"{path.name}.before-{label}")
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    os.chmod(copy, 0o600)
    log.warning("copied the catalog to %s before upgrading it", copy)
    return copy


def _refuse_missing_columns() -> None:
    """A last check: a hand-made or half-migrated catalog is named, not failed on later."""
    inspector = inspect(db.engine)
    for table in db.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - present)
        if missing:
            raise CatalogSchemaError(
                f"table {table.name} of the catalog lacks columns {', '.join(missing)}, "
                "although its revision says it should have them; restore the copy made "
                "before the upgrade, or move the catalog away to start a new one")


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One process at a time migrates; the others wait here."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            _advisory(connection, "pg_advisory_lock")
            try:
                yield
            finally:
                _advisory(connection, "pg_advisory_unlock")
        return
    path = _sqlite_path(engine)
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _advisory(connection: Connection, function: str) -> None:
    connection.execute(text(f"SELECT {function}(:key)"), {"key": LOCK_KEY})
    connection.commit()


def _sqlite_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)
