"""The comparison in the three reports, from a real run on the stub server: 3 variants x 40 cases, a custom metric
from a user's package (tests/metrics/custom_pkg) beside DeepEval's G-Eval, a planted regression.

- JUnit: one testsuite per variant (its model, reference flag, pass rate and difference as properties), valid
  against the Jenkins JUnit XSD, the custom metric's testcases in every variant's suite;
- the PR comment: a leaderboard, each candidate's paired differences with the gate's reading, the top flipped
  cases; under GitHub's 65,536-character limit even for 60 variants x 30 metrics with huge answers;
- the HTML report, opened in headless Chromium: every plot drawn (the leaderboard and the forest plot of
  differences included), the answers side by side, the search filtering both tables.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xmlschema

import evaluator
from evaluator.contract import Difference, PairComparison, Report
from evaluator.reporting import markdown
from openai_stub import set_controls
from tests.helpers import write_suite
from tests.reporting.chromium_helper import dump_dom, plots_in, screenshot
from tests.reporting.test_report_html_browser import assert_screenshot_drawn

XSD = xmlschema.XMLSchema(Path(__file__).resolve().parent.parent / "reporting" / "schemas" / "jenkins-junit-4.xsd")
PKG = "tests.metrics.custom_pkg.metrics"
VARIANTS = [
    {"name": "base", "model": "model-base", "system_prompt": "Be brief."},
    {"name": "same", "model": "model-same", "system_prompt": "Be brief, please."},
    {"name": "worse", "model": "model-worse", "temperature": 0.7},
]
METRICS = [
    {"type": "g_eval", "name": "correct", "evaluation_steps": ["Is the answer correct?"],
     "evaluation_params": ["input", "actual_output", "expected_output"]},
    {"type": "custom", "name": "mentions_stub", "class": f"{PKG}:KeywordMetric", "args": {"keyword": "stub"}},
]  # fmt: skip
pytestmark = pytest.mark.e2e

# No baseline given: no baseline plot (an empty plot is not drawn).
PLOTS = ("plot-leaderboard", "plot-forest", "plot-scores", "plot-latency", "plot-shards", "plot-limits")


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, module_stub: str) -> Iterator[dict[str, Any]]:
    """One real run: 2 shards of 120 units, aggregated; the reports written by `evaluator report`."""
    from click.testing import CliRunner

    from evaluator.cli import main

    folder = tmp_path_factory.mktemp("compared")
    cases = [{"id": f"q{i:02d}", "input": f"Question {i}: what is {i} squared?", "expected_output": str(i * i),
              "tags": ["even" if i % 2 == 0 else "odd"]} for i in range(40)]  # fmt: skip
    suite = write_suite(
        folder, cases, base_url=module_stub, metrics=METRICS, variants=VARIANTS,
        gate={"policy": "no_regression", "regression_tolerance": 0.05, "min_pass_rate": 0.5},
        compare={"reference": "base"},
    )  # fmt: skip
    set_controls(module_stub, quality="model-base=0.9,model-same=0.9,model-worse=0.5")
    try:
        out = folder / "out"
        for index in (0, 1):
            args = ["run", str(suite), "--out", str(out), "--shard-index", str(index), "--total-shards", "2"]
            result = CliRunner().invoke(main, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
    finally:
        set_controls(module_stub, quality="")
    report = evaluator.aggregate(out, expect_shards=2)
    evaluator.write_report(report, folder / "report.json")
    files = {kind: folder / f"report.{ext}" for kind, ext in (("junit", "xml"), ("markdown", "md"), ("html", "html"))}
    args = ["report", str(folder / "report.json"), "--junit", str(files["junit"]), "--markdown",
            str(files["markdown"]), "--html", str(files["html"]), "--price-per-1k-tokens", "0.5", "-q"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    yield {"report": report, "folder": folder, **files}


def test_the_run_compares_every_candidate_with_the_reference(compared: dict[str, Any]) -> None:
    report: Report = compared["report"]
    assert report.problems == [] and list(report.variants) == ["base", "same", "worse"]
    assert report.variants["same"].target.system_prompt == "Be brief, please."  # type: ignore[union-attr]
    assert report.variants["worse"].target.temperature == 0.7  # type: ignore[union-attr]
    assert report.variants["worse"].target.system_prompt is None  # the suite's target has none
    (same, worse) = report.comparisons
    assert (same.candidate, worse.candidate) == ("same", "worse") and same.reference == "base"
    assert same.metrics["correct"].difference == 0.0 and same.flipped_to_fail == []
    assert worse.metrics["correct"].difference is not None and worse.metrics["correct"].difference < -0.2
    assert worse.flipped_to_fail and not worse.flipped_to_pass
    assert set(worse.metrics) == {"correct", "mentions_stub"}  # the custom metric is compared like a built-in
    verdict = evaluator.judge(report)
    assert verdict.status == "fail" and any("worse vs base: correct" in r for r in verdict.reasons)
    assert not any("same vs base" in r for r in verdict.reasons)  # the unchanged candidate is not blamed ...
    assert any("same vs base" in r and "more cases would decide it" in r for r in verdict.inconclusive)  # ... nor
    # shown safe on 40 cases


def test_junit_has_one_suite_per_variant_with_the_custom_metric(compared: dict[str, Any]) -> None:
    XSD.validate(compared["junit"])
    root = ET.parse(compared["junit"]).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["t.base", "t.same", "t.worse"]
    for suite in suites:
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        variant = suite.get("name", "").split(".", 1)[1]
        assert props["variant"] == variant and props["model"] == f"model-{variant}"
        assert props["reference"] == ("true" if variant == "base" else "false")
        metrics = {c.get("classname", "").rsplit(".", 1)[1] for c in suite.iter("testcase")}
        assert metrics == {"correct", "mentions_stub"} and int(suite.get("tests", "0")) == 80
        assert all(c.get("classname", "").startswith(f"evaluator.t.{variant}.") for c in suite.iter("testcase"))
    worse = {p.get("name"): p.get("value") for p in suites[2].iter("property")}
    assert float(worse["pass_rate_difference"]) < -0.2 and int(worse["flipped_to_fail"]) > 0
    assert int(suites[2].get("failures", "0")) > int(suites[0].get("failures", "0"))


def test_the_pr_comment_has_a_leaderboard_differences_and_flipped_cases(compared: dict[str, Any]) -> None:
    text = compared["markdown"].read_text()
    report: Report = compared["report"]
    assert text.startswith("## ❌ **Evaluation FAIL**")
    assert "**3 variants × 40 cases = 120 answers**" in text
    board = text.split("### Leaderboard", 1)[1].split("###", 1)[0]
    rows = [line for line in board.splitlines() if re.match(r"\| \d \|", line)]
    assert [r.split("|")[2].strip() for r in rows][-1] == "worse"  # ranked last
    assert "mentions_stub mean [95% CI]" in board and "| cost |" in board
    assert "**base** (reference)" in board
    pairs = text.split("### Candidates vs reference `base` (tolerance 0.05)", 1)[1].split("###", 1)[0]
    assert re.search(
        r"\| worse \| correct \| -0\.\d{3} \[-0\.\d{3}, -0\.\d{3}\] \| 0 / \d+ / \d+ \| [\d.e-]+ \| 🔻 regression \|",
        pairs,
    )
    assert re.search(
        r"\| same \| mentions_stub \| \+0\.000 \[-0\.\d{3}, \+0\.\d{3}\] \| 0 / 40 / 0 \| 1 \| ❔ inconclusive: \d+ more",
        pairs,
    )
    (worse,) = [p for p in report.comparisons if p.candidate == "worse"]
    flips = text.split("### Top ", 1)[1]
    assert flips.startswith(
        f"{min(10, len(worse.flipped_to_fail))} flipped cases: pass → fail (of {len(worse.flipped_to_fail)})"
    )
    assert f"`{worse.flipped_to_fail[0]}`" in flips and "(stub-verdict: no)" in flips
    assert "judge 'stub-model'" in text and "the same for every variant" in text


def test_the_pr_comment_stays_under_the_limit_for_a_huge_comparison(compared: dict[str, Any]) -> None:
    report: Report = compared["report"]
    huge = "x" * 50_000
    diff = Difference(n=40, reference_mean=0.9, candidate_mean=0.1, difference=-0.8, ci_low=-0.9, ci_high=-0.7,
                      wins=0, ties=8, losses=32, p_value=1e-9)  # fmt: skip
    pairs = [
        PairComparison(reference="base", candidate=f"variant-{i:02d}-{huge[:30]}", cases=40,
                       metrics={f"metric_{m:02d}_{huge[:20]}": diff for m in range(30)}, pass_rate=diff,
                       flipped_to_fail=[c.case_id for c in report.cases_of("base")], flipped_to_pass=[],
                       confidence=0.95, resamples=2000, seed=0)
        for i in range(60)
    ]  # fmt: skip
    cases = [c.model_copy(update={"actual_output": huge, "input": huge}) for c in report.cases]
    big = report.model_copy(update={"comparisons": pairs, "cases": cases})
    text = markdown.render(big)
    assert len(text) <= markdown.GITHUB_COMMENT_LIMIT
    assert "more rows in REPORT.json" in text and "### Top 10 flipped cases" in text


@pytest.mark.browser
def test_the_html_report_draws_every_plot_and_the_answers_side_by_side(
    compared: dict[str, Any], tmp_path: Path
) -> None:
    pytest.importorskip("plotly")
    page: Path = compared["html"]
    report: Report = compared["report"]
    (worse,) = [p for p in report.comparisons if p.candidate == "worse"]
    flipped = worse.flipped_to_fail[0]
    dom = dump_dom(page, fragment=f"q={flipped}")
    found = plots_in(dom)
    for plot in PLOTS:
        assert found.svgs.get(plot, 0) >= 1, f"{plot}: plotly drew no svg.main-svg"
        assert found.traces.get(plot, 0) >= 1, f"{plot}: no trace drawn"
    assert set(found.svgs) == set(PLOTS), "no other plot, and none empty"
    # The forest plot has one panel per metric and the pass rate, a point per candidate in each.
    assert found.traces["plot-forest"] >= 3
    for table in ("leaderboard", "pairs", "flips", "side-by-side"):
        assert f'id="{table}"' in dom, table
    side = re.findall(r'<tr class="side( flipped)?"[^>]*>', dom)
    assert len(side) == 40 and sum(1 for flag in side if flag) == len(set(worse.flipped_to_fail))
    assert "1 of 40 cases" in dom  # the search (in the URL fragment) filtered the side-by-side table too
    cases = re.findall(r'<tr class="(?:passed|failed|errored)"[^>]*>', dom)
    assert len(cases) == 3 and "3 of 120 cases" in dom  # the table draws the matching rows (a page at a time)
    assert "mentions_stub" in dom and "stub-verdict: no" in dom
    assert_screenshot_drawn(screenshot(page, tmp_path / "compare.png"))


def test_report_json_round_trips_and_names_the_judge_and_profile(compared: dict[str, Any]) -> None:
    content = json.loads((compared["folder"] / "report.json").read_text())
    assert content["schema"] == evaluator.contract.REPORT_SCHEMA
    assert content["judge"]["model"] == "stub-model" and content["profile"]["name"] is None
    assert content["g_eval_steps"] == {"correct": ["Is the answer correct?"]}
    loaded = evaluator.load_report(compared["folder"] / "report.json")
    assert loaded.cases_file is not None and loaded.cases_file.count == len(compared["report"].cases)  # report v5
    assert loaded.model_copy(update={"cases_file": None}) == compared["report"]
