"""Multi-threaded zstd and its level: standard frames that the stock tools read."""

from __future__ import annotations

import io
import json
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pgbackup import ConnectionInfo, LocalStorage, Zstd, manifest_name, new_backup_id, run_dump
from pgbackup.streams import zstd_writer
from tests.engine.helpers import copy_public_schema_owner, require_tool, restore_with_stock_tools
from tests.support.dbcompare import table_fingerprints


def test_threaded_stream_is_one_standard_frame_for_stock_zstd(tmp_path: Path) -> None:
    """16 MB at level 1 is several of zstd's jobs (2 MB each): compressed in parallel, yet
    one checksummed frame that ``zstd -t`` verifies and ``zstd -dc`` reads back whole."""
    words = [f"row {n} rental {n * 7 % 1000}\n".encode() for n in range(5000)]
    data = b"".join(random.Random(15).choices(words, k=700_000))[: 16 * 2**20]
    out = io.BytesIO()
    with zstd_writer(out, Zstd(level=1, threads=2)) as sink:
        for start in range(0, len(data), 2**20):
            sink.write(data[start:start + 2**20])
    zstd = require_tool("zstd")
    compressed = out.getvalue()
    artifact = tmp_path / "data.zst"
    artifact.write_bytes(compressed)
    listing = subprocess.run([zstd, "-lv", str(artifact)], capture_output=True,
                             check=True).stdout.decode()
    assert "# Zstandard Frames: 1" in listing and "Check: XXH64" in listing
    subprocess.run([zstd, "-t", "-q"], input=compressed, check=True)
    restored = subprocess.run([zstd, "-dc"], input=compressed, capture_output=True, check=True)
    assert restored.stdout == data


@pytest.mark.parametrize(("level", "threads"), [(1, 2), (9, 0), (19, -1)])
def test_any_level_and_threads_restore_with_stock_tools(
    pagila: str, storage: LocalStorage, scratch_db: Callable[[], str], level: int, threads: int,
) -> None:
    conn = ConnectionInfo.from_url(pagila)
    manifest = run_dump(conn, storage, new_backup_id(), "full", checksums=False,
                        zstd=Zstd(level, threads))
    assert (manifest.compression, manifest.compression_level) == ("zstd", level)
    target = scratch_db()
    restore_with_stock_tools(storage.path(manifest.artifact), target)
    copy_public_schema_owner(pagila, target)
    assert table_fingerprints(target) == table_fingerprints(pagila)


def test_uncompressed_manifest_names_no_level(pagila: str, storage: LocalStorage) -> None:
    """Left out of the file when unset, as manifests written before the field have it."""
    manifest = run_dump(ConnectionInfo.from_url(pagila), storage, new_backup_id(), "full",
                        compress=False, checksums=False)
    written = json.loads(storage.path(manifest_name(manifest.backup_id)).read_text())
    assert manifest.compression_level is None and "compression_level" not in written


@pytest.mark.parametrize(("level", "threads", "message"), [
    (0, -1, "zstd level must be 1 to 19, not 0"),
    (20, -1, "zstd level must be 1 to 19, not 20"),
    (3, -2, "zstd threads must be -1 .all CPUs. or more, not -2"),
])
def test_out_of_range_compression_is_refused(level: int, threads: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Zstd(level, threads)
