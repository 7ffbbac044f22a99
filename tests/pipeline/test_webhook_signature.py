"""HMAC-SHA256 in GitHub's format: the documented example, rejections, and properties over any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_receiver import ConfigError, SignatureError, sign, verify_signature

# GitHub's documented test values ("Validating webhook deliveries", docs.github.com).
GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_documented_example_signs_and_verifies() -> None:
    assert sign(GITHUB_SECRET, GITHUB_PAYLOAD) == GITHUB_SIGNATURE
    verify_signature(GITHUB_SECRET, GITHUB_PAYLOAD, GITHUB_SIGNATURE)


def test_uppercase_hex_is_the_same_signature() -> None:
    verify_signature(GITHUB_SECRET, GITHUB_PAYLOAD, "sha256=" + GITHUB_SIGNATURE[7:].upper())


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (None, "missing"),
        ("", "missing"),
        (GITHUB_SIGNATURE[7:], "must start with 'sha256='"),
        ("sha1=" + "0" * 40, "must start with 'sha256='"),
        ("sha256=" + "0" * 63, "64 hex digits"),
        ("sha256=" + "g" * 64, "64 hex digits"),
        ("sha256=" + "é" * 64, "64 hex digits"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_missing_malformed_or_wrong_signatures_are_rejected(header: str | None, needle: str) -> None:
    with pytest.raises(SignatureError, match=needle) as info:
        verify_signature(GITHUB_SECRET, GITHUB_PAYLOAD, header)
    assert info.value.status == 401
    assert GITHUB_SIGNATURE[7:] not in info.value.message  # never leaks the expected value


def test_the_body_is_signed_byte_for_byte() -> None:
    with pytest.raises(SignatureError):
        verify_signature(GITHUB_SECRET, GITHUB_PAYLOAD + b"\n", GITHUB_SIGNATURE)
    with pytest.raises(SignatureError):
        verify_signature(GITHUB_SECRET[:-1], GITHUB_PAYLOAD, GITHUB_SIGNATURE)


def test_an_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        verify_signature(b"", GITHUB_PAYLOAD, GITHUB_SIGNATURE)


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=2048))
def test_round_trip(secret: bytes, body: bytes) -> None:
    verify_signature(secret, body, sign(secret, body))


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_flipped_bit_of_the_body_is_rejected(secret: bytes, body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(body) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(body)
    tampered[index] ^= 1 << bit
    with pytest.raises(SignatureError):
        verify_signature(secret, bytes(tampered), sign(secret, body))


@given(header=st.one_of(st.none(), st.text(max_size=100)))
def test_arbitrary_headers_are_rejected_cleanly(header: str | None) -> None:
    if header is not None and header.strip().lower() == GITHUB_SIGNATURE:
        return
    with pytest.raises(SignatureError):
        verify_signature(GITHUB_SECRET, GITHUB_PAYLOAD, header)
