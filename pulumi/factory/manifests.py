"""What the stack is made of, in the order `kubectl apply` needs it, and how long `pulumi up` waits for each
object. The objects themselves are built by one module per concern (plain dicts, no Pulumi import):
`objects` (shared metadata, namespace, accounts), `storage`, `gpu`, `inference` (vLLM), `evaluation` (a run's
objects) and `workflow` (Argo)."""

from __future__ import annotations

from factory import evaluation, evaluator_pods, gpu, inference, storage
from factory.objects import EVAL_SERVICE_ACCOUNT, Manifest, namespace, service_account
from factory.settings import StackSettings


def long_lived(s: StackSettings) -> list[Manifest]:
    """What `pulumi up` keeps running between runs (the HF token Secret aside, see inference.hf_token_secret)."""
    objs: list[Manifest] = [namespace(s)]
    if s.device_plugin.enabled:
        objs += gpu.device_plugin(s)
    objs += [
        *storage.model_cache(s),
        storage.results_pvc(s),
        service_account(s, EVAL_SERVICE_ACCOUNT),
        evaluator_pods.eval_network_policy(s),
        evaluator_pods.eval_egress_policy(s),
    ]
    objs += inference.vllm(s)  # its pod checks the GPU first (gpu.gpu_check_container)
    return objs


def await_seconds(s: StackSettings, obj: Manifest) -> int | None:
    """How long `pulumi up` may wait for `obj` to become ready (pulumi-kubernetes' default: 10 minutes).

    Each matches what the object itself is allowed: vLLM's rollout budget (its progressDeadlineSeconds),
    a run's Job deadline, the device plugin's image pull. None: the default is enough.
    """
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind == "Deployment" and name == "vllm":
        return inference.rollout_budget_seconds(s) + 300
    if kind == "Job" and name.startswith("eval-"):
        return evaluation.eval_job_await_seconds(s)
    if kind == "Job" and name.startswith("aggregate-"):
        return evaluation.AGGREGATE_DEADLINE_SECONDS + 300
    if kind == "DaemonSet":
        return 1800  # the device plugin's image pull on every GPU node
    return None
