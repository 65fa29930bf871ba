"""Fixtures shared by the integration tests (the app's own are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyrage import x25519


@pytest.fixture
def identity(app, tmp_path: Path) -> x25519.Identity:
    """An age key pair: a destination encrypts to its public half, the app decrypts with
    the identity file named by BACKUP_AGE_IDENTITIES (comments allowed, as age's are)."""
    key = x25519.Identity.generate()
    key_file = tmp_path / "identities.txt"
    key_file.write_text(f"# offsite key\n{key}\n")
    app.config["BACKUP_AGE_IDENTITIES"] = str(key_file)
    return key
