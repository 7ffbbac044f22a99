"""Upgrades walked in order (tests/pulumi/upgrade_walk.py): the program under Pulumi mocks, old config then new,
each step of the engine played against a cluster whose GPUs pods hold.

dev's cluster is minikube started with `--gpus`: one node, one GPU, advertised by minikube's own device plugin
(the stack deploys none); vLLM holds that GPU while it runs.
"""

from __future__ import annotations

import copy

import pytest
from pulumi_harness import stack_config
from upgrade_walk import GpuCluster, UpFailed, declare

from tests.journeys import scheduler


def minikube() -> GpuCluster:
    node = scheduler.fresh_node("minikube", gpus=1)
    cluster = scheduler.Cluster([node], gpu_per_node={"minikube": 1})  # minikube's addon advertises the GPU
    return GpuCluster(cluster)


def fresh_prod() -> GpuCluster:
    return GpuCluster(scheduler.Cluster(scheduler.fresh_gpu_cluster()))


def test_a_dev_vllm_image_bump_then_pulumi_up_completes() -> None:
    """The old vLLM holds dev's only GPU: nothing the upgrade waits for may need a second one."""
    config = stack_config("dev")
    before = declare("dev", config)
    cluster = minikube()
    first = cluster.up({}, before)
    assert any(step.startswith("create Deployment/vllm") for step in first), first
    bumped = copy.deepcopy(config)
    bumped["vllm"]["image"] = "vllm/vllm-openai:v0.11.1"
    after = declare("dev", bumped)
    steps = cluster.up(before, after)  # raises UpFailed naming the object that can never become ready
    assert "update Deployment/vllm" in steps, steps
    (vllm,) = [o for k, o in cluster.running.items() if k == "Deployment/vllm"]
    assert {c["image"] for c in vllm["spec"]["template"]["spec"]["containers"]} == {"vllm/vllm-openai:v0.11.1"}
    assert cluster.up(after, declare("dev", bumped)) == []  # a second up changes nothing


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_first_pulumi_up_completes_on_a_fresh_cluster(stack: str) -> None:
    cluster = minikube() if stack == "dev" else fresh_prod()
    steps = cluster.up({}, declare(stack, stack_config(stack)))
    assert "create Deployment/vllm" in steps


def test_the_walk_sees_a_deadlock_when_a_job_needs_the_gpu_vllm_holds() -> None:
    """The walk itself: a GPU Job created while vLLM runs on the only GPU never gets its pod."""
    cluster = minikube()
    cluster.up({}, declare("dev", stack_config("dev")))
    job = {
        "kind": "Job",
        "metadata": {"name": "needs-gpu"},
        "spec": {
            "activeDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}},
        },
    }
    with pytest.raises(UpFailed, match=r"Job/needs-gpu: its pod stays Pending .*held by vllm-pod"):
        cluster.ready(job)
