"""The seams between the stack, a run and the evaluator (issue 9, defects 1-9), each pinned by a test.

The cluster journey (tests/journeys) runs the rendered pods for real; these tests hold every rule that
journey cannot reach on this machine (Pulumi's await options, Argo's conditions, GPU nodes, other stacks'
settings) and the refusals of bad stack config, with the file, the key and the fix in the message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from factory import evaluation, gpu, inference, manifests, render, storage, workflow
from factory.settings import SettingsError, load_stack, parse
from pulumi_harness import PULUMI_DIR, run_program, stack_config, unwrap, write_suite

from evaluator.suite import load_suite

COMMIT = "0123456789abcdef0123456789abcdef01234567"
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def render_run(tmp_path: Path, stack: str, suite: Path, *extra: str, run_id: str = "r1") -> Any:
    args = ["--stack", stack, "--out", str(tmp_path / "out"), "--run-id", run_id, "--commit", COMMIT]
    return CliRunner().invoke(render.main, [*args, "--suite", str(suite), *extra])


def run_docs(tmp_path: Path, run_id: str = "r1") -> dict[str, dict[str, Any]]:
    folder = tmp_path / "out" / "run" / run_id
    return {doc["kind"] + "/" + doc["metadata"]["name"]: doc for doc in map(yaml.safe_load, _texts(folder))}


def _texts(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.glob("*.yaml"))]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


def settings(stack: str, **changes: Any) -> Any:
    config = stack_config(stack)
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        config[section] = dict(config.get(section) or {}, **{key: value}) if key else value
    return parse(config, stack, f"Pulumi.{stack}.yaml")


# --- 1. the suite's dataset reaches the pods --------------------------------------------------------


def test_the_stack_tests_suite_is_one_the_evaluator_accepts(tmp_path: Path) -> None:
    loaded = load_suite(write_suite(tmp_path), environ={})
    assert loaded.dataset_path.is_file()


def test_the_run_configmap_holds_the_dataset_where_the_suite_looks_for_it(tmp_path: Path) -> None:
    """Materialise the suite volume exactly as its items say, and load the suite from there."""
    result = render_run(tmp_path, "dev", write_suite(tmp_path / "suite"))
    assert result.exit_code == 0, result.output
    docs = run_docs(tmp_path)
    cm, job = docs["ConfigMap/suite-r1"], docs["Job/eval-r1"]
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "suite"]
    (evaluator,) = pod["containers"]
    (mount,) = [m for m in evaluator["volumeMounts"] if m["name"] == "suite"]
    root = tmp_path / "pod" / mount["mountPath"].lstrip("/")
    for item in volume["configMap"]["items"]:
        assert "/" not in item["key"]  # ConfigMap keys cannot hold '/'
        (root / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / item["path"]).write_text(cm["data"][item["key"]])
    suite_in_pod = tmp_path / "pod" / evaluator["command"][2].lstrip("/")
    loaded = load_suite(suite_in_pod, environ={})
    assert loaded.dataset_path.read_text() == (tmp_path / "suite" / "cases.jsonl").read_text()


def test_a_nested_dataset_is_mapped_to_its_folder_by_the_volume_items(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s")
    (suite.parent / "data").mkdir()
    (suite.parent / "cases.jsonl").rename(suite.parent / "data" / "cases.jsonl")
    suite.write_text(suite.read_text().replace("dataset: cases.jsonl", "dataset: data/cases.jsonl"))
    assert render_run(tmp_path, "dev", suite).exit_code == 0
    pod = run_docs(tmp_path)["Job/eval-r1"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "suite"]
    assert {"key": "dataset", "path": "data/cases.jsonl"} in volume["configMap"]["items"]


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("../elsewhere.jsonl", "is outside the suite's folder"),
        ("missing.jsonl", "field 'dataset': file not found"),
    ],
)
def test_a_dataset_the_pods_could_not_read_is_refused_at_render(tmp_path: Path, dataset: str, message: str) -> None:
    suite = write_suite(tmp_path / "s")
    (tmp_path / "elsewhere.jsonl").write_text((suite.parent / "cases.jsonl").read_text())
    suite.write_text(suite.read_text().replace("dataset: cases.jsonl", f"dataset: {dataset}"))
    result = render_run(tmp_path, "dev", suite)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_dataset_over_the_configmap_limit_is_refused_naming_the_file_and_the_way_out(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s")
    lines = [json.dumps({"id": f"x{i}", "input": "y" * 1000, "expected_output": "z"}) + "\n" for i in range(1100)]
    (suite.parent / "cases.jsonl").write_text("".join(lines))  # a valid dataset (unique ids), just too large
    result = render_run(tmp_path, "dev", suite)
    assert result.exit_code == 2
    assert f"{suite.parent / 'cases.jsonl'}:" in result.output and "1 MiB" in result.output
    assert "--suite-in-image" in result.output
    # The documented way out: the suite baked into the run's image, no dataset in the ConfigMap.
    result = render_run(tmp_path, "dev", suite, "--suite-in-image", "/work/suite/suite.yaml")
    assert result.exit_code == 0, result.output
    docs = run_docs(tmp_path)
    pod = docs["Job/eval-r1"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][:3] == ["evaluator", "run", "/work/suite/suite.yaml"]
    assert not [v for v in pod["volumes"] if v["name"] == "suite"]
    assert set(docs["ConfigMap/suite-r1"]["data"]) == {"suite.yaml"}


# What Argo fills in for one branch of the fan-out (the plan step's output for one variant).
BRANCH = {"variant": "cand", "job": "eval-r1-cand", "completions": "3", "parallelism": "2", "max-failed-indexes": "1"}


def argo_manifest(template: dict[str, Any]) -> dict[str, Any]:
    """A resource template's manifest with its inputs filled in as Argo does for one branch."""
    text = template["resource"]["manifest"]
    for name, value in BRANCH.items():
        text = text.replace("{{inputs.parameters." + name + "}}", value)
    manifest: dict[str, Any] = yaml.safe_load(text)
    return manifest


def argo_steps(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of every pod the workflow runs: its container templates and the Jobs it creates."""
    containers = [t["container"] for t in template["spec"]["templates"] if "container" in t]
    for t in template["spec"]["templates"]:
        if "resource" in t and "Job" in t["resource"]["manifest"]:
            containers += argo_manifest(t)["spec"]["template"]["spec"]["containers"]
    return containers


def test_the_argo_prepare_step_ships_the_dataset_too() -> None:
    (template,) = [o for o in workflow.argo(load_stack(PULUMI_DIR, "prod")) if o["kind"] == "WorkflowTemplate"]
    params = {p["name"] for p in template["spec"]["arguments"]["parameters"]}
    assert {"suite-b64", "dataset-b64", "dataset-path"} <= params
    prepare = yaml.safe_load(template["spec"]["templates"][1]["resource"]["manifest"])
    assert prepare["binaryData"]["dataset"] == "{{workflow.parameters.dataset-b64}}"
    jobs = [argo_manifest(t) for t in template["spec"]["templates"][2:] if "resource" in t]
    pods = [j["spec"]["template"]["spec"] for j in jobs]
    pods += [t for t in template["spec"]["templates"] if t["name"] == "plan"]  # the plan step reads the suite too
    assert len(pods) == 2
    for pod in pods:
        (volume,) = [v for v in pod["volumes"] if v["name"] == "suite"]
        assert {"key": "dataset", "path": "{{workflow.parameters.dataset-path}}"} in volume["configMap"]["items"]


# --- 2. balanced sharding has its timings ----------------------------------------------------------


def test_balanced_sharding_without_a_timings_source_is_refused() -> None:
    config = stack_config("prod")
    config["eval"] = {k: v for k, v in config["eval"].items() if k != "timingsReport"}
    with pytest.raises(SettingsError, match=r"Pulumi.prod.yaml: eval\.timingsReport: 'balanced' sharding needs"):
        parse(config, "prod", "Pulumi.prod.yaml")


def test_balanced_pods_read_the_timings_report_from_the_results_volume(tmp_path: Path) -> None:
    s = load_stack(PULUMI_DIR, "prod")
    assert s.eval.sharding == "balanced" and s.eval.timings_report
    job = evaluation.eval_job(s, "r1", "0123456")
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert env["EVAL_SHARDING"] == "balanced"
    assert env["EVAL_TIMINGS"] == f"/results/{s.eval.timings_report}"
    result = render_run(tmp_path, "prod", write_suite(tmp_path / "s"), "--timings-report", "r0/report.json")
    assert result.exit_code == 0, result.output
    env = env_of(run_docs(tmp_path)["Job/eval-r1"]["spec"]["template"]["spec"]["containers"][0])
    assert env["EVAL_TIMINGS"] == "/results/r0/report.json"


# --- 3. the served model, the judge -----------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pods_ask_for_the_served_model_and_the_stack_judge(stack: str) -> None:
    s = load_stack(PULUMI_DIR, stack)
    for job in (evaluation.eval_job(s, "r1", "0123456"), evaluation.aggregate_job(s, "r1", "0123456")):
        for c in job["spec"]["template"]["spec"]["containers"]:
            env = env_of(c)
            assert env["EVAL_TARGET_BASE_URL"] == s.vllm_base_url
            assert env["EVAL_TARGET_MODEL"] == s.vllm.served_model_name
            assert env["EVAL_JUDGE_BASE_URL"] == s.vllm_base_url  # no judge configured: the stack's vLLM
            assert env["EVAL_JUDGE_MODEL"] == s.vllm.served_model_name


def test_a_configured_judge_and_the_stacks_served_name_reach_every_argo_step() -> None:
    """The stack's vLLM answers every variant that names no model or endpoint of its own (EVAL_TARGET_*
    override the suite's `target`); the configured judge scores every branch and writes the G-Eval steps."""
    s = settings(
        "prod",
        eval__judge={"baseUrl": "http://judge.eval.svc:8000/v1", "model": "judge-70b"},
        eval__egress=[{"namespace": "eval", "podLabels": {"app": "judge"}, "ports": [8000]}],
    )
    (template,) = [o for o in workflow.argo(s) if o["kind"] == "WorkflowTemplate"]
    envs = [env_of(c) for c in argo_steps(template)]
    assert len(envs) == 5  # plan, the branch's Job, aggregate, gate-alone, gate-vs-reference
    assert {(e["EVAL_TARGET_BASE_URL"], e["EVAL_TARGET_MODEL"]) for e in envs} == {
        (s.vllm_base_url, s.vllm.served_model_name)
    }
    assert {(e["EVAL_JUDGE_BASE_URL"], e["EVAL_JUDGE_MODEL"]) for e in envs} == {
        ("http://judge.eval.svc:8000/v1", "judge-70b")
    }


def test_argo_models_are_refused_with_the_way_to_variants() -> None:
    """`argo.models` (one Job per stack-listed model) gave way to the suite's variants: a stack that still lists
    models stops at preview/render, naming the file, the key and how to move each model into the suite."""
    config = stack_config("prod")
    config["argo"] = {"enabled": True, "models": [{"name": "m", "baseUrl": "http://m:8000/v1"}]}
    with pytest.raises(SettingsError, match=r"Pulumi.prod.yaml: argo\.models: removed: .*variants") as caught:
        parse(config, "prod", "Pulumi.prod.yaml")
    assert "base_url: <its baseUrl>, model: <its servedModelName>" in str(caught.value)


# --- 4. Pulumi waits as long as the objects may take ------------------------------------------------


def _seconds(timeout: str) -> int:
    assert timeout.endswith("s"), timeout
    return int(timeout[:-1])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pulumi_awaits_each_object_for_its_own_budget(stack: str, tmp_path: Path) -> None:
    config = stack_config(stack)
    config["evalRun"] = {"runId": "r1", "commit": "0123456789abcdef", "suiteFile": str(write_suite(tmp_path))}
    _, out = run_program(stack, config)
    s = out["settings"]
    rollout = s.vllm.download_budget_seconds + s.vllm.startup_budget_seconds
    deployment = out["vllm"].manifests[[m["kind"] for m in out["vllm"].manifests].index("Deployment")]
    assert deployment["spec"]["progressDeadlineSeconds"] >= rollout
    waits = {
        "vllm": ("Deployment/vllm", deployment["spec"]["progressDeadlineSeconds"]),
        "eval_job": ("Job/eval-r1", s.eval.active_deadline_seconds),
        "eval_gate": ("Job/aggregate-r1", 900),
    }
    if s.device_plugin.enabled:
        waits["device_plugin"] = ("DaemonSet/nvidia-device-plugin", 600)
    for component, (key, allowed) in waits.items():
        timeouts = out[component].options[key].custom_timeouts
        assert timeouts is not None, key
        assert _seconds(timeouts.create) > allowed and timeouts.update == timeouts.create, key


# --- 5. Argo accepts the template and a failed Job ends its step ------------------------------------

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def argo_condition_matches(condition: str, obj: dict[str, Any]) -> bool:
    """Argo's resource conditions: a label selector (k8s.io/apimachinery labels.Parse) whose keys are gjson
    paths into the object (argo-workflows workflow/executor/resource.go). Enough of both for our conditions:
    `key in (a,b)`, `key > N`, comma-separated requirements all true; dotted paths with numeric indexes."""
    for requirement in re.split(r",(?![^()]*\))", condition):
        match = re.fullmatch(r"\s*(\S+)\s+(in|>|<|==|=|!=)\s+(.+?)\s*", requirement)
        assert match, requirement
        key, op, raw = match.groups()
        assert _LABEL_KEY.match(key), f"{key!r} is not a valid label key: labels.Parse refuses it"
        value: Any = obj
        for part in key.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return False
        if op == "in":
            ok = str(value) in [v.strip() for v in raw.strip("()").split(",")]
        elif op in (">", "<"):
            ok = int(value) > int(raw) if op == ">" else int(value) < int(raw)
        else:
            ok = (str(value) == raw) == (op != "!=")
        if not ok:
            return False
    return True


def _job_status(*conditions: str, **counts: int) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": c, "status": "True"} for c in conditions], **counts}}


def test_a_failed_job_ends_the_argo_evaluate_step_at_once() -> None:
    (template,) = [o for o in workflow.argo(load_stack(PULUMI_DIR, "prod")) if o["kind"] == "WorkflowTemplate"]
    steps = [t for t in template["spec"]["templates"] if "resource" in t and "kind: Job" in t["resource"]["manifest"]]
    assert [s["name"] for s in steps] == ["evaluate"]
    for step in steps:
        failure, success = step["resource"]["failureCondition"], step["resource"]["successCondition"]
        # A FailJob (exit 2): FailureTarget then Failed (Kubernetes >= 1.31); older: Failed alone.
        assert argo_condition_matches(failure, _job_status("FailureTarget", "Failed", failed=1))
        assert argo_condition_matches(failure, _job_status("Failed", failed=1))
        # Still running after a retried shard, or done: not a failure.
        assert not argo_condition_matches(failure, _job_status(failed=1, active=3))
        assert not argo_condition_matches(failure, _job_status("SuccessCriteriaMet", "Complete", succeeded=16))
        assert argo_condition_matches(success, _job_status("SuccessCriteriaMet", "Complete", succeeded=16))
        assert argo_condition_matches(success, _job_status("Complete", succeeded=16))  # before Kubernetes 1.31
        assert not argo_condition_matches(success, _job_status(succeeded=15, active=1))
        assert not argo_condition_matches(success, _job_status("FailureTarget", "Failed", succeeded=15, failed=1))


def test_argo_steps_without_a_token_run_their_executor_under_the_workflow_account() -> None:
    objs = workflow.argo(load_stack(PULUMI_DIR, "prod"))
    (template,) = [o for o in objs if o["kind"] == "WorkflowTemplate"]
    (role,) = [o for o in objs if o["kind"] == "Role"]
    account = template["spec"]["serviceAccountName"]
    tokenless = [t for t in template["spec"]["templates"] if t.get("automountServiceAccountToken") is False]
    assert tokenless
    for t in tokenless:
        assert t.get("executor", {}).get("serviceAccountName") == account, t["name"]
    assert any("workflowtaskresults" in rule["resources"] for rule in role["rules"])


# --- 6. the device plugin on a mixed cluster --------------------------------------------------------


def test_the_device_plugin_runs_on_every_node_by_default_and_idles_without_a_gpu() -> None:
    """Upstream's static manifest: no affinity (a fresh cluster labels no GPU node); a node without a GPU runs
    the plugin idle. A cluster with GPU Feature Discovery can pin it to its labels (devicePlugin.nodeSelector)."""
    s = load_stack(PULUMI_DIR, "prod")
    _, ds, _ = gpu.device_plugin(s)
    pod = ds["spec"]["template"]["spec"]
    assert "affinity" not in pod
    assert env_of(pod["containers"][0])["FAIL_ON_INIT_ERROR"] == "false"  # as upstream's static manifest
    assert yaml.safe_load(gpu.device_plugin_config(s))["flags"]["failOnInitError"] is False
    pinned = settings("prod", devicePlugin__nodeSelector={"nvidia.com/gpu.present": "true"})
    pod = gpu.device_plugin(pinned)[1]["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]


def test_time_slicing_refuses_a_vllm_that_asks_for_several_gpus() -> None:
    """failRequestsGreaterThanOne (the plugin's default with time-slicing) refuses every pod asking for more than one
    nvidia.com/gpu, cluster-wide: a vLLM with vllm.gpus: 2 would never start."""
    with pytest.raises(SettingsError, match=r"Pulumi.prod.yaml: vllm\.gpus: 2 GPUs .*timeSlicingReplicas: 1"):
        settings("prod", devicePlugin__timeSlicingReplicas=2, vllm__gpus=2)
    assert settings("prod", vllm__gpus=2).vllm.gpus == 2  # no time-slicing: fine


# --- 7. GPU sharing, autoscaling -------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_stack_declares_an_autoscaler_that_nothing_feeds(stack: str) -> None:
    s = load_stack(PULUMI_DIR, stack)
    assert not [o for o in manifests.long_lived(s) if o["kind"] == "HorizontalPodAutoscaler"]
    config = stack_config(stack)
    config["vllm"] = dict(config["vllm"], hpa={"enabled": True, "maxReplicas": 2})
    with pytest.raises(SettingsError, match=r"vllm\.hpa: removed: nothing in this stack serves"):
        parse(config, stack, f"Pulumi.{stack}.yaml")


def test_time_slicing_with_a_memory_fraction_that_cannot_fit_the_replicas_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"Pulumi.prod.yaml: vllm\.gpuMemoryUtilization: 2 vLLM replicas .* 0\.47"):
        settings("prod", vllm__replicas=2, devicePlugin__timeSlicingReplicas=2)
    assert settings("prod", vllm__replicas=2, devicePlugin__timeSlicingReplicas=2, vllm__gpuMemoryUtilization=0.45)
    prod = load_stack(PULUMI_DIR, "prod")
    slices = prod.device_plugin.time_slicing_replicas
    assert min(slices, prod.vllm.replicas) * prod.vllm.gpu_memory_utilization <= 0.95


# --- 8. storage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("volume", ["modelCache", "results"])
def test_read_write_many_without_a_storage_class_is_refused(volume: str) -> None:
    config = stack_config("prod")
    config[volume] = {k: v for k, v in config[volume].items() if k != "storageClass"}
    with pytest.raises(SettingsError, match=rf"Pulumi.prod.yaml: {volume}\.storageClass: ReadWriteMany needs"):
        parse(config, "prod", "Pulumi.prod.yaml")


def test_the_dev_model_cache_is_the_node_folder_through_a_static_volume() -> None:
    s = load_stack(PULUMI_DIR, "dev")
    pv, pvc = storage.model_cache(s)
    assert pv["kind"] == "PersistentVolume" and pv["spec"]["hostPath"] == {"path": "/models", "type": "Directory"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["claimRef"] == {"namespace": s.namespace, "name": "model-cache"}
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pvc["spec"]["storageClassName"] == pv["spec"]["storageClassName"] == ""  # no provisioner steps in


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_weight_and_result_volumes_survive_a_destroy(stack: str) -> None:
    mocks, out = run_program(stack, stack_config(stack))
    if stack == "dev":  # the static volume is a typed PersistentVolume, not a custom resource
        assert mocks.by_name("persistentvolume-cluster-model-cache-eval").typ == "kubernetes:core/v1:PersistentVolume"
    options = {**out["model_cache"].options, **out["workspace"].options}
    data = [k for k in options if k.startswith(("PersistentVolumeClaim/", "PersistentVolume/"))]
    assert {"PersistentVolumeClaim/model-cache", "PersistentVolumeClaim/eval-results"} <= set(data)
    for key in data:
        assert options[key].retain_on_delete is True, key
        assert options[key].protect is (stack == "prod"), key


# --- 9. a run id belongs to one image ---------------------------------------------------------------


def test_a_run_id_rendered_again_for_another_image_is_refused(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "s")
    assert render_run(tmp_path, "dev", suite, "--image", "reg.example/evaluator:aaa").exit_code == 0
    assert render_run(tmp_path, "dev", suite, "--image", "reg.example/evaluator:aaa").exit_code == 0
    result = render_run(tmp_path, "dev", suite, "--image", "reg.example/evaluator:bbb")
    assert result.exit_code == 2
    assert "r1.json: image: run r1 was rendered for image 'reg.example/evaluator:aaa'" in result.output
    assert "new --run-id" in result.output


def test_a_stack_owned_run_id_seen_with_another_image_stops_the_preview(tmp_path: Path) -> None:
    config = stack_config("dev")
    config["evalRun"] = {"runId": "r1", "commit": "0123456789abcdef", "suiteFile": str(write_suite(tmp_path))}
    image = config["eval"]["image"]
    _, out = run_program("dev", config, stack_outputs={"evalRunImages": {"r0": "old:1", "r1": image}})
    assert out["eval_job"] is not None  # the same image again: fine
    with pytest.raises(Exception, match=r"Pulumi.dev.yaml: evalRun.runId: run r1 was evaluated by image 'old:1'"):
        run_program("dev", config, stack_outputs={"evalRunImages": {"r1": "old:1"}})


def test_the_run_guard_keeps_a_results_folder_to_the_image_that_wrote_it(tmp_path: Path) -> None:
    """The init container's own script, run here as in the pod: record, accept the same image, refuse another."""
    job = evaluation.eval_job(load_stack(PULUMI_DIR, "dev"), "r1", "0123456")
    guard, _wait = job["spec"]["template"]["spec"]["initContainers"]  # the run-guard, then the wait for vLLM
    assert guard["name"] == "run-guard" and guard["command"][:2] == ["python", "-c"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert {"containerName": "run-guard", "operator": "In", "values": [2]} in [r.get("onExitCodes") for r in rules]

    def guard_with(image: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "EVAL_OUT_DIR": str(tmp_path / "r1"), "EVAL_IMAGE": image, "EVAL_RUN_ID": "r1"}
        return subprocess.run([sys.executable, "-c", guard["command"][2]], env=env, capture_output=True, text=True)

    assert guard_with("evaluator:aaa").returncode == 0
    assert (tmp_path / "r1" / "run-image").read_text() == "evaluator:aaa\n"
    assert guard_with("evaluator:aaa").returncode == 0
    refused = guard_with("evaluator:bbb")
    assert refused.returncode == 2
    assert "was evaluated by image evaluator:aaa; this pod runs another image, evaluator:bbb" in refused.stderr
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == ["run-image"]  # no temp file left


# --- the GPU proof and the weights before vLLM -------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_vllms_pod_checks_its_gpu_with_nvidia_smi_before_anything_else(stack: str) -> None:
    """No GPU Job of its own (it would need a GPU the running vLLM holds on every upgrade): the check is vLLM's first
    init container, on the GPUs the pod gets (the kubelet hands an init container's devices on to the server)."""
    mocks, out = run_program(stack, stack_config(stack))
    deployment = inference.vllm_deployment(out["settings"])
    pod = deployment["spec"]["template"]["spec"]
    check = pod["initContainers"][0]
    assert check["name"] == "gpu-check" and check["command"] == ["nvidia-smi"]
    gpus = str(out["settings"].vllm.gpus)
    assert check["resources"]["limits"]["nvidia.com/gpu"] == check["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert unwrap(mocks.by_name("deployment-eval-vllm").inputs) == deployment
    assert not [r for r in mocks.registered if r.typ == "kubernetes:batch/v1:Job"]  # no GPU Job besides vLLM


def test_the_weight_prefetch_downloads_the_pinned_revision_before_vllm_starts_offline(tmp_path: Path) -> None:
    """The init container's own command, run here against a stand-in huggingface_hub that records the call."""
    s = load_stack(PULUMI_DIR, "dev")
    pod = inference.vllm_deployment(s)["spec"]["template"]["spec"]
    (prefetch,) = [c for c in pod["initContainers"] if c["name"] == "prefetch-weights"]
    assert prefetch["image"] == s.vllm.image  # vLLM's image ships huggingface_hub
    assert {"name": "model-cache", "mountPath": "/models"} in prefetch["volumeMounts"]
    fake = tmp_path / "huggingface_hub"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import json, os\n"
        "def snapshot_download(repo_id, revision):\n"
        "    print('Fetching 4 files: 100%|##########| 4/4', flush=True)\n"
        "    json.dump({'repo_id': repo_id, 'revision': revision}, open(os.environ['CALLS'], 'w'))\n"
        "    return '/models/hf/hub/snapshot'\n"
    )
    command = [sys.executable, *prefetch["command"][1:]]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CALLS": str(tmp_path / "calls.json")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert json.loads((tmp_path / "calls.json").read_text()) == {"repo_id": s.vllm.model, "revision": s.vllm.revision}
    assert f"prefetch: {s.vllm.model} at revision {s.vllm.revision}" in done.stdout
    assert "4/4" in done.stdout and "prefetch: done" in done.stdout
    server_env = env_of(pod["containers"][0])
    assert server_env["HF_HUB_OFFLINE"] == "1" and server_env["HF_HOME"] == env_of(prefetch)["HF_HOME"]
