"""A run rendered for kubectl (and the stack-owned `evalRun`) follows the suite's units and profile (issue 13).

The unit of work is (variant, case): with `many` sharding the Indexed Job needs ceil(units / chunk_size)
completions, and the aggregate must expect exactly that many shards, or every pod exits 2 (the evaluator checks
EVAL_TOTAL_SHARDS against its own count). The profile selects the cases: it reaches the pods as EVAL_PROFILE and the
launch facts record it with the variants, next to the keys the release pipeline already reads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from factory import evaluation, render
from pulumi_harness import (
    PULUMI_DIR,
    VARIANTS_CASES,
    VARIANTS_PR_CASES,
    run_program,
    stack_config,
    unwrap,
    write_suite,
    write_variants_suite,
)

import evaluator

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# What scripts/ci-pipeline/run-cluster-eval.sh and the README read from run/<run-id>.json: never removed.
LAUNCH_FACTS_KEYS = {
    "namespace", "suite_configmap", "eval_job", "aggregate_job", "completions", "results_claim", "image", "files",
    "results_dir", "report", "suite_path", "target_base_url", "target_model", "judge_base_url", "judge_model",
    "sharding", "timings", "job_deadline_seconds",
}  # fmt: skip


def many_project(tmp_path: Path, stack: str = "dev") -> Path:
    """The stack's own config with `eval.sharding: many` (prod's balanced timings dropped)."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    config = yaml.safe_load((PULUMI_DIR / f"Pulumi.{stack}.yaml").read_text())
    section = config["config"]["ai-eval-factory:eval"]
    section["sharding"] = "many"
    section.pop("timingsReport", None)
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(config))
    return project


def render_run(tmp_path: Path, suite: Path, *extra: str, stack: str = "dev", env: dict[str, str] | None = None) -> Any:
    args = ["--stack", stack, "--out", str(tmp_path / "out"), "--run-id", "r1", "--commit", COMMIT]
    return CliRunner().invoke(render.main, [*args, "--suite", str(suite), *extra], env=env or {"EVAL_PROFILE": ""})


def rendered(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((tmp_path / "out" / "run" / "r1").glob("*.yaml"))]
    eval_job, aggregate_job = [d for d in docs if d["kind"] == "Job"]
    plan = json.loads((tmp_path / "out" / "run" / "r1.json").read_text())
    return eval_job, aggregate_job, plan


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(("profile", "cases"), [(None, VARIANTS_CASES), ("pr", VARIANTS_PR_CASES)])
def test_many_sharding_completions_follow_the_units_of_variants_and_selected_cases(
    tmp_path: Path, profile: str | None, cases: int
) -> None:
    suite = write_variants_suite(tmp_path / "suite")
    extra = ["--project-dir", str(many_project(tmp_path))] + (["--profile", profile] if profile else [])
    result = render_run(tmp_path, suite, *extra)
    assert result.exit_code == 0, result.output
    eval_job, aggregate_job, plan = rendered(tmp_path)
    planned = evaluator.plan_run(evaluator.load_suite(suite), profile=profile)
    expected = planned.shard_count("many")
    assert expected == math.ceil(2 * cases / 2) and len(planned.units) == 2 * cases  # 2 variants x the cases
    spec = eval_job["spec"]
    assert spec["completions"] == expected == plan["completions"]
    assert spec["parallelism"] <= expected and spec["maxFailedIndexes"] <= expected
    assert env_of(spec["template"]["spec"]["containers"][0])["EVAL_TOTAL_SHARDS"] == str(expected)
    (aggregate,) = aggregate_job["spec"]["template"]["spec"]["initContainers"]
    assert aggregate["command"][aggregate["command"].index("--expect-shards") + 1] == str(expected)


def test_other_sharding_keeps_the_stacks_shards(tmp_path: Path) -> None:
    assert render_run(tmp_path, write_variants_suite(tmp_path / "suite")).exit_code == 0
    eval_job, aggregate_job, plan = rendered(tmp_path)
    shards = stack_config("dev")["eval"]["shards"]
    assert eval_job["spec"]["completions"] == plan["completions"] == shards
    assert f"--expect-shards {shards}" in " ".join(
        aggregate_job["spec"]["template"]["spec"]["initContainers"][0]["command"]
    )


def test_the_profile_reaches_the_pods_and_the_launch_facts_with_the_variants(tmp_path: Path) -> None:
    result = render_run(tmp_path, write_variants_suite(tmp_path / "suite"), "--profile", "pr")
    assert result.exit_code == 0, result.output
    eval_job, aggregate_job, plan = rendered(tmp_path)
    pod = eval_job["spec"]["template"]["spec"]
    assert env_of(pod["containers"][0])["EVAL_PROFILE"] == "pr"
    assert plan["profile"] == "pr"
    assert plan["variants"] == ["cand", "ref"] and plan["reference"] == "ref"
    assert plan["units"] == 2 * VARIANTS_PR_CASES
    assert set(plan) >= LAUNCH_FACTS_KEYS


def test_no_profile_is_every_case_and_no_eval_profile_in_the_pods(tmp_path: Path) -> None:
    assert render_run(tmp_path, write_suite(tmp_path / "suite")).exit_code == 0
    eval_job, _, plan = rendered(tmp_path)
    assert "EVAL_PROFILE" not in env_of(eval_job["spec"]["template"]["spec"]["containers"][0])
    assert plan["profile"] is None and plan["variants"] == ["default"] and plan["units"] == 1
    assert set(plan) >= LAUNCH_FACTS_KEYS


def test_the_pipelines_eval_profile_reaches_a_rendered_run(tmp_path: Path) -> None:
    """The Jenkinsfile exports EVAL_PROFILE; run-cluster-eval.sh renders without a flag: the same option as the
    evaluator's (`--profile`, env EVAL_PROFILE)."""
    result = render_run(tmp_path, write_variants_suite(tmp_path / "suite"), env={"EVAL_PROFILE": "pr"})
    assert result.exit_code == 0, result.output
    eval_job, _, plan = rendered(tmp_path)
    assert env_of(eval_job["spec"]["template"]["spec"]["containers"][0])["EVAL_PROFILE"] == "pr"
    assert plan["profile"] == "pr"
    # Without a run, the environment's profile has nothing to select: the stack renders as before.
    stack_only = CliRunner().invoke(
        render.main, ["--stack", "dev", "--out", str(tmp_path / "stack-only")], env={"EVAL_PROFILE": "pr"}
    )
    assert stack_only.exit_code == 0, stack_only.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nightly"], "--profile: unknown profile 'nightly' (the suite's profiles: pr)"),
        (["--profile", "pr", "--suite-in-image", "/work/suite/suite.yaml"], None),
    ],
)
def test_a_profile_the_suite_lacks_is_refused_at_render(tmp_path: Path, args: list[str], message: str | None) -> None:
    result = render_run(tmp_path, write_variants_suite(tmp_path / "suite"), *args)
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_profile_without_a_run_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(render.main, ["--stack", "dev", "--out", str(tmp_path / "o"), "--profile", "pr"])
    assert result.exit_code == 2
    assert "a run needs all of --run-id, --commit and --suite" in result.output


def test_a_stack_owned_run_takes_its_profile_and_many_shards(tmp_path: Path) -> None:
    config = stack_config("dev")
    config["eval"] = dict(config["eval"], sharding="many")
    suite = write_variants_suite(tmp_path / "suite")
    config["evalRun"] = {"runId": "r1", "commit": "0123456789abcdef", "suiteFile": str(suite), "profile": "pr"}
    mocks, out = run_program("dev", config)
    expected = evaluator.plan_run(evaluator.load_suite(suite), profile="pr").shard_count("many")
    job = unwrap(mocks.by_name("job-eval-eval-r1").inputs)
    assert job["spec"]["completions"] == expected
    assert env_of(job["spec"]["template"]["spec"]["containers"][0])["EVAL_PROFILE"] == "pr"
    gate = unwrap(mocks.by_name("job-eval-aggregate-r1").inputs)
    assert f"--expect-shards {expected}" in " ".join(gate["spec"]["template"]["spec"]["initContainers"][0]["command"])
    assert job == evaluation.eval_job(out["settings"], "r1", "0123456789abcdef", run=out["eval_job"].run)
