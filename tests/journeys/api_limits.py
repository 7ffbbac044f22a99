"""The size limits an object meets on its way into a cluster, as upstream enforces them.

Each is a rule of the component it models (versions as of Kubernetes v1.33, kubectl v1.32, Argo Workflows v3.6):

* **Client-side apply** (`kubectl apply -f`, the default; also Argo's resource templates with `action: apply`, which
  run `kubectl apply -f` in the executor): kubectl stores the whole object, as JSON, in the annotation
  `kubectl.kubernetes.io/last-applied-configuration` (k8s.io/kubectl pkg/util/apply.go, `GetModifiedConfiguration`),
  and the API server refuses an object whose annotations total more than 262,144 bytes
  (k8s.io/apimachinery pkg/api/validation/objectmeta.go, `TotalAnnotationSizeLimitB = 256 * (1 << 10)`):
  `metadata.annotations: Too long: may not be more than 262144 bytes`. So a ConfigMap applied client-side carries
  at most ~256 KiB of data, four times less than its own limit.
* **Server-side apply** (`kubectl apply --server-side`): no such annotation (field ownership lives in
  `metadata.managedFields`, names only), so only the object limits below apply.
* **ConfigMap data**: `data` + `binaryData` at most 1 MiB (k8s.io/kubernetes pkg/apis/core/validation,
  `ValidateConfigMap`: `totalSize > core.MaxSecretSize`, 1,048,576 bytes).
* **Any object**: etcd refuses a request above `--max-request-bytes` (default 1.5 MiB, etcd v3.5
  `embed.DefaultMaxRequestBytes`): `etcdserver: request is too large`.
* **One command-line argument**: Linux's `MAX_ARG_STRLEN` (32 pages = 131,072 bytes on x86-64): `execve` fails with
  E2BIG ("Argument list too long") for `argo submit -p dataset-b64="$(base64 ...)"` past it. `exec_argv` checks it
  for real: it executes the command line with this machine's kernel.
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

Manifest = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ANNOTATIONS_LIMIT = 256 * (1 << 10)  # 262,144 bytes
CONFIGMAP_DATA_LIMIT = 1024 * 1024  # core.MaxSecretSize, also the ConfigMap limit
ETCD_REQUEST_LIMIT = 1536 * 1024  # etcd's default --max-request-bytes
MAX_ARG_STRLEN = 32 * 4096


class Invalid(Exception):
    """The API server's 422 (or etcd's refusal): the message names the limit as upstream does."""


def _kind_name(obj: Manifest) -> str:
    return f'{obj["kind"]} "{obj["metadata"]["name"]}"'


def with_last_applied(obj: Manifest) -> Manifest:
    """What client-side `kubectl apply` sends: the object plus its own JSON in the last-applied annotation."""
    sent = copy.deepcopy(obj)
    original = copy.deepcopy(obj)
    (original.get("metadata") or {}).get("annotations", {}).pop(LAST_APPLIED, None)
    text = json.dumps(original, separators=(",", ":"), sort_keys=True) + "\n"
    sent.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = text
    return sent


def validate(obj: Manifest) -> None:
    """The API server's size validation of one object, and etcd's request limit."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    total = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if total > ANNOTATIONS_LIMIT:
        raise Invalid(
            f"{_kind_name(obj)} is invalid: metadata.annotations: Too long: may not be more than "
            f"{ANNOTATIONS_LIMIT} bytes"
        )
    if obj.get("kind") == "ConfigMap":
        size = sum(len(k) + len(str(v).encode()) for k, v in (obj.get("data") or {}).items())
        # binaryData travels base64-encoded in JSON/YAML; the limit counts the decoded bytes.
        size += sum(len(k) + len(str(v)) * 3 // 4 for k, v in (obj.get("binaryData") or {}).items())
        if size > CONFIGMAP_DATA_LIMIT:
            raise Invalid(f"{_kind_name(obj)} is invalid: []: Too long: may not be more than {CONFIGMAP_DATA_LIMIT}")
    if len(json.dumps(obj).encode()) > ETCD_REQUEST_LIMIT:
        raise Invalid("etcdserver: request is too large")


def apply(obj: Manifest, server_side: bool = False) -> Manifest:
    """`kubectl apply` of one object: what the API server stores, or `Invalid`."""
    sent = copy.deepcopy(obj) if server_side else with_last_applied(obj)
    validate(sent)
    return sent


def exec_argv(argv: list[str]) -> None:
    """Execute `argv` with `true` as the program: the kernel itself refuses an argument over MAX_ARG_STRLEN or a
    command line over ARG_MAX (OSError E2BIG, "Argument list too long"), as it would for `argo submit -p ...`."""
    subprocess.run(["true", *argv[1:]], check=True)


def exec_env(name: str, value: str) -> None:
    """Execute `true` with one more environment variable: a `NAME=value` string over MAX_ARG_STRLEN is refused by
    the kernel (E2BIG) exactly like an argument, as when a container starts with Argo's ARGO_TEMPLATE."""
    subprocess.run(["true"], env={"PATH": "/usr/bin:/bin", name: value}, check=True)
