"""Typed stack settings, read from a Pulumi stack file or from the Pulumi config, validated once.

Kept free of any Pulumi import so that `render` (and its checks) read the very same settings as
`pulumi up` without the Pulumi engine. Bad input raises `SettingsError` naming the file and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "ai-eval-factory"
ENVIRONMENTS = ("dev", "prod")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
RUN_ID_MAX = 40  # Job names get "-<index>-<suffix>" appended for pods; keep the whole under 63.


class SettingsError(ValueError):
    """A stack setting is missing or invalid; the message names the source and field."""


@dataclass(frozen=True)
class DevicePluginSettings:
    enabled: bool
    image: str
    time_slicing_replicas: int
    fail_requests_greater_than_one: bool


@dataclass(frozen=True)
class VolumeSettings:
    size: str
    access_mode: str
    storage_class: str | None


@dataclass(frozen=True)
class HpaSettings:
    enabled: bool
    min_replicas: int
    max_replicas: int
    target_waiting_requests: int


@dataclass(frozen=True)
class VllmSettings:
    image: str
    model: str
    revision: str
    served_model_name: str
    gpus: int
    max_model_len: int
    gpu_memory_utilization: float
    shm_size: str
    cpu: str
    memory: str
    service_type: str
    startup_budget_seconds: int
    hpa: HpaSettings


@dataclass(frozen=True)
class ArgoModel:
    name: str
    base_url: str


@dataclass(frozen=True)
class EvalSettings:
    image: str
    shards: int
    parallelism: int
    backoff_limit_per_index: int
    max_failed_indexes: int
    active_deadline_seconds: int
    ttl_seconds_after_finished: int
    sharding: str
    gate_mode: str
    judge_base_url: str | None
    cpu: str
    memory: str


@dataclass(frozen=True)
class ArgoSettings:
    enabled: bool
    models: tuple[ArgoModel, ...]


@dataclass(frozen=True)
class RunSettings:
    """One evaluation run: rendered per commit by the release pipeline (see pulumi/README.md)."""

    run_id: str
    commit: str
    suite_text: str
    suite_source: str


@dataclass(frozen=True)
class StackSettings:
    stack: str
    environment: str
    kube_context: str
    namespace: str
    device_plugin: DevicePluginSettings
    model_cache: VolumeSettings
    results: VolumeSettings
    vllm: VllmSettings
    eval: EvalSettings
    argo: ArgoSettings
    hf_token_secret: str = "hf-token"
    eval_keys_secret: str = "eval-api-keys"

    @property
    def vllm_base_url(self) -> str:
        return f"http://vllm.{self.namespace}.svc:8000/v1"


class _Reader:
    """Typed access to one mapping, with errors that name the file and the dotted field."""

    def __init__(self, data: Any, source: str, prefix: str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SettingsError(f"{source}: {prefix or 'config'}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.source = source
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def _fail(self, key: str, why: str) -> SettingsError:
        return SettingsError(f"{self.source}: {self._name(key)}: {why}")

    def sub(self, key: str) -> _Reader:
        return _Reader(self.data.get(key), self.source, self._name(key))

    def text(self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self._fail(key, "is required")
        if isinstance(value, dict) and "secure" in value:
            raise self._fail(key, "is a secret; it is read only by `pulumi up`, never rendered")
        if not isinstance(value, str) or not value:
            raise self._fail(key, f"expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self._fail(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def opt_str(self, key: str) -> str | None:
        return self.text(key) if self.data.get(key) is not None else None

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.data.get(key, default)
        if value is None:
            raise self._fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self._fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
            raise self._fail(key, f"expected a number in ({low}, {high}], got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"expected true or false, got {value!r}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.data.get(key, default)
        if value not in choices:
            raise self._fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def quantity(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not _QUANTITY.match(value):
            raise self._fail(key, f"expected a Kubernetes quantity such as 10Gi, got {value!r}")
        return value

    def image(self, key: str, default: str | None = None) -> str:
        value = self.text(key, default)
        if not image_is_pinned(value):
            raise self._fail(key, f"image {value!r} must be pinned to a version tag or digest (never latest)")
        return value


def image_is_pinned(image: str) -> bool:
    """True for `repo:tag` (tag not `latest`) or `repo@sha256:...`."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def _volume(r: _Reader, default_size: str) -> VolumeSettings:
    return VolumeSettings(
        size=r.quantity("size", default_size),
        access_mode=r.choice("accessMode", "ReadWriteOnce", ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")),
        storage_class=r.opt_str("storageClass"),
    )


def parse(config: dict[str, Any], stack: str, source: str) -> StackSettings:
    """Build settings from config keys without the `project:` prefix."""
    r = _Reader(config, source)
    environment = r.choice("environment", stack if stack in ENVIRONMENTS else "prod", ENVIRONMENTS)
    dp = r.sub("devicePlugin")
    vl = r.sub("vllm")
    hpa = vl.sub("hpa")
    ev = r.sub("eval")
    ar = r.sub("argo")
    shards = ev.integer("shards", 4, minimum=1)
    models_raw = ar.data.get("models", [])
    if not isinstance(models_raw, list):
        raise SettingsError(f"{source}: argo.models: expected a list of {{name, baseUrl}}")
    models = tuple(
        ArgoModel(
            name=_Reader(m, source, f"argo.models[{i}]").text("name", pattern=_DNS_LABEL),
            base_url=_Reader(m, source, f"argo.models[{i}]").text("baseUrl"),
        )
        for i, m in enumerate(models_raw)
    )
    settings = StackSettings(
        stack=stack,
        environment=environment,
        kube_context=r.text("kubeContext"),
        namespace=r.text("namespace", "eval", pattern=_DNS_LABEL),
        device_plugin=DevicePluginSettings(
            enabled=dp.flag("enabled", environment != "dev"),
            image=dp.image("image", "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"),
            time_slicing_replicas=dp.integer("timeSlicingReplicas", 1, minimum=1),
            fail_requests_greater_than_one=dp.flag("failRequestsGreaterThanOne", True),
        ),
        model_cache=_volume(r.sub("modelCache"), "50Gi"),
        results=_volume(r.sub("results"), "5Gi"),
        vllm=VllmSettings(
            image=vl.image("image"),
            model=vl.text("model"),
            revision=vl.text("revision"),
            served_model_name=vl.text("servedModelName"),
            gpus=vl.integer("gpus", 1, minimum=1),
            max_model_len=vl.integer("maxModelLen", 4096, minimum=128),
            gpu_memory_utilization=vl.number("gpuMemoryUtilization", 0.9, 0.0, 1.0),
            shm_size=vl.quantity("shmSize", "2Gi"),
            cpu=vl.quantity("cpu", "4"),
            memory=vl.quantity("memory", "16Gi"),
            service_type=vl.choice("serviceType", "ClusterIP", ("ClusterIP", "NodePort", "LoadBalancer")),
            startup_budget_seconds=vl.integer("startupBudgetSeconds", 1800, minimum=60),
            hpa=HpaSettings(
                enabled=hpa.flag("enabled", False),
                min_replicas=hpa.integer("minReplicas", 1, minimum=1),
                max_replicas=hpa.integer("maxReplicas", 2, minimum=1),
                target_waiting_requests=hpa.integer("targetWaitingRequests", 8, minimum=1),
            ),
        ),
        eval=EvalSettings(
            image=ev.image("image"),
            shards=shards,
            parallelism=ev.integer("parallelism", min(shards, 2), minimum=1),
            backoff_limit_per_index=ev.integer("backoffLimitPerIndex", 2),
            max_failed_indexes=ev.integer("maxFailedIndexes", 0),
            active_deadline_seconds=ev.integer("activeDeadlineSeconds", 7200, minimum=60),
            ttl_seconds_after_finished=ev.integer("ttlSecondsAfterFinished", 86400),
            sharding=ev.choice("sharding", "contiguous", ("contiguous", "balanced", "many")),
            gate_mode=ev.choice("gateMode", "block", ("block", "warn")),
            judge_base_url=ev.opt_str("judgeBaseUrl"),
            cpu=ev.quantity("cpu", "1"),
            memory=ev.quantity("memory", "1Gi"),
        ),
        argo=ArgoSettings(enabled=ar.flag("enabled", False), models=models),
    )
    _check_consistency(settings, source)
    return settings


def _check_consistency(s: StackSettings, source: str) -> None:
    if s.eval.max_failed_indexes > s.eval.shards:
        raise SettingsError(f"{source}: eval.maxFailedIndexes: must be <= eval.shards ({s.eval.shards})")
    if s.vllm.hpa.min_replicas > s.vllm.hpa.max_replicas:
        raise SettingsError(f"{source}: vllm.hpa.minReplicas: must be <= vllm.hpa.maxReplicas")
    if s.environment == "dev" and s.vllm.service_type == "LoadBalancer":
        raise SettingsError(f"{source}: vllm.serviceType: LoadBalancer is not allowed in dev")
    if s.argo.enabled and not s.argo.models:
        raise SettingsError(f"{source}: argo.models: at least one model is required when argo.enabled")
    if len({m.name for m in s.argo.models}) != len(s.argo.models):
        raise SettingsError(f"{source}: argo.models: model names must be unique")


def strip_project(config: dict[str, Any], source: str) -> dict[str, Any]:
    """`ai-eval-factory:vllm` -> `vllm`; keys of other namespaces (e.g. `kubernetes:`) are dropped."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        namespace, sep, name = str(key).partition(":")
        if not sep:
            raise SettingsError(f"{source}: config key {key!r} has no namespace (expected {PROJECT}:{key})")
        if namespace == PROJECT:
            out[name] = value
    return out


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def load_stack(project_dir: Path, stack: str) -> StackSettings:
    """Read `Pulumi.<stack>.yaml` the way `pulumi up` would see its plain (non-secret) values."""
    path = stack_file(project_dir, stack)
    if not path.is_file():
        raise SettingsError(f"{path}: no such stack file (stacks: dev, prod)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise SettingsError(f"{path}: expected a mapping with a `config:` key")
    return parse(strip_project(doc.get("config") or {}, str(path)), stack, str(path))


def make_run(run_id: str, commit: str, suite_path: Path) -> RunSettings:
    """Validate one run's identity: the run id names Kubernetes objects, so it must be a DNS label."""
    if not _DNS_LABEL.match(run_id) or len(run_id) > RUN_ID_MAX:
        raise SettingsError(
            f"--run-id: {run_id!r} must be lowercase letters, digits and '-', at most {RUN_ID_MAX} characters"
        )
    if not _COMMIT.match(commit):
        raise SettingsError(f"--commit: {commit!r} must be a git commit hash (7 to 40 lowercase hex digits)")
    try:
        text = suite_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--suite: {suite_path}: {exc.strerror or exc}") from exc
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(f"--suite: {suite_path}: invalid YAML: {exc}") from exc
    return RunSettings(run_id=run_id, commit=commit, suite_text=text, suite_source=str(suite_path))
