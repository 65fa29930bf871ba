"""``flask --app app ...`` command groups for operators and cron."""

from flask import Flask

from commands.backup import backup_cli
from commands.jobs import jobs_cli
from commands.scheduler import scheduler_command
from commands.slots import slots_cli
from commands.tokens import tokens_cli
from commands.users import users_cli


def register_commands(app: Flask) -> None:
    for group in (users_cli, tokens_cli, backup_cli, jobs_cli, slots_cli,
                  scheduler_command):
        app.cli.add_command(group)
