"""GitHub workflows: valid against GitHub's workflow schema, actions pinned by commit SHA, no
pull_request_target; and the release-trigger's own shell steps run for real against the receiver."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from release_receiver import ReplayStore, VerifierConfig
from release_receiver.server import ReceiverConfig, make_server
from tests.pipeline.conftest import MERGE_SHA, REPO, SECRET, iso

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[Any, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release-trigger.yml"}


def test_valid_against_githubs_workflow_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "is not subscriptable" in result.stderr:
        pytest.skip(
            "check-jsonschema cannot import with the installed click (needs click>=8.4): " + result.stderr[-200:]
        )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_vendored_schema_validates_them_too() -> None:
    """The same schema file check-jsonschema ships, applied with jsonschema (independent of its CLI)."""
    import json

    import jsonschema

    spec = __import__("importlib.util").util.find_spec("check_jsonschema")
    assert spec is not None and spec.origin is not None
    schema_path = Path(spec.origin).parent / "builtin_schemas" / "vendor" / "github-workflows.json"
    schema = json.loads(schema_path.read_text())
    for path in WORKFLOWS:
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(load(path)))
        assert not errors, f"{path.name}: {[e.message for e in errors]}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_full_commit_sha(path: Path) -> None:
    uses = re.findall(r"uses:\s*([^\s#]+)", path.read_text())
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by SHA"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_pull_request_target_and_read_only_token(path: Path) -> None:
    assert "pull_request_target" not in load(path)["on"]
    code = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
    assert not any("pull_request_target" in line for line in code)
    assert load(path)["permissions"] == {"contents": "read"}


def test_release_trigger_fires_only_on_merged_prs_into_release_branches() -> None:
    workflow = load(REPO / ".github" / "workflows" / "release-trigger.yml")
    on = workflow["on"]["pull_request"]
    assert on["types"] == ["closed"]
    assert set(on["branches"]) == {"release", "release/**"}
    assert workflow["jobs"]["trigger"]["if"] == "github.event.pull_request.merged == true"


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None, reason="jq/curl not installed")
def test_release_trigger_steps_reach_the_receiver_and_are_accepted(tmp_path: Path) -> None:
    """Run the workflow's two `run:` scripts with bash, as the runner would, against the real receiver."""
    steps = load(REPO / ".github" / "workflows" / "release-trigger.yml")["jobs"]["trigger"]["steps"]
    build, send = steps
    store = ReplayStore(tmp_path / "replay.sqlite", 86400)
    receiver = make_server("127.0.0.1", 0, ReceiverConfig("/hooks/release", VerifierConfig(secret=SECRET), store))
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        github_env = tmp_path / "github_env"
        github_env.write_text("")
        event = {
            "DELIVERY": "123456-1", "ACTION": "closed", "NUMBER": "42", "MERGED": "true", "MERGE_SHA": MERGE_SHA,
            "BASE_REF": "release", "HEAD_REF": "topic", "REPO": "acme/ai-eval-factory", "MERGED_AT": iso(time.time()),
        }  # fmt: skip
        base_env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(github_env)}
        subprocess.run(["bash", "-c", build["run"]], env=base_env | event, check=True, timeout=60)
        exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/release"
        send_env = base_env | exported | {"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET.decode()}
        first = subprocess.run(["bash", "-c", send["run"]], env=send_env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "HTTP 202" in first.stdout and MERGE_SHA in first.stdout
        assert "123456-1" in store
        # A re-run of the job (same delivery) is answered 409 and counts as delivered, not as a failure.
        again = subprocess.run(["bash", "-c", send["run"]], env=send_env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "HTTP 409" in again.stdout
        # A re-run of the workflow (a new attempt: new delivery id and timestamp) is the same merge: 409 too.
        github_env.write_text("")
        subprocess.run(["bash", "-c", build["run"]], env=base_env | event | {"DELIVERY": "123456-2"}, check=True)
        rerun = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
        again = subprocess.run(
            ["bash", "-c", send["run"]], env=send_env | rerun, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0 and "HTTP 409" in again.stdout, again.stdout + again.stderr
        wrong = subprocess.run(
            ["bash", "-c", send["run"]], env=send_env | {"WEBHOOK_SECRET": "wrong"}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert wrong.returncode == 1 and "HTTP 401" in wrong.stdout
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(timeout=5)


def test_the_small_evaluation_picks_the_profile_that_fits_the_trigger(tmp_path: Path) -> None:
    """seed 001: a pull request runs the suite's small `pr` sample, a push to main its full `nightly` set. The
    step's EVAL_PROFILE reaches the run: scripts/demo.sh execs `evaluator demo`, whose --profile reads it, and the
    run machinery selects that profile's cases from it (checked with `evaluator prepare`, which plans like a run)."""
    import json

    from click.testing import CliRunner

    from evaluator.cli import main
    from evaluator.commands.demo import EXAMPLE_SUITE, demo

    workflow = load(REPO / ".github" / "workflows" / "ci.yml")
    assert set(workflow["on"]) == {"pull_request", "push"}
    (step,) = [s for s in workflow["jobs"]["small-evaluation"]["steps"] if "scripts/demo.sh" in s.get("run", "")]
    match = re.fullmatch(
        r"\$\{\{ github\.event_name == 'pull_request' && '([\w-]+)' \|\| '([\w-]+)' \}\}", step["env"]["EVAL_PROFILE"]
    )
    assert match, step["env"]["EVAL_PROFILE"]
    assert match.groups() == ("pr", "nightly")
    assert 'exec .venv/bin/evaluator demo "$@"' in (REPO / "scripts" / "demo.sh").read_text()
    (option,) = [p for p in demo.params if p.name == "profile"]
    assert option.envvar == "EVAL_PROFILE"
    selected = {}
    for profile in match.groups():
        done = CliRunner().invoke(
            main, ["prepare", str(EXAMPLE_SUITE), "--out", str(tmp_path / profile), "--json"],
            env={"EVAL_PROFILE": profile}, catch_exceptions=False,
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        facts = json.loads(done.stdout)
        assert facts["profile"] == profile
        selected[profile] = facts["cases"]
    assert selected == {"pr": 4, "nightly": 8}
