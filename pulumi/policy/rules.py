"""The policy pack's rules as plain functions: (resource type, inputs, stack) -> violation messages.

Plain so that the same rules run in `pulumi preview/up --policy-pack pulumi/policy` (see __main__.py),
in the unit tests, and over the rendered YAML of the kubectl path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

GPU = "nvidia.com/gpu"
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_SERVER_KINDS = {"Deployment", "StatefulSet"}
_GPU_SERVER_IMAGE = re.compile(r"(^|/)(vllm|vllm-openai|text-generation-inference|tritonserver)[:@]")
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|CREDENTIAL|PRIVATE_KEY)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})$")

Violations = list[str]


def kind_of(resource_type: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`."""
    return resource_type.rsplit(":", 1)[-1]


def stack_of(urn: str) -> str:
    """`urn:pulumi:dev::project::type::name` -> `dev`."""
    parts = urn.split(":")
    return parts[2] if len(parts) > 2 and urn.startswith("urn:pulumi:") else ""


def pod_spec(kind: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if kind == "Pod":
        return props.get("spec") or {}
    if kind in _POD_TEMPLATE_KINDS:
        return ((props.get("spec") or {}).get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        job = ((props.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return (job.get("template") or {}).get("spec") or {}
    return None


def containers(kind: str, props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every container of a pod-bearing object, and of an Argo WorkflowTemplate's templates."""
    spec = pod_spec(kind, props)
    if spec is not None:
        yield from spec.get("initContainers") or []
        yield from spec.get("containers") or []
    if kind in ("WorkflowTemplate", "Workflow", "ClusterWorkflowTemplate"):
        for template in (props.get("spec") or {}).get("templates") or []:
            for key in ("container", "script"):
                if template.get(key):
                    yield template[key]


# The Argo WorkflowTemplate's steps run the image each submission names (`-p image=...`, required, no default):
# pinned by the release that built it, not by the template.
SUBMITTED_IMAGE = "{{workflow.parameters.image}}"


def image_pinned(image: str) -> bool:
    if "@sha256:" in image or image == SUBMITTED_IMAGE:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def images_pinned(resource_type: str, props: Mapping[str, Any], stack: str = "") -> Violations:
    return [
        f"container {c.get('name')!r}: image {c.get('image')!r} is not pinned to a version tag or digest"
        for c in containers(kind_of(resource_type), props)
        if not image_pinned(str(c.get("image") or ""))
    ]


def _env(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e.get("name"): e.get("value") for e in container.get("env") or []}


def gpu_declared(resource_type: str, props: Mapping[str, Any], stack: str = "") -> Violations:
    """GPU workloads limit nvidia.com/gpu (request = limit); CPU workers (NVIDIA_VISIBLE_DEVICES=void) do not."""
    kind = kind_of(resource_type)
    spec = pod_spec(kind, props)
    if spec is None or kind == "DaemonSet":  # node agents (the device plugin itself) are not GPU consumers
        return []
    out: Violations = []
    tolerates_gpu = any(t.get("key") == GPU for t in spec.get("tolerations") or [])
    for c in containers(kind, props):
        res = c.get("resources") or {}
        limit = (res.get("limits") or {}).get(GPU)
        request = (res.get("requests") or {}).get(GPU)
        name = c.get("name")
        if _env(c).get("NVIDIA_VISIBLE_DEVICES") == "void":
            if limit is not None or request is not None:
                out.append(f"container {name!r}: a CPU worker (NVIDIA_VISIBLE_DEVICES=void) must not request {GPU}")
            continue
        gpu_server = bool(_GPU_SERVER_IMAGE.search(str(c.get("image") or "")))
        if (gpu_server or tolerates_gpu) and limit is None:
            out.append(f"container {name!r}: a GPU workload must set resources.limits[{GPU!r}]")
        if request is not None and str(request) != str(limit):
            out.append(f"container {name!r}: {GPU} request ({request}) must equal its limit ({limit})")
    return out


def probes_present(resource_type: str, props: Mapping[str, Any], stack: str = "") -> Violations:
    """Servers declare readiness and liveness probes; GPU servers also a startup probe (model loading)."""
    kind = kind_of(resource_type)
    if kind not in _SERVER_KINDS:
        return []
    out: Violations = []
    for c in (pod_spec(kind, props) or {}).get("containers") or []:
        needed = ["readinessProbe", "livenessProbe"]
        if GPU in ((c.get("resources") or {}).get("limits") or {}):
            needed.append("startupProbe")
        out += [f"container {c.get('name')!r}: {probe} is missing" for probe in needed if not c.get(probe)]
    return out


def no_load_balancer(
    resource_type: str, props: Mapping[str, Any], stack: str = "", forbidden_stacks: tuple[str, ...] = ("dev",)
) -> Violations:
    service_type = (props.get("spec") or {}).get("type")
    if kind_of(resource_type) == "Service" and stack in forbidden_stacks and service_type == "LoadBalancer":
        return [f"Service type LoadBalancer is not allowed in stack {stack!r} (use ClusterIP or NodePort)"]
    return []


def no_plaintext_secrets(resource_type: str, props: Mapping[str, Any], stack: str = "") -> Violations:
    """Credentials come from Secrets (`valueFrom.secretKeyRef`), never as literal env or ConfigMap values."""
    kind = kind_of(resource_type)
    out: Violations = []
    for c in containers(kind, props):
        for e in c.get("env") or []:
            value = e.get("value")
            if value and (_SECRET_NAME.search(str(e.get("name"))) or _SECRET_VALUE.match(str(value))):
                out.append(f"container {c.get('name')!r}: env {e.get('name')} holds a literal secret value")
    if kind == "ConfigMap":
        for key, value in (props.get("data") or {}).items():
            if _SECRET_NAME.search(key) or _SECRET_VALUE.match(str(value).strip()):
                out.append(f"ConfigMap key {key!r} looks like a credential: store it in a Secret")
    return out


RULES = {
    "images-pinned": (images_pinned, "Container images are pinned to a version tag or digest, never latest."),
    "gpu-pods-declare-gpu": (gpu_declared, "GPU workloads limit nvidia.com/gpu (request = limit); CPU workers don't."),
    "probes-present": (probes_present, "Servers have readiness and liveness probes (GPU servers: startup too)."),
    "no-load-balancer-in-dev": (no_load_balancer, "No Service of type LoadBalancer in the dev stack."),
    "no-plaintext-secrets": (no_plaintext_secrets, "No credential as a literal env value or in a ConfigMap."),
}


def check_all(resource_type: str, props: Mapping[str, Any], stack: str) -> dict[str, Violations]:
    """Every rule's violations for one object (empty lists dropped)."""
    found = {name: rule(resource_type, props, stack) for name, (rule, _) in RULES.items()}
    return {name: v for name, v in found.items() if v}
