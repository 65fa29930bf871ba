"""The health checks' hints name the real fix: the commands are the ones the Procfile runs,
and the install hint names the package of the server's version."""

from __future__ import annotations

import re
from pathlib import Path

from services import health

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    """The Procfile's commands by process name, ``${VAR:-default}`` read as ``"$VAR"``."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    commands = dict(line.split(": ", 1) for line in lines if line.strip())
    return {name: re.sub(r'"\$\{(\w+):-[^}]*\}"', r'"$\1"', command)
            for name, command in commands.items()}


def test_the_worker_hint_is_the_procfiles_worker_command():
    assert procfile()["worker"] == health.WORKER_COMMAND
    assert f"start one: {health.WORKER_COMMAND}" == health.WORKER_HINT


def test_the_scheduler_hint_is_the_procfiles_scheduler_command():
    command = procfile()["scheduler"]
    assert command.startswith(health.SCHEDULER_HINT.removeprefix("start one: "))


def test_the_install_hint_names_the_servers_client_package():
    assert "apt-get install postgresql-client-15" in health._install_hint(15)
    assert "PostgreSQL client tools 15 or newer" in health._install_hint(15)
    unknown = health._install_hint(None)
    assert "apt-get install postgresql-client)" in unknown
    assert "of the server's major version or newer" in unknown


def test_the_directory_hint_is_a_command_for_the_directory(tmp_path):
    hint = health._directory_hint(tmp_path / "backups")
    assert re.search(rf"install -d -m 0700 -o \S+ {tmp_path}/backups ", hint)


def test_setup_ranks_between_ok_and_warning():
    assert health.worst(["ok", "setup"]) == "setup"
    assert health.worst(["setup", "warning"]) == "warning"
    assert health.worst(["critical", "setup"]) == "critical"
