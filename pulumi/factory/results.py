"""How a run's results leave the cluster by paths the namespace's admission accepts: the collector pod that
`kubectl cp` reads through, and (opt-in, results.upload) the report's upload to S3-compatible object storage from
the aggregate Job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory import upload as upload_script
from factory.evaluator_pods import JOB_SKIPS, RESULTS_MOUNT, evaluator_container, evaluator_pod
from factory.objects import Manifest, object_meta, opaque_secret, skips
from factory.settings import StackSettings

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


UPLOAD_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def upload_key(s: StackSettings, run_id: str) -> str:
    assert s.eval.upload is not None
    return f"{s.eval.upload.prefix}/{run_id}/report.json".lstrip("/")


def upload_containers(s: StackSettings, run_id: str, report: str) -> list[Manifest]:
    """The aggregate Job's `upload` step (results.upload, opt-in): factory/upload.py's text, stdlib only, after
    `evaluator aggregate` wrote the report and before the gate judges it. A failed upload fails the Job."""
    upload = s.eval.upload
    if upload is None:
        return []
    env: list[Manifest] = [
        {"name": "EVAL_UPLOAD_FILE", "value": report},
        {"name": "EVAL_UPLOAD_ENDPOINT", "value": upload.endpoint},
        {"name": "EVAL_UPLOAD_BUCKET", "value": upload.bucket},
        {"name": "EVAL_UPLOAD_KEY", "value": upload_key(s, run_id)},
        {"name": "EVAL_UPLOAD_REGION", "value": upload.region},
        {"name": "HOME", "value": "/tmp"},
        *({"name": k, "valueFrom": {"secretKeyRef": {"name": upload.secret, "key": k}}} for k in UPLOAD_KEYS),
    ]
    command = ["python", "-c", Path(upload_script.__file__).read_text(encoding="utf-8")]
    return [evaluator_container(s, "upload", command, env, suite_volume=False, helper=True)]


def upload_secret(s: StackSettings, access_key_id: Any, secret_access_key: Any) -> Manifest:
    """Built only by `pulumi up` from `pulumi config set --secret reportUploadAccessKeyId/...SecretAccessKey`."""
    assert s.eval.upload is not None
    keys = dict(zip(UPLOAD_KEYS, (access_key_id, secret_access_key), strict=True))
    return opaque_secret(s.eval.upload.secret, s.namespace, "evaluator", keys)
