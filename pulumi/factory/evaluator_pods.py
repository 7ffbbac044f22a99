"""What every evaluator pod shares, on every path (an Indexed Job's shard, the aggregate, an Argo step, the
collector): its environment, container and pod spec (the restricted security context), its network policies and
its API keys. Plain data (dicts), no Pulumi import."""

from __future__ import annotations

from typing import Any

from factory.objects import (
    EVAL_SERVICE_ACCOUNT,
    VLLM_API_KEY_FIELD,
    WHY_PULL_POLICY,
    WHY_SECRET_ENV,
    WHY_TAG_NOT_DIGEST,
    Manifest,
    labels,
    network_policy,
    opaque_secret,
    pod_security,
    restricted_container_security,
)
from factory.settings import StackSettings

EVALUATOR_UID = 10001
RESULTS_MOUNT = "/results"
SUITE_MOUNT = "/suite"
SUITE_KEY = "suite.yaml"  # ConfigMap keys cannot hold '/': fixed keys, mapped to paths by the volume's items
JOB_SKIPS = (
    ("CKV_K8S_35", WHY_SECRET_ENV),
    ("CKV_K8S_43", WHY_TAG_NOT_DIGEST),
    ("CKV_K8S_15", WHY_PULL_POLICY),
)


_EVALUATOR_PODS = {"matchLabels": labels("evaluator")}
# A helper container (the run-guard, the wait for the servers, the upload) runs one short script.
HELPER_RESOURCES = {"cpu": "100m", "memory": "128Mi"}


def eval_keys_secret(s: StackSettings, keys: dict[str, Any]) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret evalTargetApiKey/evalJudgeApiKey`."""
    return opaque_secret(s.eval_keys_secret, s.namespace, "evaluator", keys)


def eval_network_policy(s: StackSettings) -> Manifest:
    """Evaluator pods accept no connections; they only call the target and the judge."""
    return network_policy("evaluator-no-ingress", s.namespace, "evaluator", _EVALUATOR_PODS, ["Ingress"])


def eval_egress_policy(s: StackSettings) -> Manifest:
    """Evaluator pods call only what they must: cluster DNS, the stack's vLLM, and what eval.egress names (an outside
    judge, a candidate server, the report's object storage). A compromised dataset or metric cannot reach anything
    else: every other destination is refused by the cluster's network plugin."""
    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    }
    vllm = {"to": [{"podSelector": {"matchLabels": labels("vllm")}}], "ports": [{"port": 8000, "protocol": "TCP"}]}
    rules = [dns, vllm]
    for rule in s.eval.egress:
        peer: Manifest
        if rule.cidr is not None:
            peer = {"ipBlock": {"cidr": rule.cidr}}
        else:
            peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": rule.namespace}}}
            if rule.pod_labels:
                peer["podSelector"] = {"matchLabels": dict(rule.pod_labels)}
        rules.append({"to": [peer], "ports": [{"port": port, "protocol": "TCP"} for port in rule.ports]})
    return network_policy("evaluator-egress", s.namespace, "evaluator", _EVALUATOR_PODS, ["Egress"], egress=rules)


def out_dir(run_id: str) -> str:
    return f"{RESULTS_MOUNT}/{run_id}"


def evaluator_env(
    s: StackSettings,
    run_id: str,
    commit: str,
    target_base_url: str,
    target_model: str,
    timings: str | None = None,
    shards: int | str | None = None,
    out: str | None = None,
    extra: list[Manifest] | None = None,
) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": "EVAL_TOTAL_SHARDS", "value": str(s.eval.shards if shards is None else shards)},
        {"name": "EVAL_RUN_ID", "value": run_id},
        {"name": "EVAL_COMMIT", "value": commit},
        {"name": "EVAL_OUT_DIR", "value": out or out_dir(run_id)},
        {"name": "EVAL_SHARDING", "value": s.eval.sharding},
        # The stack decides what is evaluated and who judges: the suite's own endpoints are overridden.
        {"name": "EVAL_TARGET_BASE_URL", "value": target_base_url},
        {"name": "EVAL_TARGET_MODEL", "value": target_model},
        {"name": "EVAL_JUDGE_BASE_URL", "value": s.judge_base_url},
        {"name": "EVAL_JUDGE_MODEL", "value": s.judge_model},
        {"name": "EVAL_IMAGE", "value": s.eval.image},
        *(extra or []),
        # CPU workers: an NVIDIA runtime set as the node default must expose no GPU to them.
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "USER", "value": "evaluator"},
        {"name": "DEEPEVAL_TELEMETRY_OPT_OUT", "value": "1"},
    ]
    if timings is not None:
        env.append({"name": "EVAL_TIMINGS", "value": timings})
    # The keys: the stack's vLLM takes its own (vllm.apiKeySecret, required once set); any other endpoint, the
    # optional eval-api-keys Secret.
    for key, url in (("EVAL_TARGET_API_KEY", target_base_url), ("EVAL_JUDGE_API_KEY", s.judge_base_url)):
        ref: Manifest
        if s.vllm.api_key_secret and url == s.vllm_base_url:
            ref = {"name": s.vllm.api_key_secret, "key": VLLM_API_KEY_FIELD}
        else:
            ref = {"name": s.eval_keys_secret, "key": key, "optional": True}
        env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def evaluator_container(
    s: StackSettings,
    name: str,
    command: list[str],
    env: list[Manifest],
    suite_volume: bool = True,
    helper: bool = False,
) -> Manifest:
    """A container of the evaluator image; a `helper` (one short script before or after the evaluation) gets
    HELPER_RESOURCES instead of eval.cpu/eval.memory."""
    mounts = [{"name": "suite", "mountPath": SUITE_MOUNT, "readOnly": True}] if suite_volume else []
    size = HELPER_RESOURCES if helper else {"cpu": s.eval.cpu, "memory": s.eval.memory}
    return {
        "name": name,
        "image": s.eval.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        # DeepEval writes its `.deepeval/` folder into the working directory; the root filesystem is read-only.
        "workingDir": "/tmp",
        "env": env,
        # CPU and memory only: the evaluator calls models over HTTP and never needs a GPU.
        "resources": {"requests": dict(size), "limits": dict(size)},
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            *mounts,
            {"name": "results", "mountPath": RESULTS_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def evaluator_pod(
    s: StackSettings,
    suite_volume: Manifest | None,
    containers: list[Manifest],
    init: list[Manifest],
) -> Manifest:
    volumes = [suite_volume] if suite_volume else []
    spec: Manifest = {
        "restartPolicy": "Never",
        "serviceAccountName": EVAL_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(EVALUATOR_UID),
        "containers": containers,
        "volumes": [
            *volumes,
            {"name": "results", "persistentVolumeClaim": {"claimName": "eval-results"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if init:
        spec["initContainers"] = init
    return spec
