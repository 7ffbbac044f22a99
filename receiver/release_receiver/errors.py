"""Why a delivery was refused: one class per reason, each with the HTTP status a receiver answers with.

The CLI prints `message` and exits 2; the receiver answers `status` with `reason`. Neither prints a
traceback, and no message ever contains the secret or the expected signature.
"""

from __future__ import annotations


class WebhookError(Exception):
    """A delivery (or the verifier's own configuration) that must not start the pipeline."""

    status = 400
    reason = "rejected"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(WebhookError):
    """The verifier itself is misconfigured (missing or empty secret file, bad store path)."""

    status = 500
    reason = "config"


class UntrustedError(WebhookError):
    """Authentic, but from a repository this receiver does not release (the secret is used where it must not be)."""

    status = 403
    reason = "untrusted"


class SignatureError(WebhookError):
    """Missing, malformed or wrong X-Hub-Signature-256."""

    status = 401
    reason = "signature"


class StaleError(WebhookError):
    """Missing, malformed, too old or future timestamp."""

    status = 400
    reason = "stale"


class ReplayError(WebhookError):
    """A delivery id that was already accepted within the replay window."""

    status = 409
    reason = "replay"


class PayloadError(WebhookError):
    """A signed body that is not the JSON we expect (names the field)."""

    status = 400
    reason = "payload"
