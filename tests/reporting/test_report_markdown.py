"""The PR comment: under GitHub's 65,536-character limit at 5,000 cases, and it says what to act on."""

from __future__ import annotations

import re

from evaluator.baseline import compare
from evaluator.reporting import markdown
from tests.reporting.real_runs import make_report, set_score


def _huge_pair() -> tuple[dict, dict]:
    """5,000 cases with long inputs and reasons, 1,000 shards of which 300 missing, and many regressions."""
    long_input = "Explain, in detail, the following: " + "lorem ipsum | <b>dolor</b> " * 200
    base = make_report(5000, total_shards=1000, seed=1)
    cur = make_report(5000, total_shards=1000, seed=2, missing_shards=tuple(range(0, 600, 2)), errored_every=50)
    for report in (base, cur):
        for case in report.cases:
            case.input = long_input
            for m in case.metrics.values():
                m.reason = "a long judge explanation " * 100
    return cur, base


def test_5000_cases_fit_the_github_comment_limit() -> None:
    cur, base = _huge_pair()
    comparison = compare(cur, base, 0.01)
    text = markdown.render(cur, comparison)
    assert len(text) < 65_536
    assert len(comparison.regressions) > 1000  # the limit is met by bounding lists, not by an easy input
    assert "❌ **Evaluation FAIL**" in text
    assert "300 shard(s) failed or missing (of 1000)" in text
    assert "Indexes: 0-598" not in text and "0, 2, 4, 6" in text  # every missing index, compressed where possible


def test_top_ten_regressions_ordered_with_old_new_score_and_reason() -> None:
    base = make_report(50)
    for i in range(50):
        base = set_score(base, f"case-{i:05d}", "answer_relevancy", 0.95)
    cur = base
    for i in range(12):  # twelve regressions, the drop growing with i
        cur = set_score(cur, f"case-{i:05d}", "answer_relevancy", round(0.9 - i * 0.05, 2))
    text = markdown.render(cur, compare(cur, base, 0.0))
    section = text.split("### 10 most regressed cases (of 12)")[1].split("###")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `case-")]
    assert len(rows) == 10
    assert [r.split("`")[1] for r in rows] == [f"case-{i:05d}" for i in range(11, 1, -1)]
    first = rows[0].split(" | ")
    assert first[3:5] == ["0.950", "0.350"] and "changed to 0.35" in first[5]
    assert "Question number 11" in first[2]


def test_metric_table_shows_deltas_against_the_baseline() -> None:
    base = make_report(10, seed=1)
    passing = next(c.case_id for c in base.cases if c.metrics["exact_match"].score == 1.0)
    cur = set_score(base, passing, "exact_match", 0.0)
    text = markdown.render(cur, compare(cur, base, 0.05))
    row = next(line for line in text.splitlines() if line.startswith("| exact_match |"))
    # one failure in 10 cases is a drop of 0.1 that 10 cases cannot tell from noise: the gate's INCONCLUSIVE
    assert "🔻 -0.100 ❔" in row and "🔻 -10.0%" in row
    assert "regressed vs baseline" not in text and "- ❔ metric exact_match vs baseline" in text


def test_rerun_command_is_exact() -> None:
    report = make_report(20, total_shards=4, missing_shards=(3,), incomplete_shards=(1,))
    text = markdown.render(report, suite_path="suites/smoke.yaml", out_dir="results/run 1")
    assert (
        "evaluator run suites/smoke.yaml --out 'results/run 1' --shard-index 1 --total-shards 4"
        f" --run-id {report.run_id}"
    ) in text
    assert re.search(r"Indexes: 1, 3\b", text)


def test_passing_run_without_baseline() -> None:
    report = make_report(20, seed=3, pass_all=True)
    text = markdown.render(report)
    assert text.startswith("## ✅ **Evaluation PASS**")
    assert "All 2 shard(s) complete." in text and "Δ mean" not in text
