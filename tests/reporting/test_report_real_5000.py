"""A real 5,000-case aggregate (the design's suite size): the PR comment fits GitHub's limit, the JUnit is valid.

The cases carry pre-recorded answers and deterministic metrics, so the engine evaluates all 5,000 for real
without an endpoint, in a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
import yaml

from evaluator.baseline import compare
from evaluator.contract import Report, load_report
from evaluator.reporting import junit, markdown

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N = 5000


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluator", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "DEEPEVAL_TELEMETRY_OPT_OUT": "1"},
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("big")
    with (folder / "cases.jsonl").open("w") as fh:
        for i in range(N):
            case = {
                "id": f"c{i:05d}",
                "input": f"A long question | with <markup> and pipes, number {i}: " + "why is the sky blue? " * 30,
                "expected_output": "yes",
                "actual_output": "yes" if i % 3 else "no",  # every third case fails exact match
            }
            fh.write(json.dumps(case) + "\n")
    suite = {
        "name": "big",
        "dataset": "cases.jsonl",
        "metrics": [{"type": "exact_match"}, {"type": "pattern_match", "name": "says_yes", "pattern": "y.*"}],
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    run = _cli("run", str(folder / "suite.yaml"), "--out", str(folder / "out"), "--run-id", "big", "-q")
    assert run.returncode == 0, run.stderr
    agg = _cli("aggregate", str(folder / "out"), "--out", str(folder / "report.json"))
    assert agg.returncode == 0, agg.stderr
    return load_report(folder / "report.json")


def test_markdown_for_5000_real_cases_fits_the_comment_limit(report: Report) -> None:
    assert report.totals.cases == N
    baseline = report.model_copy(deep=True)  # the same run, as if every answer had been right before
    baseline.run_id = "yesterday"
    for case in baseline.cases:
        for entry in case.metrics.values():
            entry.score, entry.success = 1.0, True
    comparison = compare(report, baseline, 0.0)
    assert len(comparison.regressions) == 2 * len(range(0, N, 3))  # both metrics of every third case
    text = markdown.render(report, comparison)
    assert len(text) < markdown.GITHUB_COMMENT_LIMIT
    assert "### 10 most regressed cases (of 3334)" in text
    regressions = text[text.index("### 10 most regressed cases") :].split("\n### ")[0]
    rows = [line for line in regressions.splitlines() if line.startswith("| `c")]
    assert len(rows) == 10 and all("| 1.000 | 0.000 |" in r for r in rows)
    failed = sum(not case.success for case in report.cases)
    assert f"### 10 failed cases (of {failed};" in text  # the failed cases too, baseline or not
    assert "&lt;markup&gt;" in text and "\\|" in text  # cells escaped, the table intact


def test_junit_for_5000_real_cases_is_valid(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(junit.render(report), encoding="utf-8")
    xmlschema.XMLSchema(Path(__file__).parent / "schemas" / "jenkins-junit-4.xsd").validate(str(path))
    root = ET.parse(path).getroot()
    assert root.get("tests") == str(2 * N)
    assert root.get("failures") == str(2 * len(range(0, N, 3))) and root.get("errors") == "0"
