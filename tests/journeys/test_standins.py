"""Each strict stand-in of the journeys refuses what the upstream component it models refuses.

Fast and podman-free: the journeys (test_cluster_journey.py) and the cluster tests (tests/pulumi) rely on these
stand-ins to say no where a real cluster says no; these tests hold each one to upstream's rule.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.journeys import admission, api_limits, argo_dag, fake_kubectl, scheduler

RESTRICTED_NS = {"metadata": {"name": "eval", "labels": {admission.ENFORCE_LABEL: "restricted"}}}


def compliant_pod() -> dict[str, Any]:
    container = {
        "name": "c",
        "image": "i:1",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "metadata": {"name": "p"},
        "spec": {"containers": [container], "volumes": [{"name": "v", "emptyDir": {}}]},
    }


# --- Pod Security Admission -----------------------------------------------------------------------------


def test_a_compliant_pod_is_admitted_and_an_unlabelled_namespace_admits_anything() -> None:
    assert admission.admit(compliant_pod(), RESTRICTED_NS)
    bare = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "i"}]}}
    assert admission.admit(bare, {"metadata": {"name": "default"}}) is bare


def test_kubectl_runs_default_pod_is_refused_by_restricted_with_upstreams_reasons() -> None:
    """What `kubectl run x --image i` creates: no securityContext at all."""
    bare = {"metadata": {"name": "collect"}, "spec": {"containers": [{"name": "collect", "image": "i"}]}}
    with pytest.raises(admission.Forbidden) as refused:
        admission.admit(bare, RESTRICTED_NS)
    message = str(refused.value)
    assert message.startswith('pods "collect" is forbidden: violates PodSecurity "restricted:latest": ')
    for reason in (
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        'seccompProfile (pod or container "collect" must set securityContext.seccompProfile.type to "RuntimeDefault"',
    ):
        assert reason in message, message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath volumes"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser=0"),
        (lambda p: p["spec"].update(hostNetwork=True), "host namespaces (hostNetwork=true)"),
        (
            lambda p: p["spec"]["containers"][0]["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
            "non-default capabilities",
        ),
        (lambda p: p["spec"]["containers"][0]["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (
            lambda p: p["spec"].setdefault("initContainers", []).append({"name": "init", "image": "i"}),
            'container "init" must set securityContext.allowPrivilegeEscalation=false',
        ),
        (lambda p: None, None),  # no change: the control
    ],
)
def test_each_restricted_control_refuses_its_field(change: Any, reason: str | None) -> None:
    pod = compliant_pod()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    change(pod)
    if reason is None:
        assert admission.admit(pod, RESTRICTED_NS)
        return
    with pytest.raises(admission.Forbidden, match=reason.replace("(", r"\(").replace(")", r"\)")):
        admission.admit(pod, RESTRICTED_NS)


def test_pod_level_settings_cover_the_containers_as_upstream_allows() -> None:
    pod = compliant_pod()
    sc = pod["spec"]["containers"][0]["securityContext"]
    del sc["runAsNonRoot"], sc["seccompProfile"]
    pod["spec"]["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert admission.admit(pod, RESTRICTED_NS)
    sc["runAsNonRoot"] = False  # a container's own false overrides the pod's true
    with pytest.raises(admission.Forbidden, match="runAsNonRoot != true"):
        admission.admit(pod, RESTRICTED_NS)


# --- object and argument limits -------------------------------------------------------------------------


def configmap(data_bytes: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "suite-r"}, "data": {"d": "x" * data_bytes}}


def test_client_side_apply_refuses_an_object_whose_last_applied_copy_passes_256_kib() -> None:
    assert api_limits.apply(configmap(200 * 1024))  # fits twice: object + its copy in the annotation
    with pytest.raises(api_limits.Invalid, match=r"metadata.annotations: Too long: may not be more than 262144 bytes"):
        api_limits.apply(configmap(300 * 1024))
    # Server-side apply keeps no copy: the same object is accepted.
    stored = api_limits.apply(configmap(300 * 1024), server_side=True)
    assert api_limits.LAST_APPLIED not in (stored["metadata"].get("annotations") or {})


def test_a_configmap_over_1_mib_is_refused_even_server_side() -> None:
    with pytest.raises(api_limits.Invalid, match=r"Too long: may not be more than 1048576"):
        api_limits.apply(configmap(1024 * 1024 + 1), server_side=True)
    binary = {"kind": "ConfigMap", "metadata": {"name": "b"}, "binaryData": {"d": "QUJD" * 300_000}}  # 900 KB
    assert api_limits.apply(binary, server_side=True)


def test_the_kernel_refuses_one_argument_over_max_arg_strlen() -> None:
    """Real execve: what `argo submit -p dataset-b64="$(base64 -w0 big.jsonl)"` meets."""
    api_limits.exec_argv(["argo", "submit", "-p", "x=" + "a" * (api_limits.MAX_ARG_STRLEN - 10)])
    with pytest.raises(OSError) as refused:
        api_limits.exec_argv(["argo", "submit", "-p", "x=" + "a" * api_limits.MAX_ARG_STRLEN])
    assert refused.value.errno == errno.E2BIG


# --- scheduling and the device plugin -------------------------------------------------------------------


def plugin(affinity: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    if affinity:
        spec["affinity"] = affinity
    return {"spec": {"template": {"spec": spec}}}


def required(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": list(t)} for t in terms]
            }
        }
    }


GFD = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
NFD = {"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}


def test_a_plugin_that_needs_gfd_labels_runs_nowhere_on_a_fresh_cluster() -> None:
    nodes = scheduler.fresh_gpu_cluster()
    assert scheduler.daemonset_nodes(plugin(required([GFD])), nodes) == []
    assert scheduler.daemonset_nodes(plugin(required([NFD], [GFD])), nodes) == []  # the Helm chart's default too
    assert scheduler.daemonset_nodes(plugin(None), nodes) == ["cpu-0", "gpu-0"]  # upstream's static manifest
    labelled = copy.deepcopy(nodes)
    labelled[1].labels["nvidia.com/gpu.present"] = "true"
    assert scheduler.daemonset_nodes(plugin(required([NFD], [GFD])), labelled) == ["gpu-0"]  # terms are ORed


def test_node_affinity_operators_and_taints_as_upstream() -> None:
    node = scheduler.fresh_node("n")
    node.labels["gpus"] = "4"
    assert scheduler.node_affinity_matches(
        {"affinity": required([{"key": "gpus", "operator": "Gt", "values": ["2"]}])}, node
    )
    assert not scheduler.node_affinity_matches(
        {"affinity": required([{"key": "gpus", "operator": "Gt", "values": ["2"]}, GFD])}, node
    )  # expressions of one term are ANDed
    assert scheduler.node_affinity_matches({"affinity": required([{"key": "x", "operator": "DoesNotExist"}])}, node)
    assert not scheduler.node_affinity_matches({"nodeSelector": {"kubernetes.io/os": "windows"}}, node)
    node.taints = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert not scheduler.tolerates({}, node)
    assert scheduler.tolerates(plugin(None)["spec"]["template"]["spec"], node)


def test_a_gpu_pod_stays_pending_until_a_plugin_advertises_the_gpu_and_while_another_holds_it() -> None:
    gpu_pod = {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    cluster = scheduler.Cluster(scheduler.fresh_gpu_cluster())
    assert cluster.schedule("a", gpu_pod) is None  # no plugin: no nvidia.com/gpu anywhere
    assert cluster.run_device_plugin(plugin(required([GFD]))) == []
    assert cluster.schedule("a", gpu_pod) is None  # the plugin that never runs advertises nothing
    cluster.run_device_plugin(plugin(None))
    assert cluster.schedule("a", gpu_pod) == "gpu-0"
    assert cluster.schedule("b", gpu_pod) is None  # the one GPU is held
    cluster.release("a")
    assert cluster.schedule("b", gpu_pod) == "gpu-0"
    sliced = scheduler.Cluster(scheduler.fresh_gpu_cluster())
    config = {"data": {"config.yaml": "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}"}}
    sliced.run_device_plugin(plugin(None), config)
    assert sliced.schedule("a", gpu_pod) == sliced.schedule("b", gpu_pod) == "gpu-0"


# --- Argo's DAG phase -------------------------------------------------------------------------------------


def dag_workflow(tasks: list[dict[str, Any]], target: str | None = None) -> dict[str, Any]:
    dag: dict[str, Any] = {"tasks": tasks}
    if target:
        dag["target"] = target
    return {
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "dag": dag}, {"name": "ok"}, {"name": "fails"}],
        }
    }


def walk(workflow: dict[str, Any]) -> str:
    def leaf(call: argo_dag.Call) -> tuple[str, dict[str, str]]:
        return ("Failed" if call.template == "fails" else "Succeeded"), {}

    return argo_dag.DagWalk(workflow, leaf).run()


def test_a_failed_task_whose_leaf_succeeds_leaves_the_dag_succeeded_as_in_argo() -> None:
    """argo-workflows assessDAGPhase: only the leaves (or dag.target) decide."""
    tasks = [
        {"name": "evaluate", "template": "fails"},
        {"name": "aggregate", "template": "ok", "depends": "evaluate.Succeeded || evaluate.Failed"},
    ]
    assert walk(dag_workflow(tasks)) == "Succeeded"
    assert walk(dag_workflow(tasks, target="evaluate aggregate")) == "Failed"


def test_an_omitted_leaf_inherits_the_failure_that_omitted_it() -> None:
    tasks = [{"name": "plan", "template": "fails"}, {"name": "gate", "template": "ok", "depends": "plan"}]
    assert walk(dag_workflow(tasks)) == "Failed"
    tasks = [{"name": "plan", "template": "ok"}, {"name": "gate", "template": "ok", "depends": "plan.Failed"}]
    assert walk(dag_workflow(tasks)) == "Succeeded"  # omitted after a success: the branch succeeded


def test_a_task_group_fails_when_one_of_its_items_fails() -> None:
    tasks = [
        {"name": "each", "template": "fails", "withParam": json.dumps(["a", "b"]), "arguments": {}},
        {"name": "after", "template": "ok", "depends": "each.Succeeded || each.Failed"},
    ]
    workflow = dag_workflow(tasks, target="each after")
    assert walk(workflow) == "Failed"


# --- the stand-in kubectl ---------------------------------------------------------------------------------


@pytest.fixture
def kubectl(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    binary = fake_kubectl.install(tmp_path / "bin")
    env = {
        **os.environ,
        "FAKE_KUBE_STATE": str(tmp_path / "state.json"),
        "FAKE_KUBE_TIME_SCALE": "0.05",  # 30 s of kubectl's time is 1.5 s here
        "FAKE_KUBE_JOBS": json.dumps({"slow-": {"verdict": "Complete", "after": 60}}),
    }
    (tmp_path / "ns.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", **RESTRICTED_NS}))

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    assert call("apply", "-f", str(tmp_path / "ns.yaml")).returncode == 0
    return call


def write_yaml(path: Path, obj: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_kubectl_wait_gives_up_after_its_30s_default(kubectl: Any, tmp_path: Path) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "slow-pull"},
        "spec": {"template": {"spec": compliant_pod()["spec"]}},
    }
    assert kubectl("-n", "eval", "apply", "-f", write_yaml(tmp_path / "job.yaml", job)).returncode == 0
    waited = kubectl("-n", "eval", "wait", "job/slow-pull", "--for=condition=Complete")
    assert waited.returncode == 1 and "timed out waiting for the condition on jobs/slow-pull" in waited.stderr
    assert kubectl("-n", "eval", "wait", "job/slow-pull", "--for=condition=Complete", "--timeout=60s").returncode == 0


def test_kubectl_run_and_a_jobs_pods_meet_the_namespaces_admission(kubectl: Any, tmp_path: Path) -> None:
    refused = kubectl("-n", "eval", "run", "collect", "--image", "i:1", "--restart", "Never", "--", "sleep", "600")
    assert refused.returncode == 1 and 'violates PodSecurity "restricted:latest"' in refused.stderr
    overrides = json.dumps({"spec": compliant_pod()["spec"] | {"restartPolicy": "Never"}})
    assert kubectl("-n", "eval", "run", "collect", "--image", "i:1", "--overrides", overrides).returncode == 0
    bare = {"containers": [{"name": "c", "image": "i:1"}], "restartPolicy": "Never"}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bare"}, "spec": {"template": {"spec": bare}}}
    assert kubectl("-n", "eval", "apply", "-f", write_yaml(tmp_path / "bare.yaml", job)).returncode == 0  # stored
    never = kubectl("-n", "eval", "wait", "job/bare", "--for=condition=Complete", "--timeout=1s")
    assert never.returncode == 1  # FailedCreate: no pod, no verdict


def test_kubectl_apply_client_side_carries_a_quarter_of_what_server_side_does(kubectl: Any, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "cm.yaml", configmap(300 * 1024))
    refused = kubectl("-n", "eval", "apply", "-f", path)
    assert refused.returncode == 1 and "may not be more than 262144 bytes" in refused.stderr
    assert kubectl("-n", "eval", "apply", "--server-side", "-f", path).returncode == 0
