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

from release_receiver import ReleasePolicy, ReplayStore, VerifierConfig
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
    permissions = load(path)["permissions"]
    assert permissions.get("contents") == "read" and set(permissions.values()) == {"read"}


def test_release_trigger_runs_on_the_protected_branch_in_its_environment_when_chosen() -> None:
    """The sender's secret lives in the GitHub Environment `release`, whose deployment branch policy admits the
    release branch only: a workflow a writer runs on their own branch never sees it. GitHub evaluates that policy
    on the ref the run is for, and a pull_request run is for the pull request's head branch: so the trigger is a
    push to the release branch (which only a reviewed merge makes), and the job declares the environment. A
    repository variable decides whether this workflow or GitHub's own webhook is the sender (never both)."""
    workflow = load(REPO / ".github" / "workflows" / "release-trigger.yml")
    assert workflow["on"] == {"push": {"branches": ["release"]}}
    job = workflow["jobs"]["trigger"]
    assert job["environment"] == "release"
    assert job["if"] == "vars.RELEASE_TRIGGER == 'workflow'"
    secrets = re.findall(r"secrets\.([A-Z_]+)", (REPO / ".github" / "workflows" / "release-trigger.yml").read_text())
    assert set(secrets) == {"RELEASE_WEBHOOK_URL", "RELEASE_WEBHOOK_SECRET"}
    readme = (REPO / "jenkins" / "README.md").read_text()
    for command in ("gh api --method PUT repos/OWNER/REPO/environments/release",
                    "gh secret set RELEASE_WEBHOOK_SECRET --env release",
                    "gh variable set RELEASE_TRIGGER --body workflow"):  # fmt: skip
        assert command in readme, command


class PullsOfCommit:
    """GitHub's "List pull requests associated with a commit" (GET /repos/{owner}/{repo}/commits/{sha}/pulls,
    docs.github.com/en/rest/commits/commits): the merged pull request whose merge commit the push brought."""

    def __init__(self, pulls: list[dict[str, Any]]) -> None:
        import http.server

        outer_pulls = pulls

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                import json

                ok = (
                    self.path == f"/repos/acme/ai-eval-factory/commits/{MERGE_SHA}/pulls"
                    and self.headers.get("Authorization") == "Bearer ghs_run_token"
                )
                body = json.dumps(outer_pulls if ok else {"message": "Not Found"}).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def merged_pr(merged_at: str) -> dict[str, Any]:
    return {"number": 42, "state": "closed", "merged_at": merged_at, "merge_commit_sha": MERGE_SHA,
            "base": {"ref": "release"}, "head": {"ref": "renovate/@types-node-20.x"}}  # fmt: skip


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None, reason="jq/curl not installed")
def test_release_trigger_steps_reach_the_receiver_and_are_accepted(tmp_path: Path) -> None:
    """Run the workflow's `run:` scripts with bash, as the runner would, against a stand-in of GitHub's API and
    the real receiver."""
    steps = load(REPO / ".github" / "workflows" / "release-trigger.yml")["jobs"]["trigger"]["steps"]
    find, build, send = steps
    verifier = VerifierConfig(secret=SECRET, policy=ReleasePolicy(("acme/ai-eval-factory",)))
    store = ReplayStore(tmp_path / "replay.sqlite", verifier.replay_window_s)
    receiver = make_server("127.0.0.1", 0, ReceiverConfig("/hooks/release", verifier, store))
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    api = PullsOfCommit([{"number": 41, "state": "open", "merged_at": None, "merge_commit_sha": "f" * 40,
                          "base": {"ref": "main"}, "head": {"ref": "x"}}, merged_pr(iso(time.time()))])  # fmt: skip
    try:
        github_env = tmp_path / "github_env"
        github_env.write_text("")
        base_env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(github_env)}
        push = {"GH_TOKEN": "ghs_run_token", "API": api.url, "REPO": "acme/ai-eval-factory", "SHA": MERGE_SHA,
                "BRANCH": "release"}  # fmt: skip
        found = subprocess.run(["bash", "-c", find["run"]], env=base_env | push, capture_output=True, text=True,
                               timeout=60)  # fmt: skip
        assert found.returncode == 0, found.stdout + found.stderr
        event = {"DELIVERY": "123456-1", "REPO": "acme/ai-eval-factory", "SHA": MERGE_SHA}
        subprocess.run(["bash", "-c", build["run"]], env=base_env | event, check=True, timeout=60)
        exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/release"
        send_env = base_env | exported | {"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET.decode()}
        first = subprocess.run(["bash", "-c", send["run"]], env=send_env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "HTTP 202" in first.stdout and MERGE_SHA in first.stdout
        assert '"head_ref": "renovate/@types-node-20.x"' in first.stdout  # an odd but legal head branch
        assert "123456-1" in store
        # A re-run of the job (same delivery) is answered 409 and counts as delivered, not as a failure.
        again = subprocess.run(["bash", "-c", send["run"]], env=send_env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "HTTP 409" in again.stdout
        # A re-run of the workflow (a new attempt: new delivery id and timestamp) is the same merge: 409 too.
        github_env.write_text("")
        subprocess.run(["bash", "-c", find["run"]], env=base_env | push, check=True, timeout=60)
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
        api.close()
        receiver.shutdown()
        receiver.server_close()
        thread.join(timeout=5)


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("curl") is None, reason="jq/curl not installed")
def test_a_push_that_is_not_a_reviewed_merge_sends_nothing(tmp_path: Path) -> None:
    """An admin's direct push to the release branch (protection bypassed) has no merged pull request: refused."""
    find = load(REPO / ".github" / "workflows" / "release-trigger.yml")["jobs"]["trigger"]["steps"][0]
    api = PullsOfCommit([{"number": 7, "state": "open", "merged_at": None, "merge_commit_sha": "e" * 40,
                          "base": {"ref": "release"}, "head": {"ref": "y"}}])  # fmt: skip
    try:
        (tmp_path / "env").write_text("")
        done = subprocess.run(["bash", "-c", find["run"]], env={
            "PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(tmp_path / "env"),
            "GH_TOKEN": "ghs_run_token", "API": api.url, "REPO": "acme/ai-eval-factory", "SHA": MERGE_SHA,
            "BRANCH": "release"}, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1 and "no pull request merged into release" in done.stderr, done.stderr
        assert not (tmp_path / "pull.json").exists()
    finally:
        api.close()


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
