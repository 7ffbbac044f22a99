"""The scripts the Jenkinsfile calls: shellcheck-clean, parameter checks, the cluster path from render to
results, and the Job wait that never hangs. kubectl is a stand-in here (no API server can run on this
machine): it answers `wait --for=condition=X` the way a real Job in that state would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import MERGE_SHA, REPO

SCRIPTS = REPO / "scripts" / "ci-pipeline"


def run(
    script: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "WORKSPACE": str(cwd)} | (env or {})
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args], env=full_env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (scripts/apt/pipeline.txt)")
def test_shellcheck_is_clean() -> None:
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    result = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True, cwd=SCRIPTS, check=False)
    assert result.returncode == 0, result.stdout


GOOD = {"COMMIT": MERGE_SHA, "PR_NUMBER": "42", "REPOSITORY": "acme/ai-eval-factory", "EVAL_PATH": "local"}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"COMMIT": "main"}, "COMMIT"),
        ({"COMMIT": MERGE_SHA.upper()}, "COMMIT"),
        ({"COMMIT": MERGE_SHA + "; rm -rf /"}, "COMMIT"),
        ({"PR_NUMBER": "0"}, "PR_NUMBER"),
        ({"PR_NUMBER": "$(id)"}, "PR_NUMBER"),
        ({"REPOSITORY": "a/b/c"}, "REPOSITORY"),
        ({"EVAL_PATH": "cloud"}, "EVAL_PATH"),
    ],
)
def test_check_params_refuses_bad_parameters(change: dict[str, str], needle: str) -> None:
    result = run("check-params.sh", env=GOOD | change)
    assert result.returncode == 2
    assert needle in result.stderr


def test_check_params_accepts_and_compares_the_checkout(tmp_path: Path) -> None:
    assert run("check-params.sh", env=GOOD).returncode == 0
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
    )  # fmt: skip
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert run("check-params.sh", "--head", env=GOOD | {"COMMIT": head}, cwd=tmp_path).returncode == 0
    other = run("check-params.sh", "--head", env=GOOD, cwd=tmp_path)
    assert other.returncode == 2 and "checked out" in other.stderr


FAKE_KUBECTL = """#!/usr/bin/env bash
# Stand-in for kubectl against a Job in state $FAKE_JOB_STATE (complete, failed or running).
# `wait` honours --timeout like kubectl: it returns 1 when the condition does not come in time.
for arg in "$@"; do
  case "$arg" in
    --for=condition=*) cond="${arg#--for=condition=}" ;;
    --timeout=*) limit="${arg#--timeout=}"; limit="${limit%s}" ;;
  esac
done
echo "$*" >> "$FAKE_KUBECTL_LOG"
if [ "${cond:-}" = "$FAKE_JOB_STATE" ]; then exit 0; fi
sleep "${limit:-3600}"
exit 1
"""


@pytest.mark.parametrize(("state", "code"), [("complete", 0), ("failed", 4), ("running", 4)])
def test_the_job_wait_returns_on_either_condition_and_never_hangs(tmp_path: Path, state: str, code: int) -> None:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {
        "KUBECTL": str(kubectl), "FAKE_JOB_STATE": state, "FAKE_KUBECTL_LOG": str(log), "COMMIT": MERGE_SHA,
        "EVAL_JOB_TIMEOUT": "2s",
    }  # fmt: skip
    # The subprocess timeout (60 s) is only a guard: a hang would fail the test instead of blocking CI.
    result = run("run-cluster-eval.sh", "--wait-only", "eval-r1", env=env)
    assert result.returncode == code, result.stderr
    waits = log.read_text().splitlines()
    # The waiter that decided was asked for; when neither decides, both ran to their timeout.
    asked = {"complete": ["complete"], "failed": ["failed"], "running": ["complete", "failed"]}[state]
    for condition in asked:
        assert any(f"--for=condition={condition} job/eval-r1" in w for w in waits), waits
    verdict = {"complete": "complete", "failed": "failed", "running": "no verdict"}[state]
    assert verdict in result.stderr


FAKE_KUBECTL_CLUSTER = """#!/usr/bin/env bash
# Stand-in for kubectl against a cluster where the eval Job ends in $FAKE_EVAL_STATE and the aggregate Job
# completes. `cp` delivers a results folder as the collector pod would.
echo "$*" >> "$FAKE_KUBECTL_LOG"
for arg in "$@"; do
  case "$arg" in
    --for=condition=*) cond="${arg#--for=condition=}" ;;
    job/eval-*) state="$FAKE_EVAL_STATE" ;;
    job/aggregate-*) state=complete ;;
    pod/*) state=Ready ;;
  esac
done
if [ -n "${cond:-}" ]; then
  if [ "$cond" = "$state" ]; then exit 0; fi
  sleep 5; exit 1
fi
if [ "$3" = cp ]; then
  dest="${@: -1}"; mkdir -p "$dest/shard-00000"; echo '{}' > "$dest/report.json"
fi
exit 0
"""


@pytest.mark.parametrize(("state", "code"), [("complete", 0), ("failed", 4)])
def test_cluster_path_renders_applies_waits_aggregates_and_collects(tmp_path: Path, state: str, code: int) -> None:
    """The real renderer (pulumi/factory/render.py), the real manifests; kubectl is the stand-in above."""
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL_CLUSTER)
    kubectl.chmod(0o755)
    log = tmp_path / "kubectl.log"
    env = {
        "KUBECTL": str(kubectl), "FAKE_EVAL_STATE": state, "FAKE_KUBECTL_LOG": str(log), "COMMIT": MERGE_SHA,
        "BUILD_NUMBER": "7", "PYTHON": sys.executable, "RENDER_DIR": str(tmp_path / "rendered"),
        "RESULTS_DIR": str(tmp_path / "results"), "EVAL_SUITE": "evaluator/examples/demo/suite.yaml",
        "EVAL_JOB_TIMEOUT": "30s",
    }  # fmt: skip
    result = run("run-cluster-eval.sh", env=env)
    assert result.returncode == code, result.stderr
    rid = f"r7-{MERGE_SHA[:12]}"
    calls = log.read_text().splitlines()
    applies = [c for c in calls if c.startswith("apply")]
    # Suite and eval Job first, the aggregate Job only after the eval Job's verdict (even a failed one).
    assert "configmap-suite" in applies[0] and f"job-eval-{rid}" in applies[0]
    assert f"job-aggregate-{rid}" in applies[1]
    first_aggregate = calls.index(applies[1])
    assert any(f"job/eval-{rid}" in c for c in calls[:first_aggregate])
    rendered = sorted((tmp_path / "rendered" / "run" / rid).glob("*.yaml"))
    jobs = [yaml.safe_load(p.read_text()) for p in rendered if "-job-" in p.name]
    images = {
        c["image"]
        for j in jobs
        for k in ("initContainers", "containers")
        for c in j["spec"]["template"]["spec"].get(k, [])
    }
    assert images == {f"ai-eval-factory/evaluator:{MERGE_SHA}"}
    assert (tmp_path / "results" / ".expected-shards").read_text().strip() == str(jobs[0]["spec"]["completions"])
    assert (tmp_path / "results" / "shard-00000").is_dir()
    assert any(c.startswith("--namespace") and " cp " in f" {c} " for c in calls)
