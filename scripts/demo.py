"""The one-command demo: local services when none are configured, then the Procfile.

State lives in .demo/ (PostgreSQL cluster, Redis dir, admin password, ``env`` for a second
terminal) so a second run reuses the generated database and the login. Backups go to
BACKUP_DIR (./backups).

Ctrl-C reaches every process in the terminal's process group at once. The services run in
sessions of their own (pg_ctl detaches the postmaster; Redis is started with a new
session), so they outlive the app's processes and are stopped last, after honcho has let
the worker and scheduler say goodbye to Redis.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pgbackup.tablestats import count_tables, table_stats  # noqa: E402
from tools.localservices import PostgresServer, RedisServer  # noqa: E402

# DEMO_DIR and the ports can be moved, e.g. by the test that runs the demo.
STATE = Path(os.environ.get("DEMO_DIR") or ROOT / ".demo").resolve()
DEMO_DB = "rentalshop"
ENV_FILE = STATE / "env"
# What the CLI in a second terminal needs to reach the same catalog, database and Redis.
SHARED_SETTINGS = ("DATABASE_URL", "REDIS_URL", "METADATA_DATABASE_URL", "BACKUP_DIR",
                   "SECRET_KEY", "MANIFEST_KEY", "BACKUP_AGE_IDENTITIES")
PG_PORT = int(os.environ.get("DEMO_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("DEMO_REDIS_PORT", "56379"))


def start_postgres() -> tuple[PostgresServer, str]:
    server = PostgresServer(base=STATE / "postgres", port=PG_PORT).start()
    with server.connect() as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DEMO_DB]).fetchone()
    if not exists:
        print(f"generating the demo rental-shop database '{DEMO_DB}' ...", flush=True)
        url = server.create_database(DEMO_DB)
        from tools import datagen

        counts = datagen.generate(url, scale=1.0, seed=42)
        print(f"  {sum(counts.values()):,} rows in {demo_tables(url)}", flush=True)
    return server, server.url(DEMO_DB)


def demo_tables(url: str) -> str:
    """'13 tables (25 partitions)', counted as the dashboard and the dry run count them."""
    with psycopg.connect(url) as conn:
        tables = table_stats(conn, count_rows=False, checksums=False)
    return str(count_tables(table.partition_of for table in tables))


def admin_password(env: dict[str, str]) -> str:
    """The admin's password is made once and kept in .demo/admin-password (0600); the
    user is (re)created on every start, so a new catalog still has it."""
    path = STATE / "admin-password"
    password = path.read_text().strip() if path.exists() else secrets.token_urlsafe(12)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "users", "create-admin",
         "--username", "admin", "--update"],
        env={**env, "ADMIN_PASSWORD": password}, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def write_env_file(env: dict[str, str]) -> None:
    """.demo/env (0600): ``source`` it and ``flask --app app ...`` talks to the demo."""
    lines = [f"# written by scripts/demo; in another terminal: source {ENV_FILE}"]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in SHARED_SETTINGS
              if env.get(name)]
    lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    ENV_FILE.touch(mode=0o600)
    ENV_FILE.chmod(0o600)
    ENV_FILE.write_text("\n".join(lines) + "\n")


def run_procfile(env: dict[str, str]) -> int:
    """honcho runs web, worker and scheduler; on Ctrl-C it stops them before we go on."""
    honcho = Path(sys.executable).with_name("honcho")
    process = subprocess.Popen([str(honcho), "start", "-f", "Procfile"], env=env, cwd=ROOT)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait(60)


def main() -> int:
    STATE.mkdir(exist_ok=True)
    STATE.chmod(0o711)  # the postgres user must reach its cluster below; nothing to list
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PORT", "8000")
    started = []
    try:
        if not env.get("DATABASE_URL"):
            server, env["DATABASE_URL"] = start_postgres()
            started.append(server)
        if not env.get("REDIS_URL"):
            redis_server = RedisServer(base=STATE / "redis", port=REDIS_PORT).start()
            started.append(redis_server)
            env["REDIS_URL"] = redis_server.url
        password = admin_password(env)
        write_env_file(env)
        print(
            f"\n  Dashboard: http://127.0.0.1:{env['PORT']}/system/backup"
            f"\n  Login:     admin / {password}"
            f"\n  Backups:   {env.get('BACKUP_DIR', './backups')}"
            f"\n  CLI:       in another terminal, 'source {ENV_FILE}', then e.g."
            f" 'flask --app app tokens create --name my-script'\n",
            flush=True,
        )
        return run_procfile(env)
    finally:
        for service in reversed(started):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
