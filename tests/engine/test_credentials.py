"""Credentials are per endpoint: the judge never sends the target's key, on one shared server or on two.

Connection pooling and the adaptive limit may be shared by target and judge when they share a server; the
Authorization header never is. The stub accepts a set of keys and counts, per model, which key (by position,
`key-0`, `key-1`, never the key itself) each call presented, so a test sees exactly whose key reached it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openai_stub.server import get_stats, run_stub_in_process
from tests.helpers import cases, write_suite

pytestmark = pytest.mark.e2e

TARGET_SECRET = "sk-target-4b1d77"
JUDGE_SECRET = "sk-judge-9e02c3"
CASES = 5
JUDGE_CALLS_PER_CASE = 3  # answer relevancy: statements, verdicts, reason


def _suite(folder: Path, target_url: str, judge_url: str, target_key: str | None, judge_key: str | None) -> Path:
    target = {"base_url": target_url, "model": "target-model"}
    judge = {"base_url": judge_url, "model": "judge-model"}
    if target_key:
        target["api_key_env"] = target_key
    if judge_key:
        judge["api_key_env"] = judge_key
    return write_suite(folder, cases(CASES), target=target, judge=judge)


def _no_secret_written(out: Path, *texts: str) -> None:
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for secret in (TARGET_SECRET, JUDGE_SECRET):
        assert secret.encode() not in written
        assert all(secret not in text for text in texts)


def test_one_server_distinct_keys_each_endpoint_sends_its_own(tmp_path: Path, evaluator_cli) -> None:
    base_url, stop = run_stub_in_process(api_key=f"{TARGET_SECRET},{JUDGE_SECRET}")  # key-0, key-1
    try:
        suite = _suite(tmp_path, base_url, base_url, "TARGET_KEY", "JUDGE_KEY")
        out = tmp_path / "out"
        done = evaluator_cli("run", str(suite), "--out", str(out), env={"TARGET_KEY": TARGET_SECRET,
                                                                           "JUDGE_KEY": JUDGE_SECRET})  # fmt: skip
        assert done.returncode == 0, done.stderr
        stats = get_stats(base_url)
        assert stats["keys_by_model"] == {
            "target-model": {"key-0": CASES},
            "judge-model": {"key-1": CASES * JUDGE_CALLS_PER_CASE},
        }
        # One server: one pool and one adaptive limit, shared by both endpoints.
        manifest = json.loads((out / "shard-00000" / "manifest.json").read_text())
        assert list(manifest["endpoints"]) == [base_url]
        _no_secret_written(out, done.stdout, done.stderr)
    finally:
        stop()


def test_two_servers_each_gets_only_its_own_key(tmp_path: Path, evaluator_cli) -> None:
    target_url, stop_target = run_stub_in_process(api_key=TARGET_SECRET)
    judge_url, stop_judge = run_stub_in_process(api_key=JUDGE_SECRET)
    try:
        suite = _suite(tmp_path, target_url, judge_url, "TARGET_KEY", "JUDGE_KEY")
        out = tmp_path / "out"
        done = evaluator_cli("run", str(suite), "--out", str(out), env={"TARGET_KEY": TARGET_SECRET,
                                                                           "JUDGE_KEY": JUDGE_SECRET})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert get_stats(target_url)["keys_by_model"] == {"target-model": {"key-0": CASES}}
        assert get_stats(judge_url)["keys_by_model"] == {"judge-model": {"key-0": CASES * JUDGE_CALLS_PER_CASE}}
        _no_secret_written(out, done.stdout, done.stderr)
    finally:
        stop_target()
        stop_judge()


def test_pod_key_variables_override_the_suite(tmp_path: Path, evaluator_cli) -> None:
    """EVAL_TARGET_API_KEY / EVAL_JUDGE_API_KEY (docs/contract.md; the Pulumi Job sets them from secrets)."""
    base_url, stop = run_stub_in_process(api_key=f"{TARGET_SECRET},{JUDGE_SECRET}")
    try:
        suite = _suite(tmp_path, base_url, base_url, "TARGET_KEY", None)
        out = tmp_path / "out"
        env = {"TARGET_KEY": "sk-stale-from-suite", "EVAL_TARGET_API_KEY": TARGET_SECRET,
               "EVAL_JUDGE_API_KEY": JUDGE_SECRET}  # fmt: skip
        done = evaluator_cli("run", str(suite), "--out", str(out), env=env)
        assert done.returncode == 0, done.stderr
        assert get_stats(base_url)["keys_by_model"] == {
            "target-model": {"key-0": CASES},
            "judge-model": {"key-1": CASES * JUDGE_CALLS_PER_CASE},
        }
    finally:
        stop()
