"""Rendered Kubernetes objects -> the Pods a cluster would run, and `podman kube play` to run them.

There is no API server here, so the two things a control plane does for these objects are done by small,
obvious functions, and nothing else is changed:

* `index_pods`: the Job controller's part for an Indexed Job: one Pod per completion index, made of the pod
  template plus the `batch.kubernetes.io/job-completion-index` annotation, the hostname `<job>-<index>`, and
  (only where the template lacks it, as the controller does) the `JOB_COMPLETION_INDEX` env var read from
  that annotation through the downward API.
* `with_hosts_file`: cluster DNS. Every pod of a run shares one private network namespace (made by the
  test, loopback only); the rendered Service names (`vllm.<ns>.svc`) resolve to 127.0.0.1 there through a
  hosts file mounted at /etc/hosts. This is the one thing added to the rendered pods for the test.
* `with_private_configmaps`: the kubelet's atomic projection of a ConfigMap into each pod. podman keeps one
  named volume per ConfigMap and truncates and rewrites its files on every `kube play` that includes the
  ConfigMap, so a pod started while another reads the dataset made that pod read an empty file (seen once in
  CI: "dataset has no cases"). Each pod therefore mounts its own copy of the ConfigMap, as in a cluster.

`podman kube play` (Debian's podman with `catatonit`) is the real consumer of the YAML: ConfigMap volumes
and their items, PersistentVolumeClaims (as named volumes), `fieldRef` on annotations, `runAsUser`,
read-only root filesystems, emptyDirs, init containers, resource limits.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.journeys.podman_images import podman_env

Manifest = dict[str, Any]
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = {
    "name": "JOB_COMPLETION_INDEX",
    "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}},
}


def load_dir(folder: Path) -> list[Manifest]:
    """The objects `render` wrote into one folder, in file order."""
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


def by_kind(objs: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objs if o["kind"] == kind]


def pod(name: str, namespace: str, template: Manifest, annotations: dict[str, str] | None = None) -> Manifest:
    """A Pod from a pod template (metadata labels/annotations kept, name and namespace set)."""
    meta = copy.deepcopy(template.get("metadata") or {})
    meta["name"] = name
    meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template["spec"])}


def index_pods(job: Manifest) -> list[Manifest]:
    """What the Job controller creates for an Indexed Job: one Pod per completion index."""
    spec = job["spec"]
    assert spec.get("completionMode") == "Indexed", job["metadata"]["name"]
    name = job["metadata"]["name"]
    pods = []
    for index in range(int(spec["completions"])):
        p = pod(f"{name}-{index}", job["metadata"]["namespace"], spec["template"], {INDEX_ANNOTATION: str(index)})
        p["spec"]["hostname"] = f"{name}-{index}"
        for container in p["spec"].get("initContainers", []) + p["spec"]["containers"]:
            env = container.setdefault("env", [])
            if not any(e["name"] == "JOB_COMPLETION_INDEX" for e in env):
                env.append(copy.deepcopy(INDEX_ENV))
        pods.append(p)
    return pods


def job_pod(job: Manifest) -> Manifest:
    """The single Pod of a non-indexed Job (completions 1)."""
    assert job["spec"].get("completionMode", "NonIndexed") == "NonIndexed"
    return pod(f"{job['metadata']['name']}-0", job["metadata"]["namespace"], job["spec"]["template"])


def with_hosts_file(p: Manifest, hosts_file: Path) -> Manifest:
    """Cluster DNS stand-in: /etc/hosts from `hosts_file` in every container (see the module docstring)."""
    p = copy.deepcopy(p)
    p["spec"].setdefault("volumes", []).append(
        {"name": "journey-hosts", "hostPath": {"path": str(hosts_file), "type": "File"}}
    )
    for container in p["spec"].get("initContainers", []) + p["spec"]["containers"]:
        container.setdefault("volumeMounts", []).append(
            {"name": "journey-hosts", "mountPath": "/etc/hosts", "readOnly": True}
        )
    return p


def with_private_configmaps(p: Manifest, configmaps: list[Manifest]) -> tuple[Manifest, list[Manifest]]:
    """The pod mounting its own copy of each ConfigMap volume (named `<configmap>-<pod>`), and the objects to
    play with it: every ConfigMap as given (for `envFrom`/`valueFrom` references) plus the pod's copies."""
    by_name = {cm["metadata"]["name"]: cm for cm in configmaps}
    p = copy.deepcopy(p)
    copies: list[Manifest] = []
    for volume in p["spec"].get("volumes", []):
        source = volume.get("configMap")
        if source is None or source["name"] not in by_name:
            continue
        private = copy.deepcopy(by_name[source["name"]])
        private["metadata"]["name"] = f"{source['name']}-{p['metadata']['name']}"
        source["name"] = private["metadata"]["name"]
        copies.append(private)
    return p, [*configmaps, *copies]


@dataclass
class PodResult:
    name: str
    exit_codes: dict[str, int]  # container name -> exit code (init containers included)
    logs: str

    @property
    def succeeded(self) -> bool:
        return bool(self.exit_codes) and all(code == 0 for code in self.exit_codes.values())


class Podman:
    """`podman kube play` inside one network namespace the test made (loopback only), and its clean-up."""

    def __init__(self, netns: str, workdir: Path) -> None:
        self.netns = netns
        self.workdir = workdir
        self.pods: list[str] = []
        self.volumes: set[str] = set()

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", *args], capture_output=True, text=True, timeout=timeout, env=podman_env(), check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result

    def play(self, objs: list[Manifest], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Create and start the Pods (and ConfigMaps, PVCs) of `objs` in the test's network namespace.

        podman starts a pod's init containers first and returns once they ended; if one fails, the pod's
        other containers stay `created` and `podman kube play` exits non-zero (`check=False` returns that)."""
        path = self.workdir / f"play-{len(self.pods)}-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
        for obj in objs:
            if obj["kind"] == "Pod":
                self.pods.append(obj["metadata"]["name"])
                for volume in obj["spec"].get("volumes", []):
                    if "persistentVolumeClaim" in volume:
                        self.volumes.add(volume["persistentVolumeClaim"]["claimName"])
                    if "configMap" in volume:
                        self.volumes.add(volume["configMap"]["name"])
            elif obj["kind"] == "PersistentVolumeClaim":
                self.volumes.add(obj["metadata"]["name"])
        result = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "podman", "kube", "play", "--network", "host", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=podman_env(),
            check=False,
            cwd=self.workdir,  # never a folder named like an image: podman 4 would try to build it
        )
        if check and result.returncode != 0:
            logs = [self.result(o["metadata"]["name"]) for o in objs if o["kind"] == "Pod"]
            raise AssertionError(
                f"podman kube play {path.name} failed:\n{result.stdout}\n{result.stderr[-3000:]}\n"
                + "".join(r.logs for r in logs if r is not None)
            )
        return result

    def states(self, pod_name: str) -> dict[str, tuple[str, int]]:
        """Container name (pod prefix cut) -> (state, exit code), the infra container left out."""
        out = self.run("ps", "--all", "--filter", f"pod={pod_name}", "--format", "json").stdout
        states = {}
        for c in json.loads(out or "[]"):
            if c.get("IsInfra"):
                continue
            full = c["Names"][0]
            states[full.removeprefix(f"{pod_name}-")] = (str(c["State"]), int(c.get("ExitCode") or 0))
        return states

    def result(self, pod_name: str) -> PodResult | None:
        """The pod's result once all its containers have exited, else None."""
        states = self.states(pod_name)
        # `created` after `kube play` returned: an init container failed, so it will never start.
        if not states or any(state not in ("exited", "stopped", "created") for state, _ in states.values()):
            return None
        logs = []
        for short in states:
            got = self.run("logs", f"{pod_name}-{short}", check=False)
            logs.append(f"--- {pod_name}/{short}\n{got.stdout}{got.stderr}")
        codes = {short: code if state != "created" else -1 for short, (state, code) in states.items()}
        return PodResult(pod_name, codes, "".join(logs))

    def wait(self, pod_names: list[str], timeout: float = 600) -> list[PodResult]:
        """Wait until every container of every pod has exited; return exit codes and logs."""
        deadline = time.monotonic() + timeout
        results: list[PodResult] = []
        pending = list(pod_names)
        while pending:
            for name in list(pending):
                found = self.result(name)
                if found is not None:
                    results.append(found)
                    pending.remove(name)
            if pending:
                if time.monotonic() > deadline:
                    raise AssertionError(f"pods still running after {timeout}s: {pending}")
                time.sleep(0.5)
        return results

    def run_pods(self, pods: list[Manifest], parallelism: int, extra: list[Manifest] | None = None) -> list[PodResult]:
        """Start at most `parallelism` pods at a time (as the Job controller does), the next when a slot frees."""
        queue = list(pods)
        running: list[str] = []
        done: list[PodResult] = []
        deadline = time.monotonic() + 900
        while queue or running:
            while queue and len(running) < parallelism:
                p, configmaps = with_private_configmaps(queue.pop(0), extra or [])
                self.play([*configmaps, p])
                running.append(p["metadata"]["name"])
            for name in list(running):
                found = self.result(name)
                if found is not None:
                    running.remove(name)
                    done.append(found)
            if running:
                if time.monotonic() > deadline:
                    raise AssertionError(f"pods still running after 900s: {running}")
                time.sleep(0.5)
        return done

    def exec(self, pod_name: str, container: str, *command: str) -> str:
        """`podman exec` from inside the namespace: host-network containers keep the caller's network."""
        result = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "podman", "exec", f"{pod_name}-{container}", *command],
            capture_output=True,
            text=True,
            timeout=60,
            env=podman_env(),
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"podman exec {pod_name}-{container} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def volume_path(self, name: str) -> Path:
        return Path(self.run("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.strip())

    def remove_pods(self, names: Iterable[str]) -> None:
        for name in names:
            self.run("pod", "rm", "--force", "--time", "0", name, check=False)

    def cleanup(self) -> None:
        self.remove_pods(self.pods)
        for volume in sorted(self.volumes):
            self.run("volume", "rm", "--force", volume, check=False)
