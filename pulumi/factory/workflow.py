"""Argo Workflows: the `eval-release` WorkflowTemplate that fans a run out over the suite's variants (prepare,
plan, one Indexed Job and report per variant, the gates) and the RBAC its pods need."""

from __future__ import annotations

import dataclasses
import posixpath
import re
from pathlib import Path

import yaml

from factory import fanout
from factory.evaluation import indexed_job, timings_path
from factory.evaluator_pods import (
    RESULTS_MOUNT,
    SUITE_KEY,
    SUITE_MOUNT,
    evaluator_container,
    evaluator_env,
    evaluator_pod,
)
from factory.objects import Manifest, labels, network_policy, object_meta
from factory.settings import DATASET_KEY, StackSettings

ARGO_RUN_ID = "{{workflow.parameters.run-id}}"
ARGO_COMMIT = "{{workflow.parameters.commit}}"
ARGO_PROFILE = "{{workflow.parameters.profile}}"
ARGO_DATASET_PATH = "{{workflow.parameters.dataset-path}}"
ARGO_RESULTS = f"{RESULTS_MOUNT}/{ARGO_RUN_ID}"  # the run's folder: its G-Eval steps, a folder and a report per variant
ARGO_SERVICE_ACCOUNT = "argo-eval"
ARGO_IMAGE = "{{workflow.parameters.image}}"  # the evaluator image a release built: every step and branch Job runs it
ARGO_SUITE_PATH = "{{workflow.parameters.suite-path}}"
# Argo hands each step its resolved template in one environment variable (ARGO_TEMPLATE), which the kernel caps at
# MAX_ARG_STRLEN (128 KiB): the prepare step's template carries the dataset base64-encoded (4/3 of its size), so an
# inline dataset must stay well below that. Larger: bake the suite into the image (-p image, -p suite-path).
INLINE_DATASET_LIMIT = 64 * 1024
# Where the plan step writes Argo's output parameters: on the pod's writable /tmp (the root is read-only).
PLAN_OUTPUTS = "/tmp/plan"
PLAN_OUTPUT_NAMES = ("branches", "reference", "gate-alone", "gate-vs-reference")
# One branch (one variant's Indexed Job), as the plan step describes it in each item of `branches`.
BRANCH_INPUTS = ("variant", "job", "completions", "parallelism", "max-failed-indexes")
# Integer fields of the branch's Job manifest filled in by Argo: unquoted in the YAML text, so that they are
# numbers once substituted (a quoted '3' would be a string, which the API server refuses for completions).
_ARGO_INT = "=argo-int="


def job_conditions(s: StackSettings) -> tuple[str, str]:
    """(failureCondition, successCondition) of a branch's `evaluate` step.

    Argo's resource conditions are label selectors over gjson paths, so a condition cannot be looked up by type;
    they look at the Job's first verdict instead: FailureTarget/Failed or SuccessCriteriaMet/Complete. So a FailJob
    (exit 2) ends the step within seconds, not at its deadline, and success needs no shard count. Without Kueue the
    verdict is the Job's first condition. Under Kueue (eval.queueName) the Job is created suspended: the Job
    controller's `Suspended` condition comes first and stays there (set to False when Kueue admits the Job), so
    the verdict is the second.
    """
    i = 1 if s.eval.queue_name else 0
    return (
        f"status.conditions.{i}.type in (FailureTarget,Failed)",
        f"status.conditions.{i}.type in (SuccessCriteriaMet,Complete)",
    )


def _input(name: str) -> str:
    return "{{inputs.parameters." + name + "}}"


def _input_parameters(*names: str) -> Manifest:
    return {"parameters": [{"name": n} for n in names]}


def _passing(*names: str, source: str = "inputs.parameters") -> Manifest:
    return {"parameters": [{"name": n, "value": "{{" + f"{source}.{n}" + "}}"} for n in names]}


class _PlainDumper(yaml.SafeDumper):
    """No `&id001` anchors where builders share a dict (labels): plain YAML for the API server and for humans."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _manifest_text(obj: Manifest) -> str:
    """A resource template's manifest: YAML with Argo placeholders, the integer ones left unquoted."""
    text = yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, width=1 << 20)
    text = re.sub(rf"'?{_ARGO_INT}(\{{\{{[^'\n]*\}}\}})'?", r"\1", text)
    assert _ARGO_INT not in text, text
    return text


def argo_rbac(s: StackSettings) -> list[Manifest]:
    """What the workflow's pods may do: create the run's ConfigMap and Jobs, report their results to Argo."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(ARGO_SERVICE_ACCOUNT, s.namespace, "argo-eval"),
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(ARGO_SERVICE_ACCOUNT, s.namespace, "argo-eval"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ARGO_SERVICE_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": ARGO_SERVICE_ACCOUNT, "namespace": s.namespace}],
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(ARGO_SERVICE_ACCOUNT, s.namespace, "argo-eval"),
    }
    return [account, role, binding]


def branch_job(s: StackSettings, suite_volume: Manifest) -> Manifest:
    """One variant's Indexed Job (the `evaluate` step of a branch): the run's id, this variant only, its own
    folder, the run's G-Eval steps; name, completions, parallelism and maxFailedIndexes from the plan step."""
    variant = _input("variant")
    out = f"{ARGO_RESULTS}/{variant}"
    shards = _input("completions")
    env = evaluator_env(
        s,
        ARGO_RUN_ID,
        ARGO_COMMIT,
        s.vllm_base_url,
        s.vllm.served_model_name,
        timings_path(s),
        shards=shards,
        out=out,
        extra=[
            {"name": "EVAL_VARIANT", "value": variant},
            {"name": "EVAL_STEPS_DIR", "value": ARGO_RESULTS},
            {"name": "EVAL_PROFILE", "value": ARGO_PROFILE},
        ],
    )
    pod_labels = labels("evaluator", **{"ai-eval-factory/run-id": ARGO_RUN_ID, "ai-eval-factory/variant": variant})
    return indexed_job(
        s,
        _input("job"),
        pod_labels,
        ["evaluator", "run", ARGO_SUITE_PATH, "--out", out],
        env,
        suite_volume,
        completions=_ARGO_INT + shards,
        parallelism=_ARGO_INT + _input("parallelism"),
        max_failed_indexes=_ARGO_INT + _input("max-failed-indexes"),
    )


def _argo_step(s: StackSettings, name: str, container: Manifest, suite_volume: Manifest | None = None) -> Manifest:
    """A container template as an evaluator pod: no API token (so Argo's executor runs as the workflow account,
    which may write `workflowtaskresults`), the results volume, the evaluator's pod security."""
    pod = evaluator_pod(s, suite_volume, [container], [])
    return {
        "name": name,
        "metadata": {"labels": labels("evaluator")},
        "securityContext": pod["securityContext"],
        "automountServiceAccountToken": False,
        "executor": {"serviceAccountName": ARGO_SERVICE_ACCOUNT},
        "volumes": pod["volumes"],
        "container": container,
    }


def _argo_env(s: StackSettings, out: str) -> list[Manifest]:
    return evaluator_env(
        s,
        ARGO_RUN_ID,
        ARGO_COMMIT,
        s.vllm_base_url,
        s.vllm.served_model_name,
        out=out,
        extra=[{"name": "EVAL_PROFILE", "value": ARGO_PROFILE}],
    )


def plan_step(s: StackSettings, suite_volume: Manifest) -> Manifest:
    """`evaluator prepare --json` (the suite, dataset and profile checked once, the run's G-Eval steps written once
    into the run's folder) through factory/fanout.py, which turns its plan into Argo's output parameters."""
    e = s.eval
    command = [
        "python",
        "-c",
        Path(fanout.__file__).read_text(encoding="utf-8"),
        "--outputs", PLAN_OUTPUTS,
        "--shards", str(e.shards),
        "--sharding", e.sharding,
        "--parallelism", str(e.parallelism),
        "--max-failed-indexes", str(e.max_failed_indexes),
        "--",
        "evaluator", "prepare", ARGO_SUITE_PATH, "--out", ARGO_RESULTS, "--json",
    ]  # fmt: skip
    container = evaluator_container(s, "plan", command, _argo_env(s, ARGO_RESULTS), suite_volume=True)
    step = _argo_step(s, "plan", container, suite_volume)
    step["outputs"] = {
        "parameters": [{"name": n, "valueFrom": {"path": f"{PLAN_OUTPUTS}/{n}"}} for n in PLAN_OUTPUT_NAMES]
    }
    return step


def workflow_template(s: StackSettings) -> Manifest:
    """Seed 000 section 11 as a DAG: the suite's ConfigMap, the plan, one branch per variant (`withParam`: its
    Indexed Job, then its own report), then the gates: each variant against the reference's report.

    Every branch runs the same builders as the kubectl path (the Job, the run-guard, the pod security) with the
    run's id, `EVAL_VARIANT`, its own folder `<run>/<variant>/`, and the run's G-Eval steps (`EVAL_STEPS_DIR`).
    A single-variant suite is one branch, gated alone exactly as the kubectl path gates its report.
    """
    s = dataclasses.replace(s, eval=dataclasses.replace(s.eval, image=ARGO_IMAGE))
    failed, succeeded = job_conditions(s)
    suite_name = f"suite-{ARGO_RUN_ID}"
    suite_cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": suite_name, "namespace": s.namespace, "labels": labels("evaluator")},
        # base64: a one-line parameter survives Argo's text substitution into this YAML unchanged.
        "binaryData": {
            SUITE_KEY: "{{workflow.parameters.suite-b64}}",
            DATASET_KEY: "{{workflow.parameters.dataset-b64}}",
        },
    }
    suite_volume = {
        "name": "suite",
        "configMap": {
            "name": suite_name,
            "items": [{"key": SUITE_KEY, "path": SUITE_KEY}, {"key": DATASET_KEY, "path": ARGO_DATASET_PATH}],
        },
    }
    variant = _input("variant")
    report = f"{ARGO_RESULTS}/{variant}.json"
    aggregate = ["evaluator", "aggregate", f"{ARGO_RESULTS}/{variant}", "--out", report]
    aggregate += ["--expect-shards", _input("completions")]
    gate = ["evaluator", "gate", report]
    mode = ["--mode", s.eval.gate_mode]
    baseline = ["--baseline", f"{ARGO_RESULTS}/{_input('reference')}.json"]
    env = _argo_env(s, ARGO_RESULTS)
    done = "branches.Succeeded || branches.Failed || branches.Errored"
    templates: list[Manifest] = [
        {
            "name": "main",
            "dag": {
                # One failed branch must stop neither the other branches nor the verdicts: every report is
                # written and every gate prints why. Argo decides a DAG's phase by its target tasks only (the leaves
                # by default: here the gates), so the branches are targets too: a failed branch fails the workflow.
                "failFast": False,
                "target": "branches gate-alone gate-vs-reference",
                "tasks": [
                    {"name": "prepare", "template": "prepare"},
                    {"name": "plan", "template": "plan", "depends": "prepare"},
                    {
                        "name": "branches",
                        "template": "branch",
                        "depends": "plan",
                        "withParam": "{{tasks.plan.outputs.parameters.branches}}",
                        "arguments": _passing(*BRANCH_INPUTS, source="item"),
                    },
                    {
                        "name": "gate-alone",
                        "template": "gate-alone",
                        "depends": done,
                        "withParam": "{{tasks.plan.outputs.parameters.gate-alone}}",
                        "arguments": {"parameters": [{"name": "variant", "value": "{{item}}"}]},
                    },
                    {
                        "name": "gate-vs-reference",
                        "template": "gate-vs-reference",
                        "depends": done,
                        "withParam": "{{tasks.plan.outputs.parameters.gate-vs-reference}}",
                        "arguments": {
                            "parameters": [
                                {"name": "variant", "value": "{{item}}"},
                                {"name": "reference", "value": "{{tasks.plan.outputs.parameters.reference}}"},
                            ]
                        },
                    },
                ],
            },
        },
        {
            "name": "prepare",
            # Owned by the Workflow: deleted with it (spec.ttlStrategy), so per-run ConfigMaps do not pile up.
            "resource": {
                "action": "apply",
                "setOwnerReference": True,
                "manifest": yaml.safe_dump(suite_cm, sort_keys=False),
            },
        },
        plan_step(s, suite_volume),
        {
            "name": "branch",
            "inputs": _input_parameters(*BRANCH_INPUTS),
            "dag": {
                "failFast": False,
                # `aggregate` runs after a failed Job too, and succeeds; as the only leaf it would make the branch
                # Succeeded (Argo's rule): the Job's own result counts as well.
                "target": "evaluate aggregate",
                "tasks": [
                    {"name": "evaluate", "template": "evaluate", "arguments": _passing(*BRANCH_INPUTS)},
                    {
                        "name": "aggregate",
                        "template": "aggregate",
                        # Aggregate whatever the shards left, even after a failed Job: the report names the gaps.
                        "depends": "evaluate.Succeeded || evaluate.Failed || evaluate.Errored",
                        "arguments": _passing("variant", "completions"),
                    },
                ],
            },
        },
        {
            "name": "evaluate",
            "inputs": _input_parameters(*BRANCH_INPUTS),
            # Backstop only: a failed Job matches failureCondition within seconds.
            "activeDeadlineSeconds": s.eval.active_deadline_seconds + 300,
            "resource": {
                "action": "create",
                "setOwnerReference": True,
                "successCondition": succeeded,
                "failureCondition": failed,
                "manifest": _manifest_text(branch_job(s, suite_volume)),
            },
        },
        _argo_step(s, "aggregate", evaluator_container(s, "aggregate", aggregate, env, suite_volume=False))
        | {"inputs": _input_parameters("variant", "completions")},
        # The one variant of a single-variant suite: its own gate, as the kubectl path's aggregate Job judges it.
        _argo_step(s, "gate-alone", evaluator_container(s, "gate", [*gate, *mode], env, suite_volume=False))
        | {"inputs": _input_parameters("variant")},
        # Several variants: each against the reference branch's report (the reference itself then answers for
        # its own problems and error budget; under `absolute` also for its thresholds).
        _argo_step(
            s, "gate-vs-reference", evaluator_container(s, "gate", [*gate, *baseline, *mode], env, suite_volume=False)
        )
        | {"inputs": _input_parameters("variant", "reference")},
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": object_meta("eval-release", s.namespace, "evaluator"),
        "spec": {
            "entrypoint": "main",
            "serviceAccountName": ARGO_SERVICE_ACCOUNT,
            "arguments": {
                "parameters": [
                    {"name": "run-id", "description": "DNS-label run id, e.g. <suite-hash[:12]>-<commit[:12]>"},
                    {"name": "commit", "description": "the git commit under evaluation"},
                    {"name": "suite-b64", "description": "the suite YAML, base64-encoded (base64 -w0 suite.yaml)"},
                    {"name": "dataset-path", "description": "the suite's `dataset` value (relative to the suite)"},
                    {
                        "name": "dataset-b64",
                        "description": "that dataset file, base64-encoded (base64 -w0; at most "
                        f"{INLINE_DATASET_LIMIT // 1024} KiB of dataset: each step's template travels in one "
                        "environment variable; larger: bake the suite into the image, see suite-path)",
                    },
                    {"name": "image", "description": "the evaluator image to run, pullable by the cluster"},
                    {
                        "name": "suite-path",
                        "value": posixpath.join(SUITE_MOUNT, SUITE_KEY),
                        "description": "the suite inside the pods: the one given above (default), or one baked into "
                        "the image",
                    },
                    {
                        "name": "profile",
                        "value": "",
                        "description": "the suite's profile selecting the cases (EVAL_PROFILE); empty: every case",
                    },
                ]
            },
            "podGC": {"strategy": "OnWorkflowSuccess"},
            # The Workflow, and with it what it owns (the run's ConfigMap, its Jobs), goes after this long; the
            # results stay on the volume.
            "ttlStrategy": {"secondsAfterCompletion": s.eval.ttl_seconds_after_finished},
            "templates": templates,
        },
    }


def argo_executor_egress(s: StackSettings) -> Manifest:
    """The workflow's own pods (labelled by Argo) also run Argo's executor, which reports to the API server: on top of
    the evaluator's egress (NetworkPolicies add up), the API server's ports. The branch Jobs' pods carry no such label:
    they keep the evaluator's egress only."""
    workflow_pods = {"matchExpressions": [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]}
    api_server = [{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}]
    return network_policy(
        "argo-executor-egress", s.namespace, "argo-eval", workflow_pods, ["Egress"], egress=api_server
    )


def argo(s: StackSettings) -> list[Manifest]:
    return [*argo_rbac(s), argo_executor_egress(s), workflow_template(s)]
