"""The stack and a run held to what a real control plane enforces (issue 20), through the strict stand-ins.

Each rule is upstream's, modelled in tests/journeys (admission, api_limits, scheduler, argo_dag, fake_kubectl):
the device plugin has to land on a freshly joined GPU node, every pod any path creates has to pass the namespace's
Pod Security Admission, a run's objects have to fit every documented apply path, and an Argo branch whose Job
failed has to fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from factory import gpu, manifests, render, workflow
from factory.settings import load_stack
from pulumi_harness import PULUMI_DIR, run_program, stack_config, unwrap, write_suite

from tests.journeys import admission, api_limits, argo_dag, fake_kubectl, scheduler

REPO = PULUMI_DIR.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def pod_of(name: str, namespace: str, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {**(template.get("metadata") or {}), "name": name, "namespace": namespace},
        "spec": template["spec"],
    }


# --- 1. the device plugin on a fresh cluster ---------------------------------------------------------------


def test_the_prod_device_plugin_lands_on_a_fresh_gpu_node_and_its_gpu_reaches_the_pods() -> None:
    """A cluster "with no device plugin of its own" runs no GPU Feature Discovery either: its GPU node carries the
    kubelet's labels only. The plugin must run there, or no pod ever gets `nvidia.com/gpu`."""
    s = load_stack(PULUMI_DIR, "prod")
    config_map, daemonset, _ = gpu.device_plugin(s)
    cluster = scheduler.Cluster(scheduler.fresh_gpu_cluster())
    assert "gpu-0" in cluster.run_device_plugin(daemonset, config_map)
    gpu_pods = [o for o in manifests.long_lived(s) if o["kind"] in ("Job", "Deployment")]
    for i, obj in enumerate(gpu_pods):  # each GPU pod the stack creates, in order; a Job's pod ends
        assert cluster.schedule(f"pod-{i}", obj["spec"]["template"]["spec"]) == "gpu-0", obj["metadata"]["name"]
        if obj["kind"] == "Job":
            cluster.release(f"pod-{i}")


def test_a_cluster_with_gpu_feature_discovery_can_keep_its_labels_in_the_affinity() -> None:
    config = stack_config("prod")
    config["devicePlugin"] = dict(config["devicePlugin"], nodeSelector={"nvidia.com/gpu.present": "true"})
    from factory.settings import parse

    s = parse(config, "prod", "Pulumi.prod.yaml")
    _, daemonset, _ = gpu.device_plugin(s)
    nodes = scheduler.fresh_gpu_cluster()
    assert scheduler.daemonset_nodes(daemonset, nodes) == []  # the label GFD would set is missing
    nodes[1].labels["nvidia.com/gpu.present"] = "true"
    assert scheduler.daemonset_nodes(daemonset, nodes) == ["gpu-0"]


# --- every pod any path creates passes the namespace's admission -------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_pod_of_the_stack_a_run_and_the_argo_template_passes_restricted(stack: str, tmp_path: Path) -> None:
    s = load_stack(PULUMI_DIR, stack)
    namespace = next(o for o in manifests.long_lived(s) if o["kind"] == "Namespace")
    run_objs = render.render(stack, tmp_path / "out", PULUMI_DIR, "r1", COMMIT, write_suite(tmp_path / "s"))["run"]
    objs = [*manifests.long_lived(s), *(yaml.safe_load(p.read_text()) for p in run_objs), *workflow.argo(s)]
    pods = []
    for obj in objs:
        if obj["metadata"].get("namespace") != s.namespace:
            continue  # the device plugin lives in kube-system, outside the factory's policy
        if obj["kind"] in ("Job", "Deployment"):
            pods.append(pod_of(obj["metadata"]["name"], s.namespace, obj["spec"]["template"]))
        if obj["kind"] == "Pod":
            pods.append(obj)
        if obj["kind"] == "WorkflowTemplate":
            for t in obj["spec"]["templates"]:
                if "container" in t:
                    spec = {"securityContext": t["securityContext"], "containers": [t["container"]]}
                    pods.append(pod_of(t["name"], s.namespace, {"spec": spec | {"volumes": t["volumes"]}}))
                if "resource" in t and "kind: Job" in t["resource"]["manifest"]:
                    job = yaml.safe_load(t["resource"]["manifest"].replace("{{", "").replace("}}", ""))
                    pods.append(pod_of(t["name"], s.namespace, job["spec"]["template"]))
    assert len(pods) >= 6
    for pod in pods:
        admission.admit(pod, namespace)


# --- a run's objects fit every documented apply path ----------------------------------------------------------


def big_suite(folder: Path, kib: int) -> Path:
    """A valid suite whose dataset is about `kib` KiB."""
    suite = write_suite(folder)
    lines, size, i = [], 0, 0
    while size < kib * 1024:
        line = json.dumps({"id": f"c{i}", "input": "q" * 900, "expected_output": "a"}) + "\n"
        lines.append(line)
        size += len(line)
        i += 1
    (folder / "cases.jsonl").write_text("".join(lines))
    return suite


def readme_run_applies(readme: Path) -> list[str]:
    """The quickstart's `kubectl apply` lines for a rendered run's files."""
    text = readme.read_text()
    return [line.strip() for line in text.splitlines() if re.match(r"\s*kubectl .*apply .*out/k8s/run/", line)]


def test_a_300_kib_dataset_reaches_the_cluster_by_every_documented_apply_path_or_is_refused(tmp_path: Path) -> None:
    suite = big_suite(tmp_path / "s", 300)
    out = tmp_path / "work" / "out" / "k8s"
    result = CliRunner().invoke(
        render.main, ["--stack", "dev", "--out", str(out), "--run-id", "r1", "--commit", COMMIT, "--suite", str(suite)]
    )
    if result.exit_code == 2:  # refusing is allowed, but then it has to name the limit and the way out
        assert "262,144" in result.output or "256 KiB" in result.output, result.output
        assert "--suite-in-image" in result.output
        return
    assert result.exit_code == 0, result.output
    # The README's quickstart, its apply lines as written, against the stand-in API server.
    kubectl = fake_kubectl.install(tmp_path / "bin")
    env = {**os.environ, "PATH": f"{kubectl.parent}:{os.environ['PATH']}", "RUN_ID": "r1"}
    env["FAKE_KUBE_STATE"] = str(tmp_path / "state.json")
    lines = readme_run_applies(REPO / "README.md")
    assert lines, "README.md: the quickstart applies no rendered run"
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path / "work", env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"README.md: `{line}` is refused: {done.stderr}"
    # pulumi-kubernetes v4 applies server-side by default: the stack-owned run must not turn that off.
    cm = next(yaml.safe_load(p.read_text()) for p in sorted((out / "run" / "r1").glob("*configmap*")))
    api_limits.apply(cm, server_side=True)
    mocks, _ = run_program("dev", stack_config("dev"))
    (provider,) = [r for r in mocks.registered if r.typ == "pulumi:providers:kubernetes"]
    assert unwrap(provider.inputs).get("enableServerSideApply") in (None, True, "true")


# --- Argo: a branch whose Job failed fails ------------------------------------------------------------------


def walk_template(failing: set[str]) -> tuple[str, argo_dag.DagWalk]:
    """The rendered prod template walked by Argo's rules; the leaves in `failing` fail, the others succeed."""
    (template,) = [o for o in workflow.argo(load_stack(PULUMI_DIR, "prod")) if o["kind"] == "WorkflowTemplate"]
    params = {p["name"]: p.get("value", f"p-{p['name']}") for p in template["spec"]["arguments"]["parameters"]}
    params["run-id"] = "r1"
    wf = argo_dag.substitute(template, {f"workflow.parameters.{k}": v for k, v in params.items()}, strict=False)
    branch = {"variant": "default", "job": "eval-r1-default", "completions": 2, "parallelism": 2,
              "max-failed-indexes": 0}  # fmt: skip
    plan = {"branches": json.dumps([branch]), "reference": "default", "gate-alone": '["default"]',
            "gate-vs-reference": "[]"}  # fmt: skip

    def leaf(call: argo_dag.Call) -> tuple[str, dict[str, str]]:
        outputs = plan if call.template == "plan" else {}
        return ("Failed" if call.template in failing else "Succeeded"), outputs

    walk = argo_dag.DagWalk(wf, leaf)
    return walk.run(), walk


def test_a_branch_whose_job_failed_fails_the_workflow_even_when_its_report_and_gate_pass() -> None:
    """Argo decides a DAG's phase by its target tasks (leaves by default): `aggregate` alone would hide the Job."""
    phase, walk = walk_template({"evaluate"})
    assert [c.template for c in walk.calls] == ["prepare", "plan", "evaluate", "aggregate", "gate-alone"]
    assert phase == "Failed"
    assert walk_template(set())[0] == "Succeeded"
    assert walk_template({"plan"})[0] == "Failed"


# --- a prod first run: `balanced` with no report on the results volume yet ------------------------------------


def test_balanced_on_an_empty_results_volume_falls_back_to_one_split_every_pod_computes(tmp_path: Path) -> None:
    """prod's pods run `evaluator run` with EVAL_SHARDING=balanced and EVAL_TIMINGS=/results/baseline/report.json,
    which a fresh volume does not have: each shard must still run, all of them agreeing on one split, and say so."""
    from click.testing import CliRunner as Runner

    from evaluator.cli import main
    from tests.helpers import write_suite as write_cases

    data = [{"id": f"c{i}", "input": "q" * (i * 7 % 50 + 1), "expected_output": "a", "actual_output": "a"}
            for i in range(11)]  # fmt: skip
    suite = write_cases(tmp_path / "s", data, metrics=[{"type": "exact_match"}], target=None, judge=None)
    missing = tmp_path / "results" / "baseline" / "report.json"
    out = tmp_path / "results" / "r1"
    seen: list[str] = []
    for index in range(3):
        env = {"EVAL_SHARDING": "balanced", "EVAL_TIMINGS": str(missing), "JOB_COMPLETION_INDEX": str(index),
               "EVAL_TOTAL_SHARDS": "3", "EVAL_RUN_ID": "r1", "EVAL_COMMIT": "0123456"}  # fmt: skip
        done = Runner().invoke(main, ["run", str(suite), "--out", str(out)], env=env, catch_exceptions=False)
        assert done.exit_code == 0, done.output
        assert "no previous report" in done.output and str(missing) in done.output, done.output
        records = (out / f"shard-{index:05d}").glob("*.jsonl")
        seen += [json.loads(line)["case_id"] for p in records for line in p.read_text().splitlines() if line.strip()]
    assert sorted(seen) == sorted(c["id"] for c in data)  # every case exactly once across the shards
