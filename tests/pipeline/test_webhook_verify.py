"""The whole check: timestamps, the signed binding, replays and the release filter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from release_receiver import (
    MAX_MERGE_AGE_S,
    REDELIVERY_WINDOW_S,
    ConfigError,
    Delivery,
    Ignored,
    PayloadError,
    ReleaseParams,
    ReleasePolicy,
    ReplayError,
    ReplayStore,
    SignatureError,
    StaleError,
    VerifierConfig,
    WebhookError,
    sign,
    verify_delivery,
)
from tests.pipeline.conftest import MERGE_SHA, SECRET, body_of, iso, release_payload

NOW = 1_800_000_000.0


def signed(payload: Any, delivery: str = "d-1", timestamp: int | None = int(NOW), bind: bool = True) -> Delivery:
    if bind and isinstance(payload, dict) and timestamp is not None:
        payload = payload | {"release_trigger": {"delivery": delivery, "timestamp": timestamp}}
    body = body_of(payload)
    return Delivery(
        body=body,
        signature=sign(SECRET, body),
        delivery_id=delivery,
        timestamp=None if timestamp is None else str(timestamp),
    )


POLICY = ReleasePolicy(("acme/ai-eval-factory",))
CONFIG = VerifierConfig(secret=SECRET, policy=POLICY)
GITHUB_CONFIG = VerifierConfig(secret=SECRET, policy=POLICY, require_timestamp=False)
OURS = {"full_name": "acme/ai-eval-factory"}


def test_a_merged_release_pr_becomes_pipeline_parameters() -> None:
    outcome = verify_delivery(signed(release_payload()), CONFIG, None, NOW)
    assert outcome == ReleaseParams(
        commit=MERGE_SHA,
        pr_number=42,
        base_ref="release",
        head_ref="feature/better-prompts",
        repository="acme/ai-eval-factory",
        delivery_id="d-1",
    )
    assert outcome.as_env()["COMMIT"] == MERGE_SHA
    assert outcome.as_env()["PR_NUMBER"] == "42"


def test_githubs_own_delivery_without_timestamp_is_accepted_when_not_required() -> None:
    delivery = signed(release_payload(), timestamp=None)
    assert isinstance(verify_delivery(delivery, GITHUB_CONFIG, None, NOW), ReleaseParams)
    with pytest.raises(StaleError, match="missing timestamp"):
        verify_delivery(delivery, CONFIG, None, NOW)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"action": "opened"}, "not 'closed'"),
        ({"pull_request": release_payload()["pull_request"] | {"merged": False}}, "without merging"),
        ({"pull_request": release_payload()["pull_request"] | {"base": {"ref": "main"}}}, "not a release branch"),
        ({"pull_request": release_payload()["pull_request"] | {"base": {"ref": "releases"}}}, "not a release"),
    ],
)
def test_authentic_deliveries_that_are_not_release_merges_are_ignored(change: dict[str, Any], reason: str) -> None:
    outcome = verify_delivery(signed(release_payload(**change)), CONFIG, None, NOW)
    assert isinstance(outcome, Ignored)
    assert reason in outcome.reason


def test_release_sub_branches_count_only_with_a_glob_and_other_events_are_ignored() -> None:
    pr = release_payload()["pull_request"] | {"base": {"ref": "release/2026.11"}}
    assert isinstance(verify_delivery(signed(release_payload(pull_request=pr)), CONFIG, None, NOW), Ignored)
    globbed = VerifierConfig(secret=SECRET, policy=ReleasePolicy(POLICY.repositories, ("release",), ("release/*",)))
    assert isinstance(verify_delivery(signed(release_payload(pull_request=pr)), globbed, None, NOW), ReleaseParams)
    push = Delivery(**{**signed(release_payload()).__dict__, "event": "push"})
    assert isinstance(verify_delivery(push, CONFIG, None, NOW), Ignored)


@pytest.mark.parametrize(
    ("timestamp", "needle"),
    [
        (int(NOW) - 301, "old"),
        (int(NOW) + 61, "future"),
    ],
)
def test_stale_and_future_timestamps_are_rejected(timestamp: int, needle: str) -> None:
    with pytest.raises(StaleError, match=needle):
        verify_delivery(signed(release_payload(), timestamp=timestamp), CONFIG, None, NOW)


def test_timestamps_at_the_limits_are_accepted() -> None:
    for timestamp in (int(NOW) - 300, int(NOW) + 60):
        verify_delivery(signed(release_payload(), delivery=f"d{timestamp}", timestamp=timestamp), CONFIG, None, NOW)


@pytest.mark.parametrize("header", ["yesterday", "-5", "1.5", "1e9", " "])
def test_malformed_timestamps_are_rejected(header: str) -> None:
    delivery = Delivery(**{**signed(release_payload()).__dict__, "timestamp": header})
    with pytest.raises(StaleError):
        verify_delivery(delivery, CONFIG, None, NOW)


def test_an_unsigned_fresh_timestamp_header_cannot_refresh_an_old_body() -> None:
    old = signed(release_payload(), timestamp=int(NOW) - 3600)
    replayed = Delivery(**{**old.__dict__, "timestamp": str(int(NOW))})
    with pytest.raises(StaleError, match="does not match"):
        verify_delivery(replayed, CONFIG, None, NOW)


def test_the_delivery_id_is_bound_to_the_signed_body() -> None:
    original = signed(release_payload(), delivery="d-1")
    renamed = Delivery(**{**original.__dict__, "delivery_id": "d-2"})
    with pytest.raises(PayloadError, match="delivery"):
        verify_delivery(renamed, CONFIG, None, NOW)


def test_the_signature_is_checked_before_anything_else() -> None:
    forged = Delivery(body=b"not json at all", signature="sha256=" + "0" * 64, delivery_id=None)
    with pytest.raises(SignatureError):
        verify_delivery(forged, CONFIG, None, NOW)


def test_replayed_delivery_ids_are_rejected(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "replay.sqlite", window_s=CONFIG.replay_window_s)
    delivery = signed(release_payload(), delivery="abc-1")
    verify_delivery(delivery, CONFIG, store, NOW)
    with pytest.raises(ReplayError, match="already accepted") as info:
        verify_delivery(delivery, CONFIG, store, NOW + 1)
    assert info.value.status == 409
    # A second store on the same file (another process) sees it too.
    with pytest.raises(ReplayError):
        verify_delivery(delivery, CONFIG, ReplayStore(tmp_path / "replay.sqlite", CONFIG.replay_window_s), NOW + 2)
    # Another delivery of ANOTHER merge is accepted (the same merge again is a replay: see below).
    other = release_payload(number=43, pull_request=release_payload()["pull_request"] | {"merge_commit_sha": "a" * 40})
    verify_delivery(signed(other, delivery="abc-2"), CONFIG, store, NOW + 3)


def test_forgotten_and_expired_ids_can_be_used_again(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "replay.sqlite", window_s=1000)
    store.remember("x-1", NOW)
    store.forget("x-1")
    store.remember("x-1", NOW)
    with pytest.raises(ReplayError):
        store.remember("x-1", NOW + 999)
    store.remember("x-1", NOW + 1001)  # older than the window: purged


@pytest.mark.parametrize("bad", [None, "", "a b", "x" * 200, "../etc"])
def test_invalid_delivery_ids_are_rejected(bad: str | None) -> None:
    delivery = Delivery(**{**signed(release_payload()).__dict__, "delivery_id": bad})
    with pytest.raises(ReplayError, match="delivery id"):
        verify_delivery(delivery, CONFIG, None, NOW)


def test_a_replay_window_shorter_than_the_timestamp_age_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="replay window"):
        verify_delivery(signed(release_payload()), CONFIG, ReplayStore(tmp_path / "r.sqlite", 10), NOW)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "body"),
        ({"action": 3, "repository": OURS}, "action"),
        ({"action": "closed", "pull_request": "x", "repository": OURS}, "pull_request"),
        ({"action": "closed", "pull_request": {"merged": "yes"}, "repository": OURS}, "pull_request.merged"),
        ({"action": "closed"}, "repository"),
        (release_payload(pull_request=release_payload()["pull_request"] | {"merge_commit_sha": "abc"}), "merge_commit"),
        (release_payload(pull_request=release_payload()["pull_request"] | {"merge_commit_sha": None}), "merge_commit"),
        (release_payload(number=True), "number"),
        (release_payload(number=-1), "number"),
        (release_payload(repository={"full_name": "no-slash"}), "repository.full_name"),
        (release_payload(pull_request=release_payload()["pull_request"] | {"base": {"ref": "a b"}}), "base.ref"),
    ],
)
def test_malformed_payloads_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PayloadError, match=field.replace(".", r"\.")):
        verify_delivery(signed(payload, bind=False), GITHUB_CONFIG, None, NOW)


def test_invalid_json_is_a_payload_error() -> None:
    body = b'{"action": '
    with pytest.raises(PayloadError, match="not valid JSON"):
        verify_delivery(Delivery(body, sign(SECRET, body), "d-1"), GITHUB_CONFIG, None, NOW)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(payload=JSON)
def test_any_signed_json_gives_a_verdict_never_a_crash(payload: Any) -> None:
    try:
        outcome = verify_delivery(signed(payload, bind=False), GITHUB_CONFIG, None, NOW)
    except WebhookError as exc:
        assert exc.message
    else:
        assert isinstance(outcome, Ignored | ReleaseParams)


@given(
    pr=st.fixed_dictionaries(
        {
            "merged": st.booleans(),
            "merged_at": st.just(iso(NOW)),
            "merge_commit_sha": st.text(alphabet="0123456789abcdef", min_size=40, max_size=40),
            "base": st.fixed_dictionaries({"ref": st.sampled_from(["release", "release/x", "main", "dev"])}),
            "head": st.fixed_dictionaries({"ref": st.just("topic")}),
        }
    ),
    action=st.sampled_from(["opened", "closed", "synchronize", "reopened"]),
    number=st.integers(1, 10**6),
)
def test_the_filter_accepts_exactly_merged_closed_release_prs(pr: dict[str, Any], action: str, number: int) -> None:
    payload = release_payload(action=action, number=number, pull_request=pr)
    outcome = verify_delivery(signed(payload, bind=False), GITHUB_CONFIG, None, NOW)
    expected = action == "closed" and pr["merged"] and pr["base"]["ref"] == "release"  # exact: no glob by default
    assert isinstance(outcome, ReleaseParams) == expected
    if isinstance(outcome, ReleaseParams):
        assert (outcome.commit, outcome.pr_number) == (pr["merge_commit_sha"], number)
        assert json.loads(json.dumps(outcome.as_json())) == outcome.as_json()


# Replay protection on what is signed. X-GitHub-Delivery is a header: GitHub does not sign it, so anyone who
# captured one delivery could re-send the same body and signature under a new delivery id.


def github_delivery(payload: dict[str, Any], delivery: str) -> Delivery:
    """GitHub's own webhook: no timestamp header, no release_trigger binding, an unsigned delivery id."""
    body = body_of(payload)
    return Delivery(body=body, signature=sign(SECRET, body), delivery_id=delivery)


def test_the_same_signed_body_under_a_new_delivery_id_is_a_replay(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "replay.sqlite", window_s=CONFIG.replay_window_s)
    original = github_delivery(release_payload(), "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert isinstance(verify_delivery(original, GITHUB_CONFIG, store, NOW), ReleaseParams)
    renamed = Delivery(**{**original.__dict__, "delivery_id": "00000000-0000-0000-0000-000000000001"})
    with pytest.raises(ReplayError, match="already") as info:
        verify_delivery(renamed, GITHUB_CONFIG, store, NOW + 5)
    assert info.value.status == 409


def test_a_second_trigger_of_the_same_merge_is_a_replay(tmp_path: Path) -> None:
    """Our sender re-run (new delivery id and timestamp, both signed): the same repository, PR and merge commit."""
    store = ReplayStore(tmp_path / "replay.sqlite", window_s=CONFIG.replay_window_s)
    verify_delivery(signed(release_payload(), delivery="run-1-1"), CONFIG, store, NOW)
    with pytest.raises(ReplayError, match="already"):
        verify_delivery(signed(release_payload(), delivery="run-1-2", timestamp=int(NOW) + 30), CONFIG, store, NOW + 30)


@pytest.mark.parametrize(("age", "needle"), [(MAX_MERGE_AGE_S + 1, "old"), (-61, "future")])
def test_staleness_comes_from_the_signed_merged_at(age: int, needle: str) -> None:
    """GitHub's own deliveries carry no timestamp header: the signed merge time bounds their age (by default
    GitHub's 3-day redelivery window plus its delivery lag: test_receiver_outbox.py)."""
    payload = release_payload(merged_at=NOW - age)
    with pytest.raises(StaleError, match=needle):
        verify_delivery(github_delivery(payload, "gh-1"), GITHUB_CONFIG, None, NOW)
    assert isinstance(
        verify_delivery(
            github_delivery(release_payload(merged_at=NOW - REDELIVERY_WINDOW_S + 10), "gh-2"), GITHUB_CONFIG, None, NOW
        ),
        ReleaseParams,
    )


@pytest.mark.parametrize("merged_at", [None, 1800000000, "yesterday", "2027-01-15T08:00:00"])
def test_a_release_without_a_valid_signed_merge_time_is_refused(merged_at: Any) -> None:
    pr = release_payload()["pull_request"] | {"merged_at": merged_at}
    with pytest.raises(PayloadError, match="merged_at"):
        verify_delivery(github_delivery(release_payload(pull_request=pr), "gh-3"), GITHUB_CONFIG, None, NOW)


def test_merged_at_is_github_s_format() -> None:
    assert iso(NOW) == "2027-01-15T08:00:00Z"
