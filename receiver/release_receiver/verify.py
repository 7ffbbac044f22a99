"""The whole check, in the order that keeps unauthenticated input away from everything else.

1. signature over the raw bytes (nothing is parsed before it passes);
2. JSON parse;
3. timestamp header freshness (required for our own sender when configured; GitHub's own deliveries carry none);
4. the timestamp and delivery id inside the signed body, when present, must equal the headers (a header
   alone is not signed, so without this binding a captured body could be re-sent with a fresh timestamp);
5. the release filter: a configured repository (else refused), a configured release branch (else ignored);
6. for a release merge, staleness from the signed `pull_request.merged_at` (whoever sent it);
7. replay: the delivery id and, for a release, the release itself (repository, PR, merge commit: signed
   content) are recorded atomically, together with the release in the outbox when the receiver forwards it; a
   second delivery of either is refused. Headers are not signed, so the delivery id alone would let a captured
   body through again under a new id.

The windows agree with GitHub's: GitHub redelivers a failed delivery only when asked (`release-receiver
redeliver`), and only for deliveries of the past 3 days; so a merge may be over 3 days old when it arrives, and
every key is remembered for at least that long (plus clock skew). The window counts from GitHub's first
delivery, which comes after the merge: the merge-age bound adds GitHub's delivery lag (DELIVERY_LAG_S).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from release_receiver.errors import ConfigError, PayloadError, StaleError
from release_receiver.payload import Ignored, ReleaseParams, filter_release, merged_at
from release_receiver.refs import ReleasePolicy
from release_receiver.replay import ReplayStore, check_delivery_id
from release_receiver.secret import read_secret
from release_receiver.signature import verify_signature

__all__ = [
    "DELIVERY_LAG_S",
    "MAX_MERGE_AGE_S",
    "REDELIVERY_WINDOW_S",
    "Delivery",
    "VerifierConfig",
    "read_secret",
    "replay_keys",
    "verify_delivery",
]

# "You can redeliver webhook deliveries that occurred in the past 3 days."
# (docs.github.com/en/webhooks/testing-and-troubleshooting-webhooks/redelivering-webhooks)
REDELIVERY_WINDOW_S = 3 * 86400
# GitHub counts those 3 days from a delivery, and sends the first one some time after the merge: seconds as a rule,
# hours when its webhook queues are backed up. A merge may therefore be this much older than the window.
DELIVERY_LAG_S = 12 * 3600
MAX_MERGE_AGE_S = REDELIVERY_WINDOW_S + DELIVERY_LAG_S
TRIGGER_KEY = "release_trigger"  # where our sender puts the signed copy of delivery id and timestamp
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery as received: raw body and the headers that matter."""

    body: bytes
    signature: str | None
    delivery_id: str | None
    event: str | None = "pull_request"
    timestamp: str | None = None


@dataclass(frozen=True)
class VerifierConfig:
    """Secret and policy. `policy` names the repositories and release branches that may release; `max_age_s`
    bounds the timestamp header's age, `max_merge_age_s` the age of the signed merge time (GitHub's redelivery
    window plus its delivery lag by default: a failed delivery redelivered on its last day must still pass);
    `max_skew_s` how far in the future either may be (clock skew)."""

    secret: bytes
    policy: ReleasePolicy
    require_timestamp: bool = True
    max_age_s: int = 300
    max_skew_s: int = 60
    max_merge_age_s: int = MAX_MERGE_AGE_S

    def __post_init__(self) -> None:
        if not self.secret:
            raise ConfigError("the webhook secret is empty")
        if self.max_age_s <= 0 or self.max_merge_age_s <= 0 or self.max_skew_s < 0:
            raise ConfigError("max ages must be positive and clock skew non-negative")

    @property
    def replay_window_s(self) -> int:
        """How long a key must be remembered: as long as any delivery carrying it can still pass."""
        return max(self.max_age_s, self.max_merge_age_s) + self.max_skew_s


def check_timestamp(timestamp: str | None, now: float, config: VerifierConfig) -> int | None:
    """Unix seconds within [now - max_age, now + skew]; None when absent and not required."""
    if timestamp is None or timestamp == "":
        if config.require_timestamp:
            raise StaleError("missing timestamp header (X-Release-Timestamp)")
        return None
    if not _TIMESTAMP.fullmatch(timestamp.strip()):
        raise StaleError("timestamp must be integer Unix seconds")
    value = int(timestamp.strip())
    if value < now - config.max_age_s:
        raise StaleError(f"timestamp is {int(now - value)} s old (limit {config.max_age_s} s)")
    if value > now + config.max_skew_s:
        raise StaleError(f"timestamp is {int(value - now)} s in the future (limit {config.max_skew_s} s)")
    return value


def _check_binding(payload: Any, delivery_id: str, timestamp: int | None, config: VerifierConfig) -> None:
    if not isinstance(payload, Mapping) or TRIGGER_KEY not in payload:
        if config.require_timestamp:
            raise PayloadError(f"{TRIGGER_KEY}: the signed body must carry the delivery id and timestamp")
        return
    trigger = payload[TRIGGER_KEY]
    if not isinstance(trigger, Mapping):
        raise PayloadError(f"{TRIGGER_KEY}: expected an object")
    if trigger.get("delivery") != delivery_id:
        raise PayloadError(f"{TRIGGER_KEY}.delivery does not match the delivery id header")
    signed_ts = trigger.get("timestamp")
    if timestamp is None or isinstance(signed_ts, bool) or signed_ts != timestamp:
        raise StaleError(f"{TRIGGER_KEY}.timestamp does not match the timestamp header")


def check_merge_time(payload: Any, now: float, config: VerifierConfig) -> None:
    """A release merge must have been merged within [now - max_merge_age, now + skew] (signed content)."""
    when = merged_at(payload)
    if when < now - config.max_merge_age_s:
        raise StaleError(f"merged {int(now - when)} s ago (limit {config.max_merge_age_s} s): too old to release")
    if when > now + config.max_skew_s:
        raise StaleError(f"merged {int(when - now)} s in the future (limit {config.max_skew_s} s)")


def replay_keys(outcome: ReleaseParams | Ignored, delivery_id: str) -> list[str]:
    """The keys a delivery is remembered by (see replay.py): its id and, for a release, the release."""
    return [delivery_id, outcome.replay_key] if isinstance(outcome, ReleaseParams) else [delivery_id]


def verify_delivery(
    delivery: Delivery,
    config: VerifierConfig,
    store: ReplayStore | None,
    now: float,
    enqueue: bool = False,
) -> ReleaseParams | Ignored:
    """Raise a WebhookError for anything that must not start the pipeline; else filter the event.

    With `enqueue`, an accepted release goes into the store's outbox in the same transaction that records its
    replay keys: once this returns, the release is durable and will be forwarded (see outbox.py)."""
    verify_signature(config.secret, delivery.body, delivery.signature)
    delivery_id = check_delivery_id(delivery.delivery_id)
    try:
        payload = json.loads(delivery.body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    timestamp = check_timestamp(delivery.timestamp, now, config)
    _check_binding(payload, delivery_id, timestamp, config)
    outcome = filter_release(delivery.event, payload, delivery_id, config.policy)
    if isinstance(outcome, ReleaseParams):
        check_merge_time(payload, now, config)
    if store is not None:
        if store.window_s < config.replay_window_s:
            raise ConfigError("the replay window must cover the max ages plus clock skew")
        release = outcome if enqueue and isinstance(outcome, ReleaseParams) else None
        store.remember(replay_keys(outcome, delivery_id), now, release=release)
    return outcome
