"""totp.py against RFC 6238's own test vectors, at fixed times."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest

from services import totp

# RFC 6238, appendix B: the SHA-1 secret "12345678901234567890", 8-digit codes; ours are
# their last 6 digits.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
RFC_VECTORS = [
    (59, "287082"), (1111111109, "081804"), (1111111111, "050471"),
    (1234567890, "005924"), (2000000000, "279037"), (20000000000, "353130"),
]


@pytest.mark.parametrize(("now", "code"), RFC_VECTORS)
def test_the_rfc_vectors_are_accepted_at_their_time(now, code):
    assert totp.accepted_step(RFC_SECRET, code, None, now=now) == now // 30


def test_one_step_of_drift_either_side_and_no_more():
    now = 1_700_000_000
    step = now // 30
    generator = pyotp.TOTP(RFC_SECRET)
    for offset in (-1, 0, 1):
        code = generator.generate_otp(step + offset)
        assert totp.accepted_step(RFC_SECRET, code, None, now=now) == step + offset
    for offset in (-3, -2, 2, 3):
        code = generator.generate_otp(step + offset)
        assert totp.accepted_step(RFC_SECRET, code, None, now=now) is None


def test_a_step_at_or_before_the_last_one_is_refused():
    now = 1_700_000_000
    step = now // 30
    code = pyotp.TOTP(RFC_SECRET).generate_otp(step)
    assert totp.accepted_step(RFC_SECRET, code, step - 1, now=now) == step
    assert totp.accepted_step(RFC_SECRET, code, step, now=now) is None  # replay
    assert totp.accepted_step(RFC_SECRET, code, step + 1, now=now) is None
    previous = pyotp.TOTP(RFC_SECRET).generate_otp(step - 1)
    assert totp.accepted_step(RFC_SECRET, previous, step - 1, now=now) is None


FULLWIDTH_287082 = "\uff12\uff18\uff17\uff10\uff18\uff12"  # digits to str.isdigit(), not to us


@pytest.mark.parametrize("code", ["", "28708", "2870820", "abcdef", "28708x", FULLWIDTH_287082,
                                  "-28708", "287 08"])
def test_malformed_codes_are_refused(code):
    assert totp.accepted_step(RFC_SECRET, code, None, now=59) is None


def test_spaces_in_a_code_are_ignored():
    assert totp.accepted_step(RFC_SECRET, "287 082", None, now=59) == 1
    assert totp.accepted_step(RFC_SECRET, " 287082 ", None, now=59) == 1


def test_wrong_secret_refuses_the_code():
    other = totp.new_secret()
    assert totp.accepted_step(other, "287082", None, now=59) is None


def test_new_secrets_are_random_base32_of_160_bits():
    secrets = {totp.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)


def test_the_provisioning_uri_names_the_issuer_and_the_user():
    uri = totp.provisioning_uri(RFC_SECRET, "alice")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/PG Backup Manager:alice"
    query = parse_qs(parts.query)
    assert query["secret"] == [RFC_SECRET] and query["issuer"] == ["PG Backup Manager"]
    parsed = pyotp.parse_uri(uri)
    assert parsed.secret == RFC_SECRET and parsed.digits == 6 and parsed.interval == 30


def test_the_qr_code_is_inline_svg_without_style_or_script():
    svg = totp.qr_svg(totp.provisioning_uri(RFC_SECRET, "alice"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg
    assert "<script" not in svg
    assert not re.search(r"\s(style|on\w+)=", svg)  # the CSP allows neither inline


def test_the_secret_is_grouped_by_four():
    assert totp.group("ABCDEFGHIJ") == "ABCD EFGH IJ"
    assert totp.group(RFC_SECRET).replace(" ", "") == RFC_SECRET
