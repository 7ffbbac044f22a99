"""The receiver's half of the trust boundary (issue 17, item 1 and 6): only configured repositories, only the
configured release branch (globs only when an admin opts in), any head branch name git allows.

A signature only proves that the sender knows the secret. So the receiver also pins what the signed body says:
the repository (`--repository OWNER/NAME`, repeatable) and the exact release branch. Jenkins checks the same
again against git itself before it runs anything of the commit (tests/pipeline/test_release_commit.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_receiver import (
    ConfigError,
    Delivery,
    Ignored,
    PayloadError,
    ReleaseParams,
    UntrustedError,
    VerifierConfig,
    sign,
    verify_delivery,
)
from release_receiver.refs import ReleasePolicy, branch_name_problem
from tests.pipeline.conftest import FIXED_NOW, MERGE_SHA, REPO, SECRET, body_of, release_payload

POLICY = ReleasePolicy(("acme/ai-eval-factory",))
CONFIG = VerifierConfig(secret=SECRET, policy=POLICY, require_timestamp=False)
ODD_BUT_LEGAL = ["renovate/@types-node-20.x", "fix/issue#12", "feature/ünïcode", "dependabot/npm_and_yarn/a-1.2", "@"]


def github(payload: dict[str, Any], delivery: str = "gh-1") -> Delivery:
    body = body_of(payload)
    return Delivery(body=body, signature=sign(SECRET, body), delivery_id=delivery)


def with_branches(base: str = "release", head: str = "feature/x", **changes: Any) -> dict[str, Any]:
    merged_at = changes.pop("merged_at", FIXED_NOW)
    pr = release_payload(merged_at=merged_at)["pull_request"] | {"base": {"ref": base}, "head": {"ref": head}}
    return release_payload(pull_request=pr, **changes)


def git_allows(name: str) -> bool:
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, timeout=30, check=False, cwd="/"
    )
    return done.returncode == 0


@pytest.mark.parametrize(
    "name", [*ODD_BUT_LEGAL, "a..b", "a@{b", "-x", "HEAD", "a/.b", "x.lock", "a b", "a~1", "a:b", "a//b", "a/", "."]
)
def test_the_branch_rule_is_gits(name: str) -> None:
    assert (branch_name_problem(name) is None) == git_allows(name), name


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([*"ab/.-@{}~^:?*[\\ #ü\t1", "lock", ".lock", "HEAD"]), min_size=1, max_size=8))
def test_the_branch_rule_agrees_with_git_check_ref_format(parts: list[str]) -> None:
    name = "".join(parts)
    assert (branch_name_problem(name) is None) == git_allows(name), repr(name)


@pytest.mark.parametrize("head", ODD_BUT_LEGAL)
def test_odd_but_legal_head_branches_are_accepted_and_forwarded_as_information(head: str) -> None:
    outcome = verify_delivery(github(with_branches(head=head)), CONFIG, None, FIXED_NOW)
    assert isinstance(outcome, ReleaseParams)
    assert (outcome.head_ref, outcome.base_ref, outcome.repository) == (head, "release", "acme/ai-eval-factory")


def test_a_head_branch_git_would_refuse_is_a_payload_error_naming_it() -> None:
    with pytest.raises(PayloadError, match=r"pull_request\.head\.ref.*git allows"):
        verify_delivery(github(with_branches(head="a..b")), CONFIG, None, FIXED_NOW)


def test_another_repository_is_refused_with_403_naming_it() -> None:
    """The secret signed a body about a repository this receiver does not release: refused, not ignored."""
    with pytest.raises(UntrustedError, match=r"mallory/fork.*acme/ai-eval-factory") as info:
        verify_delivery(github(with_branches(repository={"full_name": "mallory/fork"})), CONFIG, None, FIXED_NOW)
    assert info.value.status == 403


def test_repositories_compare_as_github_names_them_case_insensitively() -> None:
    payload = with_branches(repository={"full_name": "ACME/AI-Eval-Factory"})
    assert isinstance(verify_delivery(github(payload), CONFIG, None, FIXED_NOW), ReleaseParams)


@pytest.mark.parametrize("base", ["main", "release/x", "release-candidate", "Release"])
def test_only_the_exact_release_branch_releases(base: str) -> None:
    """A writer can create `release/x` and merge their own pull request into it: without an opt-in glob it is
    no release branch."""
    outcome = verify_delivery(github(with_branches(base=base)), CONFIG, None, FIXED_NOW)
    assert isinstance(outcome, Ignored)
    assert f"base branch {base!r} is not a release branch (release)" in outcome.reason


def test_globs_release_only_when_an_admin_opts_in() -> None:
    opted = VerifierConfig(
        secret=SECRET, policy=ReleasePolicy(("acme/ai-eval-factory",), ("release",), ("release/*",)),
        require_timestamp=False,
    )  # fmt: skip
    outcome = verify_delivery(github(with_branches(base="release/2026.11")), opted, None, FIXED_NOW)
    assert isinstance(outcome, ReleaseParams) and outcome.base_ref == "release/2026.11"


def test_a_policy_without_repositories_or_with_an_illegal_branch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--repository"):
        ReleasePolicy(())
    with pytest.raises(ConfigError, match="OWNER/NAME"):
        ReleasePolicy(("not a repo",))
    with pytest.raises(ConfigError, match="git allows"):
        ReleasePolicy(("acme/x",), ("release..x",))


def receiver_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "release_receiver", *args], input=stdin, capture_output=True, cwd=REPO, timeout=60
    )


def test_verify_pins_repositories_and_says_why_it_refuses(secret_file: Path) -> None:
    body = body_of(with_branches(merged_at=__import__("time").time(), repository={"full_name": "mallory/fork"}))
    common = ["verify", "--secret-file", str(secret_file), "--no-require-timestamp", "--delivery", "d-1"]
    signature = sign(SECRET, body)
    refused = receiver_cli(*common, "--signature", signature, "--repository", "acme/ai-eval-factory", stdin=body)
    assert refused.returncode == 2, refused.stderr
    assert b"mallory/fork" in refused.stderr and b"not released here" in refused.stderr
    ours = body_of(with_branches(merged_at=__import__("time").time(), head="fix/issue#12"))
    accepted = receiver_cli(
        *common, "--signature", sign(SECRET, ours), "--repository", "other/one", "--repository", "acme/ai-eval-factory",
        stdin=ours,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    params = json.loads(accepted.stdout)
    assert (params["repository"], params["base_ref"], params["head_ref"], params["commit"]) == (
        "acme/ai-eval-factory", "release", "fix/issue#12", MERGE_SHA,
    )  # fmt: skip


def test_verify_and_serve_refuse_to_start_without_a_repository(secret_file: Path, tmp_path: Path) -> None:
    for command in (["verify", "--signature", "sha256=" + "0" * 64, "--delivery", "d"],
                    ["serve", "--store", str(tmp_path / "s.sqlite"), "--port", "0"]):  # fmt: skip
        done = receiver_cli(*command, "--secret-file", str(secret_file), stdin=b"{}")
        assert done.returncode == 2 and b"--repository" in done.stderr, done.stderr
        assert b"Traceback" not in done.stderr
