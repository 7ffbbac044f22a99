"""A variants suite goes through the cluster path's renderer unchanged (`python -m factory.render`, the release
pipeline's run-cluster-eval.sh): the suite ConfigMap carries the exact text, and what a pod reads back is the
same three variants and profiles. (The renderer belongs to the cluster engineer; this test only feeds it.)"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import evaluator
from tests.helpers import REPO

SUITE = REPO / "evaluator" / "examples" / "compare" / "suite.yaml"


def test_the_compare_suite_renders_unchanged_and_loads_in_the_pod(tmp_path: Path) -> None:
    if importlib.util.find_spec("pulumi") is None:  # not imported here: pulumi wants an event loop at import
        pytest.skip("the 'pulumi' extra renders the manifests")
    out = tmp_path / "rendered"
    done = subprocess.run(
        [sys.executable, "-m", "factory.render", "--stack", "dev", "--out", str(out), "--run-id", "r7-compare",
         "--commit", "0123456789abcdef0123456789abcdef01234567", "--suite", str(SUITE), "--image", "reg/ev:1"],
        cwd=REPO / "pulumi", capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (configmap,) = out.glob("run/r7-compare/*-configmap-*.yaml")
    text = yaml.safe_load(configmap.read_text())["data"]["suite.yaml"]
    assert text == SUITE.read_text(encoding="utf-8")
    # A pod reads the mounted suite (the dataset travels beside it, as for every suite).
    pod = tmp_path / "suite"
    pod.mkdir()
    (pod / "suite.yaml").write_text(text)
    shutil.copy(SUITE.parent / "questions.jsonl", pod)
    loaded = evaluator.load_suite(pod / "suite.yaml")
    assert loaded.suite.variant_names == ["reference", "terse", "creative"]
    assert sorted(loaded.suite.profiles) == ["nightly", "pr", "smoke"]
    plan = json.loads((out / "run" / "r7-compare.json").read_text())
    job = yaml.safe_load(next(out.glob("run/r7-compare/*-job-eval-*.yaml")).read_text())
    assert job["spec"]["completions"] == plan["completions"]
