"""A fingerprint of a database's schema, to tell whether changes captured later still fit
the schema a chain of backups started with.

Captured changes are replayed onto the full backup's schema. A DDL statement between two
backups (a new column, a dropped table, a new index or function) would make the replay
fail or restore a database whose schema is not the source's: a chain must then end and a
new one start with a full backup. The fingerprint is the SHA-256 of what ``pg_dump
--schema-only`` prints in a given snapshot, comment lines left out (they name versions),
so it covers every object pg_dump restores, and only the schema: data changes leave it as
it is. So are the ``\\restrict``/``\\unrestrict`` lines of recent pg_dump versions, whose key
is random on every run.
"""

from __future__ import annotations

import hashlib

from pgbackup.connection import ConnectionInfo
from pgbackup.errors import BackupError
from pgbackup.pgdump import running

IGNORED = (b"--", b"\\restrict ", b"\\unrestrict ")  # comments; a random key per run


def schema_fingerprint(conn: ConnectionInfo, snapshot_id: str,
                       pg_dump: str = "pg_dump") -> str:
    """The fingerprint of ``conn``'s database as seen in the exported snapshot."""
    digest = hashlib.sha256()
    with conn.subprocess_env() as (env, dsn):
        args = [pg_dump, "--schema-only", "--no-password", f"--snapshot={snapshot_id}",
                f"--dbname={dsn}"]
        with running(args, env) as (process, stderr):
            assert process.stdout is not None  # started with stdout=PIPE
            for line in process.stdout:
                if line.strip() and not line.startswith(IGNORED):
                    digest.update(line)
            returncode = process.wait()
            stderr.join()
    if returncode != 0:
        detail = conn.redact_text(stderr.failure_text())
        raise BackupError(f"pg_dump --schema-only failed with exit status {returncode}:\n"
                          f"{detail}")
    return digest.hexdigest()
