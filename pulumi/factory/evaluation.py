"""One evaluation run: the suite's ConfigMap, the Indexed Job of docs/contract.md (with its run-guard), the
aggregation Job, and what every evaluator pod shares (environment, container, pod, network policy, keys)."""

from __future__ import annotations

import posixpath
from typing import Any

from factory.objects import (
    EVAL_SERVICE_ACCOUNT,
    WHY_PULL_POLICY,
    WHY_SECRET_ENV,
    WHY_TAG_NOT_DIGEST,
    Manifest,
    labels,
    object_meta,
    pod_security,
    restricted_container_security,
    skips,
)
from factory.settings import RunSettings, StackSettings

EVALUATOR_UID = 10001
RESULTS_MOUNT = "/results"
SUITE_MOUNT = "/suite"
# The evaluator's exit codes (docs/contract.md) and what the Job does with them.
EXIT_CONFIG_ERROR = 2  # FailJob: every shard would fail the same way
EXIT_BAD_SHARD = 3  # FailIndex: retrying this shard cannot help
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
SUITE_KEY = "suite.yaml"  # ConfigMap keys cannot hold '/': fixed keys, mapped to paths by the volume's items
RUN_IMAGE_FILE = "run-image"  # beside the shards: the image that produced them (see run_guard_container)
AGGREGATE_DEADLINE_SECONDS = 900


def eval_keys_secret(s: StackSettings, keys: dict[str, Any]) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret evalTargetApiKey/evalJudgeApiKey`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(s.eval_keys_secret, s.namespace, "evaluator"),
        "type": "Opaque",
        "stringData": keys,
    }


def eval_network_policy(s: StackSettings) -> Manifest:
    """Evaluator pods accept no connections; they only call the target and the judge."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta("evaluator-no-ingress", s.namespace, "evaluator"),
        "spec": {"podSelector": {"matchLabels": labels("evaluator")}, "policyTypes": ["Ingress"]},
    }


def suite_configmap_name(run_id: str) -> str:
    return f"suite-{run_id}"


def eval_job_name(run_id: str) -> str:
    return f"eval-{run_id}"


def aggregate_job_name(run_id: str) -> str:
    return f"aggregate-{run_id}"


def out_dir(run_id: str) -> str:
    return f"{RESULTS_MOUNT}/{run_id}"


def suite_configmap(s: StackSettings, run: RunSettings) -> Manifest:
    """The suite and its dataset (the files the suite names), or only the suite as a record when the suite
    is baked into the run's image (`--suite-in-image`, for datasets beyond a ConfigMap's 1 MiB)."""
    data: dict[str, str] = {SUITE_KEY: run.suite_text}
    for f in run.files:
        data[f.key] = f.text
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(suite_configmap_name(run.run_id), s.namespace, "evaluator"),
        "data": data,
    }


def suite_items(run: RunSettings) -> list[Manifest]:
    """Each key to the path the suite expects, relative to the suite (a key cannot hold '/', a path can)."""
    return [{"key": SUITE_KEY, "path": SUITE_KEY}, *({"key": f.key, "path": f.path} for f in run.files)]


def suite_path_in_pod(run: RunSettings | None) -> str:
    if run is not None and run.suite_in_image:
        return run.suite_in_image
    return posixpath.join(SUITE_MOUNT, SUITE_KEY)


def timings_path(s: StackSettings, timings_report: str | None = None) -> str | None:
    report = timings_report or s.eval.timings_report
    return posixpath.join(RESULTS_MOUNT, report) if report else None


def run_shards(s: StackSettings, run: RunSettings | None = None) -> int:
    """The Indexed Job's completions: the stack's `eval.shards`, or under `many` sharding what the suite's
    units need (ceil(units / chunk_size), as `evaluator run` computes it: any other count makes every pod exit 2)."""
    if run is not None and s.eval.sharding == "many":
        return run.many_shards
    return s.eval.shards


def evaluator_env(
    s: StackSettings,
    run_id: str,
    commit: str,
    target_base_url: str,
    target_model: str,
    timings: str | None = None,
    shards: int | str | None = None,
    out: str | None = None,
    extra: list[Manifest] | None = None,
) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": "EVAL_TOTAL_SHARDS", "value": str(s.eval.shards if shards is None else shards)},
        {"name": "EVAL_RUN_ID", "value": run_id},
        {"name": "EVAL_COMMIT", "value": commit},
        {"name": "EVAL_OUT_DIR", "value": out or out_dir(run_id)},
        {"name": "EVAL_SHARDING", "value": s.eval.sharding},
        # The stack decides what is evaluated and who judges: the suite's own endpoints are overridden.
        {"name": "EVAL_TARGET_BASE_URL", "value": target_base_url},
        {"name": "EVAL_TARGET_MODEL", "value": target_model},
        {"name": "EVAL_JUDGE_BASE_URL", "value": s.judge_base_url},
        {"name": "EVAL_JUDGE_MODEL", "value": s.judge_model},
        {"name": "EVAL_IMAGE", "value": s.eval.image},
        *(extra or []),
        # CPU workers: an NVIDIA runtime set as the node default must expose no GPU to them.
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "USER", "value": "evaluator"},
        {"name": "DEEPEVAL_TELEMETRY_OPT_OUT", "value": "1"},
    ]
    if timings is not None:
        env.append({"name": "EVAL_TIMINGS", "value": timings})
    for key in ("EVAL_TARGET_API_KEY", "EVAL_JUDGE_API_KEY"):
        env.append(
            {"name": key, "valueFrom": {"secretKeyRef": {"name": s.eval_keys_secret, "key": key, "optional": True}}}
        )
    return env


def _profile_env(run: RunSettings | None) -> list[Manifest]:
    """EVAL_PROFILE only for a run with a profile (the evaluator reads it; none: every case)."""
    return [{"name": "EVAL_PROFILE", "value": run.profile}] if run is not None and run.profile else []


def evaluator_container(
    s: StackSettings, name: str, command: list[str], env: list[Manifest], suite_volume: bool = True
) -> Manifest:
    mounts = [{"name": "suite", "mountPath": SUITE_MOUNT, "readOnly": True}] if suite_volume else []
    return {
        "name": name,
        "image": s.eval.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        # DeepEval writes its `.deepeval/` folder into the working directory; the root filesystem is read-only.
        "workingDir": "/tmp",
        "env": env,
        # CPU and memory only: the evaluator calls models over HTTP and never needs a GPU.
        "resources": {
            "requests": {"cpu": s.eval.cpu, "memory": s.eval.memory},
            "limits": {"cpu": s.eval.cpu, "memory": s.eval.memory},
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            *mounts,
            {"name": "results", "mountPath": RESULTS_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def evaluator_pod(
    s: StackSettings,
    suite_volume: Manifest | None,
    containers: list[Manifest],
    init: list[Manifest],
) -> Manifest:
    volumes = [suite_volume] if suite_volume else []
    spec: Manifest = {
        "restartPolicy": "Never",
        "serviceAccountName": EVAL_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(EVALUATOR_UID),
        "containers": containers,
        "volumes": [
            *volumes,
            {"name": "results", "persistentVolumeClaim": {"claimName": "eval-results"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if init:
        spec["initContainers"] = init
    return spec


QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# pulumi-kubernetes: a Job that failed in an earlier `up` is replaced on the next one, not awaited again.
REPLACE_UNREADY = {"pulumi.com/replaceUnready": "true"}


def job_metadata(s: StackSettings, name: str, job_labels: dict[str, str]) -> Manifest:
    """A run's Job: checkov's accepted findings, replaceUnready for `pulumi up`, and the Kueue queue when set."""
    meta = object_meta(name, s.namespace, "evaluator", skips(*JOB_SKIPS) | REPLACE_UNREADY)
    meta["labels"] = dict(job_labels)
    if s.eval.queue_name:
        meta["labels"][QUEUE_LABEL] = s.eval.queue_name
    return meta


def queued(s: StackSettings, spec: Manifest) -> Manifest:
    """Under Kueue a Job is created suspended; Kueue unsuspends it once its queue admits it (Kueue's own webhook
    would suspend it anyway: created so, no pod can start before admission)."""
    return {"suspend": True, **spec} if s.eval.queue_name else spec


JOB_SKIPS = (
    ("CKV_K8S_35", WHY_SECRET_ENV),
    ("CKV_K8S_43", WHY_TAG_NOT_DIGEST),
    ("CKV_K8S_15", WHY_PULL_POLICY),
)
# Before any shard starts: the results folder of a run id belongs to one image. A run id rendered again with
# another image must not resume (and so report as its own) the shards the first image finished. The first
# pod records its image atomically (link of a complete temp file), every pod compares; a mismatch exits 2,
# which the podFailurePolicy turns into FailJob at once. Python from the evaluator image: it has no shell.
RUN_GUARD_SCRIPT = """\
import os, sys, tempfile
out, image, run = os.environ["EVAL_OUT_DIR"], os.environ["EVAL_IMAGE"], os.environ["EVAL_RUN_ID"]
os.makedirs(out, exist_ok=True)
marker = os.path.join(out, "run-image")
fd, temp = tempfile.mkstemp(dir=out, prefix=".run-image.")
with os.fdopen(fd, "w") as handle:
    handle.write(image + "\\n")
    handle.flush()
    os.fsync(handle.fileno())
try:
    os.link(temp, marker)
except FileExistsError:
    pass
finally:
    os.unlink(temp)
with open(marker) as handle:
    recorded = handle.read().strip()
if recorded != image:
    print(f"{marker}: run {run} was evaluated by image {recorded}; this pod runs another image, {image}: its "
          f"finished shards would be reported as this image's. Render the run with a new --run-id, or delete "
          f"{out} from the results volume first.", file=sys.stderr)
    sys.exit(2)
print(f"{marker}: run {run}, image {image}")
"""


def run_guard_container(s: StackSettings, env: list[Manifest]) -> Manifest:
    container = evaluator_container(s, "run-guard", ["python", "-c", RUN_GUARD_SCRIPT], env, suite_volume=False)
    small = {"cpu": "100m", "memory": "128Mi"}
    container["resources"] = {"requests": dict(small), "limits": dict(small)}
    return container


def eval_job_await_seconds(s: StackSettings) -> int:
    """How long `pulumi up` waits for a run's Job: its whole deadline, plus time to schedule and pull."""
    return s.eval.active_deadline_seconds + 600


def eval_job(
    s: StackSettings,
    run_id: str,
    commit: str,
    run: RunSettings | None = None,
    target_base_url: str | None = None,
    target_model: str | None = None,
    suite_volume: Manifest | None = None,
    timings_report: str | None = None,
) -> Manifest:
    """The Indexed Job of docs/contract.md: one pod per shard, exit codes mapped to podFailurePolicy."""
    shards = run_shards(s, run)
    # The folder itself, not `$(EVAL_OUT_DIR)`: no consumer of the YAML has to expand variable references.
    command = ["evaluator", "run", suite_path_in_pod(run), "--out", out_dir(run_id)]
    env = evaluator_env(
        s,
        run_id,
        commit,
        target_base_url or s.vllm_base_url,
        target_model or s.vllm.served_model_name,
        timings_path(s, timings_report),
        shards=shards,
        extra=_profile_env(run),
    )
    if suite_volume is None and run is not None and not run.suite_in_image:
        suite_volume = {
            "name": "suite",
            "configMap": {"name": suite_configmap_name(run_id), "items": suite_items(run)},
        }
    return indexed_job(
        s,
        eval_job_name(run_id),
        labels("evaluator", **{"ai-eval-factory/run-id": run_id}),
        command,
        env,
        suite_volume,
        completions=shards,
        parallelism=min(s.eval.parallelism, shards),
        max_failed_indexes=min(s.eval.max_failed_indexes, shards),
    )


def indexed_job(
    s: StackSettings,
    name: str,
    pod_labels: dict[str, str],
    command: list[str],
    env: list[Manifest],
    suite_volume: Manifest | None,
    completions: int | str,
    parallelism: int | str,
    max_failed_indexes: int | str,
) -> Manifest:
    """One shard per completion index; the run-guard first; exit codes mapped to the podFailurePolicy."""
    e = s.eval
    # Declared as the Job controller injects it (docs/contract.md): the index from the pod's annotation.
    index_env = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata(s, name, pod_labels),
        "spec": queued(
            s,
            {
                "completionMode": "Indexed",
                "completions": completions,
                "parallelism": parallelism,
                "backoffLimitPerIndex": e.backoff_limit_per_index,
                "maxFailedIndexes": max_failed_indexes,
                "activeDeadlineSeconds": e.active_deadline_seconds,
                "ttlSecondsAfterFinished": e.ttl_seconds_after_finished,
                "podFailurePolicy": {
                    "rules": [
                        # Evictions, preemption, node drains: not the shard's fault, do not count it.
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                        {
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": "run-guard",
                                "operator": "In",
                                "values": [EXIT_CONFIG_ERROR],
                            },
                        },
                        {
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": "evaluator",
                                "operator": "In",
                                "values": [EXIT_CONFIG_ERROR],
                            },
                        },
                        {
                            "action": "FailIndex",
                            "onExitCodes": {"containerName": "evaluator", "operator": "In", "values": [EXIT_BAD_SHARD]},
                        },
                    ]
                },
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": evaluator_pod(
                        s,
                        suite_volume,
                        [evaluator_container(s, "evaluator", command, [index_env, *env], suite_volume is not None)],
                        [run_guard_container(s, env)],
                    ),
                },
            },
        ),
    }


def aggregate_job(s: StackSettings, run_id: str, commit: str, run: RunSettings | None = None) -> Manifest:
    """Merge every shard, then judge: `aggregate` as the init container, `gate` as the result.

    Two containers instead of a shell `&&`, so the image needs no shell and each step keeps its exit code.
    The Job's success is the gate's verdict; it never retries (a failed gate is not transient). It reads only
    the results volume: the suite it needs is recorded in the shards' manifests.
    """
    out = out_dir(run_id)
    report = f"{out}/report.json"
    shards = run_shards(s, run)
    env = evaluator_env(s, run_id, commit, s.vllm_base_url, s.vllm.served_model_name, shards=shards)
    aggregate = ["evaluator", "aggregate", out, "--out", report, "--expect-shards", str(shards)]
    gate = ["evaluator", "gate", report, "--mode", s.eval.gate_mode]
    pod_labels = labels("evaluator", **{"ai-eval-factory/run-id": run_id})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_metadata(s, aggregate_job_name(run_id), pod_labels),
        "spec": queued(
            s,
            {
                "backoffLimit": 0,
                "activeDeadlineSeconds": AGGREGATE_DEADLINE_SECONDS,
                "ttlSecondsAfterFinished": s.eval.ttl_seconds_after_finished,
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": evaluator_pod(
                        s,
                        None,
                        [evaluator_container(s, "gate", gate, env, suite_volume=False)],
                        [evaluator_container(s, "aggregate", aggregate, env, suite_volume=False)],
                    ),
                },
            },
        ),
    }


COLLECTOR_DEADLINE_SECONDS = 900


def collector_pod_name(run_id: str) -> str:
    return f"collect-{run_id}"


def collector_pod(s: StackSettings, run_id: str) -> Manifest:
    """How a run's results leave the cluster by a path the namespace's admission accepts: a short-lived pod with the
    evaluator's own restricted security context and the results volume read-only, idle while `kubectl cp` copies
    /results/<run-id> off it (kubectl cp runs `tar` in the pod; the image has it). It ends itself after
    COLLECTOR_DEADLINE_SECONDS if nobody deletes it. A `kubectl run` pod without a security context is refused in
    a `restricted` namespace."""
    sleep = ["python", "-c", f"import time; time.sleep({COLLECTOR_DEADLINE_SECONDS})"]
    container = evaluator_container(s, "collect", sleep, [{"name": "HOME", "value": "/tmp"}], suite_volume=False)
    small = {"cpu": "100m", "memory": "128Mi"}
    container["resources"] = {"requests": dict(small), "limits": dict(small)}
    container["volumeMounts"] = [
        {"name": "results", "mountPath": RESULTS_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    spec = evaluator_pod(s, None, [container], [])
    spec["activeDeadlineSeconds"] = COLLECTOR_DEADLINE_SECONDS
    for volume in spec["volumes"]:
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["readOnly"] = True
    idle = "an idle pod that only hosts `kubectl cp` for a few minutes: nothing serves, nothing to probe"
    # JOB_SKIPS without CKV_K8S_35: this pod reads no credential.
    meta = object_meta(
        collector_pod_name(run_id),
        s.namespace,
        "evaluator",
        skips(*JOB_SKIPS[1:], ("CKV_K8S_8", idle), ("CKV_K8S_9", idle)),
    )
    meta["labels"]["ai-eval-factory/run-id"] = run_id
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def run_manifests(s: StackSettings, run: RunSettings, timings_report: str | None = None) -> list[Manifest]:
    """One run, applied in this order: suite, shards; then, once the shards are done, the aggregation; then, to
    bring the results off the cluster, the collector pod."""
    return [
        suite_configmap(s, run),
        eval_job(s, run.run_id, run.commit, run=run, timings_report=timings_report),
        aggregate_job(s, run.run_id, run.commit, run=run),
        collector_pod(s, run.run_id),
    ]
