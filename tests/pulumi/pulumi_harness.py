"""Shared helpers for the Pulumi stack tests (imported by the test modules; conftest.py puts it on sys.path).

The Pulumi engine, the CLI, the Kubernetes provider plugin and an API server cannot run here: the
program runs for real under `pulumi.runtime.set_mocks` (the boundary mocked is the engine's resource
monitor), which records every resource registration with its exact inputs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PULUMI_DIR = Path(__file__).resolve().parents[2] / "pulumi"
if str(PULUMI_DIR) not in sys.path:
    sys.path.insert(0, str(PULUMI_DIR))

from pulumi.runtime import config as pulumi_config  # noqa: E402

import pulumi  # noqa: E402

PROJECT = "ai-eval-factory"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the engine's marker of a secret value
# A suite the evaluator itself accepts (evaluator.suite.load_suite), with the dataset it names beside it.
SUITE_TEXT = """\
name: smoke
dataset: cases.jsonl
target: {base_url: "http://127.0.0.1:9/v1", model: set-by-the-stack}
metrics:
  - {type: exact_match}
"""
DATASET_TEXT = '{"id": "c1", "input": "hi", "expected_output": "hi"}\n'


def write_suite(folder: Path) -> Path:
    """suite.yaml and its cases.jsonl in `folder`; returns the suite's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cases.jsonl").write_text(DATASET_TEXT)
    suite = folder / "suite.yaml"
    suite.write_text(SUITE_TEXT)
    return suite


# Two variants (the reference second, so the reference is not simply the first), 5 tagged cases, `many` chunks of 2.
VARIANTS_SUITE_TEXT = """\
name: fan-out
dataset: cases.jsonl
target: {base_url: "http://127.0.0.1:9/v1", model: set-by-the-stack}
variants:
  - {name: cand, model: model-cand}
  - {name: ref, model: model-ref}
compare: {reference: ref}
metrics:
  - {type: exact_match}
gate: {policy: no_regression, regression_tolerance: 0.05}
sharding: {mode: many, chunk_size: 2}
profiles:
  pr: {tags: [pr]}
"""
VARIANTS_CASES = 5
VARIANTS_PR_CASES = 3


def write_variants_suite(folder: Path) -> Path:
    """The two-variant suite above and its dataset (3 of the 5 cases tagged `pr`); returns the suite's path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {"id": f"c{i}", "input": f"q{i}", "expected_output": "ok", "tags": ["pr"] if i < VARIANTS_PR_CASES else ["x"]}
        for i in range(VARIANTS_CASES)
    ]
    (folder / "cases.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    suite = folder / "suite.yaml"
    suite.write_text(VARIANTS_SUITE_TEXT)
    return suite


@dataclass
class Registration:
    typ: str
    name: str
    inputs: dict[str, Any]
    provider: str | None


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource the program registers; returns its inputs as its state."""

    registered: list[Registration] = field(default_factory=list)
    # What a StackReference reads: the referenced stack's last outputs (none by default: a first `up`).
    stack_outputs: dict[str, Any] = field(default_factory=dict)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(Registration(args.typ, args.name, args.inputs, args.provider))
        if args.typ == "pulumi:pulumi:StackReference":
            return f"{args.name}-id", {**args.inputs, "outputs": self.stack_outputs}
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}

    def by_name(self, name: str) -> Registration:
        found = [r for r in self.registered if r.name == name]
        assert len(found) == 1, f"{name}: registered {len(found)} times; names: {[r.name for r in self.registered]}"
        return found[0]

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registered if r.typ == typ]


def unwrap(value: Any, path: str = "", secrets: list[str] | None = None) -> Any:
    """Drop the engine's secret wrappers, collecting the paths of the values that were secret."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            if secrets is not None:
                secrets.append(path)
            return unwrap(value["value"], path, secrets)
        return {k: unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    return value


def stack_config(stack: str) -> dict[str, Any]:
    """The plain config of Pulumi.<stack>.yaml, without the project prefix."""
    doc = yaml.safe_load((PULUMI_DIR / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in doc["config"].items()}


def configure(stack: str, config: dict[str, Any], secrets: dict[str, str] | None = None) -> RecordingMocks:
    """Install fresh mocks and the stack's config (secrets marked secret, as `config set --secret` does)."""
    mocks = RecordingMocks()
    # The mocks run on the thread's current event loop. Any earlier `asyncio.run` in this process (every test
    # that runs the evaluator in-process) leaves none set, so the order of tests must not decide: set a fresh one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    secrets = secrets or {}
    values |= {f"{PROJECT}:{k}": v for k, v in secrets.items()}
    pulumi_config.set_all_config(values, secret_keys=[f"{PROJECT}:{k}" for k in secrets])
    return mocks


def run_program(
    stack: str,
    config: dict[str, Any],
    secrets: dict[str, str] | None = None,
    stack_outputs: dict[str, Any] | None = None,
) -> tuple[RecordingMocks, dict[str, Any]]:
    """Run factory.stack.deploy for `stack` with this config under mocks; wait for every registration."""
    from factory.stack import deploy

    mocks = configure(stack, config, secrets)
    mocks.stack_outputs = stack_outputs or {}
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        result.update(deploy(PULUMI_DIR))
        return pulumi.Output.all(*[r.urn for r in result.values() if isinstance(r, pulumi.Resource)])

    program()
    return mocks, result
