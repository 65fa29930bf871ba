"""The catalog holds notification secrets: its folder is 0700 and its files 0600, whatever
the umask the process was started with, for the default path and any sqlite:/// path."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import create_app
from services import activity
from services.extensions import db
from services.settings import load_settings

DATABASE_URL = "postgresql://backup@db.example:5432/shop"  # never connected to here
SUFFIXES = ("", "-wal", "-shm")


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """Start as a login shell would (umask 022); put back what the process had."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def modes(catalog: Path) -> dict[str, int]:
    return {suffix: mode(f"{catalog}{suffix}") for suffix in SUFFIXES}


def app_with_catalog(catalog: Path):
    return create_app({"DATABASE_URL": DATABASE_URL, "SECRET_KEY": "k" * 40, "TESTING": True,
                       "METADATA_DATABASE_URL": f"sqlite:///{catalog}"})


def test_a_new_catalog_in_a_new_folder_is_private(tmp_path):
    catalog = tmp_path / "state" / "catalog.sqlite3"
    app = app_with_catalog(catalog)
    with app.app_context():
        activity.record("test.write", actor="cli")  # the pooled connection keeps -wal, -shm
        assert modes(catalog) == dict.fromkeys(SUFFIXES, 0o600)
        db.engine.dispose()
    assert mode(catalog.parent) == 0o700


def test_a_world_readable_catalog_in_use_is_made_private(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    catalog = shared / "catalog.sqlite3"
    first = app_with_catalog(catalog)  # say, a web process of the previous version
    with first.app_context():
        activity.record("test.write", actor="cli")
        for suffix in SUFFIXES:
            os.chmod(f"{catalog}{suffix}", 0o644)
        second = app_with_catalog(catalog)  # a worker starting meanwhile
        with second.app_context():
            activity.record("test.write", actor="cli")
            assert modes(catalog) == dict.fromkeys(SUFFIXES, 0o600)
            db.engine.dispose()
        db.engine.dispose()
    assert mode(shared) == 0o755  # a folder that was there already is not the app's own


def test_the_default_instance_folder_and_catalog_are_private(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    catalog = instance / "catalog.sqlite3"
    catalog.touch(mode=0o644)
    config = load_settings({"DATABASE_URL": DATABASE_URL}, instance)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{catalog}"
    assert (mode(instance), mode(catalog), mode(instance / "secret_key")) == (0o700, 0o600, 0o600)
    (instance / "new-file").touch()  # and what the process writes from now on is its own
    assert mode(instance / "new-file") == 0o600
