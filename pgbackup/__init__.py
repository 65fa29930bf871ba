"""Backup engine: consistent pg_dump backups streamed into local storage.

A pure library (no Flask, no RQ) so it can be used and tested on its own.
"""

from pgbackup.archive import open_archive
from pgbackup.connection import ConnectionInfo
from pgbackup.dbadmin import (
    create_database,
    database_comment,
    database_exists,
    drop_database,
    open_connections,
    rename_database,
    retired_name,
    set_database_comment,
    swap_databases,
    terminate_connections,
    validate_database_name,
    working_name,
)
from pgbackup.dryrun import DryRunError, DryRunReport, analyze_restore
from pgbackup.dump import DumpProgress, run_dump
from pgbackup.encryption import (
    decrypting_reader,
    encrypting_writer,
    load_identities,
    parse_recipients,
    recipients_of,
)
from pgbackup.errors import BackupError, ConfigError, DecryptionError, ObjectStoreError
from pgbackup.ids import artifact_name, backup_id_time, is_backup_id, manifest_name, new_backup_id
from pgbackup.locks import LockBusy, backup_lock, restore_lock
from pgbackup.manifest import (
    KINDS,
    Authenticity,
    BackupKind,
    Encryption,
    Manifest,
    ManifestError,
    TableInfo,
    authenticate,
    read_manifest,
    write_manifest,
)
from pgbackup.objectstore import ObjectLock, S3Storage, part_size_for
from pgbackup.pgdump import pg_dump_version
from pgbackup.recovery import (
    RecoveryReport,
    describe_database,
    restore_checked,
    scratch_name,
    scratch_restore,
)
from pgbackup.restore import (
    RestoreError,
    RestoreOutcome,
    RestoreProgress,
    restore_archive,
    restore_into_new_database,
)
from pgbackup.storage import LocalStorage, Storage, validate_name
from pgbackup.streams import (
    CHUNK_SIZE,
    DEFAULT_ZSTD_LEVEL,
    DEFAULT_ZSTD_THREADS,
    HashingReader,
    HashingWriter,
    Zstd,
    copy_stream,
    zstd_writer,
)
from pgbackup.tablestats import TableCount, count_tables, table_stats
from pgbackup.toc import Toc, TocEntry, TocError, read_toc
from pgbackup.transfer import transfer
from pgbackup.verify import Check, VerifyResult, check_integrity, compare_tables
from pgbackup.version import TOOL_NAME, __version__

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ZSTD_LEVEL",
    "DEFAULT_ZSTD_THREADS",
    "KINDS",
    "TOOL_NAME",
    "Authenticity",
    "BackupError",
    "BackupKind",
    "Check",
    "ConfigError",
    "ConnectionInfo",
    "DecryptionError",
    "DryRunError",
    "DryRunReport",
    "DumpProgress",
    "Encryption",
    "HashingReader",
    "HashingWriter",
    "LocalStorage",
    "LockBusy",
    "Manifest",
    "ManifestError",
    "ObjectLock",
    "ObjectStoreError",
    "RecoveryReport",
    "RestoreError",
    "RestoreOutcome",
    "RestoreProgress",
    "S3Storage",
    "Storage",
    "TableCount",
    "TableInfo",
    "Toc",
    "TocEntry",
    "TocError",
    "VerifyResult",
    "Zstd",
    "__version__",
    "analyze_restore",
    "artifact_name",
    "authenticate",
    "backup_id_time",
    "backup_lock",
    "check_integrity",
    "compare_tables",
    "copy_stream",
    "count_tables",
    "create_database",
    "database_comment",
    "database_exists",
    "decrypting_reader",
    "describe_database",
    "drop_database",
    "encrypting_writer",
    "is_backup_id",
    "load_identities",
    "manifest_name",
    "new_backup_id",
    "open_archive",
    "open_connections",
    "parse_recipients",
    "part_size_for",
    "pg_dump_version",
    "read_manifest",
    "read_toc",
    "recipients_of",
    "rename_database",
    "restore_archive",
    "restore_checked",
    "restore_into_new_database",
    "restore_lock",
    "retired_name",
    "run_dump",
    "scratch_name",
    "scratch_restore",
    "set_database_comment",
    "swap_databases",
    "table_stats",
    "terminate_connections",
    "transfer",
    "validate_database_name",
    "validate_name",
    "working_name",
    "write_manifest",
    "zstd_writer",
]
