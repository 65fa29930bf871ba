"""Secrets the app keeps in order to use them, encrypted at rest with a key from SECRET_KEY.

``encrypt`` gives ``enc:v1:<Fernet token>`` (AES-128-CBC with HMAC-SHA256), under a key
derived from SECRET_KEY by HKDF-SHA256 with a fixed label, so a copy of the catalog alone
does not give the secrets away. ``decrypt`` returns a value without the prefix as it is: it
was stored before encryption, and its owner encrypts it when it next saves it.

A catalog read with another SECRET_KEY than the one its secrets were encrypted with raises
:class:`SecretBoxError`, whose message says what to do.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

PREFIX = "enc:v1:"
KEY_LABEL = b"pg-backup-manager secretbox v1"  # HKDF info: this key is for nothing else


class SecretBoxError(Exception):
    """A stored secret cannot be decrypted; the message holds no secret."""


def encrypt(plaintext: str, secret_key: str | None = None) -> str:
    """``plaintext`` sealed under ``secret_key`` (default: the app's SECRET_KEY)."""
    return PREFIX + _fernet(secret_key or current_app.config["SECRET_KEY"]).encrypt(
        plaintext.encode()).decode()


def decrypt(stored: str, secret_key: str | None = None) -> str:
    """The plaintext of a value from :func:`encrypt`, or ``stored`` if it is not one."""
    if not is_encrypted(stored):
        return stored
    token = stored.removeprefix(PREFIX).encode()
    try:
        return _fernet(secret_key or current_app.config["SECRET_KEY"]).decrypt(token).decode()
    except InvalidToken:
        raise SecretBoxError(
            "a stored secret cannot be decrypted: SECRET_KEY is not the one it was encrypted "
            "with. Set SECRET_KEY back to its earlier value (without SECRET_KEY, the app uses "
            "instance/secret_key), or enter the secret again") from None


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=KEY_LABEL).derive(
        secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))
