"""What every object of the factory shares: labels, metadata, the restricted security contexts, the
namespace and the service accounts. Plain data (dicts), no Pulumi import.

The Pulumi components turn the builders' dicts into typed resources; `render` dumps them as YAML for
`kubectl apply` and for the schema and security checks. Checkov findings that are accepted on purpose
are suppressed next to the object, with the reason (`checkov.io/skipN` annotations, see `skips`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from factory.settings import StackSettings

Manifest = dict[str, Any]
PART_OF = "ai-eval-factory"
VLLM_UID = 10002
EVAL_SERVICE_ACCOUNT = "evaluator"
VLLM_SERVICE_ACCOUNT = "vllm"
VLLM_API_KEY_FIELD = "api-key"  # the key in vllm.apiKeySecret: vLLM's VLLM_API_KEY, the pods' bearer token
# Accepted checkov findings, with the reason written once and reused.
WHY_TAG_NOT_DIGEST = "images are pinned to a release tag from stack config; a digest is also accepted there"
WHY_PULL_POLICY = "IfNotPresent: pinned tags never move, and dev (minikube) uses locally loaded images"
WHY_SECRET_ENV = "the consumer reads this credential from the environment only (HF_TOKEN / EVAL_*_API_KEY)"


def labels(component: str, **extra: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": PART_OF, **extra}


def skips(*pairs: tuple[str, str]) -> dict[str, str]:
    """Checkov inline suppressions: `checkov.io/skipN: CHECK_ID=reason`."""
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(pairs, start=1)}


def object_meta(
    name: str, namespace: str | None, component: str, annotations: dict[str, str] | None = None
) -> Manifest:
    meta: Manifest = {"name": name, "labels": labels(component)}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def opaque_secret(name: str, namespace: str, component: str, data: dict[str, Any]) -> Manifest:
    """A credential Secret: built only by `pulumi up` from a `pulumi config set --secret` value, never rendered."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(name, namespace, component),
        "type": "Opaque",
        "stringData": data,
    }


def network_policy(
    name: str, namespace: str, component: str, pod_selector: Manifest, policy_types: list[str], **rules: Any
) -> Manifest:
    """A NetworkPolicy over the pods `pod_selector` picks; a policy type without rules (`ingress=`/`egress=`)
    refuses every connection of that direction."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(name, namespace, component),
        "spec": {"podSelector": pod_selector, "policyTypes": policy_types, **rules},
    }


def restricted_container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(uid: int) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def namespace(s: StackSettings) -> Manifest:
    """The factory's namespace, enforcing the `restricted` Pod Security Standard on every pod in it."""
    meta = object_meta(s.namespace, None, "namespace")
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
        "metadata": object_meta(name, s.namespace, name),
        "automountServiceAccountToken": False,
    }
