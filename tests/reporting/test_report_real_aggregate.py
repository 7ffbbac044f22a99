"""Reports on real aggregates: the engine runs a suite against the local stub server (known latency), the
aggregate is merged by `evaluator aggregate`, and every report is produced by the real `evaluator report`.

The stub (openai_stub/server.py) answers each call after exactly LATENCY seconds and echoes the
text after "Answer with exactly:", so which cases regress between the two runs is known in advance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlschema
import yaml

from evaluator.baseline import compare
from evaluator.contract import Report, load_report
from evaluator.reporting import markdown
from evaluator.reporting.capacity import measure, predict_minutes, size_for
from openai_stub.server import reset_stats, run_stub_in_process, set_controls

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LATENCY = 0.2
CASES = 40
SHARDS = 2
PER_SHARD_CALLS = 4
CALLS_PER_CASE = 4  # one target call, three judge calls (answer relevancy)
REGRESSED = ("q003", "q017", "q029")
CEILING = 3  # the stub answers 429 above this many calls in flight; one shard allowed 4 exceeds it
SCHEMA = Path(__file__).parent / "schemas" / "jenkins-junit-4.xsd"


@dataclass
class Runs:
    folder: Path
    baseline: Path
    current: Path
    limited: Path  # a run against an endpoint with a concurrency ceiling (429 above it)
    errored: Path  # a run whose injected 429s outlive its one attempt: errored cases, deterministically


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DEEPEVAL_TELEMETRY_OPT_OUT": "1", **(env or {})},
        timeout=300,
        check=False,
    )


def _run(
    folder: Path,
    name: str,
    base_url: str,
    wrong: tuple[str, ...],
    shards: int = SHARDS,
    ok_codes: tuple[int, ...] = (0,),
    attempts: int = 8,
) -> Path:
    """Run the suite in `shards` shards (W local processes, or in-process for one) and aggregate it."""
    data = folder / name
    data.mkdir()
    with (data / "cases.jsonl").open("w") as fh:
        for i in range(CASES):
            cid = f"q{i:03d}"
            answer = "wrong" if cid in wrong else "ok"
            fh.write(
                json.dumps(
                    {"id": cid, "input": f"Question {i}? Answer with exactly: {answer}", "expected_output": "ok"}
                )
                + "\n"
            )
    suite = {
        "name": "stubbed",
        "dataset": "cases.jsonl",
        "target": {"base_url": base_url, "model": "stub-model"},
        "judge": {"base_url": base_url, "model": "stub-model"},
        "metrics": [{"type": "exact_match"}, {"type": "answer_relevancy", "threshold": 0.5}],
        "gate": {"min_pass_rate": 0.5, "error_budget": 0.1, "regression_tolerance": 0.05},
        "concurrency": {
            "max_calls_per_endpoint": PER_SHARD_CALLS,
            "max_attempts": attempts,
            "request_timeout_s": 10,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.5,
        },
    }
    (data / "suite.yaml").write_text(yaml.safe_dump(suite))
    layout = ["--workers", str(shards), "--total-shards", str(shards)] if shards > 1 else []
    run = _cli(
        "run", str(data / "suite.yaml"), "--out", str(data / "out"), *layout,
        "--run-id", f"run-{name}", "--commit", f"commit-{name}", "-q",
    )  # fmt: skip
    assert run.returncode in ok_codes, run.stdout + run.stderr
    report = folder / f"{name}.json"
    agg = _cli("aggregate", str(data / "out"), "--out", str(report), "--expect-shards", str(shards))
    assert agg.returncode == 0, agg.stdout + agg.stderr
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    folder = tmp_path_factory.mktemp("real")
    base_url, stop = run_stub_in_process(latency=LATENCY)
    try:
        baseline = _run(folder, "baseline", base_url, ())
        current = _run(folder, "current", base_url, REGRESSED)
        reset_stats(base_url)
        set_controls(base_url, max_concurrency=CEILING, retry_after=0.1)
        # Exit 4 (error budget exceeded) is what a shard does when the endpoint keeps refusing: still measured.
        limited = _run(folder, "limited", base_url, (), shards=1, ok_codes=(0, 4))
        # One attempt per call and 10 % of calls refused (drawn from seed, body and attempt): about a third of the
        # 40 cases error (4 calls each); none erroring would take 0.9**160 < 1e-7, so the test never skips.
        set_controls(base_url, max_concurrency=0, rate_429=0.1)
        errored = _run(folder, "errored", base_url, (), shards=1, ok_codes=(0, 4), attempts=1)
        yield Runs(folder, baseline, current, limited, errored)
    finally:
        stop()


def _load(path: Path) -> Report:
    return load_report(path)


def test_report_command_writes_everything_and_blocks_on_the_regression(runs: Runs) -> None:
    out = runs.folder / "reports"
    done = _cli(
        "report", str(runs.current), "--baseline", str(runs.baseline), "--fail-on-regression",
        "--junit", str(out / "junit.xml"), "--markdown", str(out / "comment.md"), "--html", str(out / "report.html"),
        "--history", str(out / "history.jsonl"),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # 3 of 40 cases flipped: INCONCLUSIVE, blocking
    assert "? inconclusive: default vs baseline run-baseline default: exact_match: difference -0.075" in done.stderr
    assert "more cases would decide it" in done.stderr
    # JUnit: schema-valid, one testcase per case and metric, the wrong answers as failures with their reason.
    xmlschema.XMLSchema(SCHEMA).validate(str(out / "junit.xml"))
    root = ET.parse(out / "junit.xml").getroot()
    assert len(root.findall("./testsuite/testcase")) == CASES * 2
    failed = sorted(tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None)
    assert failed == list(REGRESSED)
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").iter("property")}  # type: ignore[union-attr]
    assert props["run_id"] == "run-current" and props["commit"] == "commit-current" and props["shard"] == "0"
    # Markdown: the three regressed cases, old 1 -> new 0, with the metric's reason.
    comment = (out / "comment.md").read_text()
    assert len(comment) < markdown.GITHUB_COMMENT_LIMIT
    assert "### 3 most regressed cases (of 3)" in comment
    regressions = comment[comment.index("### 3 most regressed cases") :].split("\n### ")[0]
    for cid in REGRESSED:
        row = next(line for line in regressions.splitlines() if line.startswith(f"| `{cid}`"))
        assert "| exact_match |" in row and "| 1.000 | 0.000 |" in row
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history[0]["run_id"] == "run-current" and history[0]["cases"] == CASES


def test_baseline_diff_on_real_runs(runs: Runs) -> None:
    result = compare(_load(runs.current), _load(runs.baseline), 0.05)
    assert sorted({c.case_id for c in result.regressions}) == list(REGRESSED)
    assert {c.metric for c in result.regressions} == {"exact_match"}
    assert result.improvements == [] and result.new == [] and result.removed == []
    delta = next(m for m in result.metrics if m.name == "exact_match")
    assert delta.mean_delta == pytest.approx(-len(REGRESSED) / CASES)
    assert delta.reading == "inconclusive" and not result.regressed  # 40 cases cannot tell a drop of 0.075
    assert "exact_match" in [m.name for m in result.undecided_metrics]


@pytest.mark.browser
def test_html_of_a_real_aggregate_in_chromium(runs: Runs, tmp_path: Path) -> None:
    from tests.reporting.test_report_html_browser import assert_rendered

    page = tmp_path / "report.html"
    done = _cli("report", str(runs.current), "--baseline", str(runs.baseline), "--html", str(page), "-q")
    assert done.returncode == 0, done.stderr
    assert_rendered(page, tmp_path, query="q00", matching=10, total=CASES, shot=True)


def test_plan_matches_the_measured_run(runs: Runs) -> None:
    """Known latency in, known numbers out; and the formula predicts the run that was measured."""
    report = _load(runs.baseline)
    m = measure(report)
    assert m.calls_per_case == CALLS_PER_CASE
    assert LATENCY <= m.call_mean_s < LATENCY * 1.25
    assert CALLS_PER_CASE * LATENCY <= m.service_mean_s < CALLS_PER_CASE * LATENCY * 1.25
    assert PER_SHARD_CALLS * 0.75 <= m.per_shard_calls_in_flight <= PER_SHARD_CALLS + 0.05
    predicted_s = predict_minutes(m, CASES, SHARDS, PER_SHARD_CALLS) * 60
    measured_s = report.totals.wall_time_s
    assert 0.8 <= predicted_s / measured_s <= 1.5, (predicted_s, measured_s)
    # Sizing a bigger run from it: 2,000 cases x 0.8 s of calls in 10 minutes needs ~2.7 calls in flight.
    p = size_for(report, 2000, 10)
    assert p.shards == 1 and p.feasible
    assert p.calls_in_flight == pytest.approx(2000 * m.service_mean_s / (600 - m.service_p95_s))


def test_plan_measures_the_endpoint_ceiling_from_429s(runs: Runs) -> None:
    report = _load(runs.limited)
    m = measure(report)
    assert m.retried_calls > 0 or m.rate_limited > 0, "the ceiling must have pushed back"
    p = size_for(report, 4000, 5)
    assert p.endpoint_ceiling is not None and p.endpoint_ceiling <= CEILING + 0.3
    assert not p.feasible
    assert CALLS_PER_CASE * LATENCY <= m.service_mean_s < CALLS_PER_CASE * LATENCY * 1.25  # finished cases only
    assert p.best_minutes == pytest.approx((4000 * m.service_mean_s / p.endpoint_ceiling + m.service_p95_s) / 60)
    assert p.best_minutes > 4000 * CALLS_PER_CASE * LATENCY / CEILING / 60 > 5


def test_reports_of_a_run_with_infrastructure_errors(runs: Runs) -> None:
    """429s that outlived the retries are JUnit errors (not failures) and are counted in the comment."""
    from evaluator.reporting import html, junit

    report = _load(runs.errored)
    errored = [c for c in report.cases if c.error is not None]
    assert 0 < len(errored) < CASES, "the injected 429s must error some cases and not all"
    text = junit.render(report)
    xmlschema.XMLSchema(SCHEMA).validate(text)
    errors = ET.fromstring(text).findall(".//error")
    assert len(errors) >= len(errored) * 2 and {e.get("type") for e in errors} >= {"rate_limited"}
    comment = markdown.render(report)
    assert f"{len(errored)} errored" in comment
    # Errors within the suite's error budget (0.1) do not fail the gate; beyond it they do, and the comment says so.
    label = "❌ **Evaluation FAIL**" if len(errored) / CASES > 0.1 else "✅ **Evaluation PASS**"
    assert label in comment
    assert "rate_limited" in html.render(report)
