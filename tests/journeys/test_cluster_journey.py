"""The cluster journey, for real: what `render` (and so `pulumi up`) declares runs an evaluation.

An operator's path, with the strongest real parts this machine has (no API server, no GPU, no registry):
`python -m factory.render` for a stack and a run -> the Indexed Job's Pods (one per completion index, see
kube_pods.index_pods) -> `podman kube play` with the evaluator image built from evaluator/Dockerfile ->
the rendered aggregate Job (aggregate, then gate) -> the merged report on the results volume.

The stand-in for vLLM is the project's OpenAI-compatible stub (`python -m openai_stub`), run from the
rendered vLLM Deployment's own pod (its uid, volumes and port; the image and command swapped, GPU request,
probes and the weight prefetch dropped, since none can run here) and reached under the rendered Service
name through the shared network namespace's hosts file. It is served under the stack's servedModelName,
and its counters prove that the name the stack declared is the one the pods asked for.

What a control plane would refuse is refused here too, by the strict stand-ins (each cites the upstream rule it
models and has its own refusal test in test_standins.py): every pod the journey creates (each index pod, the
aggregate pod, the vLLM pod, each Argo step and each branch Job's pods) passes the namespace's Pod Security
Admission (`admission`) before podman runs it; the device plugin and vLLM are scheduled on the journey's node
fixture, a GPU node as a fresh cluster labels it, without GPU Feature Discovery (`scheduler`); Argo's DAG phase
follows Argo's own rule (`argo_dag`); the `argo submit` command line and each step's template meet the kernel's
argument limit (`api_limits`). Only the journey's own plumbing is added after admission: the hosts file (cluster
DNS) and, for the stand-in vLLM, the stub's code.

Only checked elsewhere, not run here: Pulumi's await logic (tests/pulumi/test_upgrade_sequence.py walks it), real
GPUs, vLLM itself.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.helpers import read_report_json
from tests.journeys import admission, api_limits, argo_dag, kube_pods, scheduler
from tests.journeys.kube_pods import Manifest, Podman, PodResult
from tests.journeys.podman_images import REPO, CannotBuild, evaluator_image, heavy_lock, why_not_here

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PULUMI_DIR = REPO / "pulumi"
SUITE = Path(__file__).resolve().parent / "suite" / "suite.yaml"
VARIANTS_SUITE = SUITE.parent / "variants.yaml"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
STUB_ROOT = "/opt/openai-stub"


def case_ids() -> list[str]:
    lines = (SUITE.parent / "cases.jsonl").read_text().splitlines()
    return [json.loads(line)["id"] for line in lines if line.strip()]


@pytest.fixture(scope="module")
def heavy() -> Iterator[str]:
    """The machine-wide heavy lock for the whole module, and the evaluator image built under it."""
    reason = why_not_here()
    if reason is not None:
        pytest.skip(f"cluster journey: {reason}")
    with heavy_lock():
        try:
            image = evaluator_image()
        except CannotBuild as exc:
            pytest.skip(f"cluster journey: cannot build the evaluator image here: {exc}")
        yield image


@pytest.fixture(scope="module")
def netns(heavy: str) -> Iterator[str]:
    """A private network namespace, loopback only: every pod of the journey shares it, nothing leaves it."""
    name = f"factory-journey-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@dataclass
class Journey:
    stack: str
    run_id: str
    out: Path
    plan: dict[str, Any]
    stack_objs: list[Manifest]
    run_objs: list[Manifest]
    index_results: list[PodResult]
    aggregate: PodResult
    report: dict[str, Any]
    stats: dict[str, Any]
    extra: dict[str, Any]


def render(stack: str, out: Path, run_id: str, image: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, exactly: `python -m factory.render` from pulumi/."""
    command = [sys.executable, "-m", "factory.render", "--stack", stack, "--out", str(out), "--run-id", run_id]
    command += ["--commit", COMMIT, "--suite", str(SUITE), "--image", image, *extra]
    return subprocess.run(command, cwd=PULUMI_DIR, capture_output=True, text=True, timeout=120, check=False)


def hosts_file(path: Path, urls: list[str]) -> Path:
    """Cluster DNS for the journey: each rendered service host -> 127.0.0.1 of the shared namespace."""
    hosts = sorted({urlparse(u).hostname or "" for u in urls} - {""})
    path.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in hosts))
    path.chmod(0o644)
    return path


def env_of(container: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def vllm_standin(deployment: Manifest, image: str, name: str, hosts: Path) -> tuple[Manifest, int, str]:
    """The rendered vLLM pod with the stub in place of vLLM (same uid, port, volumes, served model name)."""
    template = deployment["spec"]["template"]
    p = copy.deepcopy(kube_pods.pod(name, deployment["metadata"]["namespace"], template))
    spec = p["spec"]
    spec.pop("initContainers", None)  # the weight prefetch downloads from the hub: not reachable here
    (server,) = spec["containers"]
    args = server["args"]
    served = args[args.index("--served-model-name") + 1]
    port = int(server.pop("ports")[0]["containerPort"])  # host network of the shared namespace: no mapping
    server["image"] = image
    server["command"] = ["python", "-m", "openai_stub", "--port", str(port), "--model", served]
    server["args"] = []
    server["env"] = [*server.get("env", []), {"name": "PYTHONPATH", "value": STUB_ROOT}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        server.pop(probe, None)  # podman would run them with curl, which the image lacks; /health is polled below
    for key in ("requests", "limits"):
        server["resources"][key].pop("nvidia.com/gpu", None)
        # A GPU node's CPU count (prod asks for 8) does not fit this machine; podman refuses more than it has.
        server["resources"][key]["cpu"] = str(min(_cpus(server["resources"][key]["cpu"]), os.cpu_count() or 1))
    server["volumeMounts"].append({"name": "openai-stub", "mountPath": f"{STUB_ROOT}/openai_stub", "readOnly": True})
    spec["volumes"].append(
        {"name": "openai-stub", "hostPath": {"path": str(REPO / "openai_stub"), "type": "Directory"}}
    )
    return kube_pods.with_hosts_file(p, hosts), port, served


def _cpus(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def namespace_of(stack_objs: list[Manifest]) -> Manifest:
    (namespace,) = kube_pods.by_kind(stack_objs, "Namespace")
    return namespace


def admitted(pods: list[Manifest], namespace: Manifest) -> list[Manifest]:
    """The pods as the API server lets them in: each through Pod Security Admission for the namespace's level."""
    return [admission.admit(p, namespace) for p in pods]


def gpu_node_fixture(stack: str, stack_objs: list[Manifest]) -> scheduler.Cluster:
    """The journey's nodes, as a fresh cluster has them: dev is minikube started with `--gpus` (its own device
    plugin advertises the GPU); prod is a CPU node and a GPU node, labelled by the kubelet only, on which the stack's
    own device plugin has to land for any pod to get `nvidia.com/gpu`."""
    if stack == "dev":
        return scheduler.Cluster([scheduler.fresh_node("minikube", gpus=1)], gpu_per_node={"minikube": 1})
    cluster = scheduler.Cluster(scheduler.fresh_gpu_cluster())
    (daemonset,) = kube_pods.by_kind(stack_objs, "DaemonSet")
    config = next((c for c in kube_pods.by_kind(stack_objs, "ConfigMap") if "config.yaml" in c.get("data", {})), None)
    assert cluster.run_device_plugin(daemonset, config), "the device plugin matches no node of a fresh cluster"
    return cluster


def schedule_gpu_pods(stack: str, stack_objs: list[Manifest], vllm_pod: Manifest) -> str:
    """Every GPU pod the stack creates, in its order (a smoke Job finishes before vLLM): the node vLLM lands on."""
    cluster = gpu_node_fixture(stack, stack_objs)
    for job in kube_pods.by_kind(stack_objs, "Job"):
        pod = kube_pods.job_pod(job)
        assert cluster.schedule(pod["metadata"]["name"], pod["spec"]), f"{job['metadata']['name']}: Pending"
        cluster.release(pod["metadata"]["name"])
    node = cluster.schedule(vllm_pod["metadata"]["name"], vllm_pod["spec"])
    assert node is not None, "vLLM's pod stays Pending: no node advertises nvidia.com/gpu"
    return node


def http_get(podman: Podman, pod: str, url: str) -> str:
    script = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    return podman.exec(pod, "vllm", "python", "-c", script, url)


def wait_healthy(podman: Podman, pod: str, port: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            http_get(podman, pod, f"http://127.0.0.1:{port}/health")
            return
        except AssertionError as exc:
            state = podman.states(pod).get("vllm", ("missing", 0))
            if state[0] != "running" or time.monotonic() > deadline:
                logs = podman.run("logs", f"{pod}-vllm", check=False)
                raise AssertionError(f"stand-in vLLM not healthy ({state}): {logs.stdout}{logs.stderr}") from exc
            time.sleep(0.5)


def failed(results: list[PodResult]) -> str:
    return "\n".join(r.logs[-3000:] for r in results if not r.succeeded)


def run_journey(
    stack: str,
    image: str,
    netns: str,
    work: Path,
    rerun_image: str | None = None,
) -> Journey:
    """render -> volumes -> stand-in vLLM -> index pods -> aggregate + gate -> report and server counters."""
    run_id = f"journey-{stack}-{uuid.uuid4().hex[:8]}"
    out = work / "rendered"
    rendered = render(stack, out, run_id, image)
    assert rendered.returncode == 0, rendered.stderr
    stack_objs = kube_pods.load_dir(out / "stack")
    run_objs = kube_pods.load_dir(out / "run" / run_id)
    plan = json.loads((out / "run" / f"{run_id}.json").read_text())
    (eval_job,) = [o for o in run_objs if o["metadata"]["name"] == plan["eval_job"]]
    (aggregate_job,) = [o for o in run_objs if o["metadata"]["name"] == plan["aggregate_job"]]
    configmaps = kube_pods.by_kind(run_objs, "ConfigMap")
    (deployment,) = [d for d in kube_pods.by_kind(stack_objs, "Deployment") if d["metadata"]["name"] == "vllm"]
    containers = eval_job["spec"]["template"]["spec"]["containers"]
    urls = [v for c in containers for k, v in env_of(c).items() if k.endswith("_BASE_URL")]
    hosts = hosts_file(work / "hosts", urls)

    namespace = namespace_of(stack_objs)
    vllm_name = f"vllm-standin-{run_id}"
    (vllm_pod,) = admitted([kube_pods.pod(vllm_name, namespace["metadata"]["name"], deployment["spec"]["template"])],
                           namespace)  # fmt: skip
    extra: dict[str, Any] = {"vllm_node": schedule_gpu_pods(stack, stack_objs, vllm_pod)}
    podman = Podman(netns, work)
    claims = kube_pods.by_kind(stack_objs, "PersistentVolumeClaim")
    for claim in claims:  # a crashed earlier run may have left these
        podman.run("volume", "rm", "--force", claim["metadata"]["name"], check=False)
    try:
        podman.play(claims)
        results_dir = podman.volume_path(plan["results_claim"])
        standin, port, served = vllm_standin(deployment, image, vllm_name, hosts)
        podman.play([standin])
        wait_healthy(podman, standin["metadata"]["name"], port)

        index_pods = [kube_pods.with_hosts_file(p, hosts) for p in admitted(kube_pods.index_pods(eval_job), namespace)]
        assert len(index_pods) == plan["completions"]
        index_results = podman.run_pods(index_pods, int(eval_job["spec"]["parallelism"]), extra=configmaps)
        assert all(r.succeeded for r in index_results), failed(index_results)

        (aggregate_pod,) = admitted([kube_pods.job_pod(aggregate_job)], namespace)
        (aggregate,) = podman.run_pods([kube_pods.with_hosts_file(aggregate_pod, hosts)], 1)
        report = read_report_json(results_dir / run_id / "report.json")
        stats = json.loads(http_get(podman, standin["metadata"]["name"], f"http://127.0.0.1:{port}/_stats"))
        extra["served"] = served
        if rerun_image is not None:
            extra["rerun"] = rerun_with_another_image(podman, work, stack, run_id, rerun_image, hosts)
    finally:
        podman.cleanup()
    return Journey(stack, run_id, out, plan, stack_objs, run_objs, index_results, aggregate, report, stats, extra)


def rerun_with_another_image(podman: Podman, work: Path, stack: str, run_id: str, image: str, hosts: Path) -> PodResult:
    """The same run id rendered with another image: its first index pod, on the same results volume."""
    out = work / "rerendered"
    rendered = render(stack, out, run_id, image)
    assert rendered.returncode == 0, rendered.stderr
    run_objs = kube_pods.load_dir(out / "run" / run_id)
    (job,) = [o for o in kube_pods.by_kind(run_objs, "Job") if o["spec"].get("completionMode") == "Indexed"]
    first = kube_pods.with_hosts_file(kube_pods.index_pods(job)[0], hosts)
    first["metadata"]["name"] += "-rerun"
    played = podman.play([*kube_pods.by_kind(run_objs, "ConfigMap"), first], check=False)
    (result,) = podman.wait([first["metadata"]["name"]], timeout=120)
    result.logs += played.stdout + played.stderr
    return result


def stack_settings(stack: str) -> dict[str, Any]:
    doc = yaml.safe_load((PULUMI_DIR / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in doc["config"].items()}


def assert_complete_report(j: Journey) -> None:
    """Every case exactly once, the run's id, every shard complete, nothing the gate would doubt."""
    report = j.report
    assert report["run_id"] == j.run_id
    assert report["commit"] == COMMIT
    assert report["problems"] == [], report["problems"]
    ids = [c["case_id"] for c in report["cases"]]
    assert sorted(ids) == sorted(case_ids()) and len(ids) == len(set(ids))
    assert report["shards"]["expected"] == j.plan["completions"]
    assert report["shards"]["complete"] == list(range(j.plan["completions"]))
    assert report["totals"]["errored"] == 0 and report["totals"]["passed"] == len(case_ids())
    assert j.aggregate.succeeded, j.aggregate.logs  # aggregate (init container), then gate: PASS
    # Each case landed in the shard the Job controller's index picked for that pod.
    assert {c["shard"] for c in report["cases"]} <= set(range(j.plan["completions"]))
    assert len({r.name for r in j.index_results}) == j.plan["completions"]


def assert_the_stack_model_was_asked(j: Journey) -> None:
    """The stand-in was asked for exactly the servedModelName the stack declares, by target and judge."""
    served = stack_settings(j.stack)["vllm"]["servedModelName"]
    assert j.extra["served"] == served
    assert set(j.stats["by_model"]) == {served}, j.stats
    # One target call per case, plus answer relevancy's judge calls.
    assert j.stats["by_model"][served] > len(case_ids()), j.stats
    assert j.stats["by_status"] == {"200": j.stats["total"]}, j.stats


@pytest.fixture(scope="module")
def dev_journey(heavy: str, netns: str, tmp_path_factory: pytest.TempPathFactory) -> Journey:
    other = heavy.rsplit(":", 1)[0] + ":journey-rebuilt"
    subprocess.run(["podman", "tag", heavy, other], check=True, capture_output=True, env=kube_pods.podman_env())
    try:
        return run_journey("dev", heavy, netns, tmp_path_factory.mktemp("dev"), rerun_image=other)
    finally:
        subprocess.run(["podman", "untag", other, other], check=False, capture_output=True, env=kube_pods.podman_env())


def test_dev_stack_runs_an_evaluation_from_the_rendered_objects(dev_journey: Journey) -> None:
    assert_complete_report(dev_journey)
    assert_the_stack_model_was_asked(dev_journey)


def test_a_prod_first_run_on_an_empty_results_volume_produces_a_report(
    heavy: str, netns: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """prod on a fresh cluster: its device plugin lands on the GPU node as the kubelet labels it, 16 shards run 8 at
    a time, `balanced` sharding finds no previous report on the new volume, and every pod falls back to the same
    split and says so."""
    timings = stack_settings("prod")["eval"]["timingsReport"]
    j = run_journey("prod", heavy, netns, tmp_path_factory.mktemp("prod"))
    assert j.extra["vllm_node"] == "gpu-0"
    assert_complete_report(j)
    assert_the_stack_model_was_asked(j)
    env = env_of(j.run_objs[1]["spec"]["template"]["spec"]["containers"][0])
    assert env["EVAL_SHARDING"] == "balanced"
    assert env["EVAL_TIMINGS"] == f"/results/{timings}"
    assert j.plan["completions"] == stack_settings("prod")["eval"]["shards"]
    assert all("no previous report" in r.logs for r in j.index_results), j.index_results[0].logs


def test_a_run_id_reused_with_another_image_fails_at_once_and_keeps_the_old_results(dev_journey: Journey) -> None:
    """Stale shards are never reported as a new image's: its first pod refuses to start the shard (exit 2)."""
    rerun = dev_journey.extra["rerun"]
    assert not rerun.succeeded
    assert rerun.exit_codes.get("evaluator") in (-1, None), rerun.exit_codes  # the shard never started
    assert "journey-rebuilt" in rerun.logs and "another image" in rerun.logs, rerun.logs


def test_the_helpers_cannot_pass_an_empty_run(tmp_path: Path) -> None:
    """The expansion is what the Job controller does: one pod per index, each with its own annotation."""
    job = {
        "metadata": {"name": "eval-x", "namespace": "eval"},
        "spec": {"completionMode": "Indexed", "completions": 3, "template": {"spec": {"containers": [{"name": "e"}]}}},
    }
    pods = kube_pods.index_pods(job)
    assert [p["metadata"]["annotations"][kube_pods.INDEX_ANNOTATION] for p in pods] == ["0", "1", "2"]
    assert [p["spec"]["hostname"] for p in pods] == ["eval-x-0", "eval-x-1", "eval-x-2"]
    assert all(p["spec"]["containers"][0]["env"] == [kube_pods.INDEX_ENV] for p in pods)
    assert shutil.which("python3")


def test_each_pod_mounts_its_own_copy_of_a_configmap() -> None:
    """podman rewrites a ConfigMap's one volume on every play: pods sharing it could read a truncated dataset."""
    suite_cm = {"kind": "ConfigMap", "metadata": {"name": "suite-r"}, "data": {"suite.yaml": "s", "cases.jsonl": "c"}}
    env_cm = {"kind": "ConfigMap", "metadata": {"name": "env-r"}, "data": {"A": "1"}}
    template = {
        "spec": {"containers": [{"name": "e"}], "volumes": [{"name": "suite", "configMap": {"name": "suite-r"}}]}
    }
    pods = kube_pods.index_pods(
        {
            "metadata": {"name": "eval-r", "namespace": "eval"},
            "spec": {"completionMode": "Indexed", "completions": 2, "template": template},
        }
    )
    played = [kube_pods.with_private_configmaps(p, [suite_cm, env_cm]) for p in pods]
    mounted = [p["spec"]["volumes"][0]["configMap"]["name"] for p, _ in played]
    assert mounted == ["suite-r-eval-r-0", "suite-r-eval-r-1"]  # one volume per pod, none shared
    for (_, objs), name in zip(played, mounted, strict=True):
        by_name = {o["metadata"]["name"]: o for o in objs}
        assert set(by_name) == {"suite-r", "env-r", name} and by_name[name]["data"] == suite_cm["data"]
    assert template["spec"]["volumes"][0]["configMap"]["name"] == "suite-r"  # the rendered template untouched


def argo_container_pod(template: Manifest, name: str, namespace: str) -> Manifest:
    """An Argo container template as the pod Argo runs for it (its executor sidecar aside)."""
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": template["automountServiceAccountToken"],
        "securityContext": template["securityContext"],
        "volumes": template["volumes"],
        "containers": [template["container"]],
    }
    return kube_pods.pod(name, namespace, {"metadata": template.get("metadata", {}), "spec": spec})


def with_outputs_folder(p: Manifest, template: Manifest, host: Path) -> Manifest:
    """Argo's executor reads each `outputs.parameters[].valueFrom.path` once the main container has ended; here
    the folder holding them is a host folder, so that the test can read them after the pod (uid 10001) wrote."""
    folders = {posixpath.dirname(o["valueFrom"]["path"]) for o in template["outputs"]["parameters"]}
    (folder,) = folders
    host.mkdir(parents=True)
    host.chmod(0o777)
    p = copy.deepcopy(p)
    p["spec"]["volumes"].append({"name": "argo-outputs", "hostPath": {"path": str(host), "type": "Directory"}})
    p["spec"]["containers"][0]["volumeMounts"].append({"name": "argo-outputs", "mountPath": folder})
    return p


@dataclass
class ArgoJourney:
    run_id: str
    served: str
    phase: str
    walk: argo_dag.DagWalk
    plan: dict[str, str]
    pods: dict[str, list[PodResult]]  # call (template + variant) -> its pods
    results: Path  # a copy of the run's folder on the results volume
    stats: dict[str, Any]


def run_argo_journey(
    image: str, netns: str, work: Path, suite: Path, profile: str = "", eval_changes: dict[str, Any] | None = None
) -> ArgoJourney:
    """dev with argo.enabled (and `eval_changes`): the WorkflowTemplate as `render` writes it, its parameters
    substituted as `argo submit -p` does, then walked as Argo's controller would (tests/journeys/argo_dag.py)
    with every step run as pods: prepare's ConfigMap, the plan step, each branch's Indexed Job and aggregate, the
    gates."""
    project = work / "project"
    project.mkdir()
    config = yaml.safe_load((PULUMI_DIR / "Pulumi.dev.yaml").read_text())
    config["config"]["ai-eval-factory:argo"]["enabled"] = True
    config["config"]["ai-eval-factory:eval"]["image"] = image  # what a release sets as the stack's eval.image
    config["config"]["ai-eval-factory:eval"] |= eval_changes or {}
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(config))
    out = work / "rendered"
    command = [sys.executable, "-m", "factory.render", "--stack", "dev", "--out", str(out)]
    rendered = subprocess.run([*command, "--project-dir", str(project)], cwd=PULUMI_DIR, capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    stack_objs = kube_pods.load_dir(out / "stack")
    (template,) = kube_pods.by_kind(kube_pods.load_dir(out / "argo"), "WorkflowTemplate")
    run_id = f"argo-{uuid.uuid4().hex[:8]}"
    params = {
        "run-id": run_id,
        "commit": COMMIT,
        "suite-b64": base64.b64encode(suite.read_bytes()).decode(),
        "dataset-path": yaml.safe_load(suite.read_text())["dataset"],
        "dataset-b64": base64.b64encode((suite.parent / "cases.jsonl").read_bytes()).decode(),
        "profile": profile,
        "image": image,  # the image the release built: a parameter of every submission
    }
    declared = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
    assert set(params) <= set(declared), declared  # no unknown parameter
    missing = [n for n, p in declared.items() if n not in params and "value" not in p]
    assert not missing, f"parameters without a default that the submission must give: {missing}"
    # `argo submit --from workflowtemplate/eval-release -p k=v ...`, as documented: the kernel takes it or not.
    api_limits.exec_argv(["argo", "submit", "--from", "workflowtemplate/eval-release",
                          *(a for k, v in params.items() for a in ("-p", f"{k}={v}"))])  # fmt: skip
    params = {n: p["value"] for n, p in declared.items() if "value" in p} | params
    workflow = argo_dag.substitute(template, {f"workflow.parameters.{k}": v for k, v in params.items()}, strict=False)
    assert "{{workflow." not in json.dumps(workflow)
    (deployment,) = [d for d in kube_pods.by_kind(stack_objs, "Deployment") if d["metadata"]["name"] == "vllm"]
    namespace_obj = namespace_of(stack_objs)
    namespace = namespace_obj["metadata"]["name"]
    hosts = hosts_file(work / "hosts", re.findall(r"https?://[^\s\"']+", json.dumps(workflow)))
    podman = Podman(netns, work)
    claims = kube_pods.by_kind(stack_objs, "PersistentVolumeClaim")
    for claim in claims:
        podman.run("volume", "rm", "--force", claim["metadata"]["name"], check=False)
    configmaps: list[Manifest] = []
    pods: dict[str, list[PodResult]] = {}
    plan: dict[str, str] = {}

    def leaf(call: argo_dag.Call) -> tuple[str, dict[str, str]]:
        body = call.body
        # Argo hands each step its resolved template in the executor's ARGO_TEMPLATE variable: one exec argument.
        api_limits.exec_env("ARGO_TEMPLATE", json.dumps(body))
        key = "/".join(filter(None, [call.template, call.arguments.get("variant")]))
        name = re.sub(r"[^a-z0-9-]", "-", f"{key}-{run_id}".lower())[:63].strip("-")
        if "resource" in body:
            obj = yaml.safe_load(body["resource"]["manifest"])
            if obj["kind"] == "ConfigMap":  # prepare: podman plays a ConfigMap with the pods that mount it
                configmaps.append(obj)
                return "Succeeded", {}
            assert obj["kind"] == "Job" and body["resource"]["action"] == "create", obj["kind"]
            index_pods = [
                kube_pods.with_hosts_file(p, hosts) for p in admitted(kube_pods.index_pods(obj), namespace_obj)
            ]
            pods[key] = podman.run_pods(index_pods, int(obj["spec"]["parallelism"]), extra=configmaps)
            return ("Succeeded" if all(r.succeeded for r in pods[key]) else "Failed"), {}
        (step,) = admitted([argo_container_pod(body, name, namespace)], namespace_obj)
        step = kube_pods.with_hosts_file(step, hosts)
        folder = work / "outputs" / name
        if body.get("outputs"):
            step = with_outputs_folder(step, body, folder)
        (pods[key],) = [podman.run_pods([step], 1, extra=configmaps)]
        outputs = {}
        for output in (body.get("outputs") or {}).get("parameters", []):
            outputs[output["name"]] = (folder / posixpath.basename(output["valueFrom"]["path"])).read_text()
        if call.template == "plan":
            plan.update(outputs)
        return ("Succeeded" if pods[key][0].succeeded else "Failed"), outputs

    try:
        podman.play(claims)
        standin, port, served = vllm_standin(deployment, image, f"vllm-standin-{run_id}", hosts)
        podman.play([standin])
        wait_healthy(podman, standin["metadata"]["name"], port)
        walk = argo_dag.DagWalk(workflow, leaf)
        phase = walk.run()
        stats = json.loads(http_get(podman, standin["metadata"]["name"], f"http://127.0.0.1:{port}/_stats"))
        results = work / "results"
        shutil.copytree(podman.volume_path("eval-results") / run_id, results)
    finally:
        podman.cleanup()
    return ArgoJourney(run_id, served, phase, walk, plan, pods, results, stats)


def selected_ids(suite: Path, profile: str | None) -> list[str]:
    import evaluator

    return [c.id for c in evaluator.plan_run(evaluator.load_suite(suite), profile=profile or None).cases]


def test_the_argo_fan_out_over_variants_runs_as_pods(heavy: str, netns: str, tmp_path: Path) -> None:
    """A two-variant suite through the fan-out: the plan step (`evaluator prepare`), one Indexed Job per variant
    (the stack's `many` sharding: completions from the plan), each branch's own report, each variant gated
    against the reference's report; one set of G-Eval steps for the whole run.

    Six cases cannot show that two variants are within the tolerance, so the comparison is INCONCLUSIVE: with the
    stack's default `gateMode: block` that fails the workflow (the verdict is the gate's, tested in tests/compare);
    this walk runs the stack with `gateMode: warn` to see the whole fan-out through, and reads that the gate said
    INCONCLUSIVE and did not pass it silently."""
    changes = {"sharding": "many", "gateMode": "warn"}
    j = run_argo_journey(heavy, netns, tmp_path, VARIANTS_SUITE, profile="journey", eval_changes=changes)
    failed_pods = [r for rs in j.pods.values() for r in rs if not r.succeeded]
    assert j.phase == "Succeeded", failed(failed_pods)
    gate_logs = {key: "".join(r.logs for r in rs) for key, rs in j.pods.items() if key.startswith("gate")}
    assert all("mode warn (--mode)" in log for log in gate_logs.values()), gate_logs
    assert "nothing to compare" in gate_logs["gate-vs-reference/reference"], gate_logs  # the reference itself
    assert "WARN: gate INCONCLUSIVE" in gate_logs["gate-vs-reference/candidate"], gate_logs
    ids = selected_ids(VARIANTS_SUITE, "journey")
    variants = ["reference", "candidate"]
    branches = json.loads(j.plan["branches"])
    assert [b["variant"] for b in branches] == variants and j.plan["reference"] == "reference"
    for branch in branches:
        # One Job per variant with the plan's completions (2 = ceil(6 cases / chunk 3)), pods all succeeded.
        assert branch["job"] == f"eval-{j.run_id}-{branch['variant']}" and branch["completions"] == 2
        assert len(j.pods[f"evaluate/{branch['variant']}"]) == 2
    order = [(c.template, c.arguments.get("variant")) for c in j.walk.calls]
    assert order[:2] == [("prepare", None), ("plan", None)]
    assert sorted(o for o in order if o[0].startswith("gate")) == [("gate-vs-reference", v) for v in sorted(variants)]
    steps = json.loads((j.results / "g_eval_steps.json").read_text())  # written by the plan step
    assert steps["run_id"] == j.run_id
    run_steps = {metric: entry["evaluation_steps"] for metric, entry in steps["metrics"].items()}
    assert list(run_steps) == ["correct"] and run_steps["correct"]
    for variant in variants:
        report = read_report_json(j.results / f"{variant}.json")
        assert report["run_id"] == j.run_id and report["problems"] == [], report["problems"]
        assert list(report["variants"]) == [variant]
        assert sorted(c["case_id"] for c in report["cases"]) == sorted(ids)  # every (variant, case) exactly once
        assert report["shards"]["complete"] == [0, 1] and report["profile"]["name"] == "journey"
        assert report["g_eval_steps"] == run_steps  # the same steps judged every branch
        assert not (j.results / variant / "g_eval_steps.json").exists()  # every branch read the run's one file
    # Each variant's own model answered its cases, once per case; the stack's served model judged: the G-Eval
    # steps once for the whole run (the plan step), then one score per (variant, case).
    assert j.stats["by_model"] == {
        "journey-reference": len(ids),
        "journey-candidate": len(ids),
        j.served: 1 + len(variants) * len(ids),
    }, j.stats
    assert j.stats["by_status"] == {"200": j.stats["total"]}, j.stats


def test_the_argo_path_runs_a_single_variant_suite_as_pods(heavy: str, netns: str, tmp_path: Path) -> None:
    """The journey's plain suite (no variants) through the same template: one branch, `default`, gated alone as
    the kubectl path gates its report; the stack's served model asked for everything."""
    j = run_argo_journey(heavy, netns, tmp_path, SUITE)
    failed_pods = [r for rs in j.pods.values() for r in rs if not r.succeeded]
    assert j.phase == "Succeeded", failed(failed_pods)
    (branch,) = json.loads(j.plan["branches"])
    shards = stack_settings("dev")["eval"]["shards"]
    assert branch["variant"] == "default" and branch["completions"] == shards
    assert len(j.pods["evaluate/default"]) == shards
    assert [(c.template, c.arguments.get("variant")) for c in j.walk.calls if c.template.startswith("gate")] == [
        ("gate-alone", "default")
    ]
    report = read_report_json(j.results / "default.json")
    assert report["run_id"] == j.run_id and report["problems"] == []
    assert sorted(c["case_id"] for c in report["cases"]) == sorted(case_ids())
    assert set(j.stats["by_model"]) == {j.served}, j.stats


def test_a_lock_held_by_the_command_that_started_us_is_not_taken_again(tmp_path: Path) -> None:
    """`flock /tmp/factory-heavy.lock pytest tests/journeys` must not wait for itself."""
    lock = tmp_path / "lock"
    lock.touch()
    code = "import sys; from pathlib import Path; from tests.journeys.podman_images import _held_by_an_ancestor as h"
    code += "; print(h(Path(sys.argv[1])))"
    under = subprocess.run(["flock", str(lock), sys.executable, "-c", code, str(lock)], cwd=REPO, capture_output=True)
    alone = subprocess.run([sys.executable, "-c", code, str(lock)], cwd=REPO, capture_output=True)
    assert (under.stdout.strip(), alone.stdout.strip()) == (b"True", b"False"), under.stderr + alone.stderr
