"""Turn a manifest dict into the matching typed pulumi_kubernetes resource.

Typed resources (rather than `yaml.v2.ConfigGroup`) because ConfigGroup is a component implemented by
the provider plugin: under `pulumi.runtime.set_mocks` it registers only its `objs` input and no child,
so its children could not be checked here. The dict is passed as it is: nested keys stay camelCase,
exactly the Kubernetes object the `render` command writes.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi_kubernetes as k8s

import pulumi

_TYPES: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "PersistentVolume"): k8s.core.v1.PersistentVolume,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apps/v1", "DaemonSet"): k8s.apps.v1.DaemonSet,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
}

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def logical_name(obj: dict[str, Any]) -> str:
    """Stable Pulumi name: kind, namespace and name (metadata.name is set, so no random suffix)."""
    meta = obj["metadata"]
    ns = meta.get("namespace", "cluster")
    return f"{obj['kind'].lower()}-{ns}-{meta['name']}"


def resource(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register `obj` as its typed resource, or as a CustomResource for CRD kinds (Argo)."""
    cls = _TYPES.get((obj["apiVersion"], obj["kind"]))
    fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if cls is None:
        return k8s.apiextensions.CustomResource(
            logical_name(obj), api_version=obj["apiVersion"], kind=obj["kind"], opts=opts, **fields
        )
    kwargs = {_CAMEL.sub("_", key).lower(): value for key, value in fields.items()}
    return cls(logical_name(obj), opts=opts, **kwargs)  # type: ignore[no-any-return]
