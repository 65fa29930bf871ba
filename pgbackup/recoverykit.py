"""The recovery kit's RESTORE file: at the root of every destination, how to restore its
backups with stock tools (aws, age, zstd, sha256sum, pg_restore) when the app is gone.

Plain text, no secret (a bucket, a prefix and an endpoint are not secrets; no key is in it),
the same for every backup of a destination, so it is rewritten only when its content
changes (another version, a destination that moved). Command lines start with ``$ `` and
use the placeholders ``<id>``, ``NEWDB`` and ``key.txt``.
"""

from __future__ import annotations

import shlex

from pgbackup.objectstore import S3Storage
from pgbackup.storage import Storage
from pgbackup.version import TOOL_NAME, __version__

RESTORE_NAME = "RESTORE"
EXAMPLE_ID = "backup-2024-01-15T10-30-00-000Z"


def restore_text(storage: Storage) -> str:
    """The RESTORE file's content for ``storage``."""
    return "\n".join([
        f"How to restore the PostgreSQL backups stored here, without {TOOL_NAME}",
        f"(written by {TOOL_NAME} {__version__}; this file holds no secret)",
        "",
        f"Where: {_where(storage)}",
        "",
        "Each backup <id> (backup-<UTC start time>, e.g. " + EXAMPLE_ID + ") is these files:",
        "  <id>.manifest.json   what it is (JSON): database, type, tables and row counts,",
        "                       the artifact's name, size and sha256 (of the stored bytes)",
        "  <id>.dump.zst        a pg_dump --format=custom archive, zstd-compressed",
        "  <id>.dump.zst.age    the same, encrypted with age (age-encryption.org/v1):",
        "                       needs the age identity (key.txt) of one of its recipients",
        "  <id>.dump            uncompressed (a backup taken with compress: false)",
        "  <id>.globals.json.zst (.age)  the roles (pg_dumpall --globals-only) and the",
        "                       database's own settings and grants, which the archive lacks",
        "Below, <artifact> is the backup's artifact: the manifest's \"artifact\".",
        "",
        *_fetch(storage),
        "2. Check the artifact: its SHA-256 must be the manifest's \"sha256\":",
        "  $ sha256sum <artifact>",
        "  $ grep '\"sha256\"' <id>.manifest.json",
        "",
        "3. Restore into a new, empty database (roles are not in the archive: create them",
        "   first, or keep --no-owner as below):",
        "  $ createdb NEWDB",
        "  encrypted (.zst.age):",
        "  $ age -d -i key.txt <id>.dump.zst.age | zstd -dc | pg_restore --no-owner -d NEWDB",
        "  compressed (.zst):",
        "  $ zstd -dc <id>.dump.zst | pg_restore --no-owner -d NEWDB",
        "  uncompressed (.dump):",
        "  $ pg_restore --no-owner -d NEWDB <id>.dump",
        "  To see what is inside without restoring: pg_restore --list instead of -d NEWDB.",
        "",
        "4. Roles and database settings, from <id>.globals.json.zst (age -d first if .age):",
        "  $ zstd -dc <id>.globals.json.zst | jq -r .pg_dumpall | psql -d postgres",
        "  $ zstd -dc <id>.globals.json.zst | jq -r .database_sql   # for the original name",
        "",
        f"With {TOOL_NAME}: add this destination to a fresh install, then",
        "  $ flask --app app backup rescan --destination NAME",
        "lists every backup found here again. It trusts only manifests signed with its",
        "manifest key (from SECRET_KEY or MANIFEST_KEY): keep that secret with your age",
        "identity; without it, rescan reports these manifests as signed with another key.",
        "",
    ])


def _root(storage: Storage) -> str:
    """The directory or ``s3://bucket/prefix/`` holding the files, with its final slash."""
    return storage.location(RESTORE_NAME).removesuffix(RESTORE_NAME)


def _where(storage: Storage) -> str:
    return storage.describe() if isinstance(storage, S3Storage) else _root(storage)


def _fetch(storage: Storage) -> list[str]:
    """Step 1: get a backup's files into the current directory."""
    if not isinstance(storage, S3Storage):
        return ["1. Work in this directory:", f"  $ cd {shlex.quote(_root(storage))}", ""]
    endpoint = (f" --endpoint-url {shlex.quote(storage.endpoint_url)}"
                if storage.endpoint_url else "")
    lines = ["1. Download the backup's files (credentials: the usual AWS environment):"]
    for name in ("<id>.manifest.json", "<artifact>", "<id>.globals.json.zst"):
        lines.append(f"  $ aws s3 cp {_root(storage)}{name} {name}{endpoint}")
    return [*lines, ""]


def write_restore_file(storage: Storage) -> bool:
    """Write the RESTORE file unless it is there with this content; True if written."""
    text = restore_text(storage).encode("utf-8")
    if storage.exists(RESTORE_NAME):
        with storage.open_read(RESTORE_NAME) as handle:
            if handle.read(len(text) + 1) == text:
                return False
    with storage.atomic_writer(RESTORE_NAME) as writer:
        writer.write(text)
    return True
