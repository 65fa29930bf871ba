"""Parallel restores (pg_restore -j over a temporary file) against a real PostgreSQL 15,
the real pg_restore and Pagila; and the choice between serial and parallel."""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import pytest

from pgbackup import ConnectionInfo, LocalStorage, Manifest, new_backup_id, restore_jobs, run_dump
from pgbackup import restore as restore_module
from pgbackup.dbadmin import database_exists
from pgbackup.dryrun import analyze_restore
from pgbackup.recovery import restore_checked, scratch_restore
from pgbackup.restore import (
    RestoreError,
    RestoreProgress,
    checked_archive_size,
    restore_into_new_database,
)
from pgbackup.restore_jobs import TEMP_HEADROOM, Parallelism, choose_jobs, human_size
from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    """Where the restores' temporary files go: it must be empty after each restore."""
    directory = tmp_path / "restore-temp"
    directory.mkdir()
    return directory


@pytest.fixture
def manifest(pagila: str, storage: LocalStorage) -> Manifest:
    return run_dump(ConnectionInfo.from_url(pagila), storage, new_backup_id(), "full")


class Cancelled(Exception):
    pass


def replace_artifact(storage: LocalStorage, manifest: Manifest, data: bytes) -> Manifest:
    """Store ``data`` as the artifact, with a manifest that vouches for it."""
    with storage.atomic_writer(manifest.artifact) as handle:
        handle.write(data)
    return manifest.model_copy(
        update={"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def two_jobs(temp_dir: Path) -> Parallelism:
    return Parallelism(jobs=2, temp_dir=str(temp_dir))


def test_parallel_restore_into_a_new_database_equals_the_source(
    pagila: str, storage: LocalStorage, manifest: Manifest, server: ConnectionInfo,
    new_name: str, pg_server: PostgresServer, temp_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_module, "PROGRESS_INTERVAL", 0.01)
    seen: list[RestoreProgress] = []
    temp_files: set[str] = set()

    def progress(event: RestoreProgress) -> None:
        seen.append(event)
        temp_files.update(path.name for path in temp_dir.iterdir())

    outcome = restore_into_new_database(server, new_name, storage, manifest,
                                        progress=progress, parallel=two_jobs(temp_dir))

    target = pg_server.url(new_name)
    assert schema_dump(target) == schema_dump(pagila)
    assert table_fingerprints(target) == table_fingerprints(pagila)
    assert (outcome.jobs.jobs, outcome.jobs.mode) == (2, "parallel (2 jobs)")
    assert outcome.jobs.temp_bytes == checked_archive_size(storage, manifest)
    assert outcome.warnings == []
    assert seen[-1] == RestoreProgress(outcome.items_total, outcome.items_total, None)
    assert len(temp_files) == 1 and next(iter(temp_files)).startswith("pgbackup-restore-")
    assert list(temp_dir.iterdir()) == []  # deleted after success


def test_a_checked_restore_in_parallel_matches_its_manifest(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    temp_dir: Path,
) -> None:
    report = restore_checked(server, new_name, storage, manifest,
                             parallel=two_jobs(temp_dir))
    assert report.matches and report.outcome.jobs.jobs == 2
    assert list(temp_dir.iterdir()) == []


def test_a_scratch_restore_runs_in_parallel_and_is_dropped(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, temp_dir: Path,
) -> None:
    name = f"scratch_{secrets.token_hex(4)}"
    with scratch_restore(server, storage, manifest, name,
                         parallel=two_jobs(temp_dir)) as report:
        assert report.matches and report.outcome.jobs.parallel
    assert not database_exists(server, name)
    assert list(temp_dir.iterdir()) == []


def test_a_failed_parallel_restore_drops_the_database_and_the_temporary_file(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    temp_dir: Path,
) -> None:
    """The archive is cut midway but the manifest vouches for it: pg_restore -j fails
    after it restored some items."""
    data = storage.path(manifest.artifact).read_bytes()
    damaged = replace_artifact(storage, manifest, data[: len(data) // 2])

    with pytest.raises(RestoreError, match=r"cannot (decompress|read)|pg_restore"):
        restore_into_new_database(server, new_name, storage, damaged,
                                  parallel=two_jobs(temp_dir))
    assert not database_exists(server, new_name)
    assert list(temp_dir.iterdir()) == []


def test_a_parallel_restore_failing_in_pg_restore_leaves_no_temporary_file(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    temp_dir: Path,
) -> None:
    with pytest.raises(RestoreError, match="pg_restore not found"):
        restore_into_new_database(server, new_name, storage, manifest,
                                  parallel=two_jobs(temp_dir),
                                  pg_restore="/nonexistent/bin/pg_restore")
    assert not database_exists(server, new_name)
    assert list(temp_dir.iterdir()) == []


def test_an_existing_database_is_refused_before_anything_is_written(
    pagila: str, storage: LocalStorage, manifest: Manifest, server: ConnectionInfo,
    temp_dir: Path,
) -> None:
    name = ConnectionInfo.from_url(pagila).dbname
    with pytest.raises(RestoreError, match="already exists"):
        restore_into_new_database(server, name, storage, manifest,
                                  parallel=two_jobs(temp_dir))
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("when", ["unpacking", "restoring"])
def test_cancelling_a_parallel_restore_drops_the_database_and_the_temporary_file(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch, when: str,
) -> None:
    monkeypatch.setattr(restore_module, "PROGRESS_INTERVAL", 0.01)

    def cancel(event: RestoreProgress) -> None:
        unpacking = event.current_item == restore_module.UNPACKING
        if (when == "unpacking" and unpacking) or (
                when == "restoring" and 0 < event.items_done < event.items_total):
            raise Cancelled

    started = time.monotonic()
    with pytest.raises(Cancelled):
        restore_into_new_database(server, new_name, storage, manifest, progress=cancel,
                                  parallel=two_jobs(temp_dir))
    assert time.monotonic() - started < 30
    assert not database_exists(server, new_name)
    assert list(temp_dir.iterdir()) == []


def test_auto_is_serial_for_a_small_archive_and_parallel_above_the_threshold(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer, temp_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_jobs, "cpu_count", lambda: 2)
    size = checked_archive_size(storage, manifest)
    assert size < restore_jobs.PARALLEL_THRESHOLD  # Pagila is small

    small = restore_into_new_database(server, new_name, storage, manifest,
                                      parallel=Parallelism(temp_dir=str(temp_dir)))
    pg_server.drop_database(new_name)
    large = restore_into_new_database(
        server, new_name, storage, manifest,
        parallel=Parallelism(temp_dir=str(temp_dir), threshold=size))

    assert small.jobs.mode == "serial" and "is below 64.0 MiB" in small.jobs.reason
    assert large.jobs.mode == "parallel (2 jobs)"
    assert list(temp_dir.iterdir()) == []


def test_no_room_for_the_temporary_file_falls_back_to_serial_with_a_warning(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_jobs, "free_space", lambda _directory: 1000)

    outcome = restore_into_new_database(server, new_name, storage, manifest,
                                        parallel=two_jobs(temp_dir))

    assert outcome.jobs.mode == "serial"
    assert outcome.warnings[0].startswith("restored serially: the uncompressed archive")
    assert str(temp_dir) in outcome.warnings[0]


def test_a_disk_that_fills_up_while_the_file_is_written_falls_back_to_serial(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    pg_server: PostgresServer, pagila: str, temp_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(*_args: object, **_kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    real_copy = restore_module.copy_stream
    monkeypatch.setattr(restore_module, "copy_stream",
                        lambda src, dst, on_chunk=None: full() if hasattr(dst, "name")
                        and str(temp_dir) in str(dst.name) else real_copy(src, dst, on_chunk))

    outcome = restore_into_new_database(server, new_name, storage, manifest,
                                        parallel=two_jobs(temp_dir))

    assert outcome.jobs.mode == "serial"
    assert "filled up" in (outcome.jobs.warning or "")
    assert table_fingerprints(pg_server.url(new_name)) == table_fingerprints(pagila)
    assert list(temp_dir.iterdir()) == []


def test_a_damaged_artifact_is_refused_before_anything_is_written(
    storage: LocalStorage, manifest: Manifest, server: ConnectionInfo, new_name: str,
    temp_dir: Path,
) -> None:
    artifact = storage.path(manifest.artifact)
    data = bytearray(artifact.read_bytes())
    data[100] ^= 1
    artifact.write_bytes(bytes(data))

    with pytest.raises(RestoreError, match="does not match its manifest"):
        restore_into_new_database(server, new_name, storage, manifest,
                                  parallel=two_jobs(temp_dir))
    assert not database_exists(server, new_name)
    assert list(temp_dir.iterdir()) == []


def test_choose_jobs() -> None:
    auto = Parallelism(temp_dir="/nowhere", threshold=100)
    room = 10**6 + TEMP_HEADROOM
    assert choose_jobs(None, None).mode == "serial"
    assert choose_jobs(Parallelism(jobs=1), None).reason == "serial: RESTORE_JOBS is 1"
    assert choose_jobs(auto, 10**6, cpus=1).mode == "serial"
    assert choose_jobs(auto, 99, cpus=4).mode == "serial"
    assert choose_jobs(auto, 10**6, cpus=4, free_bytes=room).mode == "parallel (4 jobs)"
    assert choose_jobs(auto, 10**6, cpus=4, encrypted=True).mode == "serial"
    explicit = Parallelism(jobs=3, temp_dir="/nowhere")
    assert choose_jobs(explicit, 10, cpus=1, free_bytes=room, encrypted=True).jobs == 3
    cramped = choose_jobs(explicit, 10**6, cpus=4, free_bytes=room - 1)
    assert cramped.mode == "serial" and "does not fit" in (cramped.warning or "")
    with pytest.raises(ValueError, match="1 to 64"):
        Parallelism(jobs=0)


def test_the_dry_run_shows_the_temporary_space_of_a_parallel_restore(
    pagila: str, storage: LocalStorage, manifest: Manifest, temp_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_jobs, "cpu_count", lambda: 2)
    target = ConnectionInfo.from_url(pagila)
    size = checked_archive_size(storage, manifest)

    parallel = analyze_restore(target, storage, manifest, mode="new-database",
                               new_database="copy", parallel=Parallelism(
                                   temp_dir=str(temp_dir), threshold=size))
    temp = parallel.disk.restore_temp
    assert temp is not None
    assert (temp.jobs, temp.mode, temp.directory, temp.bytes, temp.fits) == (
        2, "parallel (2 jobs)", str(temp_dir), size, True)
    assert temp.free_bytes is not None and temp.free_bytes > size
    assert parallel.disk.notes[-1].startswith(
        f"Restored in parallel (2 jobs): the uncompressed archive, {human_size(size)}, is "
        f"written to {temp_dir} (")
    assert parallel.can_restore and parallel.warnings == []

    small = analyze_restore(target, storage, manifest, mode="overwrite",
                            parallel=Parallelism(temp_dir=str(temp_dir)))
    assert small.disk.restore_temp is not None and small.disk.restore_temp.mode == "serial"
    assert small.disk.notes[-1].startswith("Restored serially (the archive (")
    assert list(temp_dir.iterdir()) == []  # the dry run writes nothing

    unasked = analyze_restore(target, storage, manifest, mode="overwrite")
    assert unasked.disk.restore_temp is None


def test_the_dry_run_warns_when_the_temporary_file_does_not_fit(
    pagila: str, storage: LocalStorage, manifest: Manifest, temp_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_jobs, "free_space", lambda _directory: 1000)

    report = analyze_restore(ConnectionInfo.from_url(pagila), storage, manifest,
                             mode="overwrite", parallel=two_jobs(temp_dir))

    temp = report.disk.restore_temp
    assert temp is not None and (temp.jobs, temp.fits, temp.free_bytes) == (1, False, 1000)
    assert report.can_restore  # serial still works
    assert [w for w in report.warnings if "restored serially" in w] == [
        f"The backup would be restored serially: the uncompressed archive "
        f"({human_size(temp.bytes or 0)}) that a parallel restore (2 jobs) writes to "
        f"{temp_dir} does not fit in its 1000 B of free space (with 64.0 MiB to spare); set "
        "RESTORE_TEMP_DIR to a larger disk."]


def test_the_recorded_archive_size_spares_restores_and_dry_runs_a_read(
    pagila: str, storage: LocalStorage, manifest: Manifest, server: ConnectionInfo,
    new_name: str, pg_server: PostgresServer, temp_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The manifest records pg_dump's archive size; only a backup taken before it did has
    its artifact decompressed once more to measure it."""
    assert manifest.archive_size == checked_archive_size(storage, manifest)
    schema_only = run_dump(ConnectionInfo.from_url(pagila), storage, new_backup_id(),
                           "schema-only")
    assert schema_only.archive_size == checked_archive_size(storage, schema_only)
    measured: list[str] = []

    def measuring(storage: LocalStorage, manifest: Manifest, *identities: object) -> int:
        measured.append(manifest.backup_id)
        return checked_archive_size(storage, manifest)

    monkeypatch.setattr(restore_module, "checked_archive_size", measuring)
    monkeypatch.setattr("pgbackup.dryrun.checked_archive_size", measuring)
    parallel = two_jobs(temp_dir)
    dry_run = analyze_restore(ConnectionInfo.from_url(pagila), storage, manifest,
                              mode="new-database", new_database="copy", parallel=parallel)
    assert dry_run.disk.restore_temp is not None
    assert dry_run.disk.restore_temp.bytes == manifest.archive_size
    outcome = restore_into_new_database(server, new_name, storage, manifest, parallel=parallel)
    assert outcome.jobs.temp_bytes == manifest.archive_size
    assert measured == []

    older = manifest.model_copy(update={"archive_size": None})
    pg_server.drop_database(new_name)
    outcome = restore_into_new_database(server, new_name, storage, older, parallel=parallel)
    assert outcome.jobs.temp_bytes == manifest.archive_size
    assert measured == [manifest.backup_id]
    assert table_fingerprints(pg_server.url(new_name)) == table_fingerprints(pagila)
