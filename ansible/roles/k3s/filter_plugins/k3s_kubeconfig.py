"""Merge k3s's admin kubeconfig into a user's kubeconfig (the `k3s_kubeconfig_merge` filter).

k3s writes <config dir>/k3s.yaml with a cluster, user and context all named "default" (root-only). The user's
kubeconfig gains them under `name` (cluster, user, context) plus the `aliases` contexts (the dev stack's), replacing
only entries of those names: every other cluster, user and context, and the current context, are kept.
"""

from __future__ import annotations

from typing import Any


def _named(entries: list[dict[str, Any]] | None, drop: set[str]) -> list[dict[str, Any]]:
    return [entry for entry in entries or [] if entry.get("name") not in drop]


def k3s_kubeconfig_merge(
    existing: dict[str, Any] | None, k3s: dict[str, Any], name: str, aliases: list[str]
) -> dict[str, Any]:
    """The user's kubeconfig with k3s's cluster, user and context renamed to `name`, and `aliases` of it."""
    merged: dict[str, Any] = dict(existing or {})
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    merged.setdefault("preferences", {})
    [cluster] = [c["cluster"] for c in k3s["clusters"] if c["name"] == "default"]
    [user] = [u["user"] for u in k3s["users"] if u["name"] == "default"]
    contexts = [name, *aliases]
    merged["clusters"] = [*_named(merged.get("clusters"), {name}), {"name": name, "cluster": cluster}]
    merged["users"] = [*_named(merged.get("users"), {name}), {"name": name, "user": user}]
    merged["contexts"] = [
        *_named(merged.get("contexts"), set(contexts)),
        *({"name": context, "context": {"cluster": name, "user": name}} for context in contexts),
    ]
    merged.setdefault("current-context", name)
    return merged


class FilterModule:
    """Ansible's entry point for the role's filters."""

    def filters(self) -> dict[str, Any]:
        return {"k3s_kubeconfig_merge": k3s_kubeconfig_merge}
