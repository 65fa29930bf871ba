"""Running the pg_dump binary: version, command line, and its stderr."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import IO

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgbackup.connection import tool_env
from pgbackup.errors import BackupError
from pgbackup.processes import die_with_parent

STDERR_LINES_KEPT = 200
PIPE_SIZE = 1024 * 1024  # Linux's default fs.pipe-max-size
_ERROR_LINES_SHOWN = 20
_TABLE_RE = re.compile(r'dumping contents of table "(?P<table>.+)"$')
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\S+)")
# pg_dump's own message prefixes that are not progress chatter (--verbose adds the rest).
_PROBLEM_RE = re.compile(r"^pg_dump: (error|warning|detail|hint):")
# The settings the text of COPY depends on that pg_dump leaves to the session (it sets
# DateStyle, IntervalStyle, extra_float_digits and search_path itself): pinned so that a
# backup's stream and a restored copy read back print the same text (pgbackup.copydigest),
# whatever the server's, the database's or the worker's defaults. Either form of a value
# restores the same on any server. The time zone goes in PGTZ: libpq sends it after the
# ``options``, so a PGTZ of the worker's would win over an option.
PINNED_TIMEZONE = "UTC"
PINNED_OPTIONS = "-c bytea_output=hex"


def _not_found(pg_dump: str) -> BackupError:
    return BackupError(
        f"pg_dump not found: {pg_dump!r} is not an executable on PATH; install the PostgreSQL "
        "client tools (same major version as the server, or newer)"
    )


def pg_dump_version(pg_dump: str = "pg_dump") -> str:
    """The short version of a pg_dump binary, e.g. ``15.19``."""
    try:
        result = subprocess.run(
            [pg_dump, "--version"], capture_output=True, text=True, timeout=60, check=False,
            env=tool_env(),
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise _not_found(pg_dump) from exc
    match = _VERSION_RE.search(result.stdout)
    if result.returncode != 0 or not match:
        output = (result.stderr or result.stdout).strip()
        raise BackupError(
            f"{pg_dump} --version failed (exit status {result.returncode}), is it pg_dump? "
            f"{output}".strip()
        )
    return match[1]


def pg_dump_args(
    pg_dump: str, dsn: str, snapshot_id: str, schema_only: bool
) -> list[str]:
    """Custom-format dump to stdout, uncompressed (we compress), in the given snapshot."""
    args = [
        pg_dump, "--format=custom", "--compress=0", "--verbose", "--no-password",
        f"--snapshot={snapshot_id}", f"--dbname={dsn}",
    ]
    return [*args, "--schema-only"] if schema_only else args


def pinned(env: Mapping[str, str], dsn: str) -> tuple[dict[str, str], str]:
    """``env`` and ``dsn`` for pg_dump with the pinned settings: PGTZ, and PINNED_OPTIONS
    after the dsn's own ``options`` if it has some (libpq then ignores PGOPTIONS), else
    after PGOPTIONS."""
    pinned_env = {**env, "PGTZ": PINNED_TIMEZONE}
    params = conninfo_to_dict(dsn)
    if params.get("options"):
        params["options"] = f"{params['options']} {PINNED_OPTIONS}"
        return pinned_env, make_conninfo("", **params)
    pinned_env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {PINNED_OPTIONS}".strip()
    return pinned_env, dsn


class StderrCollector:
    """Drains a process's stderr in a thread: keeps the tail and tracks the current table."""

    def __init__(self, stream: IO[bytes], max_lines: int = STDERR_LINES_KEPT) -> None:
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.current_table: str | None = None
        self.tables_started = 0
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            match = _TABLE_RE.search(line)
            if match:
                self.current_table = match["table"]
                self.tables_started += 1

    def join(self) -> None:
        self._thread.join()

    def failure_text(self) -> str:
        """The lines that explain a failure: problems and foreign output, else the tail."""
        lines = list(self.lines)
        problems = [
            line for line in lines if _PROBLEM_RE.match(line) or not line.startswith("pg_dump: ")
        ]
        return "\n".join(problems or lines[-_ERROR_LINES_SHOWN:]).strip()


def widen_pipe(fd: int) -> None:
    """Give a pipe a buffer of PIPE_SIZE where Linux allows it (else leave its 64 KiB):
    the reader then gets pieces of up to a MiB per read, not 64 KiB, which costs the
    per-piece work (digest, compression, progress) 16 times less often."""
    with suppress(OSError, AttributeError):  # not Linux, or above fs.pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


@contextmanager
def running(
    args: list[str], env: Mapping[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], StderrCollector]]:
    """Start ``args`` with piped stdout/stderr; on exit the process is reaped and its pipes
    closed. If it is still running (the block failed), its whole process group is killed, so
    a wrapper script's children cannot keep the pipes open. If the calling process dies
    instead, the kernel kills the process (not its group): see :mod:`pgbackup.processes`."""
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(env), start_new_session=True, preexec_fn=die_with_parent(),
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise _not_found(args[0]) from exc
    assert process.stdout is not None and process.stderr is not None
    widen_pipe(process.stdout.fileno())
    collector = StderrCollector(process.stderr)
    try:
        yield process, collector
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        collector.join()
        process.stdout.close()
        process.stderr.close()
