"""The contract end to end against a real OpenAI-compatible server on 127.0.0.1: run shards, aggregate, gate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openai_stub.server import get_stats, run_stub_in_process, set_controls
from tests.helpers import cases, read_records, write_suite

pytestmark = pytest.mark.e2e


def all_records(out: Path) -> list[dict]:
    return [r for path in sorted(out.glob("shard-*/results.jsonl")) for r in read_records(path)]


def test_workers_run_every_case_once_and_gate_passes(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite = write_suite(tmp_path, cases(40), base_url=stub)
    out = tmp_path / "out"
    done = evaluator_cli("run", str(suite), "--out", str(out), "--workers", "3", "--total-shards", "5")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"shard-{i:05d}" for i in range(5)]
    records = all_records(out)
    assert sorted(r["case_id"] for r in records) == [f"c{i:04d}" for i in range(40)]
    assert {r["shard_index"] for r in records} == set(range(5))
    first = records[0]
    assert [c["type"] for c in first["calls"]] == ["target", "judge", "judge", "judge"]
    assert first["metrics"]["answer_relevancy"]["score"] == 1.0
    assert all(c["attempts"] == 1 and c["latency_s"] > 0 for c in first["calls"])
    assert len({r["run_id"] for r in records}) == 1

    report_path = tmp_path / "report.json"
    done = evaluator_cli("aggregate", str(out), "--out", str(report_path), "--expect-shards", "5", "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["problems"] == []
    assert report["totals"]["cases"] == 40 and report["totals"]["passed"] == 40
    assert report["latency"]["judge"]["count"] == 120
    assert report["totals"]["calls"] == 160
    assert evaluator_cli("gate", str(report_path)).returncode == 0


def test_shard_from_job_completion_index_matches_flag(tmp_path: Path, stub: str, evaluator_cli) -> None:
    """A pod (env from the Job controller) and a laptop (flags) compute the same shard and write the same files."""
    suite = write_suite(tmp_path, cases(10), base_url=stub)
    pod = evaluator_cli(
        "run", str(suite), "--out", str(tmp_path / "pod"), "--run-id", "r1",
        env={"JOB_COMPLETION_INDEX": "2", "EVAL_TOTAL_SHARDS": "4"},
    )  # fmt: skip
    laptop = evaluator_cli(
        "run", str(suite), "--out", str(tmp_path / "laptop"), "--run-id", "r1", "--shard-index", "2",
        "--total-shards", "4",
    )  # fmt: skip
    assert pod.returncode == laptop.returncode == 0, pod.stderr + laptop.stderr
    ids = [[r["case_id"] for r in read_records(tmp_path / where / "shard-00002" / "results.jsonl")]
           for where in ("pod", "laptop")]  # fmt: skip
    assert sorted(ids[0]) == sorted(ids[1]) == ["c0005", "c0006"]
    assert "shard 2/4 (contiguous): 2 cases, dataset positions 5..6" in pod.stderr


def test_rerun_resumes_without_calling_the_server_again(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite = write_suite(tmp_path, cases(12), base_url=stub)
    out = tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    calls_before = get_stats(stub)["total"]
    again = evaluator_cli("run", str(suite), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert get_stats(stub)["total"] == calls_before
    assert len(read_records(out / "shard-00000" / "results.jsonl")) == 12


def test_sigkill_mid_run_then_rerun_gives_every_case_exactly_once(tmp_path: Path, evaluator_cli) -> None:
    base_url, stop = run_stub_in_process(latency=0.05)
    try:
        suite = write_suite(tmp_path, cases(300), base_url=base_url, concurrency={"max_calls_per_endpoint": 8})
        out = tmp_path / "out"
        results = out / "shard-00000" / "results.jsonl"
        process = subprocess.Popen(
            [sys.executable, "-m", "evaluator", "run", str(suite), "--out", str(out), "--run-id", "kill"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not results.exists() or len(results.read_bytes().splitlines()) < 20):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        partial = len(read_records(results)) if results.read_bytes().endswith(b"\n") else None
        assert not (out / "shard-00000" / "manifest.json").exists()
        # Simulate the worst moment of the kill: a record half written.
        with results.open("ab") as handle:
            handle.write(b'{"schema": "evaluator.result/v1", "case_id": "c02')
        rerun = evaluator_cli("run", str(suite), "--out", str(out), "--run-id", "kill")
        assert rerun.returncode == 0, rerun.stderr
        assert "torn last line" in rerun.stderr
        ids = [r["case_id"] for r in read_records(results)]
        assert sorted(ids) == [f"c{i:04d}" for i in range(300)]
        assert partial is None or partial < 300
        report = tmp_path / "report.json"
        assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
        assert json.loads(report.read_text())["problems"] == []
    finally:
        stop()


def test_rate_limits_and_server_errors_lose_no_case(tmp_path: Path, evaluator_cli) -> None:
    """A fifth of calls get 429 + Retry-After, some get 500: retried, counted, nothing lost or doubled."""
    base_url, stop = run_stub_in_process(latency=0.01, rate_429=0.2, retry_after=0.2, rate_500=0.05, seed=7)
    try:
        suite = write_suite(tmp_path, cases(150), base_url=base_url)
        out = tmp_path / "out"
        done = evaluator_cli("run", str(suite), "--out", str(out), "--workers", "2")
        assert done.returncode == 0, done.stderr
        records = all_records(out)
        assert sorted(r["case_id"] for r in records) == [f"c{i:04d}" for i in range(150)]
        stats = get_stats(base_url)
        assert stats["by_status"].get("429", 0) > 50 and stats["by_status"].get("500", 0) > 5
        attempts = sum(c["attempts"] for r in records for c in r["calls"])
        assert attempts == stats["total"]  # every request the server saw is accounted for
        assert all(r["error"] is None for r in records)
        manifests = [json.loads(p.read_text()) for p in out.glob("shard-*/manifest.json")]
        assert sum(m["counts"]["cases"] for m in manifests) == 150
    finally:
        stop()


def test_dead_endpoint_errors_are_infrastructure_not_quality(tmp_path: Path, evaluator_cli) -> None:
    base_url, stop = run_stub_in_process(rate_500=1.0)
    try:
        suite = write_suite(
            tmp_path, cases(6), base_url=base_url, concurrency={"max_attempts": 2, "backoff_base_s": 0.01}
        )
        out = tmp_path / "out"
        done = evaluator_cli("run", str(suite), "--out", str(out))
        assert done.returncode == 4, done.stderr
        assert "error budget" in done.stderr
        report = tmp_path / "report.json"
        assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
        content = json.loads(report.read_text())
        assert content["totals"]["errored"] == 6 and content["totals"]["failed"] == 0
        assert content["errors_by_kind"] == {"http_5xx": 6}
        gate = evaluator_cli("gate", str(report))
        assert gate.returncode == 1
        assert "infrastructure, not quality" in gate.stderr
        # The server recovers; the Job retries the index: errored cases run again, once each.
        set_controls(base_url, rate_500=0.0)
        assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
        assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
        content = json.loads(report.read_text())
        assert content["problems"] == [] and content["totals"]["errored"] == 0 and content["totals"]["cases"] == 6
    finally:
        stop()


def test_quality_failures_fail_the_gate_without_errors(tmp_path: Path, stub: str, evaluator_cli) -> None:
    data = [{"id": f"q{i}", "input": f"Answer with exactly: {'4' if i < 3 else '5'}", "expected_output": "4"}
            for i in range(10)]  # fmt: skip
    suite = write_suite(tmp_path, data, base_url=stub, metrics=[{"type": "exact_match"}], judge=None)
    out = tmp_path / "out"
    assert evaluator_cli("run", str(suite), "--out", str(out)).returncode == 0
    report = tmp_path / "report.json"
    assert evaluator_cli("aggregate", str(out), "--out", str(report), "-q").returncode == 0
    content = json.loads(report.read_text())
    assert content["totals"]["passed"] == 3 and content["totals"]["failed"] == 7 and content["totals"]["errored"] == 0
    gate = evaluator_cli("gate", str(report))
    assert gate.returncode == 1 and "quality: pass rate 30.0%" in gate.stderr
    assert evaluator_cli("gate", str(report), "--mode", "warn").returncode == 0


def test_api_keys_reach_the_server_but_never_results_or_logs(tmp_path: Path, evaluator_cli) -> None:
    secret = "sk-live-7f3a9c1d5e"
    base_url, stop = run_stub_in_process(api_key=secret)
    try:
        suite = write_suite(
            tmp_path,
            cases(5),
            base_url=base_url,
            target={"api_key_env": "TARGET_KEY"},
            judge={"api_key_env": "JUDGE_KEY"},
        )
        out = tmp_path / "out"
        env = {"TARGET_KEY": secret, "JUDGE_KEY": secret}
        done = evaluator_cli("run", str(suite), "--out", str(out), "-v", "-v", env=env, subprocess=True)
        assert done.returncode == 0, done.stderr
        assert get_stats(base_url)["by_status"] == {"200": 20}  # the key was accepted on every call
        written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
        assert secret.encode() not in written
        assert secret not in done.stderr + done.stdout
        refused = evaluator_cli(
            "run", str(suite), "--out", str(tmp_path / "o2"), env={"TARGET_KEY": "wrong", "JUDGE_KEY": "wrong"}
        )
        assert refused.returncode == 4 and "wrong" not in refused.stderr
    finally:
        stop()
