"""Exceptions raised by the backup engine."""

from __future__ import annotations


class ConfigError(ValueError):
    """A connection string or setting is malformed or incomplete."""


class BackupError(RuntimeError):
    """A backup could not be taken. The message never contains a password."""


class DecryptionError(RuntimeError):
    """An encrypted artifact could not be decrypted: no configured identity fits it, or its
    ciphertext is truncated or was altered. The message never contains key material."""


class ObjectStoreError(Exception):
    """An S3-compatible object store could not be reached or refused a request. The message
    is one readable sentence and never contains the secret access key."""
