"""The Jenkinsfile, parsed with a real Groovy grammar (tree-sitter-groovy) and checked for structure: the
required stages in order, a timeout on each, milestones, the GPU lock, post { always }, and every shell step
a call of a script that exists (logic lives in scripts, not Groovy; single quotes, so no secret is
interpolated by Groovy). In document order: the workspace is cleaned first, then checked out, before any
shell step; `post` runs no workspace script unless the checkout happened; the gate precedes the release,
which runs only on the gate's verdict; GATE_MODE reaches the gate."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import pytest
import tree_sitter
import tree_sitter_groovy
import yaml

from tests.pipeline.conftest import REPO

JOB_SCRIPT = yaml.safe_load((REPO / "jenkins" / "casc" / "jenkins.yaml").read_text())["jobs"][0]["script"]
REQUIRED_STAGES = [
    "Checkout", "Tooling", "Build image", "Evaluate", "Aggregate", "Baseline", "Publish", "PR comment", "Gate",
    "Release",
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


# Order of execution, read from the syntax tree (document order is execution order in a declarative pipeline).

STEP_NODES = ("method_invocation", "juxt_function_call")


@dataclass
class Step:
    name: str
    text: str
    ancestors: list[tree_sitter.Node]

    def inside(self, name: str) -> bool:
        return any(_call_name(a) == name for a in self.ancestors)

    def guarded_by(self, needle: str) -> bool:
        """Inside an `if (...)` whose condition mentions `needle`."""
        for node in self.ancestors:
            if node.type == "if_statement":
                condition = node.child_by_field_name("condition") or node.children[1]
                if needle in (condition.text or b"").decode():
                    return True
        return False


def _call_name(node: tree_sitter.Node) -> str:
    # `checkout scm` (a command expression) parses like a declaration: type `checkout`, variable `scm`.
    if node.type == "local_variable_declaration" and node.children[0].type == "type_identifier":
        return (node.children[0].text or b"").decode()
    if node.type not in STEP_NODES:
        return ""
    name = node.child_by_field_name("name") or node.children[0]
    return (name.text or b"").decode() if name.type == "identifier" else ""


def steps_in_order(node: tree_sitter.Node, ancestors: list[tree_sitter.Node] | None = None) -> list[Step]:
    ancestors = ancestors or []
    found = []
    name = _call_name(node)
    if name:
        found.append(Step(name, (node.text or b"").decode(), ancestors))
    for child in node.children:
        found.extend(steps_in_order(child, [*ancestors, node]))
    return found


@pytest.fixture(scope="module")
def ordered() -> list[Step]:
    tree = parse((REPO / "Jenkinsfile").read_bytes())
    return steps_in_order(tree.root_node)


def test_the_workspace_is_cleaned_then_checked_out_before_any_shell_step(ordered: list[Step]) -> None:
    in_stages = [s for s in ordered if s.inside("stages")]
    names = [s.name for s in in_stages]
    assert "cleanWs" in names and "checkout" in names
    first_sh = names.index("sh")
    assert names.index("cleanWs") < names.index("checkout") < first_sh
    assert all(n != "sh" for n in names[: names.index("checkout")])
    (checkout,) = [s for s in in_stages if s.name == "checkout"]
    assert checkout.text.strip() == "checkout scm"


def test_post_runs_workspace_scripts_only_after_a_checkout(ordered: list[Step]) -> None:
    """A build that failed before (or in) the checkout has no scripts of this commit in its workspace."""
    post_sh = [s for s in ordered if s.name == "sh" and s.inside("post")]
    assert post_sh, "post collects logs with a script"
    for step in post_sh:
        assert step.guarded_by("RELEASE_CHECKED_OUT"), f"unguarded in post: {step.text}"
    flag_set = [s for s in ordered if s.name == "script" and "RELEASE_CHECKED_OUT = 'true'" in s.text]
    assert len(flag_set) == 1 and flag_set[0].inside("stages"), "the checkout stage records that it checked out"
    checkout_index = next(i for i, s in enumerate(ordered) if s.name == "checkout")
    assert ordered.index(flag_set[0]) > checkout_index


def stage_named(pipeline: Call, name: str) -> Call:
    (stage,) = [s for s in stages(pipeline) if s.text.startswith(f"stage('{name}')")]
    return stage


def test_the_gate_precedes_the_release_which_runs_only_on_its_verdict(pipeline: Call) -> None:
    names = [re.match(r"stage\('([^']+)'\)", s.text).group(1) for s in stages(pipeline)]  # type: ignore[union-attr]
    assert names.index("Gate") < names.index("Release") == len(names) - 1
    release = stage_named(pipeline, "Release")
    when = child(release, "when")
    assert "GATE_VERDICT" in when.text and "FAILURE" in when.text
    gate = stage_named(pipeline, "Gate")
    assert "scripts/ci-pipeline/gate.sh" in gate.text and "GATE_VERDICT" in gate.text
    assert "unstable(" in gate.text  # a gate failure in warn mode marks the build, never passes silently


def test_gate_mode_reaches_the_gate() -> None:
    """GATE_MODE is a job parameter (jenkins/casc/jenkins.yaml); parameters reach `sh` as environment variables,
    and gate.sh hands it to `evaluator gate --mode` (tests/pipeline/test_ci_scripts.py runs that)."""
    casc = yaml.safe_load((REPO / "jenkins" / "casc" / "jenkins.yaml").read_text())
    script = casc["jobs"][0]["script"]
    match = re.search(r"choiceParam\('GATE_MODE', \[([^\]]*)\]", script)
    assert match, "the release job has no GATE_MODE choice"
    choices = [c.strip().strip("'") for c in match.group(1).split(",")]
    # The first is the default, and a webhook-triggered build sets no parameter: a failing gate blocks.
    assert choices == ["block", "warn", "suite"]
    assert "GATE_MODE" in (REPO / "scripts" / "ci-pipeline" / "gate.sh").read_text()
    assert "parameters {" not in (REPO / "Jenkinsfile").read_text(), "the job, not the Jenkinsfile, owns parameters"


def test_the_release_runs_the_suites_full_profile_and_it_reaches_the_run(pipeline: Call) -> None:
    """seed 001: pull requests run a sample (the workflows), a release the suite's full set. The pipeline's
    environment names a profile of its suite; Jenkins hands environment entries to every `sh`, and the local path
    passes EVAL_PROFILE into the evaluator's container, where `evaluator run` reads it."""
    import evaluator

    environment = child(pipeline, "environment").text
    profile = re.search(r"^\s*EVAL_PROFILE = '([\w-]+)'$", environment, re.MULTILINE)
    # The suite is a job parameter (its default the example suite): an environment entry would shadow it.
    assert "EVAL_SUITE" not in environment
    suite = re.search(r"stringParam\('EVAL_SUITE', '([^']+)'", JOB_SCRIPT)
    assert profile and suite, "the pipeline names the profile a release runs, the job its suite"
    loaded = evaluator.load_suite(REPO / suite.group(1))
    assert profile.group(1) == "nightly" and profile.group(1) in loaded.suite.profiles
    everything = evaluator.plan_run(loaded, profile=profile.group(1))
    assert len(everything.cases) == len(evaluator.plan_run(loaded).cases)  # a release is gated on every case
    local = (REPO / "scripts" / "ci-pipeline" / "run-local-eval.sh").read_text()
    assert re.search(r"^\s*-e EVAL_RUN_ID=\S+ -e EVAL_COMMIT=\S+ -e EVAL_PROFILE \\$", local, re.MULTILINE)
    from evaluator.commands.run import run

    (option,) = [p for p in run.params if p.name == "profile"]
    assert option.envvar == "EVAL_PROFILE"


def test_the_baseline_is_the_last_green_release(pipeline: Call) -> None:
    baseline = stage_named(pipeline, "Baseline")
    (copy,) = [c for c in everything(baseline) if c.name == "copyArtifacts"]
    assert "lastSuccessful(stable: true)" in copy.text and "results/report.json" in copy.text
    # report v5 (issue 22): its cases are in the sidecar beside it, which the gate's paired comparison reads
    assert "results/report.cases.jsonl.gz" in copy.text
    assert "optional: true" in copy.text  # the very first release has none
    post = child(pipeline, "post")
    assert "results/**" in post.text  # every build archives its report for the next one


# Issue 17: the pipeline code comes from the protected release branch; the commit is verified, then claimed,
# before any file of it runs; a failing gate fails the build; docker login is the build's own.


def test_the_pipeline_code_comes_from_the_release_branch_never_from_the_commit() -> None:
    scm = JOB_SCRIPT[JOB_SCRIPT.index("definition {") :]
    assert "branch('refs/heads/${RELEASE_BRANCH}')" in scm
    assert "COMMIT" not in scm, "the Jenkinsfile must not be loaded from the commit under test"
    assert "lightweight(true)" in scm and "url('${RELEASE_REPO_URL}')" in scm


def test_the_commit_is_verified_then_claimed_before_any_of_its_files_runs(ordered: list[Step]) -> None:
    in_stages = [s for s in ordered if s.inside("stages")]
    shells = [s.text for s in in_stages if s.name == "sh"]
    checkout = next(i for i, s in enumerate(in_stages) if s.name == "checkout")
    first_sh = next(s for s in in_stages[checkout + 1 :] if s.name == "sh")
    assert all(s.name in ("withCredentials", "gitUsernamePassword") for s in in_stages[checkout + 1 :][:2])
    assert first_sh.text == "sh 'scripts/ci-pipeline/verify-release-commit.sh'"
    assert shells[0] == "sh 'scripts/ci-pipeline/verify-release-commit.sh'"
    assert shells[1] == "sh 'scripts/ci-pipeline/claim-release.sh'"
    # A duplicate of a claimed release runs nothing else, and reports nothing on the commit.
    for step in in_stages:
        if step.name == "sh" and "verify-release-commit" not in step.text and "claim-release" not in step.text:
            assert step.guarded_by("RELEASE_CLAIM") or any(
                _call_name(a) == "stage" and "RELEASE_CLAIM" in (a.text or b"").decode() for a in step.ancestors
            ), step.text
    status = [s for s in ordered if s.name == "sh" and s.inside("post") and "commit-status" in s.text]
    assert status and all(s.guarded_by("RELEASE_CLAIM") for s in status)


def test_every_stage_after_the_checkout_runs_only_for_a_claimed_release(pipeline: Call) -> None:
    for stage in stages(pipeline)[1:]:
        assert "RELEASE_CLAIM" in child(stage, "when").text, stage.text.splitlines()[0]


def test_a_failing_gate_fails_the_build_and_nothing_is_released(pipeline: Call) -> None:
    gate = stage_named(pipeline, "Gate")
    assert not any(c.name == "catchError" for c in everything(gate)), "a failed gate must fail the build"
    release = child(stage_named(pipeline, "Release"), "when").text
    assert "'pass'" in release and "FAILURE" in release


def test_docker_login_lives_in_a_per_build_config_removed_after_the_build(pipeline: Call, ordered: list[Step]) -> None:
    environment = child(pipeline, "environment").text
    assert re.search(r'^\s*DOCKER_CONFIG = "\$\{WORKSPACE\}@tmp/docker-config"$', environment, re.MULTILINE)
    cleanup = child(child(pipeline, "post"), "cleanup").text
    assert re.search(r"dir\(env\.DOCKER_CONFIG\) \{\s*deleteDir\(\)\s*\}", cleanup)
    removal = [s for s in ordered if s.name == "deleteDir" and s.inside("post")]
    assert removal and not removal[0].guarded_by("RELEASE_CHECKED_OUT")  # removed whatever happened


def test_the_job_takes_the_base_branch_and_a_rerun_switch() -> None:
    assert "genericVariable { key('BASE_REF'); value('$.base_ref') }" in JOB_SCRIPT
    assert "stringParam('BASE_REF'" in JOB_SCRIPT
    assert re.search(r"booleanParam\('RERUN', false,", JOB_SCRIPT)


def test_the_trust_step_fetches_the_release_branch_with_the_checkouts_credentials(ordered: list[Step]) -> None:
    """`checkout scm` authenticates only its own git calls; the `git fetch` of verify-release-commit.sh in a plain
    `sh` would find a private repository closed. The git plugin's gitUsernamePassword binding gives that shell
    the job's checkout credential (GIT_ASKPASS), never on a command line."""
    (verify,) = [s for s in ordered if s.name == "sh" and "verify-release-commit" in s.text]
    bindings = [a for a in verify.ancestors if _call_name(a) == "withCredentials"]
    assert bindings, "verify-release-commit.sh runs git fetch without credentials"
    text = (bindings[-1].text or b"").decode()
    assert "gitUsernamePassword(credentialsId: 'github-checkout')" in text
    assert "credentials('github-checkout')" in JOB_SCRIPT  # the credential `checkout scm` itself uses


def test_only_a_verified_and_claimed_release_supersedes_older_builds(ordered: list[Step]) -> None:
    """A milestone aborts older builds that have not passed it. The first one must come after the trust step and
    the claim, inside the claimed branch: a refused delivery or a duplicate of a claimed release must never abort
    a genuine release's build."""
    in_stages = [s for s in ordered if s.inside("stages")]
    first = next(i for i, s in enumerate(in_stages) if s.name == "milestone")
    claim = next(i for i, s in enumerate(in_stages) if s.name == "sh" and "claim-release" in s.text)
    assert first > claim, "a milestone before the claim lets a refused or duplicate build abort older ones"
    assert in_stages[first].guarded_by("RELEASE_CLAIM")
