"""`kubectl` as the scripts and the README call it, against a stand-in API server that keeps upstream's rules.

No API server can run here. This stand-in answers the subcommands the factory's scripts and docs use, and refuses
what a real cluster refuses (each rule lives in its own module, citing upstream):

* `apply -f FILE...` (client-side by default, `--server-side`), `create -f`: object limits (`api_limits`);
  a Pod, and every pod a Job's controller would create from its template, through Pod Security Admission for the
  namespace's `pod-security.kubernetes.io/enforce` label (`admission`). A Job whose pods are refused is stored
  but never gets a pod (`FailedCreate`), so it never reaches a verdict, as in a cluster.
* `run NAME --image I [--overrides JSON] [--command] -- ARGS`: the Pod kubectl v1.32 generates, the override
  applied as a JSON merge patch (kubectl's default `--override-type=merge`), then admission.
* `wait --for=condition=C KIND/NAME [--timeout=T]`: kubectl's default timeout is 30 s (kubectl v1.32
  `wait --timeout`); a condition that does not come in time exits 1 with `error: timed out waiting for the
  condition on KIND/NAME`. A Job reaches its verdict after the delay `FAKE_KUBE_JOBS` gives it.
* `cp [NS/]POD:PATH DEST`, `exec POD -- cat PATH`: read the pod's volumes (a PVC `CLAIM` is the folder
  `$FAKE_KUBE_VOLUMES/CLAIM`); the pod must exist, that is, have been admitted.
* `delete`, `logs`, `get`: enough for the scripts (deletions are recorded).

Environment: `FAKE_KUBE_STATE` (a JSON file: the objects stored so far), `FAKE_KUBE_JOBS` (JSON: job name prefix
-> {"verdict": "Complete"|"Failed", "after": seconds}; default Complete at once), `FAKE_KUBE_VOLUMES`,
`FAKE_KUBE_TIME_SCALE` (multiplies every wait, so a test can model minutes in milliseconds), `FAKE_KUBECTL_LOG`
(each call's arguments, one line per call). `install(folder)` writes an executable `kubectl` there.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.journeys import admission, api_limits

Manifest = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
WAIT_DEFAULT_SECONDS = 30.0  # kubectl wait --timeout default
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def install(folder: Path) -> Path:
    """An executable `kubectl` in `folder` that runs this stand-in with this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kubectl"
    path.write_text(
        f'#!/bin/sh\nPYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m tests.journeys.fake_kubectl "$@"\n'
    )
    path.chmod(0o755)
    return path


def seconds(text: str) -> float:
    """A Go duration (`30s`, `2h`, `1h30m`, `500ms`) in seconds; a bare number is seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise SystemExit(f'error: invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * unit[u] for n, u in parts)


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"objects": {}, "deleted": []}

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data))

    @staticmethod
    def key(kind: str, namespace: str | None, name: str) -> str:
        return f"{kind.lower()}/{namespace or ''}/{name}"

    def get(self, kind: str, namespace: str | None, name: str) -> Manifest | None:
        return self.data["objects"].get(self.key(kind, namespace, name))  # type: ignore[no-any-return]

    def put(self, obj: Manifest) -> None:
        meta = obj["metadata"]
        self.data["objects"][self.key(obj["kind"], meta.get("namespace"), meta["name"])] = obj


class Kubectl:
    def __init__(self, argv: list[str]) -> None:
        self.namespace = "default"
        self.args: list[str] = []
        rest = list(argv)
        while rest:
            arg = rest.pop(0)
            if arg in ("-n", "--namespace"):
                self.namespace = rest.pop(0)
            elif arg.startswith("--namespace="):
                self.namespace = arg.split("=", 1)[1]
            else:
                self.args.append(arg)
        self.state = State(Path(os.environ.get("FAKE_KUBE_STATE", "/tmp/fake-kube-state.json")))
        self.scale = float(os.environ.get("FAKE_KUBE_TIME_SCALE", "1"))

    # --- helpers -------------------------------------------------------------------------------------------

    def flag(self, name: str, default: str | None = None) -> str | None:
        for i, arg in enumerate(self.args):
            if arg == name and i + 1 < len(self.args):
                return self.args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return default

    def files(self) -> list[str]:
        return [self.args[i + 1] for i, a in enumerate(self.args) if a in ("-f", "--filename")] + [
            a.split("=", 1)[1] for a in self.args if a.startswith(("-f=", "--filename="))
        ]

    def namespace_object(self, name: str) -> Manifest | None:
        return self.state.get("Namespace", None, name)

    def admit_pod(self, pod: Manifest) -> None:
        namespace = pod["metadata"].get("namespace") or self.namespace
        admission.admit(pod, self.namespace_object(namespace))

    # --- subcommands ---------------------------------------------------------------------------------------

    def apply(self, server_side: bool, create: bool = False) -> int:
        code = 0
        for name in self.files():
            for obj in yaml.safe_load_all(Path(name).read_text()):
                if not obj:
                    continue
                obj.setdefault("metadata", {})
                if obj["kind"] not in ("Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"):
                    obj["metadata"].setdefault("namespace", self.namespace)
                verb = "created"
                try:
                    stored = api_limits.apply(obj, server_side=server_side or create)
                    if obj["kind"] == "Pod":
                        self.admit_pod(stored)
                    if obj["kind"] == "Job":
                        stored = self.start_job(stored)
                except (api_limits.Invalid, admission.Forbidden) as exc:
                    kind = "Forbidden" if isinstance(exc, admission.Forbidden) else "Invalid"
                    print(f'Error from server ({kind}): error when creating "{name}": {exc}', file=sys.stderr)
                    code = 1
                    continue
                self.state.put(stored)
                suffix = " (server side)" if server_side else ""
                print(f"{obj['kind'].lower()}/{obj['metadata']['name']} {verb}{suffix}")
        self.state.save()
        return code

    def start_job(self, job: Manifest) -> Manifest:
        """The Job controller's part: its pods pass admission, or the Job never gets one."""
        job = copy.deepcopy(job)
        template = job["spec"]["template"]
        pod = {"metadata": {**(template.get("metadata") or {}), "name": f"{job['metadata']['name']}-0"}}
        pod["metadata"]["namespace"] = job["metadata"]["namespace"]
        pod["spec"] = template["spec"]
        status: Manifest = {"created": time.time()}
        try:
            self.admit_pod(pod)
        except admission.Forbidden as exc:
            status["failedCreate"] = str(exc)
        job["status"] = status
        return job

    def run(self) -> int:
        name = self.args[1]
        image = self.flag("--image")
        command, tail = "--command" in self.args, []
        if "--" in self.args:
            tail = self.args[self.args.index("--") + 1 :]
        container: Manifest = {"name": name, "image": image, "resources": {}}
        if tail:
            container["command" if command else "args"] = tail
        pod: Manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {"run": name}},
            "spec": {"containers": [container], "restartPolicy": self.flag("--restart", "Always")},
        }
        overrides = self.flag("--overrides")
        if overrides:
            pod = merge_patch(pod, json.loads(overrides))
        try:
            self.admit_pod(pod)
        except admission.Forbidden as exc:
            print(f"Error from server (Forbidden): {exc}", file=sys.stderr)
            return 1
        self.state.put(pod)
        self.state.save()
        print(f"pod/{name} created")
        return 0

    def wait(self) -> int:
        condition = (self.flag("--for") or "").removeprefix("condition=").lower()
        target = next(a for a in self.args[1:] if "/" in a and not a.startswith("-"))
        kind, name = target.split("/", 1)
        timeout = seconds(self.flag("--timeout") or f"{WAIT_DEFAULT_SECONDS}s")
        started = time.monotonic()
        kinds = {"job": "Job", "jobs": "Job", "pod": "Pod", "pods": "Pod"}
        obj = self.state.get(kinds[kind], self.namespace, name)
        if obj is None:
            print(f'Error from server (NotFound): {kind}s "{name}" not found', file=sys.stderr)
            return 1
        at = self.verdict_at(obj, condition)
        if at is not None:
            remaining = at - time.time()
            if remaining <= timeout * self.scale:
                time.sleep(max(0.0, remaining))
                print(f"{kind}.batch/{name} condition met" if kind.startswith("job") else f"pod/{name} condition met")
                return 0
        time.sleep(max(0.0, timeout * self.scale - (time.monotonic() - started)))
        print(f"error: timed out waiting for the condition on {kind}s/{name}", file=sys.stderr)
        return 1

    def verdict_at(self, obj: Manifest, condition: str) -> float | None:
        """When `condition` becomes true for this object (wall-clock), or None if it never does."""
        if obj["kind"] == "Pod":
            return time.time() if condition == "ready" else None
        status = obj.get("status") or {}
        if status.get("failedCreate"):
            return None
        plan = {"verdict": "Complete", "after": 0}
        for prefix, given in json.loads(os.environ.get("FAKE_KUBE_JOBS", "{}")).items():
            if obj["metadata"]["name"].startswith(prefix):
                plan = {**plan, **given}
        if str(plan["verdict"]).lower() != condition:
            return None
        return float(status["created"]) + float(plan["after"]) * self.scale

    def pod_path(self, pod_name: str, path: str) -> Path:
        pod = self.state.get("Pod", self.namespace, pod_name)
        if pod is None:
            raise SystemExit(f'Error from server (NotFound): pods "{pod_name}" not found')
        spec = pod["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for mount in spec["containers"][0].get("volumeMounts") or []:
            root = mount["mountPath"].rstrip("/")
            if path == root or path.startswith(root + "/"):
                claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
                return Path(os.environ["FAKE_KUBE_VOLUMES"]) / claim / path[len(root) :].lstrip("/")
        raise SystemExit(f"error: {path}: no such file or directory in pod {pod_name}")

    def cp(self) -> int:
        source, dest = self.args[1], self.args[2]
        pod_part, _, path = source.partition(":")
        if "/" in pod_part:
            self.namespace, pod_part = pod_part.split("/", 1)
        found = self.pod_path(pod_part, path.rstrip(".").rstrip("/") or "/")
        if found.is_dir():
            shutil.copytree(found, dest, dirs_exist_ok=True)
        else:
            shutil.copy(found, dest)
        return 0

    def exec(self) -> int:
        pod_name = self.args[1]
        command = self.args[self.args.index("--") + 1 :]
        if command[:1] != ["cat"]:
            print(f"stand-in kubectl exec: only `cat FILE`, got {command}", file=sys.stderr)
            return 1
        sys.stdout.write(self.pod_path(pod_name, command[1]).read_text())
        return 0

    def delete(self) -> int:
        self.state.data["deleted"].append(self.args[1:])
        for arg in self.args[1:]:
            if "/" in arg and not arg.startswith("-"):
                kind, name = arg.split("/", 1)
                for key in list(self.state.data["objects"]):
                    if key.startswith(f"{kind.lower()}/") and key.endswith(f"/{name}"):
                        del self.state.data["objects"][key]
        self.state.save()
        return 0

    def main(self) -> int:
        log = os.environ.get("FAKE_KUBECTL_LOG")
        if log:
            with open(log, "a") as handle:
                handle.write(" ".join(sys.argv[1:]) + "\n")
        verb = self.args[0] if self.args else ""
        if verb == "apply":
            return self.apply(server_side="--server-side" in self.args)
        if verb == "create" and self.files():
            return self.apply(server_side=False, create=True)
        handlers = {"run": self.run, "wait": self.wait, "cp": self.cp, "exec": self.exec, "delete": self.delete}
        if verb in handlers:
            return handlers[verb]()
        if verb in ("logs", "get", "describe", "config", "version"):
            return 0
        print(f"stand-in kubectl: unsupported command {self.args}", file=sys.stderr)
        return 1


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


if __name__ == "__main__":
    sys.exit(Kubectl(sys.argv[1:]).main())
