"""Every Kubernetes object of the factory, built once as plain data (dicts), no Pulumi import.

The Pulumi components turn these dicts into typed resources; `render` dumps them as YAML for
`kubectl apply` and for the schema and security checks. Checkov findings that are accepted on purpose
are suppressed here, next to the object, with the reason (`checkov.io/skipN` annotations).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from pathlib import Path
from typing import Any

import yaml

from factory import fanout
from factory.settings import DATASET_KEY, RunSettings, StackSettings

Manifest = dict[str, Any]

PART_OF = "ai-eval-factory"
EVALUATOR_UID = 10001
VLLM_UID = 10002
VLLM_PORT = 8000
RESULTS_MOUNT = "/results"
SUITE_MOUNT = "/suite"
DEVICE_PLUGIN_NAMESPACE = "kube-system"
EVAL_SERVICE_ACCOUNT = "evaluator"
VLLM_SERVICE_ACCOUNT = "vllm"
# The evaluator's exit codes (docs/contract.md) and what the Job does with them.
EXIT_CONFIG_ERROR = 2  # FailJob: every shard would fail the same way
EXIT_BAD_SHARD = 3  # FailIndex: retrying this shard cannot help
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SUITE_KEY = "suite.yaml"  # ConfigMap keys cannot hold '/': fixed keys, mapped to paths by the volume's items
RUN_IMAGE_FILE = "run-image"  # beside the shards: the image that produced them (see run_guard_container)
GPU_SMOKE_JOB = "gpu-smoke"
AGGREGATE_DEADLINE_SECONDS = 900

# Accepted checkov findings, with the reason written once and reused.
_WHY_TAG_NOT_DIGEST = "images are pinned to a release tag from stack config; a digest is also accepted there"
_WHY_PULL_POLICY = "IfNotPresent: pinned tags never move, and dev (minikube) uses locally loaded images"
_WHY_SECRET_ENV = "the consumer reads this credential from the environment only (HF_TOKEN / EVAL_*_API_KEY)"


def labels(component: str, **extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": PART_OF, **extra}


def _skips(*pairs: tuple[str, str]) -> dict[str, str]:
    """Checkov inline suppressions: `checkov.io/skipN: CHECK_ID=reason`."""
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(pairs, start=1)}


def _meta(name: str, namespace: str | None, component: str, annotations: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "labels": labels(component)}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def _restricted_container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security(uid: int) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- namespace and accounts ---------------------------------------------------------------------


def namespace(s: StackSettings) -> Manifest:
    """The factory's namespace, enforcing the `restricted` Pod Security Standard on every pod in it."""
    meta = _meta(s.namespace, None, "namespace")
    meta["labels"] |= {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(s: StackSettings, name: str) -> Manifest:
    """A dedicated identity without an API token: neither vLLM nor the evaluator talks to the API server."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(name, s.namespace, name),
        "automountServiceAccountToken": False,
    }


# --- GPU device plugin ------------------------------------------------------------------------------


def device_plugin_config(s: StackSettings) -> str:
    """The plugin's config file; time-slicing only when more than one replica per GPU is asked for."""
    dp = s.device_plugin
    # failOnInitError false, as upstream's static manifest: a node without a usable GPU runs the plugin idle
    # instead of crash-looping, so the DaemonSet still becomes ready on a mixed cluster.
    config: Manifest = {"version": "v1", "flags": {"migStrategy": "none", "failOnInitError": False}}
    if dp.time_slicing_replicas > 1:
        config["sharing"] = {
            "timeSlicing": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": dp.fail_requests_greater_than_one,
                "resources": [{"name": "nvidia.com/gpu", "replicas": dp.time_slicing_replicas}],
            }
        }
    return yaml.safe_dump(config, sort_keys=False)


def _node_affinity(selector: dict[str, str]) -> Manifest:
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(selector.items())]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
        }
    }


def device_plugin(s: StackSettings) -> list[Manifest]:
    """NVIDIA k8s-device-plugin as upstream's static DaemonSet, plus a config file from a ConfigMap."""
    config_text = device_plugin_config(s)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("nvidia-device-plugin-config", DEVICE_PLUGIN_NAMESPACE, "nvidia-device-plugin"),
        "data": {"config.yaml": config_text},
    }
    pod_labels = labels("nvidia-device-plugin")
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta(
            "nvidia-device-plugin",
            DEVICE_PLUGIN_NAMESPACE,
            "nvidia-device-plugin",
            _skips(
                ("CKV_K8S_8", "the upstream device plugin exposes no health endpoint; kubelet re-registers it"),
                ("CKV_K8S_9", "the upstream device plugin exposes no readiness endpoint"),
                ("CKV_K8S_23", "must run as root to create its socket in the kubelet's device-plugins dir"),
                ("CKV_K8S_40", "runs as root (see CKV_K8S_23)"),
                ("CKV_K8S_22", "upstream image writes its state at runtime; the filesystem stays writable"),
                ("CKV_K8S_43", _WHY_TAG_NOT_DIGEST),
                ("CKV_K8S_15", _WHY_PULL_POLICY),
            ),
        ),
        "spec": {
            "selector": {"matchLabels": pod_labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # A config change rolls the pods, which read the file only at start.
                    "annotations": {"ai-eval-factory/config-sha": _digest(config_text)},
                },
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "automountServiceAccountToken": False,
                    # GPU nodes only (devicePlugin.nodeSelector): CPU-only nodes of a mixed cluster get no pod.
                    "affinity": _node_affinity(s.device_plugin.node_selector),
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    ],
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "nvidia-device-plugin-ctr",
                            "image": s.device_plugin.image,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "CONFIG_FILE", "value": "/config/config.yaml"},
                                {"name": "FAIL_ON_INIT_ERROR", "value": "false"},
                            ],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"cpu": "200m", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                                {"name": "config", "mountPath": "/config", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
                        {"name": "config", "configMap": {"name": "nvidia-device-plugin-config"}},
                    ],
                },
            },
        },
    }
    # The plugin talks to the kubelet over a unix socket only: it accepts no network connection.
    no_ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("nvidia-device-plugin-no-ingress", DEVICE_PLUGIN_NAMESPACE, "nvidia-device-plugin"),
        "spec": {"podSelector": {"matchLabels": dict(pod_labels)}, "policyTypes": ["Ingress"]},
    }
    return [cm, ds, no_ingress]


# --- storage ----------------------------------------------------------------------------------------


def _pvc(
    s: StackSettings,
    name: str,
    component: str,
    size: str,
    mode: str,
    storage_class: str | None,
    volume_name: str | None = None,
) -> Manifest:
    spec: Manifest = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    if volume_name:
        # Bound to one static PersistentVolume; "" (no class) unless one is configured, so that no default
        # class provisions a fresh volume instead.
        spec["storageClassName"] = storage_class or ""
        spec["volumeName"] = volume_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(name, s.namespace, component),
        "spec": spec,
    }


def model_cache_pv_name(s: StackSettings) -> str:
    return f"model-cache-{s.namespace}"


def model_cache_pv(s: StackSettings) -> Manifest:
    """A node folder that already holds (or will keep) the weights: dev's minikube mount of the host folder
    Ansible creates (`minikube_model_cache_mount`), so weights survive `minikube delete`.

    hostPath volumes ignore fsGroup: the folder itself must be writable by vLLM's uid (VLLM_UID); Ansible
    creates it owned by that uid. `Retain`: deleting the claim never deletes the weights.
    """
    v = s.model_cache
    assert v.host_path is not None
    spec: Manifest = {
        "capacity": {"storage": v.size},
        "accessModes": [v.access_mode],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": v.storage_class or "",
        "claimRef": {"namespace": s.namespace, "name": "model-cache"},
        "hostPath": {"path": v.host_path, "type": "Directory"},
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": _meta(model_cache_pv_name(s), None, "model-cache"),
        "spec": spec,
    }


def model_cache_pvc(s: StackSettings) -> Manifest:
    """Model weights live on a volume (never in images), so a restart does not download them again."""
    v = s.model_cache
    volume = model_cache_pv_name(s) if v.host_path else None
    return _pvc(s, "model-cache", "model-cache", v.size, v.access_mode, v.storage_class, volume)


def model_cache(s: StackSettings) -> list[Manifest]:
    return ([model_cache_pv(s)] if s.model_cache.host_path else []) + [model_cache_pvc(s)]


def results_pvc(s: StackSettings) -> Manifest:
    """Shared by every shard of every run: DIR/<run-id>/shard-NNNNN/ (the evaluator makes the folders)."""
    v = s.results
    return _pvc(s, "eval-results", "eval-results", v.size, v.access_mode, v.storage_class)


def hf_token_secret(s: StackSettings, token: Any) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret hfToken`; `render` never writes it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(s.hf_token_secret, s.namespace, "vllm"),
        "type": "Opaque",
        "stringData": {"HF_TOKEN": token},
    }


def eval_keys_secret(s: StackSettings, keys: dict[str, Any]) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret evalTargetApiKey/evalJudgeApiKey`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(s.eval_keys_secret, s.namespace, "evaluator"),
        "type": "Opaque",
        "stringData": keys,
    }


# --- vLLM -------------------------------------------------------------------------------------------


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
        "securityContext": _restricted_container_security(),
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
                "securityContext": _pod_security(VLLM_UID),
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
                        "securityContext": _restricted_container_security(),
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
    if v.prefetch:
        spec["template"]["spec"]["initContainers"] = [prefetch_container(s)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(
            "vllm",
            s.namespace,
            "vllm",
            _skips(
                ("CKV_K8S_35", _WHY_SECRET_ENV),
                ("CKV_K8S_43", _WHY_TAG_NOT_DIGEST),
                ("CKV_K8S_15", _WHY_PULL_POLICY),
            ),
        ),
        "spec": spec,
    }


def vllm_service(s: StackSettings) -> Manifest:
    """Stable name `vllm`: the evaluator reaches http://vllm.<namespace>.svc:8000/v1."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("vllm", s.namespace, "vllm"),
        "spec": {
            "type": s.vllm.service_type,
            "selector": labels("vllm"),
            "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def vllm_network_policy(s: StackSettings) -> Manifest:
    """Only pods of the factory's namespace may call vLLM."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("vllm-ingress", s.namespace, "vllm"),
        "spec": {
            "podSelector": {"matchLabels": labels("vllm")},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": VLLM_PORT, "protocol": "TCP"}]}],
        },
    }


def gpu_smoke(s: StackSettings) -> list[Manifest]:
    """The GPU smoke Job and a policy that its pod accepts no connection (it only runs nvidia-smi)."""
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(f"{GPU_SMOKE_JOB}-no-ingress", s.namespace, GPU_SMOKE_JOB),
        "spec": {"podSelector": {"matchLabels": labels(GPU_SMOKE_JOB)}, "policyTypes": ["Ingress"]},
    }
    return [policy, gpu_smoke_job(s)]


def vllm(s: StackSettings) -> list[Manifest]:
    """No autoscaler: nothing here serves vLLM's queue metric to the metrics API (see vllm.replicas)."""
    return [service_account(s, VLLM_SERVICE_ACCOUNT), vllm_deployment(s), vllm_service(s), vllm_network_policy(s)]


def gpu_smoke_job(s: StackSettings) -> Manifest:
    """The most reliable GPU check there is: a pod that gets `nvidia.com/gpu: 1` and runs `nvidia-smi`.

    Applied before vLLM (Pulumi waits for it): it proves the device plugin advertises the GPU and the runtime
    injects the driver, and, with vLLM's image (the default), pulls that image onto the GPU node.
    """
    pod_labels = labels(GPU_SMOKE_JOB)
    container = {
        "name": "nvidia-smi",
        "image": s.gpu_smoke.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["nvidia-smi"],
        # `utility` makes the NVIDIA runtime mount nvidia-smi and the driver libraries into the container.
        "env": [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"}],
        "resources": {
            "requests": {"nvidia.com/gpu": "1", "cpu": "100m", "memory": "128Mi"},
            "limits": {"nvidia.com/gpu": "1", "cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": _restricted_container_security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            GPU_SMOKE_JOB,
            s.namespace,
            GPU_SMOKE_JOB,
            _skips(("CKV_K8S_43", _WHY_TAG_NOT_DIGEST), ("CKV_K8S_15", _WHY_PULL_POLICY)),
        ),
        "spec": {
            "backoffLimit": 1,
            # Pulling vLLM's multi-GB image is most of it.
            "activeDeadlineSeconds": s.vllm.download_budget_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": VLLM_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": _pod_security(VLLM_UID),
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                },
            },
        },
    }


def eval_network_policy(s: StackSettings) -> Manifest:
    """Evaluator pods accept no connections; they only call the target and the judge."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("evaluator-no-ingress", s.namespace, "evaluator"),
        "spec": {"podSelector": {"matchLabels": labels("evaluator")}, "policyTypes": ["Ingress"]},
    }


def long_lived(s: StackSettings) -> list[Manifest]:
    """What `pulumi up` keeps running between runs (the HF token Secret aside, see hf_token_secret)."""
    objs: list[Manifest] = [namespace(s)]
    if s.device_plugin.enabled:
        objs += device_plugin(s)
    objs += [*model_cache(s), results_pvc(s), service_account(s, EVAL_SERVICE_ACCOUNT), eval_network_policy(s)]
    vllm_objs = vllm(s)
    objs.append(vllm_objs[0])  # the service account, used by the GPU smoke Job too
    if s.gpu_smoke.enabled:
        objs += gpu_smoke(s)  # before vLLM: `kubectl wait` for it (Pulumi does)
    objs += vllm_objs[1:]
    return objs


# --- one evaluation run ----------------------------------------------------------------------------


def suite_configmap_name(run_id: str) -> str:
    return f"suite-{run_id}"


def eval_job_name(run_id: str) -> str:
    return f"eval-{run_id}"


def aggregate_job_name(run_id: str) -> str:
    return f"aggregate-{run_id}"


def out_dir(run_id: str) -> str:
    return f"{RESULTS_MOUNT}/{run_id}"


def suite_configmap(s: StackSettings, run: RunSettings) -> Manifest:
    """The suite and its dataset (the files the suite names), or only the suite as a record when the suite
    is baked into the run's image (`--suite-in-image`, for datasets beyond a ConfigMap's 1 MiB)."""
    data: dict[str, str] = {SUITE_KEY: run.suite_text}
    for f in run.files:
        data[f.key] = f.text
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(suite_configmap_name(run.run_id), s.namespace, "evaluator"),
        "data": data,
    }


def suite_items(run: RunSettings) -> list[Manifest]:
    """Each key to the path the suite expects, relative to the suite (a key cannot hold '/', a path can)."""
    return [{"key": SUITE_KEY, "path": SUITE_KEY}, *({"key": f.key, "path": f.path} for f in run.files)]


def suite_path_in_pod(run: RunSettings | None) -> str:
    if run is not None and run.suite_in_image:
        return run.suite_in_image
    return posixpath.join(SUITE_MOUNT, SUITE_KEY)


def timings_path(s: StackSettings, timings_report: str | None = None) -> str | None:
    report = timings_report or s.eval.timings_report
    return posixpath.join(RESULTS_MOUNT, report) if report else None


def run_shards(s: StackSettings, run: RunSettings | None = None) -> int:
    """The Indexed Job's completions: the stack's `eval.shards`, or under `many` sharding what the suite's
    units need (ceil(units / chunk_size), as `evaluator run` computes it: any other count makes every pod exit 2)."""
    if run is not None and s.eval.sharding == "many":
        return run.many_shards
    return s.eval.shards


def _evaluator_env(
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
    for key in ("EVAL_TARGET_API_KEY", "EVAL_JUDGE_API_KEY"):
        env.append(
            {"name": key, "valueFrom": {"secretKeyRef": {"name": s.eval_keys_secret, "key": key, "optional": True}}}
        )
    return env


def _profile_env(run: RunSettings | None) -> list[Manifest]:
    """EVAL_PROFILE only for a run with a profile (the evaluator reads it; none: every case)."""
    return [{"name": "EVAL_PROFILE", "value": run.profile}] if run is not None and run.profile else []


def _evaluator_container(
    s: StackSettings, name: str, command: list[str], env: list[Manifest], suite_volume: bool = True
) -> Manifest:
    mounts = [{"name": "suite", "mountPath": SUITE_MOUNT, "readOnly": True}] if suite_volume else []
    return {
        "name": name,
        "image": s.eval.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        # DeepEval writes its `.deepeval/` folder into the working directory; the root filesystem is read-only.
        "workingDir": "/tmp",
        "env": env,
        # CPU and memory only: the evaluator calls models over HTTP and never needs a GPU.
        "resources": {
            "requests": {"cpu": s.eval.cpu, "memory": s.eval.memory},
            "limits": {"cpu": s.eval.cpu, "memory": s.eval.memory},
        },
        "securityContext": _restricted_container_security(),
        "volumeMounts": [
            *mounts,
            {"name": "results", "mountPath": RESULTS_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _evaluator_pod(
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
        "securityContext": _pod_security(EVALUATOR_UID),
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


_JOB_SKIPS = (
    ("CKV_K8S_35", _WHY_SECRET_ENV),
    ("CKV_K8S_43", _WHY_TAG_NOT_DIGEST),
    ("CKV_K8S_15", _WHY_PULL_POLICY),
)


# Before any shard starts: the results folder of a run id belongs to one image. A run id rendered again with
# another image must not resume (and so report as its own) the shards the first image finished. The first
# pod records its image atomically (link of a complete temp file), every pod compares; a mismatch exits 2,
# which the podFailurePolicy turns into FailJob at once. Python from the evaluator image: it has no shell.
RUN_GUARD_SCRIPT = """\
import os, sys, tempfile
out, image, run = os.environ["EVAL_OUT_DIR"], os.environ["EVAL_IMAGE"], os.environ["EVAL_RUN_ID"]
os.makedirs(out, exist_ok=True)
marker = os.path.join(out, "run-image")
fd, temp = tempfile.mkstemp(dir=out, prefix=".run-image.")
with os.fdopen(fd, "w") as handle:
    handle.write(image + "\\n")
    handle.flush()
    os.fsync(handle.fileno())
try:
    os.link(temp, marker)
except FileExistsError:
    pass
finally:
    os.unlink(temp)
with open(marker) as handle:
    recorded = handle.read().strip()
if recorded != image:
    print(f"{marker}: run {run} was evaluated by image {recorded}; this pod runs another image, {image}: its "
          f"finished shards would be reported as this image's. Render the run with a new --run-id, or delete "
          f"{out} from the results volume first.", file=sys.stderr)
    sys.exit(2)
print(f"{marker}: run {run}, image {image}")
"""


def run_guard_container(s: StackSettings, env: list[Manifest]) -> Manifest:
    container = _evaluator_container(s, "run-guard", ["python", "-c", RUN_GUARD_SCRIPT], env, suite_volume=False)
    small = {"cpu": "100m", "memory": "128Mi"}
    container["resources"] = {"requests": dict(small), "limits": dict(small)}
    return container


def eval_job_await_seconds(s: StackSettings) -> int:
    """How long `pulumi up` waits for a run's Job: its whole deadline, plus time to schedule and pull."""
    return s.eval.active_deadline_seconds + 600


def eval_job(
    s: StackSettings,
    run_id: str,
    commit: str,
    run: RunSettings | None = None,
    target_base_url: str | None = None,
    target_model: str | None = None,
    suite_volume: Manifest | None = None,
    timings_report: str | None = None,
) -> Manifest:
    """The Indexed Job of docs/contract.md: one pod per shard, exit codes mapped to podFailurePolicy."""
    shards = run_shards(s, run)
    # The folder itself, not `$(EVAL_OUT_DIR)`: no consumer of the YAML has to expand variable references.
    command = ["evaluator", "run", suite_path_in_pod(run), "--out", out_dir(run_id)]
    env = _evaluator_env(
        s,
        run_id,
        commit,
        target_base_url or s.vllm_base_url,
        target_model or s.vllm.served_model_name,
        timings_path(s, timings_report),
        shards=shards,
        extra=_profile_env(run),
    )
    if suite_volume is None and run is not None and not run.suite_in_image:
        suite_volume = {
            "name": "suite",
            "configMap": {"name": suite_configmap_name(run_id), "items": suite_items(run)},
        }
    return _indexed_job(
        s,
        eval_job_name(run_id),
        labels("evaluator", **{"ai-eval-factory/run-id": run_id}),
        command,
        env,
        suite_volume,
        completions=shards,
        parallelism=min(s.eval.parallelism, shards),
        max_failed_indexes=min(s.eval.max_failed_indexes, shards),
    )


def _indexed_job(
    s: StackSettings,
    name: str,
    pod_labels: dict[str, str],
    command: list[str],
    env: list[Manifest],
    suite_volume: Manifest | None,
    completions: int | str,
    parallelism: int | str,
    max_failed_indexes: int | str,
) -> Manifest:
    """One shard per completion index; the run-guard first; exit codes mapped to the podFailurePolicy."""
    e = s.eval
    # Declared as the Job controller injects it (docs/contract.md): the index from the pod's annotation.
    index_env = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, s.namespace, "evaluator", _skips(*_JOB_SKIPS)) | {"labels": pod_labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimitPerIndex": e.backoff_limit_per_index,
            "maxFailedIndexes": max_failed_indexes,
            "activeDeadlineSeconds": e.active_deadline_seconds,
            "ttlSecondsAfterFinished": e.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # Evictions, preemption, node drains: not the shard's fault, do not count it.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "run-guard", "operator": "In", "values": [EXIT_CONFIG_ERROR]},
                    },
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "evaluator", "operator": "In", "values": [EXIT_CONFIG_ERROR]},
                    },
                    {
                        "action": "FailIndex",
                        "onExitCodes": {"containerName": "evaluator", "operator": "In", "values": [EXIT_BAD_SHARD]},
                    },
                ]
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": _evaluator_pod(
                    s,
                    suite_volume,
                    [_evaluator_container(s, "evaluator", command, [index_env, *env], suite_volume is not None)],
                    [run_guard_container(s, env)],
                ),
            },
        },
    }


def aggregate_job(s: StackSettings, run_id: str, commit: str, run: RunSettings | None = None) -> Manifest:
    """Merge every shard, then judge: `aggregate` as the init container, `gate` as the result.

    Two containers instead of a shell `&&`, so the image needs no shell and each step keeps its exit code.
    The Job's success is the gate's verdict; it never retries (a failed gate is not transient). It reads only
    the results volume: the suite it needs is recorded in the shards' manifests.
    """
    out = out_dir(run_id)
    report = f"{out}/report.json"
    shards = run_shards(s, run)
    env = _evaluator_env(s, run_id, commit, s.vllm_base_url, s.vllm.served_model_name, shards=shards)
    aggregate = ["evaluator", "aggregate", out, "--out", report, "--expect-shards", str(shards)]
    gate = ["evaluator", "gate", report, "--mode", s.eval.gate_mode]
    pod_labels = labels("evaluator", **{"ai-eval-factory/run-id": run_id})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(aggregate_job_name(run_id), s.namespace, "evaluator", _skips(*_JOB_SKIPS))
        | {"labels": pod_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": AGGREGATE_DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": s.eval.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": _evaluator_pod(
                    s,
                    None,
                    [_evaluator_container(s, "gate", gate, env, suite_volume=False)],
                    [_evaluator_container(s, "aggregate", aggregate, env, suite_volume=False)],
                ),
            },
        },
    }


def run_manifests(s: StackSettings, run: RunSettings, timings_report: str | None = None) -> list[Manifest]:
    """One run, applied in this order: suite, shards; then, once the shards are done, the aggregation."""
    return [
        suite_configmap(s, run),
        eval_job(s, run.run_id, run.commit, run=run, timings_report=timings_report),
        aggregate_job(s, run.run_id, run.commit, run=run),
    ]


def await_seconds(s: StackSettings, obj: Manifest) -> int | None:
    """How long `pulumi up` may wait for `obj` to become ready (pulumi-kubernetes' default: 10 minutes).

    Each matches what the object itself is allowed: vLLM's rollout budget (its progressDeadlineSeconds),
    a run's Job deadline, the GPU smoke Job's image pull. None: the default is enough.
    """
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind == "Deployment" and name == "vllm":
        return rollout_budget_seconds(s) + 300
    if kind == "Job" and name == GPU_SMOKE_JOB:
        return s.vllm.download_budget_seconds + 300
    if kind == "Job" and name.startswith("eval-"):
        return eval_job_await_seconds(s)
    if kind == "Job" and name.startswith("aggregate-"):
        return AGGREGATE_DEADLINE_SECONDS + 300
    if kind == "DaemonSet":
        return 1800  # the device plugin's image pull on every GPU node
    return None


# --- Argo Workflows ---------------------------------------------------------------------------------

ARGO_RUN_ID = "{{workflow.parameters.run-id}}"
ARGO_COMMIT = "{{workflow.parameters.commit}}"
ARGO_PROFILE = "{{workflow.parameters.profile}}"
ARGO_DATASET_PATH = "{{workflow.parameters.dataset-path}}"
ARGO_RESULTS = f"{RESULTS_MOUNT}/{ARGO_RUN_ID}"  # the run's folder: its G-Eval steps, a folder and a report per variant
ARGO_SERVICE_ACCOUNT = "argo-eval"
# Argo's resource conditions are label selectors over gjson paths, so a condition cannot be looked up by
# type. A Job's first condition is its first verdict: FailureTarget/Failed, or SuccessCriteriaMet/Complete
# (these Jobs are never suspended). So a FailJob (exit 2) ends the step within seconds, not at its deadline,
# and success needs no shard count (a branch's completions are only known once the plan step has run).
ARGO_JOB_FAILED = "status.conditions.0.type in (FailureTarget,Failed)"
ARGO_JOB_SUCCEEDED = "status.conditions.0.type in (SuccessCriteriaMet,Complete)"
# Where the plan step writes Argo's output parameters: on the pod's writable /tmp (the root is read-only).
PLAN_OUTPUTS = "/tmp/plan"
PLAN_OUTPUT_NAMES = ("branches", "reference", "gate-alone", "gate-vs-reference")
# One branch (one variant's Indexed Job), as the plan step describes it in each item of `branches`.
BRANCH_INPUTS = ("variant", "job", "completions", "parallelism", "max-failed-indexes")
# Integer fields of the branch's Job manifest filled in by Argo: unquoted in the YAML text, so that they are
# numbers once substituted (a quoted '3' would be a string, which the API server refuses for completions).
_ARGO_INT = "=argo-int="


def _input(name: str) -> str:
    return "{{inputs.parameters." + name + "}}"


def _input_parameters(*names: str) -> Manifest:
    return {"parameters": [{"name": n} for n in names]}


def _passing(*names: str, source: str = "inputs.parameters") -> Manifest:
    return {"parameters": [{"name": n, "value": "{{" + f"{source}.{n}" + "}}"} for n in names]}


class _PlainDumper(yaml.SafeDumper):
    """No `&id001` anchors where builders share a dict (labels): plain YAML for the API server and for humans."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _manifest_text(obj: Manifest) -> str:
    """A resource template's manifest: YAML with Argo placeholders, the integer ones left unquoted."""
    text = yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, width=1 << 20)
    text = re.sub(rf"'?{_ARGO_INT}(\{{\{{[^'\n]*\}}\}})'?", r"\1", text)
    assert _ARGO_INT not in text, text
    return text


def argo_rbac(s: StackSettings) -> list[Manifest]:
    """What the workflow's pods may do: create the run's ConfigMap and Jobs, report their results to Argo."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ARGO_SERVICE_ACCOUNT, s.namespace, "argo-eval"),
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(ARGO_SERVICE_ACCOUNT, s.namespace, "argo-eval"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ARGO_SERVICE_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": ARGO_SERVICE_ACCOUNT, "namespace": s.namespace}],
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(ARGO_SERVICE_ACCOUNT, s.namespace, "argo-eval"),
    }
    return [account, role, binding]


def branch_job(s: StackSettings, suite_volume: Manifest) -> Manifest:
    """One variant's Indexed Job (the `evaluate` step of a branch): the run's id, this variant only, its own
    folder, the run's G-Eval steps; name, completions, parallelism and maxFailedIndexes from the plan step."""
    variant = _input("variant")
    out = f"{ARGO_RESULTS}/{variant}"
    shards = _input("completions")
    env = _evaluator_env(
        s,
        ARGO_RUN_ID,
        ARGO_COMMIT,
        s.vllm_base_url,
        s.vllm.served_model_name,
        timings_path(s),
        shards=shards,
        out=out,
        extra=[
            {"name": "EVAL_VARIANT", "value": variant},
            {"name": "EVAL_STEPS_DIR", "value": ARGO_RESULTS},
            {"name": "EVAL_PROFILE", "value": ARGO_PROFILE},
        ],
    )
    pod_labels = labels("evaluator", **{"ai-eval-factory/run-id": ARGO_RUN_ID, "ai-eval-factory/variant": variant})
    return _indexed_job(
        s,
        _input("job"),
        pod_labels,
        ["evaluator", "run", posixpath.join(SUITE_MOUNT, SUITE_KEY), "--out", out],
        env,
        suite_volume,
        completions=_ARGO_INT + shards,
        parallelism=_ARGO_INT + _input("parallelism"),
        max_failed_indexes=_ARGO_INT + _input("max-failed-indexes"),
    )


def _argo_step(s: StackSettings, name: str, container: Manifest, suite_volume: Manifest | None = None) -> Manifest:
    """A container template as an evaluator pod: no API token (so Argo's executor runs as the workflow account,
    which may write `workflowtaskresults`), the results volume, the evaluator's pod security."""
    pod = _evaluator_pod(s, suite_volume, [container], [])
    return {
        "name": name,
        "metadata": {"labels": labels("evaluator")},
        "securityContext": pod["securityContext"],
        "automountServiceAccountToken": False,
        "executor": {"serviceAccountName": ARGO_SERVICE_ACCOUNT},
        "volumes": pod["volumes"],
        "container": container,
    }


def _argo_env(s: StackSettings, out: str) -> list[Manifest]:
    return _evaluator_env(
        s,
        ARGO_RUN_ID,
        ARGO_COMMIT,
        s.vllm_base_url,
        s.vllm.served_model_name,
        out=out,
        extra=[{"name": "EVAL_PROFILE", "value": ARGO_PROFILE}],
    )


def plan_step(s: StackSettings, suite_volume: Manifest) -> Manifest:
    """`evaluator prepare --json` (the suite, dataset and profile checked once, the run's G-Eval steps written once
    into the run's folder) through factory/fanout.py, which turns its plan into Argo's output parameters."""
    e = s.eval
    command = [
        "python",
        "-c",
        Path(fanout.__file__).read_text(encoding="utf-8"),
        "--outputs", PLAN_OUTPUTS,
        "--shards", str(e.shards),
        "--sharding", e.sharding,
        "--parallelism", str(e.parallelism),
        "--max-failed-indexes", str(e.max_failed_indexes),
        "--",
        "evaluator", "prepare", posixpath.join(SUITE_MOUNT, SUITE_KEY), "--out", ARGO_RESULTS, "--json",
    ]  # fmt: skip
    container = _evaluator_container(s, "plan", command, _argo_env(s, ARGO_RESULTS), suite_volume=True)
    step = _argo_step(s, "plan", container, suite_volume)
    step["outputs"] = {
        "parameters": [{"name": n, "valueFrom": {"path": f"{PLAN_OUTPUTS}/{n}"}} for n in PLAN_OUTPUT_NAMES]
    }
    return step


def workflow_template(s: StackSettings) -> Manifest:
    """Seed 000 section 11 as a DAG: the suite's ConfigMap, the plan, one branch per variant (`withParam`: its
    Indexed Job, then its own report), then the gates: each variant against the reference's report.

    Every branch runs the same builders as the kubectl path (the Job, the run-guard, the pod security) with the
    run's id, `EVAL_VARIANT`, its own folder `<run>/<variant>/`, and the run's G-Eval steps (`EVAL_STEPS_DIR`).
    A single-variant suite is one branch, gated alone exactly as the kubectl path gates its report.
    """
    suite_name = f"suite-{ARGO_RUN_ID}"
    suite_cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": suite_name, "namespace": s.namespace, "labels": labels("evaluator")},
        # base64: a one-line parameter survives Argo's text substitution into this YAML unchanged.
        "binaryData": {
            SUITE_KEY: "{{workflow.parameters.suite-b64}}",
            DATASET_KEY: "{{workflow.parameters.dataset-b64}}",
        },
    }
    suite_volume = {
        "name": "suite",
        "configMap": {
            "name": suite_name,
            "items": [{"key": SUITE_KEY, "path": SUITE_KEY}, {"key": DATASET_KEY, "path": ARGO_DATASET_PATH}],
        },
    }
    variant = _input("variant")
    report = f"{ARGO_RESULTS}/{variant}.json"
    aggregate = ["evaluator", "aggregate", f"{ARGO_RESULTS}/{variant}", "--out", report]
    aggregate += ["--expect-shards", _input("completions")]
    gate = ["evaluator", "gate", report]
    mode = ["--mode", s.eval.gate_mode]
    baseline = ["--baseline", f"{ARGO_RESULTS}/{_input('reference')}.json"]
    env = _argo_env(s, ARGO_RESULTS)
    done = "branches.Succeeded || branches.Failed || branches.Errored"
    templates: list[Manifest] = [
        {
            "name": "main",
            "dag": {
                # One failed branch must stop neither the other branches nor the verdicts: every report is
                # written and every gate prints why (the workflow still fails with the failed branch).
                "failFast": False,
                "tasks": [
                    {"name": "prepare", "template": "prepare"},
                    {"name": "plan", "template": "plan", "depends": "prepare"},
                    {
                        "name": "branches",
                        "template": "branch",
                        "depends": "plan",
                        "withParam": "{{tasks.plan.outputs.parameters.branches}}",
                        "arguments": _passing(*BRANCH_INPUTS, source="item"),
                    },
                    {
                        "name": "gate-alone",
                        "template": "gate-alone",
                        "depends": done,
                        "withParam": "{{tasks.plan.outputs.parameters.gate-alone}}",
                        "arguments": {"parameters": [{"name": "variant", "value": "{{item}}"}]},
                    },
                    {
                        "name": "gate-vs-reference",
                        "template": "gate-vs-reference",
                        "depends": done,
                        "withParam": "{{tasks.plan.outputs.parameters.gate-vs-reference}}",
                        "arguments": {
                            "parameters": [
                                {"name": "variant", "value": "{{item}}"},
                                {"name": "reference", "value": "{{tasks.plan.outputs.parameters.reference}}"},
                            ]
                        },
                    },
                ],
            },
        },
        {"name": "prepare", "resource": {"action": "apply", "manifest": yaml.safe_dump(suite_cm, sort_keys=False)}},
        plan_step(s, suite_volume),
        {
            "name": "branch",
            "inputs": _input_parameters(*BRANCH_INPUTS),
            "dag": {
                "failFast": False,
                "tasks": [
                    {"name": "evaluate", "template": "evaluate", "arguments": _passing(*BRANCH_INPUTS)},
                    {
                        "name": "aggregate",
                        "template": "aggregate",
                        # Aggregate whatever the shards left, even after a failed Job: the report names the gaps.
                        "depends": "evaluate.Succeeded || evaluate.Failed || evaluate.Errored",
                        "arguments": _passing("variant", "completions"),
                    },
                ],
            },
        },
        {
            "name": "evaluate",
            "inputs": _input_parameters(*BRANCH_INPUTS),
            # Backstop only: a failed Job matches failureCondition within seconds.
            "activeDeadlineSeconds": s.eval.active_deadline_seconds + 300,
            "resource": {
                "action": "create",
                "setOwnerReference": True,
                "successCondition": ARGO_JOB_SUCCEEDED,
                "failureCondition": ARGO_JOB_FAILED,
                "manifest": _manifest_text(branch_job(s, suite_volume)),
            },
        },
        _argo_step(s, "aggregate", _evaluator_container(s, "aggregate", aggregate, env, suite_volume=False))
        | {"inputs": _input_parameters("variant", "completions")},
        # The one variant of a single-variant suite: its own gate, as the kubectl path's aggregate Job judges it.
        _argo_step(s, "gate-alone", _evaluator_container(s, "gate", [*gate, *mode], env, suite_volume=False))
        | {"inputs": _input_parameters("variant")},
        # Several variants: each against the reference branch's report (the reference itself then answers for
        # its own problems and error budget; under `absolute` also for its thresholds).
        _argo_step(
            s, "gate-vs-reference", _evaluator_container(s, "gate", [*gate, *baseline, *mode], env, suite_volume=False)
        )
        | {"inputs": _input_parameters("variant", "reference")},
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": _meta("eval-release", s.namespace, "evaluator"),
        "spec": {
            "entrypoint": "main",
            "serviceAccountName": ARGO_SERVICE_ACCOUNT,
            "arguments": {
                "parameters": [
                    {"name": "run-id", "description": "DNS-label run id, e.g. <suite-hash[:12]>-<commit[:12]>"},
                    {"name": "commit", "description": "the git commit under evaluation"},
                    {"name": "suite-b64", "description": "the suite YAML, base64-encoded (base64 -w0 suite.yaml)"},
                    {"name": "dataset-path", "description": "the suite's `dataset` value (relative to the suite)"},
                    {"name": "dataset-b64", "description": "that dataset file, base64-encoded (under 1 MiB)"},
                    {
                        "name": "profile",
                        "value": "",
                        "description": "the suite's profile selecting the cases (EVAL_PROFILE); empty: every case",
                    },
                ]
            },
            "podGC": {"strategy": "OnWorkflowSuccess"},
            "templates": templates,
        },
    }


def argo(s: StackSettings) -> list[Manifest]:
    return [*argo_rbac(s), workflow_template(s)]
