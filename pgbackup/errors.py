"""Exceptions raised by the backup engine."""

from __future__ import annotations


class ConfigError(ValueError):
    """A connection string or setting is malformed or incomplete."""


class BackupError(RuntimeError):
    """A backup could not be taken. The message never contains a password."""
