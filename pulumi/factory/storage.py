"""Volumes: the model cache (a PVC, or a node folder through a static PersistentVolume) and the results
volume every shard of every run writes to."""

from __future__ import annotations

from factory.objects import Manifest, object_meta
from factory.settings import StackSettings


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
        "metadata": object_meta(name, s.namespace, component),
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
        "metadata": object_meta(model_cache_pv_name(s), None, "model-cache"),
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
