"""`python -m factory.render`: write a stack's manifests as plain YAML, one file per object.

For `kubectl apply` users, for the release pipeline (one run per commit: `--run-id/--commit/--suite`,
`--image` for the image built from that commit), and for the offline checks (kubernetes-validate, checkov).
A run also gets `run/<run-id>.json` beside its folder: what a launcher needs (namespace, Job names, shard
count, results claim) read from the rendered objects, so no script parses the manifests again. Reads the
same settings and builders as `pulumi up`; secrets are never rendered (the HF token Secret is created by
`pulumi up` or by hand).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click
import yaml

from factory import evaluation, kueue, manifests, objects, workflow
from factory.settings import (
    RunSettings,
    SettingsError,
    StackSettings,
    check_settings,
    image_is_pinned,
    load_stack,
)
from factory.suites import make_run

PROJECT_DIR = Path(__file__).resolve().parent.parent


class _NoAliasDumper(yaml.SafeDumper):
    """Plain YAML for humans and kubectl: no `&id001` anchors where builders share a dict."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def dump(obj: objects.Manifest) -> str:
    return yaml.dump(obj, Dumper=_NoAliasDumper, sort_keys=False, width=4096)


def file_name(index: int, obj: objects.Manifest) -> str:
    return f"{index:03d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write_group(out: Path, objs: list[objects.Manifest]) -> list[Path]:
    """One object per file, numbered so that `kubectl apply -f DIR` applies them in order."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.yaml"):
        stale.unlink()
    written = []
    for i, obj in enumerate(objs, start=1):
        path = out / file_name(i * 10, obj)
        path.write_text(dump(obj), encoding="utf-8")
        written.append(path)
    return written


def with_run_image(settings: StackSettings, image: str) -> StackSettings:
    """The stack names the evaluator image; a release run evaluates the image it just built."""
    if not image_is_pinned(image):
        raise SettingsError(f"--image: {image!r} must be pinned to a version tag or digest (never latest)")
    return dataclasses.replace(settings, eval=dataclasses.replace(settings.eval, image=image))


def launch_facts(objs: list[objects.Manifest], files: list[Path], run: RunSettings) -> dict[str, object]:
    """The launch facts (`run/<run-id>.json`): a rendered run's names and numbers, taken from its objects (suite
    ConfigMap, eval Job, aggregate Job) and, for what no object holds, from the evaluator's own plan of the run
    (variants, units)."""
    suite, eval_job, aggregate_job, collector = objs
    pod = eval_job["spec"]["template"]["spec"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    (evaluator,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in evaluator["env"]}
    return {
        "namespace": eval_job["metadata"]["namespace"],
        "suite_configmap": suite["metadata"]["name"],
        "eval_job": eval_job["metadata"]["name"],
        "aggregate_job": aggregate_job["metadata"]["name"],
        "completions": eval_job["spec"]["completions"],
        "results_claim": claims[0],
        "image": evaluator["image"],
        "files": [str(f) for f in files],
        # Added keys: where the run's files land on the results volume and what it evaluates.
        "results_dir": env["EVAL_OUT_DIR"],
        "report": f"{env['EVAL_OUT_DIR']}/report.json",
        "suite_path": evaluator["command"][2],
        "target_base_url": env["EVAL_TARGET_BASE_URL"],
        "target_model": env["EVAL_TARGET_MODEL"],
        "judge_base_url": env["EVAL_JUDGE_BASE_URL"],
        "judge_model": env["EVAL_JUDGE_MODEL"],
        "sharding": env["EVAL_SHARDING"],
        "timings": env.get("EVAL_TIMINGS"),
        "job_deadline_seconds": eval_job["spec"]["activeDeadlineSeconds"],
        # Added with variants and profiles: what the run evaluates (the Job's completions follow the units
        # under 'many' sharding).
        "profile": env.get("EVAL_PROFILE"),
        "variants": list(run.variants),
        "reference": run.reference,
        "units": run.units,
        # Added with the strict stand-ins: how to apply (server-side: a client-side apply copies the whole object
        # into an annotation capped at 256 KiB) and the pod that brings the results off the cluster.
        "apply": "kubectl apply --server-side",
        "collector_pod": collector["metadata"]["name"],
        "results_path_in_collector": env["EVAL_OUT_DIR"],
    }


def check_run_image(facts_path: Path, image: str) -> None:
    """A run id is evaluated by one image: refuse to render it again for another (stale shards would be
    resumed and reported as the new image's; the pods refuse too, see preflight.RUN_GUARD_SCRIPT)."""
    if not facts_path.is_file():
        return
    try:
        previous = json.loads(facts_path.read_text(encoding="utf-8")).get("image")
    except (OSError, ValueError):
        return
    if previous and previous != image:
        raise SettingsError(
            f"{facts_path}: image: run {facts_path.stem} was rendered for image {previous!r}, now {image!r}. "
            "A run id belongs to one image: pass a new --run-id (e.g. with the image's digest), or delete "
            f"{facts_path} and the run's folder on the results volume first"
        )


def render(
    stack: str,
    out: Path,
    project_dir: Path = PROJECT_DIR,
    run_id: str | None = None,
    commit: str | None = None,
    suite: Path | None = None,
    image: str | None = None,
    suite_in_image: str | None = None,
    timings_report: str | None = None,
    profile: str | None = None,
) -> dict[str, list[Path]]:
    """Render `stack/` (long-lived), `argo/` (when enabled) and `run/<run-id>/` (when a run is given)."""
    profile = profile or None  # empty, as the Argo template's default: every case
    settings = load_stack(project_dir, stack)
    groups = {"stack": write_group(out / "stack", manifests.long_lived(settings))}
    if settings.argo.enabled:
        groups["argo"] = write_group(out / "argo", workflow.argo(settings))
    if settings.kueue is not None and settings.kueue.emit_queues:
        groups["kueue"] = write_group(out / "kueue", kueue.queues(settings))
    run_args = (run_id, commit, suite, image, suite_in_image, timings_report, profile)
    if any(arg is not None for arg in run_args):
        if run_id is None or commit is None or suite is None:
            raise SettingsError("a run needs all of --run-id, --commit and --suite")
        run = make_run(run_id, commit, suite, suite_in_image, profile)
        run_settings = with_run_image(settings, image) if image is not None else settings
        if timings_report is not None:
            run_settings = dataclasses.replace(
                run_settings, eval=dataclasses.replace(run_settings.eval, timings_report=timings_report)
            )
            check_settings(run_settings, "--timings-report")
        facts_path = out / "run" / f"{run_id}.json"
        check_run_image(facts_path, run_settings.eval.image)
        objs = evaluation.run_manifests(run_settings, run)
        groups["run"] = write_group(out / "run" / run_id, objs)
        facts = launch_facts(objs, groups["run"], run)
        facts_path.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return groups


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stack", required=True, type=click.Choice(["dev", "prod"]), help="Pulumi stack whose config to use.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output dir.")
@click.option("--run-id", help="Render one evaluation run with this id (a DNS label, <= 40 characters).")
@click.option("--commit", help="The git commit the run evaluates.")
@click.option("--suite", type=click.Path(dir_okay=False, path_type=Path), help="The run's suite YAML.")
@click.option("--image", help="Evaluator image for this run (default: the stack's eval.image), e.g. built per commit.")
@click.option(
    "--suite-in-image",
    help="Absolute path of the suite inside --image, for datasets too large for the run's ConfigMap (1 MiB).",
)
@click.option(
    "--timings-report",
    help="A previous report on the results volume (relative to it) for 'balanced' sharding; default:"
    " the stack's eval.timingsReport.",
)
@click.option(
    "--profile",
    envvar="EVAL_PROFILE",
    help="The suite's profile selecting the run's cases (EVAL_PROFILE in the pods; default: every case). From the"
    " environment only when a run is rendered. [env: EVAL_PROFILE]",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=PROJECT_DIR,
    show_default=True,
    help="Folder holding Pulumi.<stack>.yaml.",
)
def main(
    stack: str,
    out: Path,
    run_id: str | None,
    commit: str | None,
    suite: Path | None,
    image: str | None,
    suite_in_image: str | None,
    timings_report: str | None,
    profile: str | None,
    project_dir: Path,
) -> None:
    """Write the manifests of STACK as YAML under OUT (stack/, argo/, kueue/, run/<run-id>/ and run/<run-id>.json)."""
    source = click.get_current_context().get_parameter_source("profile")
    if source == click.core.ParameterSource.ENVIRONMENT and run_id is None:
        profile = None  # a pipeline's EVAL_PROFILE selects a run's cases; a stack alone has none to select
    try:
        groups = render(stack, out, project_dir, run_id, commit, suite, image, suite_in_image, timings_report, profile)
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for name, paths in groups.items():
        click.echo(f"{name}: {len(paths)} object(s) in {paths[0].parent if paths else out / name}")
    if "run" in groups:
        run_dir = groups["run"][0].parent
        files = groups["run"]
        click.echo(
            f"launch: kubectl apply --server-side -f {files[0]} -f {files[1]}; wait for the Job to finish; then"
            f" kubectl apply --server-side -f {files[2]}; once it is done, kubectl apply --server-side -f {files[3]}"
            f" and kubectl cp the results off it (see pulumi/README.md, {run_dir})"
        )


if __name__ == "__main__":
    main()
