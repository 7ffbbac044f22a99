"""`pulumi up` of a changed stack, step by step, against a cluster of GPUs: does the upgrade complete?

Neither the Pulumi engine nor an API server runs here. The program runs for real under mocks (pulumi_harness), once
with the old config and once with the new; this walks the steps the engine takes between the two and plays each
one against a small cluster stand-in (tests/journeys/scheduler.py), by these rules:

* Pulumi (pulumi v3 engine): resources are visited in dependency order (`depends_on`, a component's dependencies
  holding for its children, a dependency on a component meaning all its children); an unchanged resource is left
  alone; a changed Job is replaced (its pod template is immutable; pulumi-kubernetes plans a replacement), deleted
  first under `deleteBeforeReplace`; other kinds are updated in place; each created or updated resource is awaited
  until ready (pulumi-kubernetes await logic: a Job until Complete, a Deployment until its rollout is done, a
  DaemonSet until its pods run) within its `customTimeouts`. A failed await fails the update, and what depends on
  it is not touched.
* Kubernetes: a Job's pod needs its GPUs free on a node the scheduler accepts, else it is Pending until the Job's
  `activeDeadlineSeconds`, and the Job fails; a Deployment with `strategy: Recreate` deletes its old pods (freeing
  their GPUs) before it creates the new ones; a finished Job holds no GPU.

The walk reports each step and the first await that cannot succeed, with the pod that holds the GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pulumi_harness import run_program, unwrap

import pulumi
from tests.journeys import scheduler

Manifest = dict[str, Any]


@dataclass
class Declared:
    """One resource as the program declared it: inputs, options, parent and dependencies."""

    name: str
    typ: str
    custom: bool
    parent: str | None
    depends_on: list[str]
    delete_before_replace: bool
    inputs: Manifest = field(default_factory=dict)


@contextlib.contextmanager
def recording() -> Iterator[dict[str, Declared]]:
    """Record every resource's options as the program constructs it (the mocks record only inputs)."""
    declared: dict[str, Declared] = {}
    original = pulumi.Resource.__init__

    def init(self: pulumi.Resource, t: str, name: str, custom: bool, props: Any = None, opts: Any = None,
             *args: Any, **kwargs: Any) -> None:  # fmt: skip
        opts = opts or pulumi.ResourceOptions()
        deps = opts.depends_on or []
        deps = deps if isinstance(deps, list) else [deps]
        parent = opts.parent._name if isinstance(opts.parent, pulumi.Resource) else None
        declared[name] = Declared(
            name,
            t,
            custom,
            parent,
            [d._name for d in deps if isinstance(d, pulumi.Resource)],
            bool(opts.delete_before_replace),
        )
        self._name = name
        original(self, t, name, custom, props, opts, *args, **kwargs)

    pulumi.Resource.__init__ = init  # type: ignore[method-assign]
    try:
        yield declared
    finally:
        pulumi.Resource.__init__ = original  # type: ignore[method-assign]


def declare(stack: str, config: dict[str, Any]) -> dict[str, Declared]:
    """The program's resources for this config: kind/name objects with their inputs and options."""
    with recording() as declared:
        mocks, _ = run_program(stack, config)
    for registration in mocks.registered:
        if registration.name in declared:
            declared[registration.name].inputs = unwrap(registration.inputs)
    return declared


def dependencies(declared: dict[str, Declared], name: str) -> set[str]:
    """Every Kubernetes object `name` waits for: its own and its ancestors' depends_on, components expanded."""
    children: dict[str, list[str]] = {}
    for d in declared.values():
        if d.parent:
            children.setdefault(d.parent, []).append(d.name)

    def leaves(n: str) -> set[str]:
        if declared[n].custom:
            return {n}
        return set().union(*(leaves(c) for c in children.get(n, [])))

    out: set[str] = set()
    current: str | None = name
    while current is not None:
        for dep in declared[current].depends_on:
            out |= leaves(dep)
        current = declared[current].parent
    return out - {name}


def kubernetes_objects(declared: dict[str, Declared]) -> list[str]:
    """The custom resources that are Kubernetes objects, in an order their dependencies allow."""
    names = [n for n, d in declared.items() if d.custom and d.inputs.get("kind")]
    done: list[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if dependencies(declared, n) & set(names) <= set(done)]
        assert ready, f"a dependency cycle among {pending}"
        for n in ready:
            pending.remove(n)
            done.append(n)
    return done


class UpFailed(AssertionError):
    """An await that cannot succeed: the message names the object, the step and why."""


@dataclass
class GpuCluster:
    """The cluster stand-in between two `pulumi up`s: what runs, and who holds which GPU."""

    cluster: scheduler.Cluster
    running: dict[str, Manifest] = field(default_factory=dict)  # object name -> its live object
    steps: list[str] = field(default_factory=list)

    def ready(self, obj: Manifest) -> None:
        """Create or update `obj` and wait for it as pulumi-kubernetes does; UpFailed if it never gets ready."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "DaemonSet":
            config = next((o for o in self.running.values() if o["kind"] == "ConfigMap" and "config.yaml" in
                           o.get("data", {})), None)  # fmt: skip
            if not self.cluster.run_device_plugin(obj, config):
                raise UpFailed(f"DaemonSet/{name}: no node matches its affinity: 0 pods, never ready")
        elif kind == "Job":
            self.run_job(obj)
        elif kind == "Deployment":
            self.roll_out(obj)
        self.running[f"{kind}/{name}"] = obj

    def run_job(self, job: Manifest) -> None:
        name = job["metadata"]["name"]
        if job["spec"].get("completionMode") == "Indexed":
            return  # evaluation Jobs: CPU only, checked by the journeys
        pod = f"{name}-pod"
        if self.cluster.schedule(pod, job["spec"]["template"]["spec"]) is None:
            holders = ", ".join(sorted(self.cluster.held)) or "nobody (no GPU is advertised)"
            raise UpFailed(
                f"Job/{name}: its pod stays Pending (Insufficient nvidia.com/gpu; held by {holders}) until "
                f"activeDeadlineSeconds ({job['spec'].get('activeDeadlineSeconds')} s): the Job fails, so does `up`"
            )
        self.cluster.release(pod)  # it ran and finished

    def roll_out(self, deployment: Manifest) -> None:
        name = deployment["metadata"]["name"]
        strategy = (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate")
        old = [p for p in self.cluster.held if p.startswith(f"{name}-pod-")]
        if strategy == "Recreate":
            for pod in old:
                self.cluster.release(pod)
        for i in range(int(deployment["spec"].get("replicas", 1))):
            pod = f"{name}-pod-{len(self.steps)}-{i}"
            if self.cluster.schedule(pod, deployment["spec"]["template"]["spec"]) is None:
                raise UpFailed(f"Deployment/{name}: its new pod stays Pending (Insufficient nvidia.com/gpu)")
        for pod in old:
            self.cluster.release(pod)

    def up(self, before: dict[str, Declared], after: dict[str, Declared]) -> list[str]:
        """The engine's steps from `before` (what the last up left) to `after`; UpFailed at the first bad await."""
        steps: list[str] = []
        for name in kubernetes_objects(after):
            new = after[name]
            old = before.get(name)
            obj = {k: v for k, v in new.inputs.items() if k != "status"}
            if old is not None and old.inputs == new.inputs:
                continue
            kind = obj["kind"]
            if old is None:
                steps.append(f"create {kind}/{obj['metadata']['name']}")
            elif kind == "Job":
                steps.append(
                    f"replace {kind}/{obj['metadata']['name']}"
                    + (" (delete first)" if new.delete_before_replace else "")
                )
            else:
                steps.append(f"update {kind}/{obj['metadata']['name']}")
            self.steps.append(steps[-1])
            self.ready(obj)
        return steps
