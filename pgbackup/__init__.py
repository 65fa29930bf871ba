"""Backup engine: consistent pg_dump backups streamed into local storage.

A pure library (no Flask, no RQ) so it can be used and tested on its own.
"""

from pgbackup.connection import ConnectionInfo
from pgbackup.dump import DumpProgress, run_dump
from pgbackup.errors import BackupError, ConfigError
from pgbackup.ids import artifact_name, backup_id_time, is_backup_id, manifest_name, new_backup_id
from pgbackup.manifest import KINDS, BackupKind, Manifest, TableInfo, read_manifest, write_manifest
from pgbackup.pgdump import pg_dump_version
from pgbackup.storage import LocalStorage, validate_name
from pgbackup.streams import CHUNK_SIZE, HashingWriter, copy_stream, zstd_writer
from pgbackup.version import TOOL_NAME, __version__

__all__ = [
    "CHUNK_SIZE",
    "KINDS",
    "TOOL_NAME",
    "BackupError",
    "BackupKind",
    "ConfigError",
    "ConnectionInfo",
    "DumpProgress",
    "HashingWriter",
    "LocalStorage",
    "Manifest",
    "TableInfo",
    "__version__",
    "artifact_name",
    "backup_id_time",
    "copy_stream",
    "is_backup_id",
    "manifest_name",
    "new_backup_id",
    "pg_dump_version",
    "read_manifest",
    "run_dump",
    "validate_name",
    "write_manifest",
    "zstd_writer",
]
