"""scripts/demo.py as a newcomer meets it: a second terminal can use the CLI, and Ctrl-C
stops the app before the services it started, without a traceback.

The demo runs against the session's PostgreSQL (so it does not generate its own database),
starts its own Redis in a temporary DEMO_DIR, and is sent SIGINT on its whole process group,
as a terminal does on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tools.localservices import free_port

ROOT = Path(__file__).resolve().parents[2]
READY = "Listening on"  # the RQ worker's line once it waits for jobs


@pytest.fixture
def demo(empty_database: str, tmp_path: Path) -> Iterator[dict]:
    state, log = tmp_path / "demo", tmp_path / "demo.log"
    ports = {"web": free_port(), "redis": free_port()}
    env = {
        **os.environ, "DEMO_DIR": str(state), "DEMO_REDIS_PORT": str(ports["redis"]),
        "PORT": str(ports["web"]), "DATABASE_URL": empty_database,
        "METADATA_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "BACKUP_DIR": str(tmp_path / "backups"), "SECRET_KEY": "demo-test-secret-key-0123456789",
    }
    env.pop("REDIS_URL", None)
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "scripts/demo.py"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_ready(process, log, ports["web"])
        yield {"process": process, "log": log, "state": state, "ports": ports}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait_until_ready(process: subprocess.Popen, log: Path, port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the demo exited early:\n{log.read_text()}"
        if READY in log.read_text():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return
            except OSError:  # refused while gunicorn binds
                pass
        time.sleep(0.2)
    pytest.fail(f"the demo did not start within 90 s:\n{log.read_text()}")


def test_a_second_terminal_sources_the_env_file_and_uses_the_cli(demo):
    env_file = demo["state"] / "env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert f"source {env_file}" in demo["log"].read_text()
    clean = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["bash", "-c", f"source {env_file} && flask --app app tokens create --name from-demo"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "'from-demo' (viewer) created" in result.stdout


def test_ctrl_c_stops_the_app_then_the_services_without_a_traceback(demo):
    process, log = demo["process"], demo["log"]
    os.killpg(process.pid, signal.SIGINT)
    process.wait(60)
    output = log.read_text()
    assert "Traceback" not in output, output
    assert "warm shut down requested" in output  # the worker said goodbye to a live Redis
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=demo["ports"]["redis"], socket_connect_timeout=1).ping()
