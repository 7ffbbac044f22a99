"""The GPU side: NVIDIA's device plugin (DaemonSet + config file) and the `gpu-smoke` Job that proves a pod
can get a GPU before vLLM is rolled out."""

from __future__ import annotations

import yaml

from factory.objects import (
    WHY_PULL_POLICY,
    WHY_TAG_NOT_DIGEST,
    Manifest,
    digest,
    labels,
    network_policy,
    object_meta,
    restricted_container_security,
    skips,
)
from factory.settings import StackSettings

DEVICE_PLUGIN_NAMESPACE = "kube-system"


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
        "metadata": object_meta("nvidia-device-plugin-config", DEVICE_PLUGIN_NAMESPACE, "nvidia-device-plugin"),
        "data": {"config.yaml": config_text},
    }
    pod_labels = labels("nvidia-device-plugin")
    pod_spec: Manifest = {"priorityClassName": "system-node-critical", "automountServiceAccountToken": False}
    if s.device_plugin.node_selector:
        # Only where the configured labels are (devicePlugin.nodeSelector, e.g. GPU Feature Discovery's
        # nvidia.com/gpu.present): by default every node, as upstream's static manifest; a node without a GPU
        # runs the plugin idle (failOnInitError: false).
        pod_spec["affinity"] = _node_affinity(s.device_plugin.node_selector)
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": object_meta(
            "nvidia-device-plugin",
            DEVICE_PLUGIN_NAMESPACE,
            "nvidia-device-plugin",
            skips(
                ("CKV_K8S_8", "the upstream device plugin exposes no health endpoint; kubelet re-registers it"),
                ("CKV_K8S_9", "the upstream device plugin exposes no readiness endpoint"),
                ("CKV_K8S_23", "must run as root to create its socket in the kubelet's device-plugins dir"),
                ("CKV_K8S_40", "runs as root (see CKV_K8S_23)"),
                ("CKV_K8S_22", "upstream image writes its state at runtime; the filesystem stays writable"),
                ("CKV_K8S_43", WHY_TAG_NOT_DIGEST),
                ("CKV_K8S_15", WHY_PULL_POLICY),
            ),
        ),
        "spec": {
            "selector": {"matchLabels": pod_labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # A config change rolls the pods, which read the file only at start.
                    "annotations": {"ai-eval-factory/config-sha": digest(config_text)},
                },
                "spec": {
                    **pod_spec,
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
    no_ingress = network_policy(
        "nvidia-device-plugin-no-ingress",
        DEVICE_PLUGIN_NAMESPACE,
        "nvidia-device-plugin",
        {"matchLabels": dict(pod_labels)},
        ["Ingress"],
    )
    return [cm, ds, no_ingress]


def gpu_check_container(s: StackSettings) -> Manifest:
    """The GPU check, as the first init container of vLLM's own pod: `nvidia-smi` with the pod's `nvidia.com/gpu`.

    It proves what a GPU workload needs (the device plugin advertises the GPU, the scheduler hands it to this pod,
    the runtime injects the driver) on the very GPU vLLM is about to use, and its log says so
    (`kubectl -n eval logs deploy/vllm -c gpu-check`). In the pod, not in a Job of its own: a separate GPU Job
    would need a GPU that the running vLLM holds on every upgrade (dev has one), so it would wait out its deadline;
    the Deployment's `Recreate` frees the old pod's GPU before this pod (check included) is scheduled. The kubelet
    hands the devices of an init container on to the app containers, so the pod asks for `vllm.gpus` in all.
    """
    gpus = str(s.vllm.gpus)
    return {
        "name": "gpu-check",
        "image": s.gpu_smoke.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["nvidia-smi"],
        # `utility` makes the NVIDIA runtime mount nvidia-smi and the driver libraries into the container.
        "env": [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"}],
        "resources": {
            "requests": {"nvidia.com/gpu": gpus, "cpu": "100m", "memory": "128Mi"},
            "limits": {"nvidia.com/gpu": gpus, "cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": restricted_container_security(),
    }
