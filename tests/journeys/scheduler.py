"""Where pods may run: the scheduler's node filters and the device plugin's part, over a fixture of nodes.

There is no scheduler here, so the rules that decide whether a rendered pod can run are written down as small
functions, as upstream defines them (Kubernetes v1.33):

* `node_affinity_matches`: `nodeSelector` (every pair equal) AND `affinity.nodeAffinity.required...`: the
  `nodeSelectorTerms` are ORed, the `matchExpressions` of one term ANDed; operators In, NotIn, Exists,
  DoesNotExist, Gt, Lt (k8s.io/component-helpers scheduling/corev1/nodeaffinity).
* `tolerates`: every NoSchedule/NoExecute taint of the node tolerated (k8s.io/api core/v1 toleration.go
  `ToleratesTaint`: an empty key with Exists tolerates everything; an empty effect matches every effect).
* A DaemonSet runs one pod on each node that passes both (the DaemonSet controller's `NodeShouldRunDaemonPod`).
* `nvidia.com/gpu` is allocatable on a node only while a device plugin pod runs there (the kubelet's device
  manager registers the resource when the plugin connects to its socket): with no plugin pod, no pod that
  requests a GPU fits anywhere, and it stays `Pending` (`Insufficient nvidia.com/gpu`) until its deadline.
  With time-slicing (the plugin's `sharing.timeSlicing.replicas`), each GPU is advertised that many times.

The node fixture is what a fresh cluster's GPU node carries: the kubelet's well-known labels
(`kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`, their `beta.` twins) and nothing that NVIDIA's
GPU Feature Discovery / GPU Operator (`nvidia.com/gpu.present`) or node-feature-discovery
(`feature.node.kubernetes.io/pci-10de.present`) would add, because the cluster runs neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Manifest = dict[str, Any]
GPU = "nvidia.com/gpu"


@dataclass
class Node:
    name: str
    labels: dict[str, str]
    gpus: int = 0  # physical GPUs: advertised only through a running device plugin
    taints: list[Manifest] = field(default_factory=list)


def fresh_node(name: str, gpus: int = 0) -> Node:
    """A node as the kubelet registers it: its well-known labels only (no GFD, no NFD)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    return Node(name, labels, gpus)


def fresh_gpu_cluster() -> list[Node]:
    """The journey's prod fixture: one CPU node and one GPU node, freshly joined."""
    return [fresh_node("cpu-0"), fresh_node("gpu-0", gpus=1)]


def _expression_matches(expression: Manifest, labels: dict[str, str]) -> bool:
    key, op, values = expression["key"], expression["operator"], expression.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        if key not in labels or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    raise ValueError(f"unknown node selector operator {op!r}")


def node_affinity_matches(spec: Manifest, node: Node) -> bool:
    """nodeSelector AND the required node affinity (terms ORed, expressions ANDed; an empty term matches nothing)."""
    if any(node.labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    for term in required.get("nodeSelectorTerms") or []:
        expressions = term.get("matchExpressions") or []
        if expressions and all(_expression_matches(e, node.labels) for e in expressions):
            return True
    return False


def tolerates(spec: Manifest, node: Node) -> bool:
    tolerations = spec.get("tolerations") or []
    for taint in node.taints:
        if taint.get("effect") == "PreferNoSchedule":
            continue

        def ok(t: Manifest, taint: Manifest = taint) -> bool:
            if t.get("effect") and t["effect"] != taint.get("effect"):
                return False
            if not t.get("key"):
                return t.get("operator") == "Exists"
            if t["key"] != taint["key"]:
                return False
            return t.get("operator", "Equal") == "Exists" or t.get("value", "") == taint.get("value", "")

        if not any(ok(t) for t in tolerations):
            return False
    return True


def daemonset_nodes(daemonset: Manifest, nodes: list[Node]) -> list[str]:
    """The nodes the DaemonSet controller puts a pod on."""
    spec = daemonset["spec"]["template"]["spec"]
    return [n.name for n in nodes if node_affinity_matches(spec, n) and tolerates(spec, n)]


def time_slicing_replicas(config_map: Manifest | None) -> int:
    """`sharing.timeSlicing.resources[nvidia.com/gpu].replicas` of the plugin's config file (1 without it)."""
    if config_map is None:
        return 1
    config = yaml.safe_load(config_map["data"]["config.yaml"]) or {}
    for resource in ((config.get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []:
        if resource.get("name") == GPU:
            return int(resource["replicas"])
    return 1


@dataclass
class Cluster:
    """Nodes, what each advertises of `nvidia.com/gpu`, and the pods holding it."""

    nodes: list[Node]
    gpu_per_node: dict[str, int] = field(default_factory=dict)  # allocatable, once a plugin runs there
    held: dict[str, tuple[str, int]] = field(default_factory=dict)  # pod -> (node, GPUs)

    def run_device_plugin(self, daemonset: Manifest, config_map: Manifest | None = None) -> list[str]:
        """The plugin's DaemonSet: its pods, and the GPUs they advertise; returns the nodes it runs on."""
        replicas = time_slicing_replicas(config_map)
        on = daemonset_nodes(daemonset, self.nodes)
        for node in self.nodes:
            if node.name in on and node.gpus:
                self.gpu_per_node[node.name] = node.gpus * replicas
        return on

    def free(self, node: str) -> int:
        return self.gpu_per_node.get(node, 0) - sum(g for n, g in self.held.values() if n == node)

    def schedule(self, pod_name: str, spec: Manifest) -> str | None:
        """The node the pod is bound to (its GPUs now held), or None: it stays Pending."""
        wanted = max((_gpus(c) for c in spec.get("initContainers") or []), default=0)
        wanted = max(wanted, sum(_gpus(c) for c in spec.get("containers") or []))
        for node in self.nodes:
            if not (node_affinity_matches(spec, node) and tolerates(spec, node)):
                continue
            if wanted and self.free(node.name) < wanted:
                continue
            self.held[pod_name] = (node.name, wanted)
            return node.name
        return None

    def release(self, pod_name: str) -> None:
        self.held.pop(pod_name, None)


def _gpus(container: Manifest) -> int:
    limits = (container.get("resources") or {}).get("limits") or {}
    return int(limits.get(GPU, 0))
