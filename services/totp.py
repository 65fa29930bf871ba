"""Time-based one-time passwords (RFC 6238) for the optional second factor; no Flask.

Codes have 6 digits and change every 30 s (what every authenticator app expects). A code
is accepted for the current time step and one step either side (clock drift), and only
for a step later than the last one accepted, so a code cannot be used twice.
"""

from __future__ import annotations

import hmac
import re
import time

import pyotp
import segno

DIGITS = 6
DRIFT_STEPS = 1  # steps accepted either side of the current one
ISSUER = "PG Backup Manager"
_CODE = re.compile(rf"[0-9]{{{DIGITS}}}")


def new_secret() -> str:
    """A fresh random base32 secret (160 bits)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/...`` URI that authenticator apps read from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as inline SVG markup: no XML declaration, no style attribute."""
    return segno.make(uri, error="m").svg_inline(
        scale=4, dark="#000", light="#fff", svgclass="totp-qr", title="QR code for your app")


def accepted_step(secret: str, code: str, last_step: int | None,
                  now: float | None = None) -> int | None:
    """The time step ``code`` belongs to if it is accepted now, else None.

    Accepted: 6 digits (spaces ignored) matching the current step or one either side, and
    a step after ``last_step`` (replay refusal).
    """
    code = code.replace(" ", "")
    if not _CODE.fullmatch(code):
        return None
    generator = pyotp.TOTP(secret, digits=DIGITS)
    current = generator.timecode(time.time() if now is None else now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(generator.generate_otp(step), code):
            return step
    return None


def group(secret: str, size: int = 4) -> str:
    """``ABCD EFGH ...``: the secret in groups, easier to type by hand."""
    return " ".join(secret[start:start + size] for start in range(0, len(secret), size))
