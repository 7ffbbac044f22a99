"""The policy pack's rules, called through pulumi_policy's own ResourceValidationPolicy.validate."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import rules
from factory import evaluation, inference, manifests
from factory.settings import RunSettings, load_stack
from pulumi_harness import PULUMI_DIR
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs

from tests.helpers import load_module

PACK: Any = load_module(PULUMI_DIR / "policy" / "__main__.py", "policy_main")  # the PolicyPack starts only as __main__
POLICIES = {p.name: p for p in PACK.policies()}


def violations(policy: str, obj: dict[str, Any], stack: str = "dev", config: dict[str, Any] | None = None) -> list[str]:
    kind = obj["kind"]
    group = obj["apiVersion"]
    args = ResourceValidationArgs(
        resource_type=f"kubernetes:{group}:{kind}",
        props=obj,
        urn=f"urn:pulumi:{stack}::ai-eval-factory::kubernetes:{group}:{kind}::{obj['metadata']['name']}",
        name=obj["metadata"]["name"],
        opts=PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
        provider=None,
        config=config or {},
    )
    found: list[str] = []
    POLICIES[policy].validate(args, lambda message, urn=None: found.append(message))
    return found


@pytest.fixture(scope="module")
def dev() -> Any:
    return load_stack(PULUMI_DIR, "dev")


def test_pack_declares_the_five_rules_as_mandatory() -> None:
    assert set(POLICIES) == {
        "images-pinned",
        "gpu-pods-declare-gpu",
        "probes-present",
        "no-load-balancer-in-dev",
        "no-plaintext-secrets",
    }
    assert all(p.enforcement_level.value == "mandatory" for p in POLICIES.values())
    assert (PULUMI_DIR / "policy" / "PulumiPolicy.yaml").is_file()


def test_the_stack_objects_pass(dev: Any) -> None:
    run = evaluation.eval_job(dev, "r1", "0123456")
    for obj in [*manifests.long_lived(dev), run, evaluation.aggregate_job(dev, "r1", "0123456")]:
        for name in POLICIES:
            assert violations(name, obj) == [], (name, obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("image", ["vllm/vllm-openai", "vllm/vllm-openai:latest", "registry:5000/vllm"])
def test_unpinned_images_are_refused(dev: Any, image: str) -> None:
    dep = inference.vllm_deployment(dev)
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
    assert violations("images-pinned", dep) == [
        f"container 'vllm': image {image!r} is not pinned to a version tag or digest"
    ]


def test_pinned_by_digest_or_registry_port_is_accepted(dev: Any) -> None:
    dep = inference.vllm_deployment(dev)
    for image in ["vllm/vllm-openai@sha256:" + "a" * 64, "registry:5000/vllm:v1"]:
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
        assert violations("images-pinned", dep) == []


def test_gpu_server_without_gpu_limit_is_refused(dev: Any) -> None:
    dep = inference.vllm_deployment(dev)
    res = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    del res["limits"]["nvidia.com/gpu"], res["requests"]["nvidia.com/gpu"]
    assert violations("gpu-pods-declare-gpu", dep) == [
        "container 'vllm': a GPU workload must set resources.limits['nvidia.com/gpu']"
    ]


def test_gpu_request_must_equal_limit(dev: Any) -> None:
    dep = inference.vllm_deployment(dev)
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "2"
    assert violations("gpu-pods-declare-gpu", dep) == [
        "container 'vllm': nvidia.com/gpu request (2) must equal its limit (1)"
    ]


def test_cpu_eval_worker_must_not_take_a_gpu(dev: Any) -> None:
    job = evaluation.eval_job(dev, "r1", "0123456")
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    assert violations("gpu-pods-declare-gpu", job) == [
        "container 'evaluator': a CPU worker (NVIDIA_VISIBLE_DEVICES=void) must not request nvidia.com/gpu"
    ]


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_missing_probe_is_refused(dev: Any, probe: str) -> None:
    dep = inference.vllm_deployment(dev)
    del dep["spec"]["template"]["spec"]["containers"][0][probe]
    assert violations("probes-present", dep) == [f"container 'vllm': {probe} is missing"]


def test_load_balancer_refused_in_dev_only(dev: Any) -> None:
    svc = inference.vllm_service(dev)
    svc["spec"]["type"] = "LoadBalancer"
    assert violations("no-load-balancer-in-dev", svc, stack="dev") == [
        "Service type LoadBalancer is not allowed in stack 'dev' (use ClusterIP or NodePort)"
    ]
    assert violations("no-load-balancer-in-dev", svc, stack="prod") == []
    assert violations("no-load-balancer-in-dev", svc, stack="prod", config={"forbiddenStacks": ["prod"]})


def test_plaintext_secrets_are_refused(dev: Any) -> None:
    dep = inference.vllm_deployment(dev)
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    hf = next(e for e in env if e["name"] == "HF_TOKEN")
    hf.pop("valueFrom")
    hf["value"] = "hf_" + "a" * 30
    assert violations("no-plaintext-secrets", dep) == ["container 'vllm': env HF_TOKEN holds a literal secret value"]
    run = RunSettings(run_id="r", commit="0123456", suite_text="x", suite_source="x")
    cm = copy.deepcopy(evaluation.suite_configmap(dev, run))
    cm["data"]["judge"] = "sk-" + "b" * 30
    assert violations("no-plaintext-secrets", cm) == [
        "ConfigMap key 'judge' looks like a credential: store it in a Secret"
    ]


def test_non_kubernetes_resources_are_ignored() -> None:
    args = ResourceValidationArgs(
        resource_type="pulumi:providers:kubernetes",
        props={"spec": {"type": "LoadBalancer"}},
        urn="urn:pulumi:dev::p::pulumi:providers:kubernetes::k",
        name="k",
        opts=PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
        provider=None,
    )
    found: list[str] = []
    for policy in POLICIES.values():
        policy.validate(args, lambda message, urn=None: found.append(message))
    assert found == []


def test_stack_of_reads_the_urn() -> None:
    assert rules.stack_of("urn:pulumi:prod::ai-eval-factory::kubernetes:core/v1:Service::vllm") == "prod"
    assert rules.stack_of("not-an-urn") == ""


def test_policy_dir_has_no_pulumi_program_clash() -> None:
    assert not (Path(PULUMI_DIR) / "policy" / "Pulumi.yaml").exists()
