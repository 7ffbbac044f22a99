"""The Jenkinsfile, parsed with a real Groovy grammar (tree-sitter-groovy) and checked for structure: the
required stages in order, a timeout on each, milestones, the GPU lock, post { always }, and every shell step
a call of a script that exists (logic lives in scripts, not Groovy; single quotes, so no secret is
interpolated by Groovy)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import pytest
import tree_sitter
import tree_sitter_groovy

from tests.pipeline.conftest import REPO

REQUIRED_STAGES = [
    "Verify trigger", "Checkout", "Tooling", "Build image", "Evaluate", "Aggregate", "Publish", "PR comment", "Gate",
]  # fmt: skip


@dataclass
class Call:
    name: str
    text: str
    children: list[Call] = field(default_factory=list)


def parse(source: bytes) -> tree_sitter.Tree:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_groovy.language()))
    return parser.parse(source)


def calls(node: tree_sitter.Node) -> list[Call]:
    """The method-invocation tree (`name(...) { ... }` / `name { ... }`), other nodes flattened."""
    found: list[Call] = []
    for child in node.children:
        if child.type in ("method_invocation", "juxt_function_call"):
            name_node = child.child_by_field_name("name") or child.children[0]
            text = (child.text or b"").decode()
            found.append(Call((name_node.text or b"").decode(), text, calls(child)))
        else:
            found.extend(calls(child))
    return found


@pytest.fixture(scope="module")
def pipeline() -> Call:
    tree = parse((REPO / "Jenkinsfile").read_bytes())
    assert not tree.root_node.has_error, "Jenkinsfile does not parse as Groovy"
    (top,) = [c for c in calls(tree.root_node) if c.name == "pipeline"]
    return top


def child(call: Call, name: str) -> Call:
    matches = [c for c in call.children if c.name == name]
    assert len(matches) == 1, f"{call.name} needs exactly one {name} block"
    return matches[0]


def everything(call: Call) -> list[Call]:
    return [call, *(d for c in call.children for d in everything(c))]


def stages(pipeline: Call) -> list[Call]:
    return [c for c in child(pipeline, "stages").children if c.name == "stage"]


def test_the_parser_catches_a_broken_file() -> None:
    assert parse(b"pipeline { stages { stage('a') { steps { sh 'x' } }\n").root_node.has_error


def test_required_stages_in_order(pipeline: Call) -> None:
    names = [re.match(r"stage\('([^']+)'\)", s.text).group(1) for s in stages(pipeline)]  # type: ignore[union-attr]
    assert names == REQUIRED_STAGES


def test_every_stage_and_the_pipeline_have_a_timeout(pipeline: Call) -> None:
    assert any(c.name == "timeout" for c in child(pipeline, "options").children)
    for stage in stages(pipeline):
        options = child(stage, "options")
        assert any(c.name == "timeout" for c in options.children), stage.text.splitlines()[0]


def test_milestones_and_the_gpu_lock(pipeline: Call) -> None:
    everything_ = everything(pipeline)
    ordinals = [int(re.search(r"ordinal: (\d+)", c.text).group(1)) for c in everything_ if c.name == "milestone"]  # type: ignore[union-attr]
    assert len(ordinals) >= 3 and ordinals == sorted(ordinals) and len(set(ordinals)) == len(ordinals)
    (evaluate,) = [s for s in stages(pipeline) if s.text.startswith("stage('Evaluate')")]
    locks = [c for c in everything(evaluate) if c.name == "lock"]
    assert len(locks) == 1 and "resource: 'gpu'" in locks[0].text
    assert any(c.name == "milestone" for c in everything(locks[0])), "a milestone inside the lock drops superseded runs"


def test_post_always_collects_logs(pipeline: Call) -> None:
    always = child(child(pipeline, "post"), "always")
    text = always.text
    assert "collect-logs.sh" in text and "archiveArtifacts" in text


def test_publishes_junit_and_html(pipeline: Call) -> None:
    names = {c.name for c in everything(pipeline)}
    assert {"junit", "publishHTML", "withCredentials"} <= names
    # `checkout scm` parses as a command expression (like `agent any`), not as a call with parentheses.
    (checkout,) = [s for s in stages(pipeline) if s.text.startswith("stage('Checkout')")]
    assert re.search(r"^\s*checkout scm$", checkout.text, re.MULTILINE)


def test_shell_steps_only_call_existing_scripts_in_single_quotes(pipeline: Call) -> None:
    shell_steps = [c for c in everything(pipeline) if c.name == "sh"]
    assert len(shell_steps) >= 10
    for step in shell_steps:
        match = re.fullmatch(r"sh '(scripts/ci-pipeline/[a-z-]+\.sh)( [^'$]*)?'", step.text)
        assert match, f"not a plain single-quoted script call: {step.text}"
        script = REPO / match.group(1)
        assert script.is_file() and os.access(script, os.X_OK), f"{script} missing or not executable"
