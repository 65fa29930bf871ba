"""The key that signs and authenticates manifests (pgbackup.manifest).

MANIFEST_KEY when it is set, else SECRET_KEY, through HKDF-SHA256 with a label of its own,
so this key is good for nothing else and neither secret can be recovered from it. A fresh
install needs the same secret to trust the manifests it rescans: keep it with the age
identity. The key is never logged, stored or returned.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

KEY_LABEL = b"pg-backup-manager manifest signing v1"  # HKDF info: this key's one use


def key() -> bytes:
    """The app's manifest key."""
    return _derive(current_app.config.get("MANIFEST_KEY") or current_app.config["SECRET_KEY"])


@lru_cache(maxsize=4)
def _derive(secret: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=KEY_LABEL).derive(
        secret.encode())
