"""Cluster stacks of the AI evaluation factory.

`settings` and the object builders are plain Python (no Pulumi import), the one source of truth for every
Kubernetes object, one module per concern: `objects` (shared metadata, namespace, accounts), `storage`, `gpu`,
`inference` (vLLM), `evaluation` (a run's objects), `workflow` (Argo); `manifests` assembles the stack from them.
`components` and `stack` wrap them for `pulumi up`; `render` writes them as YAML.
"""
