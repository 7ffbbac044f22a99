"""Verify a signed release webhook and turn it into pipeline parameters.

GitHub (or our own release-trigger workflow) signs the raw body with HMAC-SHA256; the receiver checks the
signature in constant time before it parses anything, rejects stale timestamps and replayed delivery ids, and
keeps only "a pull request was merged into the release branch". The Jenkins pipeline never sees an
unauthenticated byte.
"""

from __future__ import annotations

from release_receiver.errors import (
    ConfigError,
    PayloadError,
    ReplayError,
    SignatureError,
    StaleError,
    WebhookError,
)
from release_receiver.payload import Ignored, ReleaseParams, filter_release
from release_receiver.replay import ReplayStore
from release_receiver.signature import sign, verify_signature
from release_receiver.verify import Delivery, VerifierConfig, verify_delivery

__all__ = [
    "ConfigError",
    "Delivery",
    "Ignored",
    "PayloadError",
    "ReleaseParams",
    "ReplayError",
    "ReplayStore",
    "SignatureError",
    "StaleError",
    "VerifierConfig",
    "WebhookError",
    "filter_release",
    "sign",
    "verify_delivery",
    "verify_signature",
]
