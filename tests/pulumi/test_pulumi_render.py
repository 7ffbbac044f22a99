"""`render` output: valid for Kubernetes 1.33 (backoffLimitPerIndex GA) and the newest schemas that
kubernetes-validate ships (strict), Argo's WorkflowTemplate model, the policy rules, and checkov."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import rules
import yaml
from click.testing import CliRunner
from factory import evaluation, manifests, render
from factory.settings import load_stack
from pulumi_harness import DATASET_TEXT, PULUMI_DIR, SUITE_TEXT, write_suite

MIN_K8S = "1.33"
NEWEST_K8S = kubernetes_validate.utils.latest_version()
RUN_ID = "a1b2c3d4e5f6-0123456789ab"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev and prod, each with one run, rendered through the real CLI."""
    root = tmp_path_factory.mktemp("rendered")
    suite = write_suite(root)
    for stack in ("dev", "prod"):
        args = ["--stack", stack, "--out", str(root / stack), "--run-id", RUN_ID, "--commit", COMMIT]
        result = CliRunner().invoke(render.main, [*args, "--suite", str(suite)])
        assert result.exit_code == 0, result.output
    suite.unlink()
    return root


def docs(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(root.rglob("*.yaml")):
        (doc,) = list(yaml.safe_load_all(path.read_text()))
        out.append((path, doc))
    return out


# What Argo fills in for one branch of the fan-out (the plan step's output for a variant `cand`).
BRANCH_INPUTS = {"variant": "cand", "job": f"eval-{RUN_ID[:20]}-cand", "completions": "3", "parallelism": "2",
                 "max-failed-indexes": "1"}  # fmt: skip


def argo_embedded(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Jobs and ConfigMap inside an Argo WorkflowTemplate, placeholders filled as Argo would."""
    text_of = [t["resource"]["manifest"] for t in doc["spec"]["templates"] if "resource" in t]
    filled = [t.replace("{{workflow.parameters.run-id}}", RUN_ID[:20]) for t in text_of]
    filled = [t.replace("{{workflow.parameters.commit}}", COMMIT) for t in filled]
    filled = [t.replace("{{workflow.parameters.profile}}", "") for t in filled]
    suite_b64 = base64.b64encode(SUITE_TEXT.encode()).decode()
    filled = [t.replace("{{workflow.parameters.suite-b64}}", suite_b64) for t in filled]
    dataset_b64 = base64.b64encode(DATASET_TEXT.encode()).decode()
    filled = [t.replace("{{workflow.parameters.dataset-b64}}", dataset_b64) for t in filled]
    filled = [t.replace("{{workflow.parameters.dataset-path}}", "cases.jsonl") for t in filled]
    filled = [t.replace("{{workflow.parameters.image}}", "registry.example/evaluator:1") for t in filled]
    filled = [t.replace("{{workflow.parameters.suite-path}}", "/suite/suite.yaml") for t in filled]
    for name, value in BRANCH_INPUTS.items():
        filled = [t.replace("{{inputs.parameters." + name + "}}", value) for t in filled]
    assert not any("{{" in t for t in filled), filled
    return [yaml.safe_load(t) for t in filled]


def test_render_writes_every_group(rendered: Path) -> None:
    for stack in ("dev", "prod"):
        groups = {p.name for p in (rendered / stack).iterdir()}
        assert {"stack", "run"} <= groups
        run = sorted((rendered / stack / "run" / RUN_ID).iterdir())
        assert [p.name for p in run] == [
            f"010-configmap-suite-{RUN_ID}.yaml",
            f"020-job-eval-{RUN_ID}.yaml",
            f"030-job-aggregate-{RUN_ID}.yaml",
            f"040-pod-collect-{RUN_ID}.yaml",
        ]
    assert not any("kind: Secret" in p.read_text() for p in rendered.rglob("*.yaml"))  # never rendered
    assert (rendered / "prod" / "argo").is_dir() and not (rendered / "dev" / "argo").exists()
    assert not (rendered / "dev" / "stack" / "030-daemonset-nvidia-device-plugin.yaml").exists()


def test_rendered_files_are_the_builders_output(rendered: Path) -> None:
    s = load_stack(PULUMI_DIR, "prod")
    assert [d for _, d in docs(rendered / "prod" / "stack")] == manifests.long_lived(s)


@pytest.mark.parametrize("version", [MIN_K8S, NEWEST_K8S])
def test_every_manifest_validates_strictly(rendered: Path, version: str) -> None:
    checked = 0
    for path, doc in docs(rendered):
        objs = argo_embedded(doc) if doc["kind"] == "WorkflowTemplate" else [doc]
        for obj in objs:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path}: {'.'.join(map(str, exc.path))}: {exc.message} (k8s {version})")
            checked += 1
    assert checked >= 30


def test_strict_validation_rejects_a_misspelt_field() -> None:
    """The check can fail: an unknown Job field is refused in strict mode."""
    s = load_stack(PULUMI_DIR, "dev")
    job = evaluation.eval_job(s, "x", "0123456")
    job["spec"]["backofLimitPerIndex"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, MIN_K8S, strict=True)


def test_workflow_template_matches_argos_model(rendered: Path) -> None:
    """Round-trip through hera's models of Argo's API: an unknown field would be dropped and differ."""
    try:
        from hera.workflows.models import WorkflowTemplate
    except ImportError:
        pytest.fail("hera (Argo's API models) belongs to the `pulumi` extra of pyproject.toml: hera==7.1.0")

    (path,) = (rendered / "prod" / "argo").glob("*workflowtemplate*")
    doc = yaml.safe_load(path.read_text())
    model = WorkflowTemplate.model_validate(doc)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == doc
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    tasks = {t["name"]: t for t in templates[doc["spec"]["entrypoint"]]["dag"]["tasks"]}
    # prepare -> plan -> one branch per variant (withParam) -> the gates, once every branch has its report.
    assert tasks["plan"]["depends"] == "prepare"
    assert tasks["branches"]["depends"] == "plan"
    assert tasks["branches"]["withParam"] == "{{tasks.plan.outputs.parameters.branches}}"
    for gate in ("gate-alone", "gate-vs-reference"):
        assert tasks[gate]["depends"] == "branches.Succeeded || branches.Failed || branches.Errored"
    branch = {t["name"]: t for t in templates[tasks["branches"]["template"]]["dag"]["tasks"]}
    assert "evaluate.Failed" in branch["aggregate"]["depends"]
    (suite,) = [o for o in argo_embedded(doc) if o["kind"] == "ConfigMap"]
    assert base64.b64decode(suite["binaryData"]["suite.yaml"]).decode() == SUITE_TEXT
    (job,) = [o for o in argo_embedded(doc) if o["kind"] == "Job"]  # one template, created once per variant
    assert job["spec"]["completionMode"] == "Indexed" and job["metadata"]["name"] == BRANCH_INPUTS["job"]
    assert job["spec"]["completions"] == int(BRANCH_INPUTS["completions"])


def test_policy_rules_accept_every_rendered_object(rendered: Path) -> None:
    for path, doc in docs(rendered):
        stack = path.relative_to(rendered).parts[0]
        objs = [doc, *argo_embedded(doc)] if doc["kind"] == "WorkflowTemplate" else [doc]
        for obj in objs:
            assert rules.check_all(f"kubernetes:x:{obj['kind']}", obj, stack) == {}, path


def checkov() -> str:
    found = shutil.which("checkov") or str(Path(sys.executable).parent / "checkov")
    if not Path(found).exists():
        pytest.fail("checkov is part of the `pulumi` extra of pyproject.toml and must be installed")
    return found


def run_checkov(directory: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [checkov(), "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=240,
        # Offline: no guideline download, no platform mapping.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(proc.stdout)
    return report if isinstance(report, dict) else report[0]


def findings(report: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    return {(c["check_id"], c["file_path"]) for c in report["results"].get(kind, [])}


def test_checkov_has_no_unexplained_finding(rendered: Path, tmp_path: Path) -> None:
    """Zero failed checks; every suppression carries its reason and is needed (no stale skip)."""
    scan = tmp_path / "scan"
    shutil.copytree(rendered, scan)
    # Argo's embedded Jobs are scanned as the Jobs they become.
    for path, doc in docs(rendered):
        if doc["kind"] == "WorkflowTemplate":
            for i, obj in enumerate(argo_embedded(doc)):
                (scan / f"argo-embedded-{path.parent.parent.name}-{i}.yaml").write_text(
                    yaml.safe_dump(obj, width=1 << 20)
                )
    report = run_checkov(scan)
    assert not findings(report, "failed_checks"), report["results"]["failed_checks"]
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(c["check_result"].get("suppress_comment", "").strip() for c in skipped)
    assert report["summary"]["passed"] > 300
    # Without the annotations, exactly the suppressed findings come back.
    for path in scan.rglob("*.yaml"):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if "checkov.io/skip" not in line))
    bare = run_checkov(scan)
    assert findings(bare, "failed_checks") == findings(report, "skipped_checks")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--run-id", "Bad_ID", "--commit", COMMIT], "--run-id: 'Bad_ID' must be lowercase"),
        (["--run-id", "ok", "--commit", "HEAD"], "--commit: 'HEAD' must be a git commit hash"),
        (["--run-id", "ok"], "a run needs all of --run-id, --commit and --suite"),
    ],
)
def test_render_rejects_bad_run_arguments(tmp_path: Path, extra: list[str], message: str) -> None:
    suite = write_suite(tmp_path)
    args = ["--stack", "dev", "--out", str(tmp_path / "out"), *extra]
    if "--commit" in extra:
        args += ["--suite", str(suite)]
    result = CliRunner().invoke(render.main, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_run_image_overrides_the_stack_and_the_launch_facts_read_the_rendered_run(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    image = f"registry.example:5000/ai-eval-factory/evaluator:{COMMIT}"
    args = ["--stack", "prod", "--out", str(tmp_path / "out"), "--run-id", RUN_ID, "--commit", COMMIT]
    result = CliRunner().invoke(render.main, [*args, "--suite", str(suite), "--image", image])
    assert result.exit_code == 0, result.output
    run_docs = [d for _, d in docs(tmp_path / "out" / "run")]
    jobs = [d for d in run_docs if d["kind"] == "Job"]
    assert {c["image"] for j in jobs for c in j["spec"]["template"]["spec"]["containers"]} == {image}
    stack_images = {c["image"] for _, d in docs(tmp_path / "out" / "stack") for c in _containers(d)}
    assert image not in stack_images  # the long-lived objects keep the stack's config
    plan = json.loads((tmp_path / "out" / "run" / f"{RUN_ID}.json").read_text())
    settings = load_stack(PULUMI_DIR, "prod")
    assert plan["namespace"] == settings.namespace
    assert (plan["eval_job"], plan["aggregate_job"]) == (f"eval-{RUN_ID}", f"aggregate-{RUN_ID}")
    assert plan["completions"] == settings.eval.shards
    assert plan["results_claim"] == "eval-results"
    assert plan["image"] == image


def test_a_floating_run_image_is_refused(tmp_path: Path) -> None:
    suite = write_suite(tmp_path)
    args = ["--stack", "dev", "--out", str(tmp_path / "o"), "--run-id", "r1", "--commit", COMMIT]
    result = CliRunner().invoke(render.main, [*args, "--suite", str(suite), "--image", "evaluator:latest"])
    assert result.exit_code == 2
    assert "--image: 'evaluator:latest' must be pinned" in result.output


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if isinstance(spec, dict) else {}
    return list(pod.get("containers", []))


def test_render_names_the_file_and_field_of_a_bad_stack(tmp_path: Path) -> None:
    text = (PULUMI_DIR / "Pulumi.dev.yaml").read_text().replace("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai")
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    result = CliRunner().invoke(
        render.main, ["--stack", "dev", "--out", str(tmp_path / "o"), "--project-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"{tmp_path / 'Pulumi.dev.yaml'}: vllm.image: image 'vllm/vllm-openai' must be pinned" in result.output


def test_stack_files_hold_no_plaintext_secret() -> None:
    for stack in ("dev", "prod"):
        config = yaml.safe_load((PULUMI_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
        for key, value in config.items():
            name = key.split(":", 1)[1]
            if rules._SECRET_NAME.search(name):
                assert isinstance(value, dict) and set(value) == {"secure"}, f"{stack}: {key} must be a secret"
        assert "hf_" not in json.dumps(config)
