"""Jenkins' half of the trust boundary (issue 17, item 1), with a real git repository as GitHub.

The release job's pipeline code comes from the protected release branch (its SCM, in jenkins/casc/jenkins.yaml),
never from the commit under test. Before any file of that commit runs, scripts/ci-pipeline/verify-release-commit.sh
(trusted: from the release branch's checkout) checks the delivery's parameters against git itself: the pinned
repository, a configured release branch, and COMMIT reachable from origin/<release branch>; only then does it
check the commit out. scripts/ci-pipeline/claim-release.sh then makes a repeated trigger of the same release stop
(the receiver may forward twice after a timeout: test_receiver_outbox.py).

The attacker's cases: another repository, a non-release base, a commit only on a side branch, a forged merge of
a self-made release branch. Each is refused, by the layer that can know, with a message that names why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.conftest import REPO

SCRIPTS = REPO / "scripts" / "ci-pipeline"


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """acme/ai-eval-factory with a protected `release` (two reviewed merges), a writer's side branch, a self-made
    `release-hotfix` with a merge into it; and mallory/fork, another repository."""
    root = tmp_path_factory.mktemp("github")
    work = root / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "commit", "-q", "--allow-empty", "-m", "initial")
    git(work, "checkout", "-q", "-b", "release")
    for n in (1, 2):
        git(work, "checkout", "-q", "-b", f"feature/{n}", "main")
        git(work, "commit", "-q", "--allow-empty", "-m", f"feature {n}")
        git(work, "checkout", "-q", "release")
        git(work, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{n}", f"feature/{n}")
    reviewed = git(work, "rev-parse", "release~1")  # the first reviewed merge: still reachable from release
    head = git(work, "rev-parse", "release")
    git(work, "checkout", "-q", "-b", "evil", "main")
    git(work, "commit", "-q", "--allow-empty", "-m", "curl attacker | sh in the Jenkinsfile")
    side = git(work, "rev-parse", "evil")
    git(work, "checkout", "-q", "-b", "release-hotfix", "main")
    git(work, "merge", "-q", "--no-ff", "-m", "Merge pull request #66 (self-approved)", "evil")
    forged = git(work, "rev-parse", "release-hotfix")
    origin = root / "acme" / "ai-eval-factory.git"
    origin.parent.mkdir()
    git(root, "clone", "-q", "--bare", str(work), str(origin))
    fork = root / "mallory" / "fork.git"
    fork.parent.mkdir()
    git(root, "clone", "-q", "--bare", str(work), str(fork))
    # A commit that exists only in mallory/fork, on the fork's own `release` (a merge there is no review here).
    git(work, "checkout", "-q", "-b", "fork-release", "release")
    git(work, "merge", "-q", "--no-ff", "-m", "Merge pull request #1 of mallory/fork", "evil")
    foreign = git(work, "rev-parse", "fork-release")
    git(work, "push", "-q", str(fork), "fork-release:release")
    return {"root": root, "url": f"file://{origin}", "fork": f"file://{fork}", "reviewed": reviewed, "head": head,
            "side": side, "forged": forged, "foreign": foreign}  # fmt: skip


def jenkins_checkout(github: dict[str, Any], tmp_path: Path, url: str | None = None) -> Path:
    """What `checkout scm` leaves: the release branch of the job's repository (the pinned URL), detached."""
    workspace = tmp_path / "workspace"
    git(tmp_path, "clone", "-q", "--branch", "release", url or github["url"], str(workspace))
    return workspace


def verify(workspace: Path, github: dict[str, Any], **params: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"], "HOME": str(workspace.parent), "GIT_CONFIG_GLOBAL": "/dev/null",
        "WORKSPACE": str(workspace), "RELEASE_REPO_URL": github["url"], "RELEASE_REPOSITORY": "acme/ai-eval-factory",
        "RELEASE_BRANCH": "release", "RELEASE_BRANCH_GLOBS": "",
        "COMMIT": github["head"], "REPOSITORY": "acme/ai-eval-factory", "BASE_REF": "release", "PR_NUMBER": "2",
    } | params  # fmt: skip
    return subprocess.run(["bash", str(SCRIPTS / "verify-release-commit.sh")], env=env, cwd=workspace,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("which", ["head", "reviewed"])
def test_a_reviewed_merge_on_the_release_branch_is_checked_out(
    github: dict[str, Any], tmp_path: Path, which: str
) -> None:
    workspace = jenkins_checkout(github, tmp_path)
    done = verify(workspace, github, COMMIT=github[which])
    assert done.returncode == 0, done.stderr
    assert git(workspace, "rev-parse", "HEAD") == github[which]
    assert "reachable from origin/release" in done.stderr


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"REPOSITORY": "mallory/fork"}, "REPOSITORY mallory/fork is not the pinned repository acme/ai-eval-factory"),
        ({"BASE_REF": "main"}, "BASE_REF 'main' is not a release branch (release)"),
        ({"BASE_REF": "release-hotfix"}, "BASE_REF 'release-hotfix' is not a release branch (release)"),
        ({"COMMIT": "side"}, "is not reachable from origin/release of acme/ai-eval-factory"),
        ({"COMMIT": "forged"}, "is not reachable from origin/release of acme/ai-eval-factory"),
        ({"COMMIT": "0" * 40}, "is not a commit of acme/ai-eval-factory"),
        # The fork's release merge, claimed to be ours: the pinned repository has no such commit.
        ({"COMMIT": "foreign"}, "is not a commit of acme/ai-eval-factory"),
        ({"COMMIT": "foreign", "REPOSITORY": "mallory/fork"}, "is not the pinned repository"),
    ],
)
def test_what_is_not_a_reviewed_merge_is_refused_before_any_file_of_it_runs(
    github: dict[str, Any], tmp_path: Path, params: dict[str, str], needle: str
) -> None:
    workspace = jenkins_checkout(github, tmp_path)
    release_head = git(workspace, "rev-parse", "HEAD")
    params = {k: github.get(v, v) for k, v in params.items()}
    done = verify(workspace, github, **params)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr, done.stderr
    assert git(workspace, "rev-parse", "HEAD") == release_head, "the refused commit was checked out"


def test_a_workspace_of_another_repository_is_refused(github: dict[str, Any], tmp_path: Path) -> None:
    """The checkout's origin must be the pinned URL: a job pointed elsewhere cannot vouch for a commit."""
    workspace = jenkins_checkout(github, tmp_path, url=github["fork"])
    done = verify(workspace, github)
    assert done.returncode == 2 and "origin is" in done.stderr and "not the pinned" in done.stderr, done.stderr


def test_a_release_branch_glob_is_honoured_only_when_configured(github: dict[str, Any], tmp_path: Path) -> None:
    workspace = jenkins_checkout(github, tmp_path)
    done = verify(
        workspace, github, BASE_REF="release-hotfix", COMMIT=github["forged"], RELEASE_BRANCH_GLOBS="release-*"
    )
    assert done.returncode == 0, done.stderr  # an admin opted in: release-hotfix must then be protected like release


def claim(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "WORKSPACE": str(tmp_path), "RESULTS_DIR": str(tmp_path / "results"),
           "RELEASE_CLAIMS_DIR": str(tmp_path / "claims"), "COMMIT": "a" * 40, "PR_NUMBER": "42",
           "REPOSITORY": "acme/ai-eval-factory", "BUILD_URL": "http://127.0.0.1:8080/job/release/7/"} | extra  # fmt: skip
    return subprocess.run(["bash", str(SCRIPTS / "claim-release.sh")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_a_release_is_claimed_once_and_a_repeated_trigger_stops(tmp_path: Path) -> None:
    """Jenkins' side of exactly-once: the receiver retried after a timeout and Jenkins had queued the first."""
    first = claim(tmp_path)
    assert first.returncode == 0 and (tmp_path / "results" / "release-claim").read_text().strip() == "claimed"
    second = claim(tmp_path, BUILD_URL="http://127.0.0.1:8080/job/release/8/", REPOSITORY="ACME/ai-eval-factory")
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "results" / "release-claim").read_text().strip() == "duplicate"
    assert "already claimed by http://127.0.0.1:8080/job/release/7/" in second.stderr
    other = claim(tmp_path, PR_NUMBER="43", COMMIT="b" * 40)
    assert (tmp_path / "results" / "release-claim").read_text().strip() == "claimed", other.stderr
    again = claim(tmp_path, RERUN="true", BUILD_URL="http://127.0.0.1:8080/job/release/9/")
    assert (tmp_path / "results" / "release-claim").read_text().strip() == "claimed", again.stderr
    assert "RERUN" in again.stderr


def test_claims_race_safely(tmp_path: Path) -> None:
    """Two builds of the same release started at once: exactly one claims it (mkdir is atomic)."""
    import concurrent.futures

    def one(n: int) -> str:
        results = tmp_path / f"results-{n}"
        claim(tmp_path, RESULTS_DIR=str(results), BUILD_URL=f"build-{n}")
        return (results / "release-claim").read_text().strip()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(8)))
    assert sorted(outcomes) == ["claimed"] + ["duplicate"] * 7
