"""The stack's typed ComponentResources. Each registers exactly the dicts its builder returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from factory import evaluation, evaluator_pods, gpu, inference, manifests, objects, results, storage, workflow
from factory.settings import RunSettings, StackSettings
from factory.typed import resource

TOKEN = "ai-eval-factory:cluster"


class _Manifests(pulumi.ComponentResource):
    """A component made of manifest dicts; keeps them (`.manifests`) and their resources (`.resources`)."""

    def __init__(self, kind: str, name: str, s: StackSettings, opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(f"{TOKEN}:{kind}", name, None, opts)
        self.settings = s
        self.manifests: list[objects.Manifest] = []
        self.resources: dict[str, pulumi.CustomResource] = {}
        self.options: dict[str, pulumi.ResourceOptions] = {}

    def _add(self, objs: list[objects.Manifest], **options: Any) -> None:
        for obj in objs:
            key = f"{obj['kind']}/{obj['metadata']['name']}"
            child = pulumi.ResourceOptions(parent=self, **options)
            seconds = manifests.await_seconds(self.settings, obj)
            if seconds is not None:
                # pulumi-kubernetes awaits Deployments, DaemonSets and Jobs for 10 minutes by default; each
                # gets what the object itself is allowed (manifests.await_seconds).
                timeout = f"{seconds}s"
                child.custom_timeouts = pulumi.CustomTimeouts(create=timeout, update=timeout)
            self.manifests.append(obj)
            self.resources[key] = resource(obj, child)
            self.options[key] = child

    def _add_data(self, objs: list[objects.Manifest]) -> None:
        """Volumes holding weights or results: `pulumi destroy` leaves them in the cluster (retainOnDelete);
        in prod Pulumi also refuses to delete or replace them (protect)."""
        self._add(objs, retain_on_delete=True, protect=self.settings.protect_data)


class EvalWorkspace(_Manifests):
    """The namespace (restricted Pod Security), the evaluator's identity, its results volume."""

    def __init__(self, name: str, s: StackSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("EvalWorkspace", name, s, opts)
        # Retained like the volumes it holds: deleting a namespace deletes its PVCs, whatever Pulumi retains.
        self._add([objects.namespace(s)], retain_on_delete=True, protect=s.protect_data)
        ns = pulumi.ResourceOptions(depends_on=[self.resources[f"Namespace/{s.namespace}"]])
        self._add(
            [
                objects.service_account(s, objects.EVAL_SERVICE_ACCOUNT),
                evaluator_pods.eval_network_policy(s),
                evaluator_pods.eval_egress_policy(s),
            ],
            depends_on=ns.depends_on,
        )
        self._add([storage.results_pvc(s)], depends_on=ns.depends_on, retain_on_delete=True, protect=s.protect_data)
        self.namespace = pulumi.Output.from_input(s.namespace)
        self.register_outputs({"namespace": self.namespace})


class GpuDevicePlugin(_Manifests):
    """NVIDIA k8s-device-plugin DaemonSet and its config file (time-slicing as a stack option)."""

    def __init__(self, name: str, s: StackSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("GpuDevicePlugin", name, s, opts)
        self._add(gpu.device_plugin(s))
        self.register_outputs({})


class ModelCache(_Manifests):
    """The PVC holding the Hugging Face cache (bound to a node folder through a static PV when
    modelCache.hostPath is set): weights survive restarts and never go into images."""

    def __init__(self, name: str, s: StackSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ModelCache", name, s, opts)
        pvc = storage.model_cache_pvc(s)
        self._add_data(storage.model_cache(s))
        self.claim_name = pulumi.Output.from_input(pvc["metadata"]["name"])
        self.register_outputs({"claimName": self.claim_name})


class VllmServer(_Manifests):
    """vLLM's account, Deployment (its pod checks the GPU first), Service and policy, and the HF token Secret."""

    def __init__(
        self,
        name: str,
        s: StackSettings,
        hf_token: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        api_key: pulumi.Input[str] | None = None,
    ) -> None:
        super().__init__("VllmServer", name, s, opts)
        if hf_token is not None:
            self._add([inference.hf_token_secret(s, pulumi.Output.secret(hf_token))])
        if api_key is not None and s.vllm.api_key_secret:
            self._add([inference.vllm_api_key_secret(s, pulumi.Output.secret(api_key))])
        self._add(inference.vllm(s))
        self.service_name = pulumi.Output.from_input("vllm")
        self.base_url = pulumi.Output.from_input(s.vllm_base_url)
        self.register_outputs({"serviceName": self.service_name, "baseUrl": self.base_url})


class EvalApiKeys(_Manifests):
    """Optional API keys for the target and the judge, read by the evaluator pods as env (optional refs)."""

    def __init__(
        self,
        name: str,
        s: StackSettings,
        keys: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("EvalApiKeys", name, s, opts)
        self._add([evaluator_pods.eval_keys_secret(s, {k: pulumi.Output.secret(v) for k, v in keys.items()})])
        self.register_outputs({})


class ReportUploadCredentials(_Manifests):
    """The object storage credentials the aggregate Job's upload reads (results.upload.secret)."""

    def __init__(
        self,
        name: str,
        s: StackSettings,
        access_key_id: pulumi.Input[str],
        secret_access_key: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("ReportUploadCredentials", name, s, opts)
        secret = results.upload_secret(s, pulumi.Output.secret(access_key_id), pulumi.Output.secret(secret_access_key))
        self._add([secret])
        self.register_outputs({})


class EvalJob(_Manifests):
    """One run's suite ConfigMap and Indexed Job. Pulumi waits for the Job and replaces it on change."""

    def __init__(self, name: str, s: StackSettings, run: RunSettings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("EvalJob", name, s, opts)
        self._add([evaluation.suite_configmap(s, run)], delete_before_replace=True)
        cm = self.resources[f"ConfigMap/{evaluation.suite_configmap_name(run.run_id)}"]
        # Fixed names: the old Job must go before its replacement can be created.
        job = evaluation.eval_job(s, run.run_id, run.commit, run=run)
        self._add([job], delete_before_replace=True, depends_on=[cm])
        self.run = run
        self.job = self.resources[f"Job/{evaluation.eval_job_name(run.run_id)}"]
        self.job_name = pulumi.Output.from_input(evaluation.eval_job_name(run.run_id))
        self.register_outputs({"jobName": self.job_name})


class EvalGate(_Manifests):
    """`evaluator aggregate` then `evaluator gate`, created only once the EvalJob has finished."""

    def __init__(
        self, name: str, s: StackSettings, run: RunSettings, after: EvalJob, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("EvalGate", name, s, opts)
        self._add(
            [evaluation.aggregate_job(s, run.run_id, run.commit, run=run)],
            delete_before_replace=True,
            depends_on=[after.job],
        )
        self.job_name = pulumi.Output.from_input(evaluation.aggregate_job_name(run.run_id))
        self.register_outputs({"jobName": self.job_name})


class ArgoEvalTemplate(_Manifests):
    """The Argo Workflows WorkflowTemplate (suite, plan, one branch per variant, gates) and its RBAC."""

    def __init__(self, name: str, s: StackSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ArgoEvalTemplate", name, s, opts)
        self._add(workflow.argo(s))
        self.register_outputs({})
