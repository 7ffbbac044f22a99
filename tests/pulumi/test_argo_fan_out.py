"""The Argo WorkflowTemplate's fan-out over a suite's variants (issue 13, seed 000 section 11).

`prepare` (the suite ConfigMap) -> `plan` (`evaluator prepare --json` in the evaluator image; its branches as output
parameters) -> `branches` (`withParam` over them: each an Indexed Job with the run's id, its own variant and folder,
the run's shared G-Eval steps, then that branch's aggregate) -> the gates (each variant against the reference's
report; a single-variant suite gated alone, as the kubectl path does). The plan step's script runs here as in the
pod, against the real evaluator; the template is walked with the Argo stand-in the journey uses
(tests/journeys/argo_dag.py). The journey runs all of it as pods.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from factory import fanout
from factory.settings import load_stack
from factory.workflow import argo
from pulumi_harness import PULUMI_DIR, VARIANTS_CASES, write_suite, write_variants_suite

import evaluator
from tests.journeys.argo_dag import Call, DagWalk, substitute

RUN = "{{workflow.parameters.run-id}}"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def workflow(stack: str = "prod") -> dict[str, Any]:
    return workflow_of(load_stack(PULUMI_DIR, stack))


def workflow_of(s: Any) -> dict[str, Any]:
    """The template with the image and suite path a submission gives (`-p image=<eval.image>`, the default path)."""
    (template,) = [o for o in argo(s) if o["kind"] == "WorkflowTemplate"]
    given = {"workflow.parameters.image": s.eval.image, "workflow.parameters.suite-path": "/suite/suite.yaml"}
    filled: dict[str, Any] = substitute(template, given, strict=False)
    return filled


def templates(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in template["spec"]["templates"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


# --- the template's shape ----------------------------------------------------------------------------------


def test_the_plan_step_runs_evaluator_prepare_and_hands_argo_its_branches() -> None:
    plan = templates(workflow())["plan"]
    command = plan["container"]["command"]
    assert command[:3] == ["python", "-c", Path(fanout.__file__).read_text()]
    separator = command.index("--")
    assert command[separator + 1 :] == [
        "evaluator",
        "prepare",
        "/suite/suite.yaml",
        "--out",
        f"/results/{RUN}",
        "--json",
    ]
    outputs_dir = command[command.index("--outputs") + 1]
    params = {p["name"]: p["valueFrom"]["path"] for p in plan["outputs"]["parameters"]}
    assert params == {
        name: f"{outputs_dir}/{name}" for name in ("branches", "reference", "gate-alone", "gate-vs-reference")
    }
    # The files land on a writable mount (the root filesystem is read-only).
    mounts = [m["mountPath"] for m in plan["container"]["volumeMounts"]]
    assert any(outputs_dir.startswith(m + "/") for m in mounts), mounts
    env = env_of(plan["container"])
    assert env["EVAL_RUN_ID"] == RUN and env["EVAL_PROFILE"] == "{{workflow.parameters.profile}}"
    s = load_stack(PULUMI_DIR, "prod")
    assert (env["EVAL_JUDGE_BASE_URL"], env["EVAL_JUDGE_MODEL"]) == (
        s.judge_base_url,
        s.judge_model,
    )  # it writes the G-Eval steps
    stack_args = command[3:separator]
    assert stack_args[stack_args.index("--shards") + 1] == str(s.eval.shards)
    assert stack_args[stack_args.index("--sharding") + 1] == s.eval.sharding


def test_each_variant_is_one_branch_of_with_param_over_the_plan() -> None:
    t = templates(workflow())
    tasks = {task["name"]: task for task in t["main"]["dag"]["tasks"]}
    assert tasks["plan"]["depends"] == "prepare"
    branches = tasks["branches"]
    assert branches["depends"] == "plan" and branches["template"] == "branch"
    assert branches["withParam"] == "{{tasks.plan.outputs.parameters.branches}}"
    branch_inputs = [p["name"] for p in t["branch"]["inputs"]["parameters"]]
    assert {p["name"]: p["value"] for p in branches["arguments"]["parameters"]} == {
        name: "{{item." + name + "}}" for name in branch_inputs
    }
    inner = {task["name"]: task for task in t["branch"]["dag"]["tasks"]}
    assert inner["evaluate"]["template"] == "evaluate"
    # Each branch aggregates whatever its shards left, even after its Job failed: the report names the gaps.
    assert inner["aggregate"]["depends"] == "evaluate.Succeeded || evaluate.Failed || evaluate.Errored"
    # One failed branch stops neither the other branches nor the verdicts.
    assert t["main"]["dag"]["failFast"] is False and t["branch"]["dag"]["failFast"] is False
    for gate in ("gate-alone", "gate-vs-reference"):
        assert tasks[gate]["withParam"] == "{{tasks.plan.outputs.parameters." + gate + "}}"
        assert tasks[gate]["depends"] == "branches.Succeeded || branches.Failed || branches.Errored"


def branch_job(
    template: dict[str, Any], variant: str = "cand", job: str = "eval-r1-cand", completions: int = 3
) -> dict[str, Any]:
    """The evaluate step's Job as Argo creates it for one branch."""
    inputs = {
        "variant": variant,
        "job": job,
        "completions": str(completions),
        "parallelism": "2",
        "max-failed-indexes": "1",
    }
    evaluate = templates(template)["evaluate"]
    assert sorted(p["name"] for p in evaluate["inputs"]["parameters"]) == sorted(inputs)
    filled = substitute(evaluate, {f"inputs.parameters.{k}": v for k, v in inputs.items()}, strict=False)
    filled = substitute(filled, {"workflow.parameters.run-id": "r1", "workflow.parameters.commit": "0123456",
                                 "workflow.parameters.profile": "pr", "workflow.parameters.dataset-path": "cases.jsonl"})  # fmt: skip
    job_obj: dict[str, Any] = yaml.safe_load(filled["resource"]["manifest"])
    return job_obj


def test_every_branch_job_shares_the_run_id_and_its_g_eval_steps_but_writes_its_own_folder() -> None:
    job = branch_job(workflow(), completions=3)
    assert job["metadata"]["name"] == "eval-r1-cand"
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["maxFailedIndexes"]) == (3, 2, 1)  # integers, not strings
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    assert env["EVAL_RUN_ID"] == "r1"
    assert env["EVAL_VARIANT"] == "cand"
    assert env["EVAL_OUT_DIR"] == "/results/r1/cand"
    assert env["EVAL_STEPS_DIR"] == "/results/r1"
    assert env["EVAL_PROFILE"] == "pr"
    assert env["EVAL_TOTAL_SHARDS"] == "3"
    assert container["command"] == ["evaluator", "run", "/suite/suite.yaml", "--out", "/results/r1/cand"]
    s = load_stack(PULUMI_DIR, "prod")
    # The stack's vLLM answers every variant that names no endpoint of its own (EVAL_TARGET_* override `target`).
    assert (env["EVAL_TARGET_BASE_URL"], env["EVAL_TARGET_MODEL"]) == (s.vllm_base_url, s.vllm.served_model_name)
    guard, _wait = pod["initContainers"]  # the run-guard, then the wait for vLLM
    assert env_of(guard)["EVAL_OUT_DIR"] == "/results/r1/cand"  # the run-guard keeps each branch to one image
    assert job["spec"]["template"]["metadata"]["labels"]["ai-eval-factory/variant"] == "cand"


def test_each_branch_is_aggregated_into_its_own_report_and_gated_against_the_reference() -> None:
    t = templates(workflow())
    s = load_stack(PULUMI_DIR, "prod")
    aggregate = substitute(
        t["aggregate"], {"inputs.parameters.variant": "cand", "inputs.parameters.completions": "3"}, strict=False
    )
    assert aggregate["container"]["command"] == [
        "evaluator", "aggregate", f"/results/{RUN}/cand", "--out", f"/results/{RUN}/cand.json", "--expect-shards", "3",
    ]  # fmt: skip
    alone = substitute(t["gate-alone"], {"inputs.parameters.variant": "default"}, strict=False)
    assert alone["container"]["command"] == [
        "evaluator",
        "gate",
        f"/results/{RUN}/default.json",
        "--mode",
        s.eval.gate_mode,
    ]
    against = substitute(
        t["gate-vs-reference"],
        {"inputs.parameters.variant": "cand", "inputs.parameters.reference": "ref"},
        strict=False,
    )
    assert against["container"]["command"] == [
        "evaluator", "gate", f"/results/{RUN}/cand.json", "--baseline", f"/results/{RUN}/ref.json", "--mode", s.eval.gate_mode,
    ]  # fmt: skip
    for name in ("plan", "aggregate", "gate-alone", "gate-vs-reference"):
        assert t[name]["automountServiceAccountToken"] is False and t[name]["executor"]["serviceAccountName"]


def test_the_profile_is_a_workflow_parameter_that_defaults_to_every_case() -> None:
    params = {p["name"]: p for p in workflow()["spec"]["arguments"]["parameters"]}
    assert params["profile"]["value"] == ""  # EVAL_PROFILE="" is no profile for the evaluator (click ignores it)
    assert {"run-id", "commit", "suite-b64", "dataset-path", "dataset-b64"} <= set(params)


# --- the plan step's script, run here as in the pod -------------------------------------------------------


def plan_command(s: Any = None) -> list[str]:
    return list(templates(workflow_of(s or load_stack(PULUMI_DIR, "prod")))["plan"]["container"]["command"])


def run_plan(
    tmp_path: Path, suite: Path, command: list[str] | None = None, profile: str | None = None, run_id: str = "r1"
) -> subprocess.CompletedProcess[str]:
    """The rendered plan container's command as the pod runs it: this interpreter for `python`, `python -m
    evaluator` for `evaluator`, local paths for the suite, the results folder and the outputs folder."""
    command = [sys.executable if part == "python" else part for part in command or plan_command()]
    separator = command.index("--")
    prepare = command[separator + 1 :]
    assert prepare[:3] == ["evaluator", "prepare", "/suite/suite.yaml"] and prepare[3:5] == ["--out", f"/results/{RUN}"]
    prepare = [
        sys.executable,
        "-m",
        "evaluator",
        "prepare",
        str(suite),
        "--out",
        str(tmp_path / "results" / run_id),
        *prepare[5:],
    ]
    outputs = command.index("--outputs") + 1
    command = [*command[:separator], "--", *prepare]
    command[outputs] = str(tmp_path / "outputs")
    env = {**os.environ, "EVAL_RUN_ID": run_id, "EVAL_COMMIT": "0123456", "EVAL_PROFILE": profile or ""}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=120)


def read_outputs(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "outputs"
    return {p.name: p.read_text() for p in folder.iterdir() if not p.name.startswith(".")}


def test_a_single_variant_suite_is_one_branch_gated_alone(tmp_path: Path) -> None:
    done = run_plan(tmp_path, write_suite(tmp_path / "suite"))
    assert done.returncode == 0, done.stderr
    out = read_outputs(tmp_path)
    s = load_stack(PULUMI_DIR, "prod")
    shards = s.eval.shards
    assert json.loads(out["branches"]) == [
        {"variant": "default", "job": "eval-r1-default", "completions": shards,
         "parallelism": min(s.eval.parallelism, shards), "max-failed-indexes": min(s.eval.max_failed_indexes, shards)}
    ]  # fmt: skip
    assert out["reference"] == "default"
    assert json.loads(out["gate-alone"]) == ["default"] and json.loads(out["gate-vs-reference"]) == []
    assert json.loads(done.stdout.splitlines()[0])["variants"] == ["default"]  # prepare's plan, in the step's log


@pytest.mark.parametrize(("profile", "cases"), [(None, VARIANTS_CASES), ("pr", 3)])
def test_many_sharding_gives_each_branch_what_evaluator_run_variant_expects(
    tmp_path: Path, profile: str | None, cases: int
) -> None:
    """Completions per branch = what the evaluator itself computes for `run --variant V` (else every pod exits 2)."""
    project = tmp_path / "project"
    project.mkdir()
    config = yaml.safe_load((PULUMI_DIR / "Pulumi.prod.yaml").read_text())
    config["config"]["ai-eval-factory:eval"] |= {"sharding": "many", "timingsReport": None}
    (project / "Pulumi.prod.yaml").write_text(yaml.safe_dump(config))
    suite = write_variants_suite(tmp_path / "suite")
    command = plan_command(load_stack(project, "prod"))
    assert command[command.index("--sharding") + 1] == "many"
    done = run_plan(tmp_path, suite, command, profile)
    assert done.returncode == 0, done.stderr
    out = read_outputs(tmp_path)
    branches = json.loads(out["branches"])
    loaded = evaluator.load_suite(suite)
    for branch in branches:
        expected = evaluator.plan_run(loaded, profile=profile, variant=branch["variant"]).shard_count("many")
        assert branch["completions"] == expected == math.ceil(cases / 2)
        assert branch["max-failed-indexes"] <= branch["completions"] and branch["parallelism"] <= branch["completions"]
    assert [b["variant"] for b in branches] == ["cand", "ref"]
    assert out["reference"] == "ref"
    assert json.loads(out["gate-alone"]) == [] and json.loads(out["gate-vs-reference"]) == ["cand", "ref"]


def test_a_bad_profile_fails_the_plan_with_the_evaluators_message_and_no_branch(tmp_path: Path) -> None:
    done = run_plan(tmp_path, write_variants_suite(tmp_path / "suite"), profile="nightly")
    assert done.returncode == 2
    assert "unknown profile 'nightly'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_run_id_that_cannot_name_the_runs_objects_fails_the_plan(tmp_path: Path) -> None:
    done = run_plan(tmp_path, write_suite(tmp_path / "suite"), run_id="r" * 41)
    assert done.returncode == 2
    assert "must be lowercase letters, digits and '-', at most 40 characters" in done.stderr
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "results").exists()  # refused before prepare


# --- Job names stay DNS labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_id", "variant"),
    [
        ("r1", "default"),
        ("a1b2c3d4e5f6-0123456789ab", "reference"),
        ("a1b2c3d4e5f6-0123456789ab-nightly-12345", "v" * 40),
        ("x" * 40, "a" * 39 + "b"),
    ],
)
def test_branch_job_names_are_dns_labels_whose_pod_hostnames_fit(run_id: str, variant: str) -> None:
    name = fanout.branch_job_name(run_id, variant)
    assert DNS_LABEL.match(name) and len(name) <= fanout.JOB_NAME_MAX
    assert len(f"{name}-{10**10 - 1}") <= 63  # the pod hostname <job>-<index> of any index
    assert fanout.branch_job_name(run_id, variant) == name  # deterministic
    if len(f"eval-{run_id}-{variant}") <= fanout.JOB_NAME_MAX:
        assert name == f"eval-{run_id}-{variant}"  # readable when it fits


def test_long_branch_job_names_stay_distinct() -> None:
    run_id = "a1b2c3d4e5f6-0123456789ab-nightly-12345"
    names = {fanout.branch_job_name(run_id, f"{'v' * 38}-{i}") for i in range(10)}
    assert len(names) == 10
    assert fanout.branch_job_name(run_id, "v" * 40) != fanout.branch_job_name(run_id + "x", "v" * 40)[:-1]


# --- the whole template, walked as Argo would (leaf steps faked here; the journey runs them as pods) -------


@pytest.mark.parametrize("variants", [["default"], ["cand", "ref"]])
def test_the_dag_runs_plan_then_a_branch_per_variant_then_the_gates(variants: list[str]) -> None:
    template = substitute(
        workflow(),
        {
            f"workflow.parameters.{p}": "x"
            for p in ("run-id", "commit", "suite-b64", "dataset-path", "dataset-b64", "profile")
        },
        strict=False,  # what `argo submit -p` fills; the rest is the walk's
    )
    several = len(variants) > 1
    plan_outputs = {
        "branches": json.dumps(
            [
                {"variant": v, "job": f"eval-x-{v}", "completions": 2, "parallelism": 2, "max-failed-indexes": 1}
                for v in variants
            ]
        ),
        "reference": variants[-1],
        "gate-alone": json.dumps([] if several else variants),
        "gate-vs-reference": json.dumps(variants if several else []),
    }

    def leaf(call: Call) -> tuple[str, dict[str, str]]:
        return "Succeeded", plan_outputs if call.template == "plan" else {}

    walk = DagWalk(template, leaf)
    assert walk.run() == "Succeeded"
    order = [(c.template, c.arguments.get("variant")) for c in walk.calls]
    assert order[:2] == [("prepare", None), ("plan", None)]
    for v in variants:
        assert order.index(("evaluate", v)) < order.index(("aggregate", v))
    gates = [o for o in order if o[0].startswith("gate")]
    assert gates == ([("gate-vs-reference", v) for v in variants] if several else [("gate-alone", "default")])
    last_aggregate = max(i for i, o in enumerate(order) if o[0] == "aggregate")
    assert all(order.index(g) > last_aggregate for g in gates)  # every report exists before any gate reads it
