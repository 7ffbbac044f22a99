"""The Argo controller's part of running the factory's WorkflowTemplate: no controller runs on this machine.

What the controller does between the steps, written as small, obvious functions over the rendered template, so
that a template whose pieces do not fit together fails here:

* `substitute`: Argo's simple template tags (`{{workflow.parameters.x}}`, `{{inputs.parameters.x}}`, `{{item}}`,
  `{{item.key}}`, `{{tasks.t.outputs.parameters.p}}`) replaced in the template's JSON text by JSON-escaped values,
  as the controller does (argo-workflows util/template); a tag nothing defines is an error, as in `argo lint`.
* `DagWalk`: a DAG template's tasks in the order their `depends` allow (and only when it holds), `withParam`
  expanded into one call per item of the JSON list, each call's `arguments.parameters` bound to the called
  template's `inputs.parameters` (the names must match exactly, both ways), nested DAG templates walked alike,
  a task's output parameters visible to later tasks as `tasks.<name>.outputs.parameters.<p>`.
* `DagWalk.assess`: the phase of a DAG as Argo decides it (argo-workflows v3.6, workflow/controller/dag.go,
  `assessDAGPhase`): only the *target* tasks count, `dag.target` or else the leaves (tasks nothing depends on);
  an omitted task inherits the phase of the branch that led to it, Failed/Error preferred. So a task that failed
  does not fail its DAG when a leaf after it (`depends: x.Failed || ...`) succeeds. A `withParam` task group fails
  when one of its children fails; with an empty list it is Skipped.

The leaf steps (resource and container templates) are the caller's: the journey runs them as pods with podman.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]
_TAG = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_OPERAND = re.compile(r"([a-z0-9][-a-z0-9]*)(?:\.(Succeeded|Failed|Errored|Skipped|Omitted|Daemoned))?")


def substitute(obj: Any, scope: dict[str, str], *, strict: bool = True) -> Any:
    """`obj` with every `{{tag}}` of `scope` replaced, through its JSON text (values JSON-escaped, as Argo does)."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        tag = match.group(1)
        if tag in scope:
            return json.dumps(scope[tag])[1:-1]
        missing.append(tag)
        return match.group(0)

    filled = json.loads(_TAG.sub(replace, json.dumps(obj)))
    if strict and missing:
        raise AssertionError(f"unresolved Argo variables: {sorted(set(missing))}")
    return filled


def item_scope(item: Any) -> dict[str, str]:
    """`{{item}}` for a scalar item, `{{item.key}}` for each key of an object item (withParam's JSON list)."""
    if isinstance(item, dict):
        return {f"item.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in item.items()}
    return {"item": item if isinstance(item, str) else json.dumps(item)}


@dataclass
class Call:
    """One run of a leaf template: its name, the template with its inputs substituted, the path of DAG tasks."""

    template: str
    body: Manifest
    path: list[str]
    arguments: dict[str, str]


# A leaf runner: gets a call, returns its phase (Succeeded/Failed/Errored) and its output parameters.
Runner = Callable[[Call], tuple[str, dict[str, str]]]


@dataclass
class DagWalk:
    workflow: Manifest  # the WorkflowTemplate, its workflow parameters already substituted
    run_leaf: Runner
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.templates = {t["name"]: t for t in self.workflow["spec"]["templates"]}

    def run(self) -> str:
        return self.call(self.workflow["spec"]["entrypoint"], {}, [])[0]

    def call(self, name: str, arguments: dict[str, str], path: list[str]) -> tuple[str, dict[str, str]]:
        template = self.templates[name]
        declared = [p["name"] for p in (template.get("inputs") or {}).get("parameters", [])]
        assert sorted(arguments) == sorted(declared), (
            f"{'/'.join(path)}: arguments {sorted(arguments)} != inputs of {name} {declared}"
        )
        inputs = {f"inputs.parameters.{k}": v for k, v in arguments.items()}
        if "dag" in template:
            return self.dag(template, inputs, path)
        body = substitute(template, inputs)
        call = Call(name, body, path, arguments)
        self.calls.append(call)
        return self.run_leaf(call)

    def dag(self, template: Manifest, inputs: dict[str, str], path: list[str]) -> tuple[str, dict[str, str]]:
        tasks = {t["name"]: t for t in template["dag"]["tasks"]}
        phases: dict[str, str] = {}
        scope = dict(inputs)
        pending = list(tasks)
        while pending:
            ready = [t for t in pending if all(d in phases for d in self.depends_on(tasks[t], tasks))]
            assert ready, f"{'/'.join(path)}: a cycle or an unknown task in {pending}"
            for name in ready:
                pending.remove(name)
                task = tasks[name]
                if not self.holds(task.get("depends"), phases):
                    phases[name] = "Omitted"
                    continue
                phases[name] = self.task(task, scope, [*path, name])
        return self.assess(template, tasks, phases), {}

    def assess(self, template: Manifest, tasks: dict[str, Manifest], phases: dict[str, str]) -> str:
        """Argo's assessDAGPhase over the finished tasks: the target tasks' branch phases decide."""
        target = template["dag"].get("target")
        if target:
            targets = target.split(" ")
        else:
            depended = {d for t in tasks.values() for d in self.depends_on(t, tasks)}
            targets = [n for n in tasks if n not in depended]
        memo: dict[str, set[str]] = {}

        def branch(name: str) -> set[str]:
            """The phases a BFS from the DAG's root can carry to this task (an omitted task inherits them)."""
            if name not in memo:
                if phases[name] != "Omitted":
                    memo[name] = {phases[name]}
                else:
                    parents = self.depends_on(tasks[name], tasks)
                    memo[name] = set().union(*(branch(p) for p in parents)) if parents else {"Succeeded"}
            return memo[name]

        for name in targets:
            reached = branch(name)
            failed = sorted(p for p in reached if p in ("Failed", "Error", "Errored"))
            if failed:
                return "Failed" if "Failed" in failed else "Error"
        return "Succeeded"

    def task(self, task: Manifest, scope: dict[str, str], path: list[str]) -> str:
        if "withParam" not in task:
            args = self.arguments(task, scope)
            phase, outputs = self.call(task["template"], args, path)
            for key, value in outputs.items():
                scope[f"tasks.{task['name']}.outputs.parameters.{key}"] = value
            return phase
        items = json.loads(substitute(task["withParam"], scope))
        assert isinstance(items, list), f"{'/'.join(path)}: withParam is not a JSON list: {items!r}"
        if not items:
            return "Skipped"
        phases = [
            self.call(task["template"], self.arguments(task, scope | item_scope(item)), [*path, f"({i}:{item})"])[0]
            for i, item in enumerate(items)
        ]
        # The task group fails when a child failed (argo-workflows dag.go, after expanding withParam).
        return "Failed" if any(p in ("Failed", "Error", "Errored") for p in phases) else "Succeeded"

    @staticmethod
    def arguments(task: Manifest, scope: dict[str, str]) -> dict[str, str]:
        params = (task.get("arguments") or {}).get("parameters", [])
        return {p["name"]: substitute(p["value"], scope) for p in params}

    @staticmethod
    def depends_on(task: Manifest, tasks: dict[str, Manifest]) -> list[str]:
        names = [m.group(1) for m in _OPERAND.finditer(task.get("depends") or "")]
        unknown = [n for n in names if n not in tasks]
        assert not unknown, f"task {task['name']} depends on unknown tasks {unknown}"
        return names

    @staticmethod
    def holds(depends: str | None, phases: dict[str, str]) -> bool:
        """Argo's enhanced depends: `t.Result` operands, bare `t` = Succeeded || Skipped || Daemoned; && || !."""
        if not depends:
            return True

        def operand(match: re.Match[str]) -> str:
            name, result = match.group(1), match.group(2)
            wanted = {result} if result else {"Succeeded", "Skipped", "Daemoned"}
            return str(phases[name] in wanted)

        expression = _OPERAND.sub(operand, depends).replace("&&", " and ").replace("||", " or ").replace("!", " not ")
        return bool(eval(expression, {"__builtins__": {}}, {}))  # only True/False, and/or/not, parentheses
