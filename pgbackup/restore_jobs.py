"""How many pg_restore jobs a restore runs: one (serial, streamed, a single transaction) or
several (``pg_restore -j N`` over the archive uncompressed into a temporary file).

``pg_restore -j`` needs a seekable archive and cannot run in a single transaction, so a
parallel restore is only for a database that is thrown away when the restore fails (a new
database, the replacement of an overwrite, a scratch database): the caller says so by
passing a :class:`Parallelism`. :func:`choose_jobs` then picks serial or parallel from the
archive's uncompressed size, the CPUs and the free space where the temporary file goes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

# From this uncompressed archive size on, parallel pays: measured with
# tools/benchmarks/restore_cost.py on 2 CPUs, no faster at 22 MiB, 12% faster at 67 MiB.
PARALLEL_THRESHOLD = 64 * 2**20
MAX_JOBS = 64
# Left free beside the temporary file, so that a restore never fills a disk to the brim.
TEMP_HEADROOM = 64 * 2**20


@dataclass(frozen=True)
class Parallelism:
    """What the caller allows: ``jobs`` None chooses automatically, 1 is always serial,
    N is N jobs whenever the temporary file fits. ``temp_dir``: where the uncompressed
    archive goes (None: the system's temporary directory, ``TMPDIR``). ``threshold``: the
    uncompressed size from which ``auto`` goes parallel."""

    jobs: int | None = None
    temp_dir: str | None = None
    threshold: int = PARALLEL_THRESHOLD

    def __post_init__(self) -> None:
        if self.jobs is not None and not 1 <= self.jobs <= MAX_JOBS:
            raise ValueError(f"restore jobs must be 1 to {MAX_JOBS} or None, not {self.jobs}")

    @property
    def directory(self) -> str:
        return self.temp_dir or tempfile.gettempdir()


@dataclass(frozen=True)
class JobsChoice:
    """The mode a restore runs in. ``temp_bytes``: the temporary file's size (the
    uncompressed archive), None when not measured; ``warning``: set when a parallel
    restore was wanted but falls back to serial."""

    jobs: int
    reason: str
    temp_dir: str | None = None
    temp_bytes: int | None = None
    temp_free_bytes: int | None = None
    warning: str | None = None

    @property
    def parallel(self) -> bool:
        return self.jobs > 1

    @property
    def mode(self) -> str:
        """``serial`` or ``parallel (N jobs)``, as reports say it."""
        return f"parallel ({self.jobs} jobs)" if self.parallel else "serial"


SERIAL = JobsChoice(1, "serial: pg_restore --single-transaction")


def needs_size(parallelism: Parallelism | None, encrypted: bool) -> bool:
    """Whether :func:`choose_jobs` needs the archive's uncompressed size (a read of it):
    not when the answer is serial whatever the size."""
    if parallelism is None or parallelism.jobs == 1:
        return False
    return parallelism.jobs is not None or (not encrypted and cpu_count() >= 2)


def choose_jobs(
    parallelism: Parallelism | None, archive_bytes: int | None, *, encrypted: bool = False,
    cpus: int | None = None, free_bytes: int | None = None,
) -> JobsChoice:
    """Serial or parallel, and why. ``archive_bytes``: the uncompressed archive (None when
    :func:`needs_size` said it is not needed); ``free_bytes``: the free space of
    ``parallelism.directory`` (read here when None). ``auto`` never writes the plaintext of
    an encrypted backup to disk; an explicit N does (the file is private to the user)."""
    if parallelism is None:
        return SERIAL
    cpus = cpus if cpus is not None else cpu_count()
    if parallelism.jobs == 1:
        return JobsChoice(1, "serial: RESTORE_JOBS is 1")
    if parallelism.jobs is None and encrypted:
        return JobsChoice(1, "serial: an encrypted backup is never decrypted to disk "
                             "unless RESTORE_JOBS asks for parallel restores")
    if parallelism.jobs is None and cpus < 2:
        return JobsChoice(1, f"serial: {cpus} CPU")
    assert archive_bytes is not None, "needs_size() said the size is needed"
    if parallelism.jobs is None and archive_bytes < parallelism.threshold:
        return JobsChoice(1, f"serial: the archive ({human_size(archive_bytes)} uncompressed) "
                             f"is below {human_size(parallelism.threshold)}, where parallel "
                             "starts to pay", temp_bytes=archive_bytes)
    jobs = parallelism.jobs or cpus
    directory = parallelism.directory
    free = free_bytes if free_bytes is not None else free_space(directory)
    if free < archive_bytes + TEMP_HEADROOM:
        warning = (f"restored serially: the uncompressed archive ({human_size(archive_bytes)}) "
                   f"that a parallel restore ({jobs} jobs) writes to {directory} does not fit "
                   f"in its {human_size(free)} of free space (with "
                   f"{human_size(TEMP_HEADROOM)} to spare); set RESTORE_TEMP_DIR to a "
                   "larger disk")
        return JobsChoice(1, "serial: no room for the temporary file", directory,
                          archive_bytes, free, warning)
    return JobsChoice(jobs, f"parallel: pg_restore -j {jobs} over a temporary file",
                      directory, archive_bytes, free)


def cpu_count() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB' (binary units, one decimal), as the dashboard shows sizes."""
    value, unit = float(size), "B"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def free_space(directory: str) -> int:
    """Free bytes in ``directory``; 0 when it cannot be read (then nothing fits)."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0
