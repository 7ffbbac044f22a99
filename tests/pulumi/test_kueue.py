"""Opt-in Kueue for a shared GPU cluster: queue-labelled Jobs created suspended, Argo conditions that look past the
`Suspended` condition, and the LocalQueue/ClusterQueue/ResourceFlavor `render` can emit, valid against Kueue's CRD
schemas (tests/pulumi/kueue_schemas.py, transcribed from upstream)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from factory import evaluation, kueue, render, workflow
from factory.settings import SettingsError, parse
from kueue_schemas import SCHEMAS, check_cel
from pulumi_harness import PULUMI_DIR, stack_config
from test_cluster_seams import _job_status, argo_condition_matches

KUEUE = {
    "emitQueues": True,
    "clusterQueue": "gpu-team",
    "quota": {"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "4"},
}


def queued_settings(**kueue_config: Any) -> Any:
    config = stack_config("prod")
    config["eval"] = dict(config["eval"], queueName="eval-queue")
    config["kueue"] = kueue_config or KUEUE
    return parse(config, "prod", "Pulumi.prod.yaml")


def valid(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMAS[obj["kind"]])
    return [e.message for e in validator.iter_errors(obj)] + check_cel(obj)


def test_the_schemas_refuse_what_kueue_refuses() -> None:
    good = kueue.queues(queued_settings())
    assert all(valid(o) == [] for o in good)
    flavor, cq, lq = copy.deepcopy(good)
    lq["spec"]["clusterQueues"] = "typo"  # unknown field: strict field validation refuses it
    assert valid(lq)
    del cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuota"]
    assert any("nominalQuota" in e for e in valid(cq))
    cq = copy.deepcopy(good[1])
    cq["spec"]["resourceGroups"][0]["coveredResources"].append("ephemeral-storage")
    assert "flavors must have the same number of resources as the coveredResources" in valid(cq)
    cq = copy.deepcopy(good[1])
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["borrowingLimit"] = "1"
    assert "borrowingLimit must be nil when cohort is empty" in valid(cq)
    flavor["metadata"]["namespace"] = "eval"  # cluster-scoped
    assert valid(flavor)


def test_render_emits_a_quota_for_the_factorys_namespace_only(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    doc = yaml.safe_load((PULUMI_DIR / "Pulumi.prod.yaml").read_text())
    doc["config"]["ai-eval-factory:eval"]["queueName"] = "eval-queue"
    doc["config"]["ai-eval-factory:kueue"] = KUEUE
    (project / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    groups = render.render("prod", tmp_path / "out", project)
    objs = [yaml.safe_load(p.read_text()) for p in groups["kueue"]]
    assert [o["kind"] for o in objs] == ["ResourceFlavor", "ClusterQueue", "LocalQueue"]
    for obj in objs:
        assert valid(obj) == [], obj
    flavor, cq, lq = objs
    assert cq["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "eval"}}
    assert lq["metadata"] == lq["metadata"] | {"name": "eval-queue", "namespace": "eval"}
    assert lq["spec"]["clusterQueue"] == cq["metadata"]["name"] == "gpu-team"
    (group,) = cq["spec"]["resourceGroups"]
    assert group["flavors"][0]["name"] == flavor["metadata"]["name"]
    assert {r["name"]: r["nominalQuota"] for r in group["flavors"][0]["resources"]}["nvidia.com/gpu"] == "4"


def test_queued_jobs_are_labelled_and_created_suspended_and_unqueued_ones_are_not() -> None:
    s = queued_settings()
    jobs = [evaluation.eval_job(s, "r1", "0123456"), evaluation.aggregate_job(s, "r1", "0123456")]
    (template,) = [o for o in workflow.argo(s) if o["kind"] == "WorkflowTemplate"]
    (evaluate,) = [t for t in template["spec"]["templates"] if t["name"] == "evaluate"]
    text = evaluate["resource"]["manifest"].replace("{{", "").replace("}}", "")
    jobs.append(yaml.safe_load(text))
    for job in jobs:
        assert job["metadata"]["labels"][evaluation.QUEUE_LABEL] == "eval-queue"
        assert job["spec"]["suspend"] is True
    plain = parse(stack_config("prod"), "prod", "Pulumi.prod.yaml")
    job = evaluation.eval_job(plain, "r1", "0123456")
    assert evaluation.QUEUE_LABEL not in job["metadata"]["labels"] and "suspend" not in job["spec"]


def suspended_first(*verdict: str) -> dict[str, Any]:
    """A Job created suspended, admitted by Kueue, then done: `Suspended` (now False) stays first."""
    status = _job_status(*verdict)
    status["status"]["conditions"].insert(0, {"type": "Suspended", "status": "False"})
    return status


@pytest.mark.parametrize("queued", [True, False])
def test_argos_conditions_find_the_verdict_behind_suspended(queued: bool) -> None:
    s = queued_settings() if queued else parse(stack_config("prod"), "prod", "Pulumi.prod.yaml")
    failure, success = workflow.job_conditions(s)
    status = suspended_first if queued else _job_status
    assert argo_condition_matches(failure, status("FailureTarget", "Failed"))
    assert argo_condition_matches(success, status("SuccessCriteriaMet", "Complete"))
    assert not argo_condition_matches(failure, status("SuccessCriteriaMet", "Complete"))
    assert not argo_condition_matches(success, status("FailureTarget", "Failed"))
    if queued:  # waiting in the queue: no verdict either way
        waiting = {"status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
        assert not argo_condition_matches(failure, waiting) and not argo_condition_matches(success, waiting)


def test_emitting_queues_needs_the_queue_name() -> None:
    config = stack_config("prod")
    config["kueue"] = KUEUE
    with pytest.raises(SettingsError, match=r"eval\.queueName: kueue\.emitQueues makes a LocalQueue"):
        parse(config, "prod", "Pulumi.prod.yaml")
