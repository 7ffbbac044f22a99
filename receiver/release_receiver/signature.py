"""HMAC-SHA256 over the raw body, in GitHub's `X-Hub-Signature-256: sha256=<hex>` format.

The comparison is `hmac.compare_digest` on the whole header value, so the time taken does not depend on how
many leading characters of a forged signature happen to match.
"""

from __future__ import annotations

import hashlib
import hmac

from release_receiver.errors import ConfigError, SignatureError

PREFIX = "sha256="
_HEX_LEN = 64


def sign(secret: bytes, body: bytes) -> str:
    """The header value GitHub would send for `body` signed with `secret`."""
    if not secret:
        raise ConfigError("the webhook secret is empty")
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Raise SignatureError unless `header` is the HMAC-SHA256 of exactly these bytes."""
    expected = sign(secret, body)
    if header is None or header == "":
        raise SignatureError("missing X-Hub-Signature-256 header")
    given = header.strip()
    if not given.startswith(PREFIX):
        raise SignatureError("X-Hub-Signature-256 must start with 'sha256='")
    digest = given[len(PREFIX) :]
    if len(digest) != _HEX_LEN or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise SignatureError("X-Hub-Signature-256 must be 'sha256=' followed by 64 hex digits")
    # compare_digest needs ASCII str or bytes: the checks above guarantee ASCII.
    if not hmac.compare_digest(expected.encode("ascii"), (PREFIX + digest.lower()).encode("ascii")):
        raise SignatureError("X-Hub-Signature-256 does not match the body")
