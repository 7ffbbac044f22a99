"""Typed stack settings, read from a Pulumi stack file or from the Pulumi config, validated once.

Kept free of any Pulumi import so that `render` (and its checks) read the very same settings as
`pulumi up` without the Pulumi engine. Bad input raises `SettingsError` naming the file and field.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "ai-eval-factory"
ENVIRONMENTS = ("dev", "prod")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
RUN_ID_MAX = 40  # Job names get "-<index>-<suffix>" appended for pods; keep the whole under 63.


class SettingsError(ValueError):
    """A stack setting is missing or invalid; the message names the source and field."""


# vLLM checks at start that `gpuMemoryUtilization` of the GPU is free; copies that share one GPU through
# time-slicing must fit together, with room for each process's CUDA context.
GPU_MEMORY_HEADROOM = 0.05
DATASET_KEY = "dataset"  # the dataset's ConfigMap key (keys cannot hold '/'; the volume maps it to its path)
# Stack config keys read by the Pulumi program itself, not by `parse`: known, so never refused as unknown.
RUN_KEYS = ("evalRun",)
SECRET_KEYS = ("hfToken", "evalTargetApiKey", "evalJudgeApiKey", "vllmApiKey", "reportUploadAccessKeyId",
               "reportUploadSecretAccessKey")  # fmt: skip


@dataclass(frozen=True)
class DevicePluginSettings:
    enabled: bool
    image: str
    time_slicing_replicas: int
    fail_requests_greater_than_one: bool
    node_selector: dict[str, str]


@dataclass(frozen=True)
class VolumeSettings:
    size: str
    access_mode: str
    storage_class: str | None
    host_path: str | None = None  # a pre-populated node folder, bound through a static PersistentVolume


@dataclass(frozen=True)
class GpuSmokeSettings:
    """The GPU check: `nvidia-smi` as the first init container of vLLM's pod, on the GPU vLLM gets."""

    enabled: bool
    image: str


@dataclass(frozen=True)
class EgressRule:
    """One destination evaluator pods may call besides the stack's vLLM (NetworkPolicy egress)."""

    ports: tuple[int, ...]
    cidr: str | None = None  # an address block (an external judge, an S3 endpoint)
    namespace: str | None = None  # or pods of a namespace (an in-cluster judge or candidate server)
    pod_labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class UploadSettings:
    """Opt-in: the aggregate Job puts the run's report into S3-compatible object storage."""

    endpoint: str
    bucket: str
    prefix: str
    region: str
    secret: str  # a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY


@dataclass(frozen=True)
class KueueSettings:
    """Opt-in Kueue for a shared GPU cluster: the LocalQueue (eval.queueName) and, when asked, its ClusterQueue and
    ResourceFlavor with a quota (an existing queue is the normal case: the cluster's admins own it)."""

    emit_queues: bool
    cluster_queue: str
    resource_flavor: str
    quota: tuple[tuple[str, str], ...]


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
    download_budget_seconds: int
    replicas: int
    prefetch: bool
    api_key_secret: str | None = None  # a Secret with key `api-key`: vLLM's VLLM_API_KEY, the pods' bearer token


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
    timings_report: str | None  # a previous report on the results volume, relative to it (balanced sharding)
    gate_mode: str
    judge_base_url: str | None  # None: the stack's own vLLM
    judge_model: str | None  # None: the stack's vLLM servedModelName
    cpu: str
    memory: str
    queue_name: str | None = None  # Kueue LocalQueue: the Jobs are created suspended, Kueue admits them
    health_wait_seconds: int = 600  # how long each pod waits for the target's /health before it starts
    egress: tuple[EgressRule, ...] = ()
    upload: UploadSettings | None = None


@dataclass(frozen=True)
class ArgoSettings:
    """The WorkflowTemplate: it fans out over the variants of the suite it is given (no model list here)."""

    enabled: bool


@dataclass(frozen=True)
class RunSettings:
    """One evaluation run: rendered per commit by the release pipeline (see pulumi/README.md)."""

    run_id: str
    commit: str
    suite_text: str
    suite_source: str
    # The files of the run's suite, by their path relative to the suite's folder (suite.yaml first); they
    # reach the pods through the run's ConfigMap. Empty when the suite is baked into the image.
    files: tuple[SuiteFile, ...] = ()
    suite_in_image: str | None = None  # absolute path of the suite inside the run's image
    # What the evaluator's own plan (evaluator.plan_run) makes of the suite: the work the shards split.
    profile: str | None = None  # the suite's profile selecting the cases (EVAL_PROFILE); None: every case
    variants: tuple[str, ...] = ("default",)
    reference: str = "default"
    units: int = 0  # (variant, case) pairs of the selection
    many_shards: int = 1  # the Indexed Job's completions under `many` sharding: ceil(units / chunk_size)


@dataclass(frozen=True)
class SuiteFile:
    key: str  # ConfigMap key: no '/', so derived from the path
    path: str  # relative to the suite's folder, as the suite names it
    text: str


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
    gpu_smoke: GpuSmokeSettings
    kueue: KueueSettings | None = None
    hf_token_secret: str = "hf-token"
    eval_keys_secret: str = "eval-api-keys"

    @property
    def vllm_base_url(self) -> str:
        return f"http://vllm.{self.namespace}.svc:8000/v1"

    @property
    def judge_base_url(self) -> str:
        """The judge the pods call: `eval.judge.baseUrl`, else the stack's own vLLM."""
        return self.eval.judge_base_url or self.vllm_base_url

    @property
    def judge_model(self) -> str:
        return self.eval.judge_model or self.vllm.served_model_name

    @property
    def protect_data(self) -> bool:
        """Volumes holding weights and results: `pulumi destroy` leaves them; prod also refuses to replace them."""
        return self.environment == "prod"


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
        self.seen: set[str] = set()  # the keys this reader knows (read, or declared by `allow`)
        self.children: list[_Reader] = []

    def _get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def allow(self, *keys: str) -> None:
        """Keys read elsewhere (e.g. by the Pulumi program): known, so not refused as unknown."""
        self.seen.update(keys)

    def check_unknown(self) -> None:
        """Every key of the mapping must be one this reader knows: a typo never renders silently."""
        for key in sorted(set(self.data) - self.seen):
            close = difflib.get_close_matches(str(key), sorted(self.seen), n=1, cutoff=0.6)
            hint = f"; did you mean {self._name(close[0])}?" if close else f" (known: {', '.join(sorted(self.seen))})"
            raise self._fail(str(key), f"unknown key{hint}")
        for child in self.children:
            child.check_unknown()

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def _fail(self, key: str, why: str) -> SettingsError:
        return SettingsError(f"{self.source}: {self._name(key)}: {why}")

    def sub(self, key: str) -> _Reader:
        child = _Reader(self._get(key), self.source, self._name(key))
        self.children.append(child)
        return child

    def text(self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self._get(key, default)
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
        return self.text(key) if self._get(key) is not None else None

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self._get(key, default)
        if value is None:
            raise self._fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"expected an integer, got {value!r}")
        if value < minimum:
            raise self._fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
            raise self._fail(key, f"expected a number in ({low}, {high}], got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, f"expected true or false, got {value!r}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, default)
        if value not in choices:
            raise self._fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def quantity(self, key: str, default: str) -> str:
        value = self._get(key, default)
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


def _volume(r: _Reader, default_size: str, host_path_allowed: bool = False) -> VolumeSettings:
    host_path = r.opt_str("hostPath")
    if host_path is not None and not host_path_allowed:
        raise r._fail("hostPath", "only modelCache can be bound to a node folder")
    if host_path is not None and not host_path.startswith("/"):
        raise r._fail("hostPath", f"must be an absolute path on the node, got {host_path!r}")
    return VolumeSettings(
        size=r.quantity("size", default_size),
        access_mode=r.choice("accessMode", "ReadWriteOnce", ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod")),
        storage_class=r.opt_str("storageClass"),
        host_path=host_path,
    )


def _labels(r: _Reader, key: str, default: dict[str, str]) -> dict[str, str]:
    value = r._get(key, default)
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise r._fail(key, f"expected a mapping of node label to value (strings), got {value!r}")
    return dict(value)


def parse(config: dict[str, Any], stack: str, source: str) -> StackSettings:
    """Build settings from config keys without the `project:` prefix."""
    r = _Reader(config, source)
    environment = r.choice("environment", stack if stack in ENVIRONMENTS else "prod", ENVIRONMENTS)
    dp = r.sub("devicePlugin")
    vl = r.sub("vllm")
    ev = r.sub("eval")
    judge = ev.sub("judge")
    ar = r.sub("argo")
    smoke = r.sub("gpuSmoke")
    if vl.data.get("hpa") is not None:
        raise vl._fail(
            "hpa",
            "removed: nothing in this stack serves vLLM's vllm:num_requests_waiting to the metrics API, so an HPA "
            "on it never scales; delete vllm.hpa and set vllm.replicas",
        )
    shards = ev.integer("shards", 4, minimum=1)
    if ar.data.get("models") is not None:
        raise ar._fail(
            "models",
            "removed: the template fans out over the variants of the suite it is given (one Indexed Job per "
            "variant, withParam), so the models a run compares live in the suite: make each model a variant "
            "({name: ..., base_url: <its baseUrl>, model: <its servedModelName>}) and delete argo.models. A variant "
            "without base_url/model is answered by this stack's vLLM (vllm.servedModelName)",
        )
    vllm_image = vl.image("image")
    results = r.sub("results")
    upload = _upload(results.sub("upload")) if results.data.get("upload") is not None else None
    settings = StackSettings(
        stack=stack,
        environment=environment,
        kube_context=r.text("kubeContext"),
        namespace=r.text("namespace", "eval", pattern=DNS_LABEL),
        device_plugin=DevicePluginSettings(
            enabled=dp.flag("enabled", environment != "dev"),
            image=dp.image("image", "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"),
            time_slicing_replicas=dp.integer("timeSlicingReplicas", 1, minimum=1),
            fail_requests_greater_than_one=dp.flag("failRequestsGreaterThanOne", True),
            # Default: none, as upstream's static manifest: a fresh cluster labels no node as a GPU node (that is
            # GPU Feature Discovery's job, e.g. nvidia.com/gpu.present=true); a node without a GPU idles the plugin.
            node_selector=_labels(dp, "nodeSelector", {}),
        ),
        model_cache=_volume(r.sub("modelCache"), "50Gi", host_path_allowed=True),
        results=_volume(results, "5Gi"),
        vllm=VllmSettings(
            image=vllm_image,
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
            download_budget_seconds=vl.integer("downloadBudgetSeconds", 3600, minimum=60),
            replicas=vl.integer("replicas", 1, minimum=1),
            prefetch=vl.flag("prefetch", True),
            api_key_secret=vl.opt_str("apiKeySecret"),
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
            timings_report=ev.opt_str("timingsReport"),
            gate_mode=ev.choice("gateMode", "block", ("block", "warn")),
            judge_base_url=judge.opt_str("baseUrl"),
            judge_model=judge.opt_str("model"),
            cpu=ev.quantity("cpu", "1"),
            memory=ev.quantity("memory", "1Gi"),
            queue_name=ev.text("queueName", pattern=DNS_LABEL) if ev.data.get("queueName") is not None else None,
            health_wait_seconds=ev.integer("healthWaitSeconds", 600, minimum=0),
            egress=_egress(ev),
            upload=upload,
        ),
        argo=ArgoSettings(enabled=ar.flag("enabled", False)),
        gpu_smoke=GpuSmokeSettings(enabled=smoke.flag("enabled", True), image=smoke.image("image", vllm_image)),
        kueue=_kueue(r.sub("kueue")) if r.data.get("kueue") is not None else None,
    )
    r.allow(*RUN_KEYS, *SECRET_KEYS)
    r.check_unknown()
    _check_consistency(settings, source)
    return settings


def _egress(ev: _Reader) -> tuple[EgressRule, ...]:
    raw = ev._get("egress", [])
    if not isinstance(raw, list):
        raise ev._fail("egress", f"expected a list of {{cidr|namespace, ports}}, got {raw!r}")
    rules = []
    for i, item in enumerate(raw):
        r = _Reader(item, ev.source, ev._name(f"egress[{i}]"))
        ports = r._get("ports")
        if not isinstance(ports, list) or not ports or not all(isinstance(x, int) and 0 < x < 65536 for x in ports):
            raise r._fail("ports", f"expected a non-empty list of TCP ports, got {ports!r}")
        cidr, namespace = r.opt_str("cidr"), r.opt_str("namespace")
        if (cidr is None) == (namespace is None):
            raise r._fail("cidr", "give exactly one of cidr (an address block) or namespace (pods of a namespace)")
        rules.append(EgressRule(tuple(ports), cidr, namespace, tuple(sorted(_labels(r, "podLabels", {}).items()))))
        r.check_unknown()
    return tuple(rules)


def _upload(r: _Reader) -> UploadSettings:
    endpoint = r.text("endpoint")
    if not endpoint.startswith(("https://", "http://")):
        raise r._fail("endpoint", f"expected the S3 endpoint's URL (https://...), got {endpoint!r}")
    return UploadSettings(
        endpoint=endpoint.rstrip("/"),
        bucket=r.text("bucket", pattern=re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")),
        prefix=r.text("prefix", "ai-eval-factory").strip("/"),
        region=r.text("region", "us-east-1"),
        secret=r.text("secret", "report-upload", pattern=DNS_LABEL),
    )


def _kueue(r: _Reader) -> KueueSettings:
    quota = _labels(r, "quota", {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "1"})
    for resource, value in quota.items():
        if not _QUANTITY.match(value):
            raise r._fail(f"quota.{resource}", f"expected a Kubernetes quantity, got {value!r}")
    return KueueSettings(
        emit_queues=r.flag("emitQueues", False),
        cluster_queue=r.text("clusterQueue", "ai-eval-factory", pattern=DNS_LABEL),
        resource_flavor=r.text("resourceFlavor", "default-flavor", pattern=DNS_LABEL),
        quota=tuple(sorted(quota.items())),
    )


def check_settings(s: StackSettings, source: str) -> None:
    """Re-check settings changed after parsing (e.g. by a render flag)."""
    _check_consistency(s, source)


def _check_consistency(s: StackSettings, source: str) -> None:
    """Contradictions between settings, each refused with the key to change and how."""
    if s.eval.max_failed_indexes > s.eval.shards:
        raise SettingsError(f"{source}: eval.maxFailedIndexes: must be <= eval.shards ({s.eval.shards})")
    if s.eval.sharding == "balanced" and s.eval.timings_report is None:
        raise SettingsError(
            f"{source}: eval.timingsReport: 'balanced' sharding needs a previous run's report on the results "
            "volume (e.g. eval.timingsReport: <previous-run-id>/report.json); set it, or use sharding: contiguous"
        )
    if s.eval.timings_report is not None:
        parts = s.eval.timings_report.split("/")
        if s.eval.timings_report.startswith("/") or ".." in parts:
            raise SettingsError(
                f"{source}: eval.timingsReport: must be relative to the results volume (e.g. <run-id>/report.json),"
                f" got {s.eval.timings_report!r}"
            )
    for key, volume in (("modelCache", s.model_cache), ("results", s.results)):
        if volume.access_mode == "ReadWriteMany" and volume.storage_class is None and volume.host_path is None:
            raise SettingsError(
                f"{source}: {key}.storageClass: ReadWriteMany needs a storage class that provides it (NFS, CephFS,"
                " EFS, Filestore, ...); common default classes are ReadWriteOnce and the claim would never bind."
                f" Set {key}.storageClass, or use accessMode: ReadWriteOnce"
            )
    if s.model_cache.host_path is not None and s.model_cache.access_mode == "ReadWriteMany":
        raise SettingsError(
            f"{source}: modelCache.accessMode: a hostPath volume lives on one node; use ReadWriteOnce with hostPath"
        )
    slices = s.device_plugin.time_slicing_replicas if s.device_plugin.enabled else 1
    sharing = min(slices, s.vllm.replicas) if slices > 1 else 1
    fraction = s.vllm.gpu_memory_utilization
    if sharing > 1 and sharing * fraction > 1 - GPU_MEMORY_HEADROOM:
        raise SettingsError(
            f"{source}: vllm.gpuMemoryUtilization: {sharing} vLLM replicas can share one GPU "
            f"(devicePlugin.timeSlicingReplicas: {slices}, vllm.replicas: {s.vllm.replicas}), and each reserves "
            f"{fraction:g} of its memory at start: the second fails vLLM's free-memory check. Set it to at most "
            f"{(1 - GPU_MEMORY_HEADROOM) / sharing:.2f}, or lower vllm.replicas / devicePlugin.timeSlicingReplicas"
        )
    dp = s.device_plugin
    if dp.enabled and dp.time_slicing_replicas > 1 and dp.fail_requests_greater_than_one and s.vllm.gpus > 1:
        raise SettingsError(
            f"{source}: vllm.gpus: {s.vllm.gpus} GPUs for one vLLM, but the device plugin time-slices every GPU "
            f"(devicePlugin.timeSlicingReplicas: {dp.time_slicing_replicas}) "
            "with failRequestsGreaterThanOne, which refuses any pod asking for more than one: set "
            "devicePlugin.timeSlicingReplicas: 1 (time-slicing applies to every GPU node of the cluster), "
            "or vllm.gpus: 1"
        )
    if s.kueue is not None and s.kueue.emit_queues and s.eval.queue_name is None:
        raise SettingsError(f"{source}: eval.queueName: kueue.emitQueues makes a LocalQueue: name it in eval.queueName")
    outside = [f"the judge at {s.eval.judge_base_url} (eval.judge.baseUrl)"] if s.eval.judge_base_url else []
    outside += [f"the report upload to {s.eval.upload.endpoint} (results.upload)"] if s.eval.upload else []
    if outside and not s.eval.egress:
        raise SettingsError(
            f"{source}: eval.egress: evaluator pods may call only this stack's vLLM (their NetworkPolicy), not "
            f"{' or '.join(outside)}: list where it runs, e.g. eval.egress: [{{cidr: 10.20.0.0/16, ports: [443]}}] "
            "or [{namespace: judges, podLabels: {app: judge}, ports: [8000]}]"
        )
    if s.environment == "dev" and s.vllm.service_type == "LoadBalancer":
        raise SettingsError(f"{source}: vllm.serviceType: LoadBalancer is not allowed in dev")


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
