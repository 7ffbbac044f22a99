"""Verify a signed release webhook, keep the release durably, and forward it to Jenkins exactly once.

GitHub (or our own release-trigger workflow) signs the raw body with HMAC-SHA256; the receiver checks the
signature in constant time before it parses anything, rejects stale timestamps and replayed deliveries, refuses
repositories it was not configured for, and keeps only "a pull request was merged into the release branch".
An accepted release is written to the outbox before it is answered, then forwarded until Jenkins acknowledges
it. The Jenkins pipeline never sees an unauthenticated byte.
"""

from __future__ import annotations

from release_receiver.errors import (
    ConfigError,
    PayloadError,
    ReplayError,
    SignatureError,
    StaleError,
    UntrustedError,
    WebhookError,
)
from release_receiver.payload import Ignored, ReleaseParams, filter_release
from release_receiver.refs import ReleasePolicy, branch_name_problem
from release_receiver.replay import ReplayStore
from release_receiver.signature import sign, verify_signature
from release_receiver.verify import MAX_MERGE_AGE_S, REDELIVERY_WINDOW_S, Delivery, VerifierConfig, verify_delivery

__all__ = [
    "MAX_MERGE_AGE_S",
    "REDELIVERY_WINDOW_S",
    "ConfigError",
    "Delivery",
    "Ignored",
    "PayloadError",
    "ReleaseParams",
    "ReleasePolicy",
    "ReplayError",
    "ReplayStore",
    "SignatureError",
    "StaleError",
    "UntrustedError",
    "VerifierConfig",
    "WebhookError",
    "branch_name_problem",
    "filter_release",
    "sign",
    "verify_delivery",
    "verify_signature",
]
