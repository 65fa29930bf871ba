"""No secret in logs, RQ jobs, manifests, artifacts, the catalog, responses or errors.

One run with real secrets: the protected database is reached as a role that must log in
with a scram password (holding ':', '\\', '@', '/', '#', '%' and a space), given in
DATABASE_URL; an API token; a SECRET_KEY; an admin password; a webhook secret, an SMTP
password and a Slack URL (the write-only channel settings); and, through the dashboard, a
new user's password, a token made, used and revoked there, and a TOTP secret set up. The
run goes through what an operator does: full and schema-only backups, a failing backup
(wrong database, same password), verification at both levels, a dry run, a restore into a
new database, alerts and their deliveries, a channel test, every page and API listing,
/metrics, health (also with the database unreachable), the activity log, the CLI. Jobs run
in an in-process RQ worker and in a real ``rq worker`` process whose output goes to a
file.

Then everything the app wrote is gathered: log records at DEBUG for every logger (the SQL
echo of SQLAlchemy, which sets its own WARN level, stays off, as in production), the worker
process' output, every response (status, headers, body), every file under BACKUP_DIR
(artifacts decompressed too), every table of the catalog and its raw SQLite files, every
Redis key (RQ's zlib/pickle payloads unpacked, and every job as RQ reads it back), CLI
output, what the webhook receiver got, and the argv and environment of every pg_dump, pg_dumpall and
pg_restore the app ran (through wrappers on PATH: the password must reach them only
through the 0600 passfile, which must be gone afterwards). Each secret is looked for in
every haystack, raw and encoded (URL, form, JSON, repr, passfile escapes) and by a random
core that no encoding changes. Controls make sure the capture saw the run (job data
unpacked, the worker's log lines, the tools' connections, the signed webhook).

The only place a secret may be is where it must be kept to be used: the channel secrets
in the catalog's ``notification_channels`` table and the TOTP secret in ``users`` (and so
in its SQLite files); the test checks they are there, which also proves the catalog dump
works. The dashboard-made token may be in the one response that shows it once, and the
TOTP secret in the one that shows it to its user for setting up.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pyotp
import pytest
from flask.testing import FlaskClient
from psycopg import sql
from pyrage import x25519
from redis import Redis

from tests.engine.conftest import _reload_config, _wait_until_password_required
from tests.support.secret_scan import (
    Haystacks,
    Leak,
    Secret,
    as_text,
    files_dump,
    find_leaks,
    redis_dump,
    sqlite_dump,
)
from tests.support.workers import kill_tree, start_worker, wait_for, worker_env
from tools.localservices import PostgresServer, RedisServer, S3Server, free_port

pytestmark = pytest.mark.empty_target  # none of these reads the shop's data


ROLE = "hygiene_role"
CHANNEL_SECRETS = ("webhook secret", "SMTP password", "Slack URL")
CHANNEL_TABLE = "catalog table notification_channels"
SQLITE_FILES = ("catalog file", "catalog file -wal", "catalog file -shm")
RECEIVED = "request to the webhook/Slack receiver"

WRAPPER = """#!/bin/bash
# Records how the app runs {tool}, then runs the real one.
n=$(date +%s%N)-$$
printf '%s\\n' "$@" > {record}/{tool}-$n.argv
env -0 > {record}/{tool}-$n.env
if [ -n "$PGPASSFILE" ]; then stat -c %a "$PGPASSFILE" > {record}/{tool}-$n.passfile; \
echo "$PGPASSFILE" >> {record}/{tool}-$n.passfile; fi
exec {real} "$@"
"""


def _secret(name: str, prefix: str) -> Secret:
    core = secrets.token_hex(10)
    return Secret(name, f"{prefix}{core}", core)


@pytest.fixture
def password_role(pg_server: PostgresServer, pagila: str) -> Iterator[Secret]:
    """A superuser role that must log in with a scram password; yields the password."""
    core = secrets.token_hex(10)
    password = Secret("database password", f"hy:gi\\ene @/#%{core}?&=", core)
    hba = pg_server.datadir / "pg_hba.conf"
    original = hba.read_text()
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal(password.value)))
    hba.write_text(f"host all {ROLE} {pg_server.host}/32 scram-sha-256\n{original}")
    try:
        _reload_config(pg_server)
        _wait_until_password_required(
            f"postgresql://{ROLE}@{pg_server.host}:{pg_server.port}/{pagila.rsplit('/', 1)[1]}")
        yield password
    finally:
        hba.write_text(original)
        _reload_config(pg_server)
        with pg_server.connect() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = %s", (ROLE,))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


class Receiver(http.server.BaseHTTPRequestHandler):
    """Webhook and Slack endpoint: keeps every request it gets."""

    received: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(f"{self.requestline}\n{self.headers}\n{as_text(body)}")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


class RecordingClient(FlaskClient):
    """A test client that keeps every response: status, headers and body."""

    responses: list[str]

    def open(self, *args: Any, **kwargs: Any):
        response = super().open(*args, **kwargs)
        request = response.request
        self.responses.append(
            f"{request.method} {request.full_path} -> {response.status}\n{response.headers}\n"
            f"{as_text(response.get_data())}")
        return response


def _report(leaks: list[Leak]) -> str:
    """Leaks into what the app wrote, one by one; leaks into the environment of the
    pg_dump/pg_restore it ran, counted per secret and tool (there is one per run)."""
    written = [str(leak) for leak in leaks if not leak.haystack.startswith("env of")]
    children: dict[tuple[str, str], list[Leak]] = {}
    for leak in leaks:
        if leak.haystack.startswith("env of"):
            tool = leak.haystack.split()[2].split("-")[0]
            children.setdefault((leak.secret, tool), []).append(leak)
    lines = [f"{len(written)} leaks into what the app wrote or showed:", *written,
             f"{len(children)} leaks into the environment of the tools it ran:"]
    lines += [f"{secret} in the environment of {len(found)} {tool} runs, e.g. {found[0]}"
              for (secret, tool), found in children.items()]
    return "\n".join(lines)


def test_no_secret_is_written_anywhere(
    pg_server: PostgresServer, redis_server: RedisServer, pagila: str,
    password_role: Secret, receiver: tuple[str, list[str]], tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, s3_server: S3Server, bucket: str,
):
    from app import create_app
    from jobs.queues import NOTIFY_QUEUE, queue
    from services.extensions import db
    from services.models import ApiToken, User

    # ---- the secrets and the app -----------------------------------------------------
    db_password = password_role
    secret_key = _secret("SECRET_KEY", "sk-")
    admin_password = _secret("admin password", "correct horse ")
    webhook_secret = _secret("webhook secret", "whsec_")
    smtp_password = _secret("SMTP password", "smtp-")
    receiver_url, received = receiver
    slack_url = _secret("Slack URL", f"{receiver_url}/services/T0/B0/")
    s3_secret = _secret("S3 secret access key", "s3sk-")
    age_key = x25519.Identity.generate()
    age_identity = Secret("age identity", str(age_key), str(age_key)[15:45])
    identity_file = tmp_path / "keys" / "identities.txt"  # the operator's, not scanned
    identity_file.parent.mkdir()
    identity_file.write_text(f"{age_key}\n")

    dbname = pagila.rsplit("/", 1)[1]
    server = f"{pg_server.host}:{pg_server.port}"
    database_url = f"postgresql://{ROLE}:{quote(db_password.value, safe='')}@{server}/{dbname}"
    backup_dir = tmp_path / "backups"
    catalog_path = tmp_path / "catalog.sqlite3"
    Redis.from_url(redis_server.url).flushdb()

    for name in list(logging.root.manager.loggerDict):
        if not name.startswith("sqlalchemy"):
            caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(logging.getLogger("rq.worker"), "propagate", True)
    server_log = pg_server.base / "server.log"
    server_log_start = server_log.stat().st_size

    record_dir, bindir = tmp_path / "tool-calls", tmp_path / "bin"
    record_dir.mkdir()
    bindir.mkdir()
    for tool in ("pg_dump", "pg_dumpall", "pg_restore"):
        real = shutil.which(tool)
        assert real, f"{tool} not found on PATH"
        wrapper = bindir / tool
        wrapper.write_text(WRAPPER.format(tool=tool, real=real, record=record_dir))
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    worker_log = tmp_path / "worker.log"
    monkeypatch.setenv("WORKER_LOG", str(worker_log))

    app = create_app({
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "METADATA_DATABASE_URL": f"sqlite:///{catalog_path}",
        "BACKUP_DIR": str(backup_dir),
        "SECRET_KEY": secret_key.value,
        "BACKUP_AGE_IDENTITIES": str(identity_file),
        "TESTING": True,
    })
    responses: list[str] = []
    app.test_client_class = type("Client", (RecordingClient,), {"responses": responses})
    with app.app_context():
        admin = User(username="admin", role="admin")
        admin.set_password(admin_password.value)
        db.session.add(admin)
        row, token = ApiToken.mint("hygiene", "admin")
        db.session.add(row)
        db.session.commit()
    api_token = Secret("API token", token, token.removeprefix("pbm_"))
    with app.app_context():
        from services import manifest_key
        signing_key = manifest_key.key().hex()  # signs the manifests, never in one
    signing = Secret("manifest key", signing_key, signing_key[8:40])
    all_secrets = [db_password, api_token, secret_key, admin_password, webhook_secret,
                   smtp_password, slack_url, s3_secret, age_identity, signing]

    api = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}

    def call(method: str, path: str, status: int | tuple[int, ...] = 200, **kwargs: Any):
        response = api.open(path, method=method, headers=bearer, **kwargs)
        expected = status if isinstance(status, tuple) else (status,)
        assert response.status_code in expected, response.get_data(as_text=True)
        return response.get_json(silent=True)

    def run_in_process_worker() -> None:
        from jobs.queues import QUEUES, redis_connection
        from jobs.worker import BackupSimpleWorker

        with app.app_context():
            BackupSimpleWorker(list(QUEUES), connection=redis_connection()).work(burst=True)

    def job_done(job_id: str) -> bool:
        return call("GET", f"/api/system/jobs/{job_id}")["status"] in ("completed", "failed")

    # ---- the run: channels, backups, a failure, alerts (in-process worker) -------------
    session = app.test_client()
    page = session.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
    assert session.post("/login", data={"username": "admin", "password": admin_password.value,
                                        "csrf_token": csrf}).status_code == 302

    webhook = call("POST", "/api/system/notifications/channels", 201, json={
        "name": "hook", "kind": "webhook",
        "config": {"url": f"{receiver_url}/hook", "secret": webhook_secret.value}})
    call("POST", "/api/system/notifications/channels", 201, json={
        "name": "slack", "kind": "slack", "config": {"url": slack_url.value}})
    mail = call("POST", "/api/system/notifications/channels", 201, json={
        "name": "mail", "kind": "email", "config": {
            "host": "127.0.0.1", "port": free_port(), "from": "pgbackup@example.invalid",
            "to": ["ops@example.invalid"], "starttls": False, "username": "pgbackup",
            "password": smtp_password.value}})
    assert call("POST", f"/api/system/notifications/channels/{webhook['id']}/test")["ok"]
    assert not call("POST", f"/api/system/notifications/channels/{mail['id']}/test")["ok"]
    call("PUT", f"/api/system/notifications/channels/{webhook['id']}", json={
        "name": "hook", "kind": "webhook", "config": {"url": f"{receiver_url}/hook2"}})

    offsite = call("POST", "/api/system/destinations", 201, json={
        "name": "offsite", "type": "s3", "bucket": bucket, "prefix": "shop",
        "endpointUrl": s3_server.endpoint_url, "region": "us-east-1", "forcePathStyle": True,
        "accessKeyId": S3Server.ACCESS_KEY_ID, "secretAccessKey": s3_secret.value,
        "encryptTo": [str(age_key.to_public())]})
    assert call("POST", f"/api/system/destinations/{offsite['id']}/test")["ok"]
    call("PUT", f"/api/system/destinations/{offsite['id']}", json={
        **{key: offsite[key] for key in ("name", "type", "bucket", "prefix", "endpointUrl",
                                         "region", "forcePathStyle", "accessKeyId",
                                         "encryptTo")}, "required": False})
    off_site = call("POST", "/api/system/backup", 202,
                    json={"type": "full", "destinations": ["local", "offsite"]})["backupId"]
    full = call("POST", "/api/system/backup", 202, json={"type": "full"})["backupId"]
    schema_only = call("POST", "/api/system/backup", 202,
                       json={"type": "schema-only", "compress": False})["backupId"]
    run_in_process_worker()
    assert call("GET", f"/api/system/backup/{full}")["status"] == "completed"
    assert [c["status"] for c in call("GET", f"/api/system/backup/{off_site}")["copies"]] == [
        "stored", "stored"]

    app.config["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/no_such_database"
    failed = call("POST", "/api/system/backup", 202, json={"type": "full"})["backupId"]
    run_in_process_worker()
    app.config["DATABASE_URL"] = database_url
    failure = call("GET", f"/api/system/backup/{failed}")
    assert failure["status"] == "failed" and "no_such_database" in failure["error"]

    schedule = call("POST", "/api/system/backup/schedule", 201, json={
        "name": "nightly", "frequency": "daily", "time": "02:00"})
    call("POST", f"/api/system/backup/schedule/{schedule['id']}/run", 202)
    with app.app_context():
        queue(NOTIFY_QUEUE).enqueue("jobs.alerts.evaluate_alerts")
    run_in_process_worker()  # the scheduled backup, the alerts and their deliveries
    assert any("backup-failed" in request for request in received)

    # ---- users, a token and a second factor, through the dashboard --------------------
    htmx = {"X-CSRFToken": csrf, "HX-Request": "true"}
    clerk_password = _secret("dashboard user's password", "clerk pass ")
    assert session.post("/system/backup/users", headers=htmx, data={
        "username": "clerk", "role": "viewer", "password": clerk_password.value,
    }).status_code == 200
    token_shown_at = f"response {len(responses)}: "
    made = session.post("/system/backup/users/tokens", headers=htmx, data={
        "name": "dash", "role": "operator", "expires_in_days": "30"})
    dash_value = re.search(r"pbm_[A-Za-z0-9_-]{20,}", made.get_data(as_text=True)).group(0)
    dash_token = Secret("dashboard-made token", dash_value, dash_value.removeprefix("pbm_"))
    dash = {"Authorization": f"Bearer {dash_value}"}
    assert api.delete(f"/api/system/backup/{failed}", headers=dash).status_code == 403
    token_id = re.search(r"/tokens/(\d+)/revoke", made.get_data(as_text=True)).group(1)
    session.post(f"/system/backup/users/tokens/{token_id}/revoke", headers=htmx)
    assert api.delete(f"/api/system/backup/{failed}", headers=dash).status_code == 401
    totp_shown_at = f"response {len(responses)}: "
    setup = session.post("/system/backup/account/totp/setup", data={"csrf_token": csrf})
    key = re.search(r"secret=([A-Z2-7]+)", setup.get_data(as_text=True)).group(1)
    totp_secret = Secret("TOTP secret", key, key)
    assert session.post("/system/backup/account/totp/confirm", data={
        "csrf_token": csrf, "code": pyotp.TOTP(key).now()}).status_code == 302
    all_secrets += [clerk_password, dash_token, totp_secret]

    # ---- a real worker process: restore-level check, dry run, restore, CLI wait ------
    copy = f"hygiene_copy_{secrets.token_hex(3)}"
    worker = start_worker(worker_env(app, bindir))
    try:
        verify = call("POST", "/api/system/backup/verify", 202,
                      json={"backupId": full, "level": "restore"})["jobId"]
        # the worker process reads the off-site copy alone, decrypting it
        call("POST", "/api/system/destinations", 201, json={
            "name": "offsite-only", "type": "s3", "bucket": bucket, "prefix": "only",
            "endpointUrl": s3_server.endpoint_url, "forcePathStyle": True,
            "accessKeyId": S3Server.ACCESS_KEY_ID, "secretAccessKey": s3_secret.value,
            "encryptTo": [str(age_key.to_public())]})
        only_off_site = call("POST", "/api/system/backup", 202, json={
            "type": "full", "destinations": ["offsite-only"]})["backupId"]
        wait_for(lambda: job_done(only_off_site), timeout=120)
        checked = call("POST", "/api/system/backup/verify", 202,
                       json={"backupId": only_off_site, "level": "restore"})["jobId"]
        wait_for(lambda: job_done(checked), timeout=120)
        assert call("GET", f"/api/system/backup/{only_off_site}")["verification"] == "valid"
        call("POST", "/api/system/backup/restore", json={"backupId": full, "dryRun": True})
        call("POST", "/api/system/backup/restore",
             json={"backupId": full, "dryRun": True, "targetDatabase": copy})
        wait_for(lambda: job_done(verify), timeout=120)
        restore = call("POST", "/api/system/backup/restore", 202,
                       json={"backupId": full, "targetDatabase": copy})
        wait_for(lambda: job_done(restore["jobId"]), timeout=120)
        assert call("GET", f"/api/system/backup/restore/{restore['restoreId']}")[
            "status"] == "completed"
        cli = app.test_cli_runner()
        created = cli.invoke(args=["backup", "create", "--type", "schema-only", "--wait"])
        assert created.exit_code == 0, created.output
    finally:
        worker.terminate()
        with contextlib.suppress(Exception):
            worker.wait(30)
        if worker.poll() is None:
            kill_tree(worker.pid)
            worker.wait()
        pg_server.drop_database(copy)

    # ---- reading everything back, errors included ---------------------------------------
    call("POST", "/api/system/backup/restore", 409,
         json={"backupId": failed, "dryRun": True})
    call("POST", "/api/system/backup/restore", 409,
         json={"backupId": full, "targetDatabase": dbname})
    call("GET", "/api/system/backup/backup-x", 404)
    app.config["DATABASE_URL"] = database_url.replace(server, f"127.0.0.1:{free_port()}")
    unreachable = call("GET", "/api/system/health")
    app.config["DATABASE_URL"] = database_url
    assert any(check["name"] == "database" and check["status"] == "critical"
               for check in unreachable["checks"])
    call("GET", "/api/system/health")
    call("GET", "/metrics")
    jobs = [verify, restore["jobId"], full, failed, off_site, only_off_site, checked]
    ids = {"backup_id": full, "restore_id": restore["restoreId"], "job_id": verify,
           "schedule_id": schedule["id"], "channel_id": webhook["id"],
           "destination_id": offsite["id"]}
    for backup_id in (full, schema_only, failed, off_site, only_off_site):
        call("GET", f"/api/system/backup/{backup_id}")
    for job_id in jobs:
        call("GET", f"/api/system/jobs/{job_id}")
    for rule in app.url_map.iter_rules():  # every page, partial and listing, as the admin
        if "GET" in rule.methods and rule.endpoint != "static" \
                and set(rule.arguments) <= set(ids):
            path = rule.build({name: ids[name] for name in rule.arguments})[1]
            session.get(path)
            api.get(path, headers=bearer)
    cli = app.test_cli_runner()
    cli_output = [cli.invoke(args=args).output for args in (
        ["backup", "list"], ["backup", "list", "--json"], ["backup", "show", full],
        ["backup", "show", failed], ["backup", "restores"], ["tokens", "list"],
        ["backup", "restore", full, "--dry-run"])]
    cli_output.append(cli.invoke(args=["users", "create", "--username", "viewer1", "--role",
                                       "viewer", "--password-stdin"],
                                 input=f"{admin_password.value}\n").output)
    cli_output.append(created.output)

    # ---- gathering what was written ------------------------------------------------------
    haystacks: Haystacks = {}
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    haystacks["log messages"] = caplog.text
    haystacks["log records"] = "\n".join(repr(vars(record)) for record in records)
    haystacks["worker process output"] = as_text(worker_log.read_bytes())
    out, err = capfd.readouterr()
    haystacks["this process' stdout and stderr"] = out + err
    with server_log.open("rb") as handle:
        handle.seek(server_log_start)
        haystacks["PostgreSQL server log"] = as_text(handle.read())
    for n, text in enumerate(responses):
        haystacks[f"response {n}: {text.split(chr(10), 1)[0]}"] = text
    for n, text in enumerate(cli_output):
        haystacks[f"CLI output {n}"] = text
    for n, text in enumerate(received):
        haystacks[f"{RECEIVED} {n}: {text.split(chr(10), 1)[0]}"] = text
    haystacks |= files_dump(backup_dir)
    for item in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3_server.client().get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        haystacks[f"object s3://{bucket}/{item['Key']}"] = as_text(body)
    haystacks |= sqlite_dump(catalog_path)
    for suffix, name in zip(("", "-wal", "-shm"), SQLITE_FILES, strict=True):
        sqlite_file = Path(f"{catalog_path}{suffix}")
        if sqlite_file.exists():
            haystacks[name] = as_text(sqlite_file.read_bytes())
    haystacks |= redis_dump(Redis.from_url(redis_server.url))
    tool_calls = sorted(record_dir.iterdir())
    for path in tool_calls:
        data = path.read_bytes().replace(b"\0", b"\n")
        haystacks[f"{path.suffix[1:]} of {path.name}"] = as_text(data)

    # ---- the controls: the capture saw the run ----------------------------------------
    connected = [name for name, text in haystacks.items()
                 if name.startswith("argv of") and f"user={ROLE}" in text]
    assert {name.split()[2].split("-")[0] for name in connected} == {
        "pg_dump", "pg_dumpall", "pg_restore"}
    assert any(f"('{full}',)" in text for name, text in haystacks.items()
               if name.startswith("rq job"))  # job data unpacked
    assert full in haystacks["log messages"] and full in haystacks["worker process output"]
    assert any(record.name.startswith("rq.worker") for record in records)
    assert any("x-pgbackup-signature: sha256=" in request.lower() for request in received)
    assert f"{full}.manifest.json" in " ".join(haystacks)
    assert key in haystacks["catalog table users"]
    assert dash_value in haystacks[next(name for name in haystacks
                                        if name.startswith(token_shown_at))]
    # kept so they can be used, encrypted with a key derived from SECRET_KEY
    assert haystacks[CHANNEL_TABLE].count("enc:v1:") >= len(CHANNEL_SECRETS)

    # ---- the verdict ---------------------------------------------------------------------
    allowed = {"Slack URL": (RECEIVED,)}  # where the Slack message was sent, by design
    allowed[dash_token.name] = (token_shown_at,)  # shown once, to the admin who made it
    # shown to its user while setting it up; kept where logins check codes against it
    allowed[totp_secret.name] = (totp_shown_at, "catalog table users", *SQLITE_FILES)
    leaks = find_leaks(all_secrets, haystacks, allowed)
    assert not leaks, _report(leaks)

    for path in tool_calls:
        if path.suffix == ".passfile":
            mode, passfile = path.read_text().split()
            assert mode == "600" and not Path(passfile).exists(), path.read_text()
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    stored = sorted(backup_dir.iterdir())
    assert {p.name for p in stored} >= {f"{full}.dump.zst", f"{full}.manifest.json",
                                        f"{schema_only}.dump", f"{schema_only}.manifest.json"}
    for path in stored:
        assert not path.name.endswith(".partial"), path.name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path.name, oct(path.stat().st_mode))
    json.loads((backup_dir / f"{full}.manifest.json").read_text())
    with psycopg.connect(pagila) as conn:
        assert conn.execute("SELECT count(*) FROM actor").fetchone()[0] == 200
