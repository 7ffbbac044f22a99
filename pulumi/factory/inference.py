"""vLLM: its Deployment (with the weight prefetch), Service, ingress policy and the HF token Secret."""

from __future__ import annotations

from typing import Any

from factory.gpu import gpu_check_container
from factory.objects import (
    VLLM_API_KEY_FIELD,
    VLLM_SERVICE_ACCOUNT,
    VLLM_UID,
    WHY_PULL_POLICY,
    WHY_SECRET_ENV,
    WHY_TAG_NOT_DIGEST,
    Manifest,
    labels,
    network_policy,
    object_meta,
    opaque_secret,
    pod_security,
    restricted_container_security,
    service_account,
    skips,
)
from factory.settings import StackSettings

VLLM_PORT = 8000


def vllm_api_key_secret(s: StackSettings, key: Any) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret vllmApiKey` (with vllm.apiKeySecret set)."""
    assert s.vllm.api_key_secret is not None
    return opaque_secret(s.vllm.api_key_secret, s.namespace, "vllm", {VLLM_API_KEY_FIELD: key})


def hf_token_secret(s: StackSettings, token: Any) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret hfToken`; `render` never writes it."""
    return opaque_secret(s.hf_token_secret, s.namespace, "vllm", {"HF_TOKEN": token})


def vllm_args(s: StackSettings) -> list[str]:
    v = s.vllm
    return [
        v.model,
        "--revision",
        v.revision,
        "--served-model-name",
        v.served_model_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
        "--max-model-len",
        str(v.max_model_len),
        "--gpu-memory-utilization",
        str(v.gpu_memory_utilization),
        "--tensor-parallel-size",
        str(v.gpus),
    ]


# The weight prefetch: the pinned revision into the HF cache on the model-cache volume, with the hub's own
# progress bars in `kubectl logs deploy/vllm -c prefetch-weights`, before vLLM starts (offline) and its
# startup probe's budget begins. huggingface_hub ships in vLLM's image.
PREFETCH_SCRIPT = """\
import sys, time
from huggingface_hub import snapshot_download
model, revision = sys.argv[1], sys.argv[2]
started = time.monotonic()
print(f"prefetch: {model} at revision {revision} into the HF cache (HF_HOME)", flush=True)
path = snapshot_download(repo_id=model, revision=revision)
print(f"prefetch: done in {time.monotonic() - started:.0f}s: {path}", flush=True)
"""


def rollout_budget_seconds(s: StackSettings) -> int:
    """Image pull + weight download + model load: how long a first vLLM rollout may take."""
    return s.vllm.download_budget_seconds + s.vllm.startup_budget_seconds


def _hf_env(s: StackSettings) -> list[Manifest]:
    return [
        {"name": "HF_HOME", "value": "/models/hf"},
        {"name": "HOME", "value": "/tmp"},
        # The UID has no passwd entry: getpass.getuser() (torch caches) reads USER first.
        {"name": "USER", "value": "vllm"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": s.hf_token_secret, "key": "HF_TOKEN", "optional": True}},
        },
    ]


def prefetch_container(s: StackSettings) -> Manifest:
    v = s.vllm
    return {
        "name": "prefetch-weights",
        "image": v.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", PREFETCH_SCRIPT, v.model, v.revision],
        # A download needs no GPU: the NVIDIA runtime must expose none to this container.
        "env": [*_hf_env(s), {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "model-cache", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def vllm_deployment(s: StackSettings) -> Manifest:
    """One vLLM server with an explicit GPU limit: without it vLLM silently falls back to the CPU."""
    v = s.vllm
    pod_labels = labels("vllm")
    probe = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 5}
    gpu = str(v.gpus)
    env = [*_hf_env(s), {"name": "VLLM_NO_USAGE_STATS", "value": "1"}, {"name": "DO_NOT_TRACK", "value": "1"}]
    if v.prefetch:
        # The prefetch init container has put the pinned revision in the cache: never download at start.
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    if v.api_key_secret:
        # vLLM then answers /v1 only with `Authorization: Bearer <key>` (its /health stays open for the probes); the
        # evaluator pods read the same key (evaluator_pods.evaluator_env). Not optional: no key, no start.
        key_ref = {"name": v.api_key_secret, "key": VLLM_API_KEY_FIELD}
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": key_ref}})
    spec: Manifest = {
        "replicas": v.replicas,
        # A first rollout pulls a multi-GB image, downloads the weights and loads them: without this the
        # Deployment reports ProgressDeadlineExceeded after the default 10 minutes.
        "progressDeadlineSeconds": rollout_budget_seconds(s),
        # Recreate: the old pod must free the GPU before the new one can be scheduled.
        "strategy": {"type": "Recreate"},
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": pod_labels},
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "serviceAccountName": VLLM_SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                # A Service named `vllm` would inject VLLM_PORT=tcp://..., which vLLM reads as its own setting.
                "enableServiceLinks": False,
                "securityContext": pod_security(VLLM_UID),
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "terminationGracePeriodSeconds": 60,
                "containers": [
                    {
                        "name": "vllm",
                        "image": v.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["vllm", "serve"],
                        "args": vllm_args(s),
                        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
                        "env": env,
                        "resources": {
                            "requests": {"nvidia.com/gpu": gpu, "cpu": v.cpu, "memory": v.memory},
                            "limits": {"nvidia.com/gpu": gpu, "cpu": v.cpu, "memory": v.memory},
                        },
                        # Model loading and CUDA graph capture take minutes: a long startup budget,
                        # after which liveness takes over with a short one.
                        "startupProbe": probe
                        | {"periodSeconds": 10, "failureThreshold": max(1, v.startup_budget_seconds // 10)},
                        "readinessProbe": probe | {"periodSeconds": 10, "failureThreshold": 3},
                        "livenessProbe": probe | {"periodSeconds": 20, "failureThreshold": 3},
                        "securityContext": restricted_container_security(),
                        "volumeMounts": [
                            {"name": "model-cache", "mountPath": "/models"},
                            {"name": "dshm", "mountPath": "/dev/shm"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache"}},
                    # PyTorch's shared memory for tensor-parallel workers; the runtime default is 64Mi.
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": v.shm_size}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}},
                ],
            },
        },
    }
    init = [gpu_check_container(s)] if s.gpu_smoke.enabled else []
    init += [prefetch_container(s)] if v.prefetch else []
    if init:
        spec["template"]["spec"]["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            "vllm",
            s.namespace,
            "vllm",
            skips(
                ("CKV_K8S_35", WHY_SECRET_ENV),
                ("CKV_K8S_43", WHY_TAG_NOT_DIGEST),
                ("CKV_K8S_15", WHY_PULL_POLICY),
            ),
        ),
        "spec": spec,
    }


def vllm_service(s: StackSettings) -> Manifest:
    """Stable name `vllm`: the evaluator reaches http://vllm.<namespace>.svc:8000/v1."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta("vllm", s.namespace, "vllm"),
        "spec": {
            "type": s.vllm.service_type,
            "selector": labels("vllm"),
            "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def vllm_network_policy(s: StackSettings) -> Manifest:
    """Only pods of the factory's namespace may call vLLM."""
    same_namespace = [{"from": [{"podSelector": {}}], "ports": [{"port": VLLM_PORT, "protocol": "TCP"}]}]
    vllm_pods = {"matchLabels": labels("vllm")}
    return network_policy("vllm-ingress", s.namespace, "vllm", vllm_pods, ["Ingress"], ingress=same_namespace)


def vllm(s: StackSettings) -> list[Manifest]:
    """No autoscaler: nothing here serves vLLM's queue metric to the metrics API (see vllm.replicas)."""
    return [service_account(s, VLLM_SERVICE_ACCOUNT), vllm_deployment(s), vllm_service(s), vllm_network_policy(s)]
