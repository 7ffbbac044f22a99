"""`scripts/ci-pipeline/run-cluster-eval.sh` against the strict stand-in API server (tests/journeys/fake_kubectl.py).

The release pipeline's cluster path: render the run, apply it, wait for the eval Job (Complete or Failed, never
hanging), apply the aggregate Job, wait, then bring the results off the cluster. Every pod it creates goes through
the namespace's Pod Security Admission (`restricted`, as the stack labels it), every object through the API
server's size limits, every `kubectl wait` through kubectl's own timeout rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factory import manifests
from factory.settings import load_stack
from pulumi_harness import PULUMI_DIR

from tests.journeys import fake_kubectl

REPO = PULUMI_DIR.parent
SCRIPT = REPO / "scripts" / "ci-pipeline" / "run-cluster-eval.sh"
COMMIT = "f" * 40
RUN_ID = f"r7-{COMMIT[:12]}"


def cluster(tmp_path: Path, jobs: dict[str, dict[str, object]] | None = None) -> dict[str, str]:
    """The stand-in cluster after `pulumi up` of dev: its namespace exists (restricted); the results volume
    already holds what the run's pods wrote."""
    kubectl = fake_kubectl.install(tmp_path / "bin")
    env = {
        **os.environ,
        "KUBECTL": str(kubectl),
        "FAKE_KUBE_STATE": str(tmp_path / "state.json"),
        "FAKE_KUBE_VOLUMES": str(tmp_path / "volumes"),
        "FAKE_KUBE_TIME_SCALE": "0.01",
        "FAKE_KUBE_JOBS": json.dumps(jobs or {}),
        "FAKE_KUBECTL_LOG": str(tmp_path / "kubectl.log"),
        "COMMIT": COMMIT,
        "BUILD_NUMBER": "7",
        "PYTHON": sys.executable,
        "RENDER_DIR": str(tmp_path / "rendered"),
        "RESULTS_DIR": str(tmp_path / "results"),
        "EVAL_SUITE": "evaluator/examples/demo/suite.yaml",
        "EVAL_JOB_TIMEOUT": "30s",
    }
    namespace = manifests.long_lived(load_stack(PULUMI_DIR, "dev"))[0]
    (tmp_path / "ns.yaml").write_text(yaml.safe_dump(namespace))
    subprocess.run([str(kubectl), "apply", "-f", str(tmp_path / "ns.yaml")], env=env, check=True, capture_output=True)
    written = tmp_path / "volumes" / "eval-results" / RUN_ID
    (written / "shard-00000").mkdir(parents=True)
    (written / "report.json").write_text(json.dumps({"run_id": RUN_ID}) + "\n")
    return env


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.parametrize(("verdict", "code"), [("Complete", 0), ("Failed", 4)])
def test_the_cluster_path_brings_the_report_to_the_agents_disk_past_admission(
    tmp_path: Path, verdict: str, code: int
) -> None:
    env = cluster(tmp_path, {"eval-": {"verdict": verdict, "after": 1}})
    done = run_script(env)
    assert done.returncode == code, done.stderr
    assert json.loads((tmp_path / "results" / "report.json").read_text())["run_id"] == RUN_ID, done.stderr
    assert (tmp_path / "results" / "shard-00000").is_dir()
    calls = (tmp_path / "kubectl.log").read_text().splitlines()
    applies = [c for c in calls if " apply " in f" {c} " and "ns.yaml" not in c]
    assert "configmap-suite" in applies[0] and f"job-eval-{RUN_ID}" in applies[0]
    assert any(f"job-aggregate-{RUN_ID}" in c for c in applies[1:])
    # Every wait names its own timeout: kubectl's default (30 s) is shorter than any pull or run.
    waits = [c for c in calls if " wait " in f" {c} "]
    assert waits and all("--timeout" in c for c in waits), waits


def test_a_300_kib_dataset_passes_the_scripts_apply(tmp_path: Path) -> None:
    """The script applies server-side: a suite ConfigMap past client-side apply's 256 KiB annotation still lands."""
    from test_cluster_rules import big_suite

    suite = big_suite(tmp_path / "suite", 300)
    env = cluster(tmp_path) | {"EVAL_SUITE": os.path.relpath(suite, REPO)}
    done = run_script(env)
    assert done.returncode == 0, done.stderr
    assert "configmap/suite-" in done.stdout and "(server side)" in done.stdout
