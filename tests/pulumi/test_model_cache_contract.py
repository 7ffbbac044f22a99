"""One seam, two owners: the model cache Ansible mounts into the minikube node, and the volume the dev
stack binds vLLM to (GUIDE's model-cache contract). Fails as soon as either side moves without the other."""

from __future__ import annotations

from pathlib import Path

import yaml
from factory import inference, objects, storage
from factory.settings import load_stack
from pulumi_harness import PULUMI_DIR

MINIKUBE_ROLE = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "minikube"
MINIKUBE_DEFAULTS = MINIKUBE_ROLE / "defaults" / "main.yml"
MODEL_CACHE_TASKS = MINIKUBE_ROLE / "tasks" / "model_cache.yml"


def ansible_defaults() -> dict[str, object]:
    data = yaml.safe_load(MINIKUBE_DEFAULTS.read_text())
    assert isinstance(data, dict)
    return data


def test_the_dev_stack_binds_the_folder_ansible_mounts_into_the_node() -> None:
    mount = ansible_defaults()["minikube_model_cache_mount"]
    s = load_stack(PULUMI_DIR, "dev")
    assert s.model_cache.host_path == mount, (
        f"pulumi/Pulumi.dev.yaml modelCache.hostPath ({s.model_cache.host_path}) must equal "
        f"{MINIKUBE_DEFAULTS}: minikube_model_cache_mount ({mount})"
    )
    pv, pvc = storage.model_cache(s)
    assert pv["spec"]["hostPath"]["path"] == mount
    deployment = inference.vllm_deployment(s)
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def resolve(value: object, defaults: dict[str, object]) -> str:
    """A task argument: a literal, or one `{{ variable }}` from the role's defaults."""
    text = str(value).strip()
    if text.startswith("{{") and text.endswith("}}"):
        return str(defaults.get(text[2:-2].strip(), text))
    return text


def test_the_node_folder_is_owned_by_the_uid_vllm_runs_as() -> None:
    """hostPath volumes ignore fsGroup: only the folder's owner (set by Ansible) lets uid 10002 write it."""
    defaults = ansible_defaults()
    tasks = yaml.safe_load(MODEL_CACHE_TASKS.read_text())
    (task,) = [
        t["ansible.builtin.file"]
        for t in tasks
        if "{{ minikube_model_cache_dir }}" in str(t.get("ansible.builtin.file", {}).get("path", ""))
    ]
    pod = inference.vllm_deployment(load_stack(PULUMI_DIR, "dev"))["spec"]["template"]["spec"]
    uid = pod["securityContext"]["runAsUser"]
    assert uid == pod["securityContext"]["runAsGroup"] == objects.VLLM_UID
    for key in ("owner", "group"):
        assert resolve(task.get(key), defaults) == str(uid), f"{MODEL_CACHE_TASKS}: {key} must be vLLM's uid {uid}"
    mode = int(resolve(task.get("mode"), defaults), 8)
    assert mode & 0o070 == 0o070, f"{MODEL_CACHE_TASKS}: mode {mode:o} must be group-writable (gid {uid})"
