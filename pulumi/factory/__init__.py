"""Cluster stacks of the AI evaluation factory.

`settings` and `manifests` are plain Python (no Pulumi import): the one source of truth for every
Kubernetes object. `components` and `stack` wrap them for `pulumi up`; `render` writes them as YAML.
"""
