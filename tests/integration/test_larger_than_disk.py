"""A database larger than the local disk: backed up straight to a bucket and restored from
it, by a process that cannot write a file larger than 1 MiB (RLIMIT_FSIZE), whose dump is
more than twenty times that. Any local copy of the dump, whole or spooled past one S3
part, by Python or by pg_dump or pg_restore, would fail the run (EFBIG, or SIGXFSZ for the
tools); the process first shows that the limit bites both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.dbcompare import schema_dump, table_fingerprints
from tools.localservices import PostgresServer, S3Server

MiB = 2**20
LIMIT = MiB  # the largest file the backing-up process may write
ROOT = Path(__file__).resolve().parents[2]

# Runs in a child process: the limit applies to it and to every tool it starts.
CHILD = """
import errno, json, resource, subprocess, sys, tempfile
from pgbackup import ConnectionInfo, S3Storage, new_backup_id, restore_into_new_database
from pgbackup.dump import run_dump_to
from pgbackup.targets import Target

given = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (given["limit"], given["limit"]))
with tempfile.TemporaryFile(buffering=0) as probe:  # the limit bites Python ...
    probe.write(b"x" * given["limit"])
    try:
        probe.write(b"x")
        sys.exit("a file larger than the limit was written")
    except OSError as exc:
        assert exc.errno == errno.EFBIG, exc
with tempfile.TemporaryDirectory() as scratch:  # ... and pg_dump
    dumped = subprocess.run(["pg_dump", "-Fc", "-Z0", "-f", f"{scratch}/local.dump",
                             "-d", given["source"]], capture_output=True)
    assert dumped.returncode != 0, "pg_dump wrote the dump to a local file"

storage = S3Storage(given["bucket"], prefix="shop", **given["s3"])
[copy] = run_dump_to(ConnectionInfo.from_url(given["source"]),
                     [Target("offsite", storage)], new_backup_id(), "full")
assert copy.manifest is not None, copy.error
restore_into_new_database(ConnectionInfo.from_url(given["server"]), given["restored"],
                          storage, copy.manifest)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"artifact": copy.manifest.artifact, "size": copy.manifest.size,
                  "peak_rss_kb": peak}))
"""


@pytest.fixture
def large(pagila: str) -> str:
    """Pagila with 24 MiB of incompressible bytes: its dump is over 20 times the limit, in
    four S3 parts of 8 MiB."""
    with psycopg.connect(pagila, autocommit=True) as conn:
        conn.execute("CREATE TABLE scans (id int PRIMARY KEY, image bytea)")
        for n in range(6):
            conn.execute("INSERT INTO scans VALUES (%s, %s)", [n, os.urandom(4 * MiB)])
    return pagila


@pytest.fixture
def restored(pg_server: PostgresServer):
    pg_server.drop_database("from_bucket")
    yield "from_bucket"
    pg_server.drop_database("from_bucket")


def test_a_backup_larger_than_the_local_disk_goes_to_the_bucket_and_restores_from_it(
        large: str, pg_server: PostgresServer, s3_server: S3Server, bucket: str,
        restored: str, tmp_path: Path) -> None:
    given = {"limit": LIMIT, "source": large, "server": pg_server.url(), "bucket": bucket,
             "restored": restored, "s3": s3_server.storage_settings()}
    temp = tmp_path / "tmp"
    temp.mkdir()
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(given)], cwd=ROOT,
                           env={**os.environ, "TMPDIR": str(temp)}, capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["size"] > 20 * LIMIT

    s3 = s3_server.client()
    head = s3.head_object(Bucket=bucket, Key=f"shop/{outcome['artifact']}")
    assert head["ContentLength"] == outcome["size"]
    parts = -(-outcome["size"] // (8 * MiB))
    assert parts >= 3 and head["ETag"].endswith(f'-{parts}"')  # streamed, 8 MiB parts
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert list(temp.iterdir()) == []  # and nothing left behind in the temporary directory

    copy = pg_server.url(restored)
    assert schema_dump(copy) == schema_dump(large)
    assert table_fingerprints(copy) == table_fingerprints(large)
