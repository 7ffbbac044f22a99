"""The Pulumi program: read the stack's config once, then declare the components on its own provider."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pulumi_kubernetes as k8s
from pulumi.runtime import config as pulumi_config

import pulumi
from factory import components
from factory.settings import PROJECT, RunSettings, SettingsError, StackSettings, parse
from factory.suites import make_run

_STRING_KEYS = ("environment", "kubeContext", "namespace")
_OBJECT_KEYS = ("devicePlugin", "modelCache", "results", "vllm", "eval", "argo", "gpuSmoke", "kueue")
_SECRET_KEYS = {"hfToken": None, "evalTargetApiKey": "EVAL_TARGET_API_KEY", "evalJudgeApiKey": "EVAL_JUDGE_API_KEY"}
_RUN_FIELDS = ("runId", "commit", "suiteFile", "profile")


def project_keys() -> list[str]:
    """Every `ai-eval-factory:` key the stack's config holds (the engine hands the program all of them)."""
    keys = set(pulumi_config.CONFIG.get()) | set(pulumi_config.get_config_env())
    return sorted(k.split(":", 1)[1] for k in keys if k.startswith(f"{PROJECT}:"))


def read_settings(config: pulumi.Config, stack: str) -> StackSettings:
    """The plain config, parsed by the same code `render` uses on Pulumi.<stack>.yaml; a key it does not know is
    refused there with a did-you-mean, so a typo never deploys silently."""
    raw: dict[str, Any] = {}
    for key in _STRING_KEYS:
        if (value := config.get(key)) is not None:
            raw[key] = value
    for key in _OBJECT_KEYS:
        if (obj := config.get_object(key)) is not None:
            raw[key] = obj
    for key in project_keys():
        raw.setdefault(key, None)  # secrets and evalRun are read elsewhere; anything else is unknown to parse
    return parse(raw, stack, f"Pulumi.{stack}.yaml ({PROJECT} config)")


def read_run(config: pulumi.Config, project_dir: Path) -> RunSettings | None:
    """An optional run owned by the stack (dev smoke runs); the release pipeline renders runs instead."""
    run = config.get_object("evalRun")
    if run is None:
        return None
    if not isinstance(run, dict) or not {"runId", "commit", "suiteFile"} <= run.keys():
        raise SettingsError(
            f"{PROJECT}:evalRun: expected {{runId, commit, suiteFile}} (and optionally profile), got {run!r}"
        )
    for key in sorted(set(run) - set(_RUN_FIELDS)):
        close = difflib.get_close_matches(key, _RUN_FIELDS, n=1)
        hint = f"; did you mean evalRun.{close[0]}?" if close else f" (known: {', '.join(_RUN_FIELDS)})"
        raise SettingsError(f"Pulumi.{pulumi.get_stack()}.yaml: evalRun.{key}: unknown key{hint}")
    profile = run.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise SettingsError(
            f"{PROJECT}:evalRun.profile: expected the name of one of the suite's profiles, got {profile!r}"
        )
    return make_run(
        str(run["runId"]),
        str(run["commit"]),
        project_dir / str(run["suiteFile"]),
        profile=profile or None,
        profile_source=f"{PROJECT}:evalRun.profile",
    )


def run_images_so_far(stack: str, run_id: str, image: str) -> pulumi.Output[dict[str, str]]:
    """Which image evaluated which stack-owned run id: this stack's own last outputs (a StackReference to
    itself), plus this run. A run id seen with another image stops `pulumi preview`/`up` before the Job is
    replaced: its results folder holds the first image's shards, which the new pods would resume."""
    name = f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"
    previous = pulumi.StackReference(f"{stack}-previous-outputs", stack_name=name).get_output("evalRunImages")

    def check(images: Any) -> dict[str, str]:
        images = dict(images) if isinstance(images, dict) else {}
        if images.get(run_id, image) != image:
            raise pulumi.RunError(
                f"Pulumi.{stack}.yaml: evalRun.runId: run {run_id} was evaluated by image {images[run_id]!r}; "
                f"eval.image is now {image!r}. A run id belongs to one image: set a new evalRun.runId."
            )
        return {**images, run_id: image}

    return previous.apply(check)


def deploy(project_dir: Path) -> dict[str, Any]:
    """Declare everything for the current stack; returns the components (for tests and exports)."""
    config = pulumi.Config()
    stack = pulumi.get_stack()
    s = read_settings(config, stack)
    # An explicit provider bound to the stack's kube context: nothing lands on the wrong cluster,
    # whatever the ambient KUBECONFIG's current context is.
    provider = k8s.Provider(f"k8s-{stack}", context=s.kube_context)
    opts = pulumi.ResourceOptions(provider=provider)
    out: dict[str, Any] = {"provider": provider, "settings": s}
    out["workspace"] = workspace = components.EvalWorkspace("workspace", s, opts)
    after_ns = pulumi.ResourceOptions(provider=provider, depends_on=[workspace])
    if s.device_plugin.enabled:
        out["device_plugin"] = components.GpuDevicePlugin("gpu-device-plugin", s, opts)
    out["model_cache"] = components.ModelCache("model-cache", s, after_ns)
    # vLLM after the device plugin that advertises its GPU (its pod checks the GPU before anything else).
    plugin = [out["device_plugin"]] if "device_plugin" in out else []
    out["vllm_after"] = vllm_after = [workspace, out["model_cache"], *plugin]
    out["vllm"] = vllm = components.VllmServer(
        "vllm",
        s,
        hf_token=config.get_secret("hfToken"),
        opts=pulumi.ResourceOptions(provider=provider, depends_on=vllm_after),
        api_key=config.get_secret("vllmApiKey"),
    )
    key_id, secret_key = config.get_secret("reportUploadAccessKeyId"), config.get_secret("reportUploadSecretAccessKey")
    if s.eval.upload is not None and key_id is not None and secret_key is not None:
        out["upload_credentials"] = components.ReportUploadCredentials("report-upload", s, key_id, secret_key, after_ns)
    keys = {env: value for key, env in _SECRET_KEYS.items() if env and (value := config.get_secret(key)) is not None}
    if keys:
        out["eval_keys"] = components.EvalApiKeys("eval-api-keys", s, keys, after_ns)
    if s.argo.enabled:
        out["argo"] = components.ArgoEvalTemplate("argo-eval", s, after_ns)
    run = read_run(config, project_dir)
    if run is not None:
        pulumi.export("evalRunImages", run_images_so_far(stack, run.run_id, s.eval.image))
        run_opts = pulumi.ResourceOptions(provider=provider, depends_on=[workspace, vllm])
        out["eval_job"] = job = components.EvalJob(f"eval-{run.run_id}", s, run, run_opts)
        out["eval_gate"] = components.EvalGate(f"gate-{run.run_id}", s, run, job, run_opts)
        pulumi.export("evalJob", job.job_name)
        pulumi.export("evalGateJob", out["eval_gate"].job_name)
    pulumi.export("namespace", workspace.namespace)
    pulumi.export("vllmService", vllm.service_name)
    pulumi.export("vllmBaseUrl", vllm.base_url)
    return out
