"""Kueue, opt-in, for a shared GPU cluster: the queue the run's Jobs wait in, and (when asked) its quota.

A shared cluster usually has Kueue and queues of its own: `eval.queueName` names the LocalQueue in the factory's
namespace, and every Job of a run is labelled `kueue.x-k8s.io/queue-name` and created suspended (see
evaluation.job_metadata / queued). With `kueue.emitQueues`, `render` also writes `kueue/`: a ResourceFlavor, a
ClusterQueue with the configured quota (cpu, memory and nvidia.com/gpu by default) admitting this namespace only,
and the LocalQueue, all `kueue.x-k8s.io/v1beta1`, for the cluster's admins to apply. Pulumi does not own them:
cluster-scoped quota belongs to whoever runs the cluster.
"""

from __future__ import annotations

from factory.objects import Manifest, object_meta
from factory.settings import StackSettings

API_VERSION = "kueue.x-k8s.io/v1beta1"


def resource_flavor(s: StackSettings) -> Manifest:
    """One flavor for every node: the quota counts the cluster's resources, whatever node provides them."""
    assert s.kueue is not None
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceFlavor",
        "metadata": object_meta(s.kueue.resource_flavor, None, "kueue"),
    }


def cluster_queue(s: StackSettings) -> Manifest:
    """The quota, admitting workloads of the factory's namespace only; every flavor lists every covered resource, in
    the same order (Kueue's CRD validation)."""
    assert s.kueue is not None
    resources = [name for name, _ in s.kueue.quota]
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterQueue",
        "metadata": object_meta(s.kueue.cluster_queue, None, "kueue"),
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": s.namespace}},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": resources,
                    "flavors": [
                        {
                            "name": s.kueue.resource_flavor,
                            "resources": [{"name": name, "nominalQuota": value} for name, value in s.kueue.quota],
                        }
                    ],
                }
            ],
        },
    }


def local_queue(s: StackSettings) -> Manifest:
    assert s.kueue is not None and s.eval.queue_name is not None
    return {
        "apiVersion": API_VERSION,
        "kind": "LocalQueue",
        "metadata": object_meta(s.eval.queue_name, s.namespace, "kueue"),
        "spec": {"clusterQueue": s.kueue.cluster_queue},
    }


def queues(s: StackSettings) -> list[Manifest]:
    """What `render` writes into kueue/ with kueue.emitQueues: flavor, ClusterQueue, LocalQueue, in apply order."""
    return [resource_flavor(s), cluster_queue(s), local_queue(s)]
