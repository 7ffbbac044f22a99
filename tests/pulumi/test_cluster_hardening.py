"""What a real cluster needs beyond the happy path (issue 20, item 6 and "shared GPU clusters"): pods that wait for
vLLM instead of burning retries, vLLM behind an API key, evaluator egress limited to vLLM and the judge, volumes
whose root the pods cannot write, data that survives `pulumi destroy`, and stack keys checked strictly."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from factory import evaluation, evaluator_pods, inference, preflight
from factory.settings import SettingsError, load_stack, parse
from pulumi_harness import PULUMI_DIR, run_program, stack_config

from tests.journeys import scheduler


def settings(stack: str = "prod", **sections: dict[str, Any]) -> Any:
    config = stack_config(stack)
    for section, changes in sections.items():
        config[section] = dict(config.get(section) or {}, **changes)
    return parse(config, stack, f"Pulumi.{stack}.yaml")


def env_refs(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# --- the pods wait for vLLM's /health, bounded ---------------------------------------------------------------


class _Health(http.server.BaseHTTPRequestHandler):
    healthy_after = 0  # requests answered 503 before the first 200
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        ok = self.path == "/health" and type(self).seen > type(self).healthy_after
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def vllm_health() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Handler", (_Health,), {"seen": 0, "healthy_after": 2})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health", handler
    finally:
        server.shutdown()


def run_wait(container: dict[str, Any], url: str, seconds: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **{e["name"]: e["value"] for e in container["env"]}}
    env |= {"EVAL_WAIT_URLS": url, "EVAL_WAIT_SECONDS": seconds}
    return subprocess.run(
        [sys.executable, *container["command"][1:]], env=env, capture_output=True, text=True, timeout=60
    )


def test_each_shard_waits_for_vllms_health_before_it_starts(vllm_health: tuple[str, type[_Health]]) -> None:
    s = load_stack(PULUMI_DIR, "dev")
    pod = evaluation.eval_job(s, "r1", "0123456")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["run-guard", "wait-for-servers"]
    wait = pod["initContainers"][1]
    assert env_refs(wait)["EVAL_WAIT_URLS"] == "http://vllm.eval.svc:8000/health"
    assert env_refs(wait)["EVAL_WAIT_SECONDS"] == str(s.eval.health_wait_seconds)
    url, handler = vllm_health
    handler.healthy_after = 1  # one 503 (loading), then healthy: the wait polls again
    done = run_wait(wait, url, "30")
    assert done.returncode == 0 and f"{url}: healthy" in done.stdout, done.stdout + done.stderr


def test_a_vllm_that_never_gets_healthy_fails_the_pod_once_at_the_bound(vllm_health: tuple[str, type[_Health]]) -> None:
    wait = preflight.wait_container(load_stack(PULUMI_DIR, "dev"))[0]
    url, handler = vllm_health
    handler.healthy_after = 10**6
    done = run_wait(wait, url, "1")
    assert done.returncode == 4 and "not healthy after 1s (eval.healthWaitSeconds)" in done.stderr
    assert preflight.wait_container(settings("dev", eval={"healthWaitSeconds": 0})) == []


# --- vLLM's API key ----------------------------------------------------------------------------------------


def test_vllm_and_the_pods_share_one_api_key_from_a_secret_and_an_outside_judge_keeps_its_own() -> None:
    s = settings(vllm={"apiKeySecret": "vllm-api-key"})
    server = inference.vllm_deployment(s)["spec"]["template"]["spec"]["containers"][0]
    key_ref = {"secretKeyRef": {"name": "vllm-api-key", "key": "api-key"}}
    assert env_refs(server)["VLLM_API_KEY"] == key_ref  # required: no key, no start
    pod = evaluation.eval_job(s, "r1", "0123456")["spec"]["template"]["spec"]
    refs = env_refs(pod["containers"][0])
    assert refs["EVAL_TARGET_API_KEY"] == refs["EVAL_JUDGE_API_KEY"] == key_ref
    judged = settings(
        vllm={"apiKeySecret": "vllm-api-key"},
        eval={
            "judge": {"baseUrl": "https://judge.example/v1", "model": "j"},
            "egress": [{"cidr": "10.0.0.0/8", "ports": [443]}],
        },
    )
    refs = env_refs(evaluation.eval_job(judged, "r1", "0123456")["spec"]["template"]["spec"]["containers"][0])
    assert refs["EVAL_TARGET_API_KEY"] == key_ref
    assert refs["EVAL_JUDGE_API_KEY"]["secretKeyRef"] == {
        "name": "eval-api-keys",
        "key": "EVAL_JUDGE_API_KEY",
        "optional": True,
    }
    # Without the setting, vLLM runs without a key, as before.
    plain = inference.vllm_deployment(load_stack(PULUMI_DIR, "prod"))["spec"]["template"]["spec"]["containers"][0]
    assert "VLLM_API_KEY" not in env_refs(plain)


def test_pulumi_creates_the_api_key_secret_from_its_secret_config_and_marks_it_secret() -> None:
    config = stack_config("dev")
    config["vllm"] = dict(config["vllm"], apiKeySecret="vllm-api-key")
    mocks, _ = run_program("dev", config, secrets={"vllmApiKey": "sk-local"})
    registration = mocks.by_name("secret-eval-vllm-api-key")
    assert "4dabf18193072939515e22adb298388d" in str(registration.inputs)  # the engine's secret marker


# --- egress: vLLM and the judge only ---------------------------------------------------------------------


def test_evaluator_egress_is_dns_vllm_and_what_the_stack_names() -> None:
    policy = evaluator_pods.eval_egress_policy(load_stack(PULUMI_DIR, "prod"))
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "evaluator"
    dns, vllm = policy["spec"]["egress"]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert vllm["to"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/part-of": "ai-eval-factory"}
            }
        }
    ]
    assert vllm["ports"] == [{"port": 8000, "protocol": "TCP"}]
    s = settings(eval={"egress": [{"namespace": "judges", "podLabels": {"app": "judge"}, "ports": [8000]}]})
    *_, judge = evaluator_pods.eval_egress_policy(s)["spec"]["egress"]
    assert judge["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "judges"}},
                            "podSelector": {"matchLabels": {"app": "judge"}}}]  # fmt: skip


def test_a_judge_outside_the_stack_needs_its_egress_named() -> None:
    with pytest.raises(SettingsError, match=r"eval\.egress: evaluator pods may call only this stack's vLLM .*judge"):
        settings(eval={"judge": {"baseUrl": "https://judge.example/v1", "model": "j"}})
    with pytest.raises(SettingsError, match=r"eval\.egress\[0\]\.cidr: give exactly one of cidr"):
        settings(eval={"egress": [{"ports": [443]}]})


def test_argo_steps_may_reach_the_api_server_the_branch_jobs_may_not() -> None:
    from factory import workflow

    objs = workflow.argo(load_stack(PULUMI_DIR, "prod"))
    (policy,) = [o for o in objs if o["kind"] == "NetworkPolicy"]
    selector = policy["spec"]["podSelector"]["matchExpressions"]
    assert selector == [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]
    (template,) = [o for o in objs if o["kind"] == "WorkflowTemplate"]
    (evaluate,) = [t for t in template["spec"]["templates"] if t["name"] == "evaluate"]
    job = yaml.safe_load(evaluate["resource"]["manifest"].replace("{{", "").replace("}}", ""))
    assert "workflows.argoproj.io/workflow" not in job["spec"]["template"]["metadata"]["labels"]


# --- storage: a root the pods cannot write; data that outlives `pulumi destroy` --------------------------


def test_a_results_volume_the_evaluator_cannot_write_fails_at_once_naming_the_fix(tmp_path: Path) -> None:
    """CephFS, Filestore or plain NFS ignore fsGroup: a root-owned 0755 root stays unwritable by uid 10001."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the guard as uid 10001")
    base = Path(tempfile.mkdtemp(prefix="factory-rwx-"))  # pytest's own tmp folder is 0700: not reachable as 10001
    base.chmod(0o755)
    root = base / "results"
    root.mkdir(mode=0o755)
    guard = evaluation.eval_job(load_stack(PULUMI_DIR, "dev"), "r1", "0123456")["spec"]["template"]["spec"][
        "initContainers"
    ][0]
    env = {"PATH": os.environ["PATH"], "EVAL_OUT_DIR": str(root / "r1"), "EVAL_IMAGE": "i:1", "EVAL_RUN_ID": "r1"}
    python = shutil.which("python3", path="/usr/bin:/bin") or "python3"  # the guard is stdlib only
    try:
        done = subprocess.run([python, "-c", guard["command"][2]], env=env, capture_output=True, text=True,
                              user=10001, group=10001)  # fmt: skip
    finally:
        shutil.rmtree(base)
    assert done.returncode == 2, done.stderr  # FailJob at once, not a retried traceback
    assert "not writable by uid 10001" in done.stderr and "owned by 0:0 with mode 0o755" in done.stderr
    assert "ignore fsGroup" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pulumi_destroy_leaves_the_namespace_that_holds_the_data(stack: str) -> None:
    """Deleting a namespace deletes its PVCs whatever Pulumi retains: the namespace is retained as they are."""
    _, out = run_program(stack, stack_config(stack))
    options = out["workspace"].options["Namespace/eval"]
    assert options.retain_on_delete is True
    assert options.protect is (stack == "prod")


# --- stack keys are checked strictly ----------------------------------------------------------------------


def test_an_unknown_stack_key_names_the_file_the_key_and_the_likely_one(tmp_path: Path) -> None:
    doc = yaml.safe_load((PULUMI_DIR / "Pulumi.prod.yaml").read_text())
    doc["config"]["ai-eval-factory:eval"]["parallelsim"] = 4
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError) as refused:
        load_stack(tmp_path, "prod")
    assert str(refused.value) == (
        f"{tmp_path / 'Pulumi.prod.yaml'}: eval.parallelsim: unknown key; did you mean eval.parallelism?"
    )
    doc["config"]["ai-eval-factory:eval"].pop("parallelsim")
    doc["config"]["ai-eval-factory:vlm"] = {"image": "x:1"}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SettingsError, match=r"Pulumi.prod.yaml: vlm: unknown key; did you mean vllm\?"):
        load_stack(tmp_path, "prod")


def test_the_pulumi_program_refuses_unknown_keys_too_but_knows_its_secrets() -> None:
    config = stack_config("dev")
    config["devicePlugin"] = dict(config["devicePlugin"], nodeSelecter={"a": "b"})
    with pytest.raises(
        Exception, match=r"devicePlugin\.nodeSelecter: unknown key; did you mean devicePlugin\.nodeSelector"
    ):
        run_program("dev", config)
    run_program("dev", stack_config("dev"), secrets={"hfToken": "t", "evalJudgeApiKey": "k"})  # known: no error
    config = stack_config("dev")
    config["evalRun"] = {"runId": "r1", "commit": "0123456", "suiteFiel": "s.yaml"}
    with pytest.raises(Exception, match=r"evalRun"):
        run_program("dev", config)


def test_a_fresh_cluster_node_fixture_is_what_the_kubelet_labels() -> None:
    """The journey's fixture itself: a GPU node without GFD/NFD labels."""
    node = scheduler.fresh_gpu_cluster()[1]
    assert node.gpus == 1 and not [k for k in node.labels if k.startswith(("nvidia.com/", "feature.node"))]
