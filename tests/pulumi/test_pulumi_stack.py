"""The Pulumi program and its components, run for real under pulumi.runtime.set_mocks (no engine here)."""

from __future__ import annotations

import copy
import runpy
from typing import Any

import pytest
from factory import gpu, manifests
from factory.settings import SettingsError, parse
from factory.typed import logical_name
from pulumi_harness import (
    DATASET_TEXT,
    PULUMI_DIR,
    RecordingMocks,
    configure,
    run_program,
    stack_config,
    unwrap,
    write_suite,
)

import pulumi

GPU = "nvidia.com/gpu"


def kube_resources(mocks: RecordingMocks) -> list[Any]:
    return [r for r in mocks.registered if r.typ.startswith("kubernetes:")]


def registered_manifest(mocks: RecordingMocks, obj: dict[str, Any]) -> dict[str, Any]:
    return unwrap(mocks.by_name(logical_name(obj)).inputs)


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def program(stack: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordingMocks, dict[str, Any]]:
    """The whole program once per stack, with a run and every secret configured."""
    suite_file = write_suite(tmp_path_factory.mktemp("suite"))
    config = stack_config(stack)
    config["evalRun"] = {"runId": "r1-abc", "commit": "0123456789abcdef", "suiteFile": str(suite_file)}
    secrets = {"hfToken": "hf_" + "x" * 30, "evalJudgeApiKey": "sk-judge"}
    return run_program(stack, config, secrets)


def test_every_component_registers_exactly_the_builder_dicts(program: tuple[RecordingMocks, dict]) -> None:
    """One source of truth: the typed resources receive the very objects `render` writes."""
    mocks, out = program
    components = [c for c in out.values() if hasattr(c, "manifests")]
    assert {type(c).__name__ for c in components} >= {
        "EvalWorkspace",
        "ModelCache",
        "VllmServer",
        "EvalJob",
        "EvalGate",
    }
    seen = 0
    for component in components:
        for obj in component.manifests:
            assert registered_manifest(mocks, obj) == unwrap(obj_without_outputs(obj, mocks)), logical_name(obj)
            seen += 1
    assert seen == len(kube_resources(mocks))


def obj_without_outputs(obj: dict[str, Any], mocks: RecordingMocks) -> dict[str, Any]:
    """Secrets are Outputs in the component's dict; compare them with what the engine received."""
    if obj["kind"] != "Secret":
        return obj
    clean = copy.deepcopy({k: v for k, v in obj.items() if k != "stringData"})
    clean["stringData"] = registered_manifest(mocks, obj)["stringData"]
    return clean


def test_render_and_pulumi_build_the_same_long_lived_objects(program: tuple[RecordingMocks, dict], stack: str) -> None:
    mocks, out = program
    for obj in manifests.long_lived(out["settings"]):
        assert registered_manifest(mocks, obj) == obj


def test_provider_is_explicit_and_bound_to_the_stack_context(program: tuple[RecordingMocks, dict], stack: str) -> None:
    mocks, _ = program
    provider = mocks.by_name(f"k8s-{stack}")
    assert provider.typ == "pulumi:providers:kubernetes"
    assert provider.inputs["context"] == stack_config(stack)["kubeContext"]
    for r in kube_resources(mocks):
        assert r.provider and f"k8s-{stack}" in r.provider, f"{r.name} is not on the stack's provider"


def test_names_are_stable(program: tuple[RecordingMocks, dict]) -> None:
    """metadata.name is always set: Pulumi adds no random suffix, so Service `vllm` keeps its DNS name."""
    mocks, _ = program
    names = {(r.typ.rsplit(":", 1)[-1], unwrap(r.inputs)["metadata"]["name"]) for r in kube_resources(mocks)}
    for expected in [
        ("Service", "vllm"),
        ("Deployment", "vllm"),
        ("PersistentVolumeClaim", "model-cache"),
        ("PersistentVolumeClaim", "eval-results"),
        ("Job", "eval-r1-abc"),
        ("Job", "aggregate-r1-abc"),
        ("ConfigMap", "suite-r1-abc"),
        ("Secret", "hf-token"),
    ]:
        assert expected in names


def test_vllm_has_gpu_limit_probes_and_safe_defaults(program: tuple[RecordingMocks, dict], stack: str) -> None:
    mocks, out = program
    s = out["settings"]
    dep = unwrap(mocks.by_name("deployment-eval-vllm").inputs)
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    (c,) = pod["containers"]
    assert c["resources"]["limits"][GPU] == c["resources"]["requests"][GPU] == str(s.vllm.gpus)
    assert not c["image"].endswith(":latest") and ":" in c["image"]
    args = c["args"]
    assert args[0] == stack_config(stack)["vllm"]["model"]
    assert args[args.index("--revision") + 1] == stack_config(stack)["vllm"]["revision"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # long enough to load a model
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "model-cache"
    env = {e["name"]: e for e in c["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
    assert "value" not in env["HF_TOKEN"]
    svc = unwrap(mocks.by_name("service-eval-vllm").inputs)
    assert svc["spec"]["type"] != "LoadBalancer" or stack != "dev"
    # No autoscaler: nothing in the stack serves vLLM's queue metric to the metrics API.
    assert not [r for r in kube_resources(mocks) if r.typ.endswith("HorizontalPodAutoscaler")]
    assert dep["spec"]["replicas"] == s.vllm.replicas


def test_secrets_are_marked_secret(program: tuple[RecordingMocks, dict]) -> None:
    mocks, _ = program
    for name in ("secret-eval-hf-token", "secret-eval-eval-api-keys"):
        secret_paths: list[str] = []
        plain = unwrap(mocks.by_name(name).inputs, secrets=secret_paths)
        assert plain["stringData"], name
        assert any(p == "stringData" or p.startswith("stringData.") for p in secret_paths), (name, secret_paths)
    # ... and nowhere else does a secret value appear in plain text.
    for r in kube_resources(mocks):
        if r.typ.endswith(":Secret"):
            continue
        text = repr(unwrap(r.inputs))
        assert "hf_xxxx" not in text and "sk-judge" not in text, r.name


def test_no_secret_resource_without_secret_config() -> None:
    mocks, _ = run_program("dev", stack_config("dev"))
    assert not [r for r in mocks.registered if r.typ.endswith(":Secret")]


def test_eval_job_follows_the_contract(program: tuple[RecordingMocks, dict]) -> None:
    mocks, out = program
    s = out["settings"]
    job = unwrap(mocks.by_name("job-eval-eval-r1-abc").inputs)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == s.eval.shards
    assert spec["parallelism"] == min(s.eval.parallelism, s.eval.shards)
    assert spec["backoffLimitPerIndex"] == s.eval.backoff_limit_per_index
    assert spec["maxFailedIndexes"] == s.eval.max_failed_indexes
    assert spec["activeDeadlineSeconds"] == s.eval.active_deadline_seconds
    rules = {r["action"]: r for r in spec["podFailurePolicy"]["rules"]}
    assert rules["Ignore"]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert rules["FailJob"]["onExitCodes"]["values"] == [2]
    assert rules["FailIndex"]["onExitCodes"]["values"] == [3]
    assert {r["onExitCodes"]["containerName"] for a, r in rules.items() if a != "Ignore"} == {"evaluator"}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
    (c,) = pod["containers"]
    assert c["name"] == "evaluator"
    assert c["command"] == ["evaluator", "run", "/suite/suite.yaml", "--out", "/results/r1-abc"]
    assert c["command"][-1] == {e["name"]: e.get("value") for e in c["env"]}["EVAL_OUT_DIR"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    # The index as the Job controller provides it: the pod's completion-index annotation (downward API).
    (index,) = [e for e in c["env"] if e["name"] == "JOB_COMPLETION_INDEX"]
    assert index == {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}},
    }
    assert env["EVAL_TOTAL_SHARDS"] == str(int(spec["completions"]))  # the engine returns numbers as floats
    assert env["EVAL_RUN_ID"] == "r1-abc"
    assert env["EVAL_COMMIT"] == "0123456789abcdef"
    assert env["EVAL_OUT_DIR"] == "/results/r1-abc"
    assert env["EVAL_TARGET_BASE_URL"] == f"http://vllm.{s.namespace}.svc:8000/v1"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    for key in ("limits", "requests"):
        assert GPU not in c["resources"][key]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["workingDir"] == "/tmp"  # DeepEval writes .deepeval/ into the working directory
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tmp"]["emptyDir"]
    assert volumes["suite"]["configMap"]["name"] == "suite-r1-abc"
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == "eval-results"
    suite = unwrap(mocks.by_name("configmap-eval-suite-r1-abc").inputs)
    assert "dataset: cases.jsonl" in suite["data"]["suite.yaml"]
    assert suite["data"]["dataset"] == DATASET_TEXT  # the file the suite names travels with it


def test_gate_job_aggregates_then_gates_after_the_eval_job(program: tuple[RecordingMocks, dict]) -> None:
    mocks, out = program
    s = out["settings"]
    job = unwrap(mocks.by_name("job-eval-aggregate-r1-abc").inputs)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0
    assert pod["initContainers"][0]["command"] == [
        "evaluator", "aggregate", "/results/r1-abc", "--out", "/results/r1-abc/report.json",
        "--expect-shards", str(s.eval.shards),
    ]  # fmt: skip
    assert pod["containers"][0]["command"][:3] == ["evaluator", "gate", "/results/r1-abc/report.json"]
    for c in pod["initContainers"] + pod["containers"]:
        assert GPU not in c["resources"]["limits"]
    # EvalGate depends on the Job itself, so Pulumi creates it only once the Job completed.
    gate, job_component = out["eval_gate"], out["eval_job"]
    agg = gate.resources["Job/aggregate-r1-abc"]
    assert agg is not None
    assert job_component.job in (gate.options["Job/aggregate-r1-abc"].depends_on or [])


def test_device_plugin_is_off_in_dev_and_on_in_prod(program: tuple[RecordingMocks, dict], stack: str) -> None:
    mocks, _ = program
    ds = [r for r in kube_resources(mocks) if r.typ.endswith(":DaemonSet")]
    if stack == "dev":
        assert not ds  # minikube --gpus runs its own plugin
        return
    (d,) = ds
    pod = unwrap(d.inputs)["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    image = pod["containers"][0]["image"]
    assert image.startswith("nvcr.io/nvidia/k8s-device-plugin:v")
    cm = unwrap(mocks.by_name("configmap-kube-system-nvidia-device-plugin-config").inputs)
    assert "sharing" not in cm["data"]["config.yaml"]  # prod time-slices no GPU: it would apply cluster-wide


def test_time_slicing_is_absent_with_one_replica() -> None:
    cfg = stack_config("prod")
    cfg["devicePlugin"] = {"enabled": True, "timeSlicingReplicas": 1}
    s = parse(cfg, "prod", "test")
    assert "sharing" not in gpu.device_plugin_config(s)
    cfg["devicePlugin"] = {"enabled": True, "timeSlicingReplicas": 4, "failRequestsGreaterThanOne": False}
    text = gpu.device_plugin_config(parse(cfg, "prod", "test"))
    assert "replicas: 4" in text and "failRequestsGreaterThanOne: false" in text


def test_bad_config_is_a_clear_error_naming_the_field() -> None:
    cfg = stack_config("dev")
    cfg["vllm"] = dict(cfg["vllm"], image="vllm/vllm-openai:latest")
    with pytest.raises(SettingsError, match=r"vllm\.image: .*pinned"):
        run_program("dev", cfg)
    cfg = stack_config("dev")
    cfg["vllm"] = dict(cfg["vllm"], serviceType="LoadBalancer")
    with pytest.raises(SettingsError, match=r"vllm\.serviceType: LoadBalancer is not allowed in dev"):
        parse(cfg, "dev", "Pulumi.dev.yaml")
    cfg = stack_config("dev")
    cfg["eval"] = dict(cfg["eval"], shards="four")
    with pytest.raises(SettingsError, match=r"Pulumi.dev.yaml: eval\.shards: expected an integer"):
        parse(cfg, "dev", "Pulumi.dev.yaml")


def test_program_entry_point_reports_bad_config_without_traceback() -> None:
    """`pulumi up` runs __main__.py: a bad field ends it with one line naming the field."""
    cfg = stack_config("dev")
    cfg["namespace"] = "Bad_NS"
    configure("dev", cfg)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(PULUMI_DIR / "__main__.py"))
    assert str(exc.value).startswith("error: Pulumi.dev.yaml (ai-eval-factory config): namespace: 'Bad_NS'")


def test_program_entry_point_runs_the_stack() -> None:
    mocks = configure("dev", stack_config("dev"))

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(PULUMI_DIR / "__main__.py"))

    program()
    assert mocks.by_name("deployment-eval-vllm").typ == "kubernetes:apps/v1:Deployment"


def test_bad_eval_run_config_is_refused() -> None:
    cfg = stack_config("dev")
    cfg["evalRun"] = {"runId": "r1"}
    with pytest.raises(SettingsError, match=r"evalRun: expected \{runId, commit, suiteFile\}"):
        run_program("dev", cfg)
