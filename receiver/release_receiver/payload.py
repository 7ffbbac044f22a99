"""The one event that starts a release: a pull request merged into a release branch of a configured repository.

Input is GitHub's `pull_request` webhook payload (our release-trigger workflow sends the same shape), already
authenticated. A delivery from a repository this receiver does not release is refused (UntrustedError: the
secret is in the wrong hands or the wrong hook); a valid delivery that is not a release merge (opened, closed
unmerged, another base branch) is `Ignored`, not an error; a body whose fields have the wrong type or format is
a PayloadError naming the field. The head branch is informational: any name git allows passes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from release_receiver.errors import PayloadError, UntrustedError
from release_receiver.refs import ReleasePolicy, branch_name_problem

_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}/[A-Za-z0-9._-]{1,100}$")
_GITHUB_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@dataclass(frozen=True)
class ReleaseParams:
    """What the pipeline needs: the merge commit to build and the PR to comment on."""

    commit: str
    pr_number: int
    base_ref: str
    head_ref: str
    repository: str
    delivery_id: str

    def as_env(self) -> dict[str, str]:
        """Upper-case names as the Jenkinsfile and scripts read them."""
        return {key.upper(): str(value) for key, value in asdict(self).items()}

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def replay_key(self) -> str:
        """What one release is, whoever delivers it and however often: the repository, the PR, the merge commit.

        All three are inside the signed body; a delivery id is a header nobody signs."""
        return f"release:{self.repository}#{self.pr_number}@{self.commit}"


@dataclass(frozen=True)
class Ignored:
    """Authentic, but not a release merge: nothing to build."""

    reason: str


def _obj(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{field}: expected an object, got {type(value).__name__}")
    return value


def _str(parent: Mapping[str, Any], key: str, field: str, pattern: re.Pattern[str] | None = None) -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        raise PayloadError(f"{field}: expected a string, got {type(value).__name__}")
    if pattern is not None and not pattern.fullmatch(value):
        raise PayloadError(f"{field}: {value[:80]!r} is not in the expected format")
    return value


def _branch(pr: Mapping[str, Any], side: str) -> str:
    field = f"pull_request.{side}.ref"
    name = _str(_obj(pr.get(side), f"pull_request.{side}"), "ref", field)
    problem = branch_name_problem(name)
    if problem:
        raise PayloadError(f"{field}: {name[:80]!r} is not a branch name git allows ({problem})")
    return name


def filter_release(
    event: str | None,
    payload: Any,
    delivery_id: str,
    policy: ReleasePolicy,
) -> ReleaseParams | Ignored:
    """Turn an authenticated delivery into pipeline parameters, or say why it starts nothing."""
    if event is not None and event != "pull_request":
        return Ignored(f"event {event!r} is not pull_request")
    body = _obj(payload, "body")
    repository = _str(_obj(body.get("repository"), "repository"), "full_name", "repository.full_name", _REPO)
    if not policy.allows_repository(repository):
        raise UntrustedError(
            f"repository {repository!r} is not released here (configured: {', '.join(policy.repositories)})"
        )
    action = body.get("action")
    if not isinstance(action, str):
        raise PayloadError(f"action: expected a string, got {type(action).__name__}")
    if action != "closed":
        return Ignored(f"action {action!r} is not 'closed'")
    pr = _obj(body.get("pull_request"), "pull_request")
    merged = pr.get("merged")
    if not isinstance(merged, bool):
        raise PayloadError(f"pull_request.merged: expected a boolean, got {type(merged).__name__}")
    if not merged:
        return Ignored("pull request was closed without merging")
    base_ref = _branch(pr, "base")
    if not policy.is_release_branch(base_ref):
        return Ignored(f"base branch {base_ref[:80]!r} is not a release branch ({policy.describe_branches()})")
    head_ref = _branch(pr, "head")
    commit = _str(pr, "merge_commit_sha", "pull_request.merge_commit_sha", _SHA)
    number = body.get("number", pr.get("number"))
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise PayloadError(f"number: expected a positive integer, got {number!r}"[:120])
    return ReleaseParams(
        commit=commit,
        pr_number=number,
        base_ref=base_ref,
        head_ref=head_ref,
        repository=repository,
        delivery_id=delivery_id,
    )


def merged_at(payload: Any) -> float:
    """`pull_request.merged_at` of an authenticated release merge, in Unix seconds.

    Signed, and set by GitHub when the merge happened: the receiver bounds a delivery's age by it (GitHub's own
    deliveries carry no signed timestamp otherwise)."""
    pr = _obj(_obj(payload, "body").get("pull_request"), "pull_request")
    value = _str(pr, "merged_at", "pull_request.merged_at", _GITHUB_TIME)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise PayloadError(f"pull_request.merged_at: {value!r} is not a valid time") from None
