"""Branch names as git allows them, and the repositories and release branches an admin configures.

The head branch of a release pull request is informational (Jenkins builds the merge commit, never the head), so
every name git accepts must pass: `renovate/@types-node-20.x`, `fix/issue#12`, non-ASCII names. The rules are
git's own (refs.c `check_refname_component` and `strbuf_check_branch_ref`, git 2.39), checked against
`git check-ref-format --branch` by tests/pipeline/test_receiver_trust.py.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from release_receiver.errors import ConfigError

_FORBIDDEN = set(" ~^:?*[\\\x7f") | {chr(c) for c in range(0x20)}
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


def branch_name_problem(name: str) -> str | None:
    """Why git refuses `name` as a branch name, or None when `git check-ref-format --branch` accepts it."""
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it starts with '-'"
    if name == "HEAD":
        return "'HEAD' is not a branch name"
    bad = next((c for c in name if c in _FORBIDDEN), None)
    if bad is not None:
        return f"it contains {bad!r}"
    for needle in ("..", "@{", "//"):
        if needle in name:
            return f"it contains {needle!r}"
    if name.startswith("/") or name.endswith("/"):
        return "it starts or ends with '/'"
    if name.endswith("."):
        return "it ends with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return f"component {component!r} starts with '.'"
        if component.endswith(".lock"):
            return f"component {component!r} ends with '.lock'"
    return None


def canonical_repository(value: str) -> str:
    """OWNER/NAME as GitHub spells it (owner 1-39 of [A-Za-z0-9-], name of [A-Za-z0-9._-]); ConfigError otherwise."""
    text = value.strip()
    if text.endswith(".git"):
        text = text[: -len(".git")]
    if not _REPOSITORY.fullmatch(text):
        raise ConfigError(f"repository {value!r} is not OWNER/NAME")
    return text


@dataclass(frozen=True)
class ReleasePolicy:
    """Which deliveries may release: merges into these repositories' release branches, nothing else.

    `repositories` are compared case-insensitively, as GitHub names them. `branches` are exact names; `globs`
    (fnmatch patterns) only when an admin opts in: a glob lets anyone who can create a matching branch (any
    writer, unless a ruleset restricts it) merge their own pull request into a "release" branch."""

    repositories: tuple[str, ...]
    branches: tuple[str, ...] = ("release",)
    globs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.repositories:
            raise ConfigError("no repository configured (--repository OWNER/NAME): every delivery would be refused")
        object.__setattr__(self, "repositories", tuple(canonical_repository(r) for r in self.repositories))
        if not self.branches and not self.globs:
            raise ConfigError("no release branch configured (--release-branch NAME)")
        for branch in self.branches:
            problem = branch_name_problem(branch)
            if problem:
                raise ConfigError(f"release branch {branch!r} is not a branch name git allows: {problem}")

    def allows_repository(self, full_name: str) -> bool:
        return full_name.casefold() in {r.casefold() for r in self.repositories}

    def is_release_branch(self, name: str) -> bool:
        return name in self.branches or any(fnmatch.fnmatchcase(name, glob) for glob in self.globs)

    def describe_branches(self) -> str:
        return ", ".join([*self.branches, *(f"{glob} (glob)" for glob in self.globs)])
