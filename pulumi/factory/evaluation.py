"""One evaluation run: the suite's ConfigMap, the Indexed Job of docs/contract.md (run-guard and wait first), the
aggregation Job, and the order they are applied in. Plain data (dicts), no Pulumi import."""

from __future__ import annotations

import posixpath

from factory.evaluator_pods import (
    JOB_SKIPS,
    RESULTS_MOUNT,
    SUITE_KEY,
    SUITE_MOUNT,
    evaluator_container,
    evaluator_env,
    evaluator_pod,
    out_dir,
)
from factory.objects import (
    Manifest,
    labels,
    object_meta,
    skips,
)
from factory.preflight import run_guard_container, wait_container
from factory.results import collector_pod, upload_containers
from factory.settings import RunSettings, StackSettings

# The evaluator's exit codes (docs/contract.md) and what the Job does with them.
EXIT_CONFIG_ERROR = 2  # FailJob: every shard would fail the same way
EXIT_BAD_SHARD = 3  # FailIndex: retrying this shard cannot help
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
AGGREGATE_DEADLINE_SECONDS = 900
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# pulumi-kubernetes: a Job that failed in an earlier `up` is replaced on the next one, not awaited again.
REPLACE_UNREADY = {"pulumi.com/replaceUnready": "true"}


def suite_configmap_name(run_id: str) -> str:
    return f"suite-{run_id}"


def eval_job_name(run_id: str) -> str:
    return f"eval-{run_id}"


def aggregate_job_name(run_id: str) -> str:
    return f"aggregate-{run_id}"


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


def _profile_env(run: RunSettings | None) -> list[Manifest]:
    """EVAL_PROFILE only for a run with a profile (the evaluator reads it; none: every case)."""
    return [{"name": "EVAL_PROFILE", "value": run.profile}] if run is not None and run.profile else []


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
                        [run_guard_container(s, env), *wait_container(s)],
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
                        [
                            evaluator_container(s, "aggregate", aggregate, env, suite_volume=False),
                            *upload_containers(s, run_id, report),
                        ],
                    ),
                },
            },
        ),
    }


def run_manifests(s: StackSettings, run: RunSettings, timings_report: str | None = None) -> list[Manifest]:
    """One run, applied in this order: suite, shards; then, once the shards are done, the aggregation; then, to
    bring the results off the cluster, the collector pod."""
    return [
        suite_configmap(s, run),
        eval_job(s, run.run_id, run.commit, run=run, timings_report=timings_report),
        aggregate_job(s, run.run_id, run.commit, run=run),
        collector_pod(s, run.run_id),
    ]
