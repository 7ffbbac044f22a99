"""Baseline comparison on constructed regressions: every changed case is classified, nothing else is."""

from __future__ import annotations

import pytest

from evaluator.baseline import compare, tolerance_of
from evaluator.contract import Report, ResultRecord
from tests.reporting.real_runs import _rewrite, drop_cases, make_report, set_score


def test_identical_runs_have_no_change() -> None:
    report = make_report(30)
    result = compare(report, report, 0.0)
    assert result.regressions == [] and result.improvements == []
    assert result.new == [] and result.removed == []
    assert not result.regressed
    assert all(m.mean_delta == pytest.approx(0.0) for m in result.metrics)


def test_constructed_regressions_are_found_and_ordered_by_drop() -> None:
    base = set_score(make_report(30), "case-00003", "answer_relevancy", 0.9)
    base = set_score(base, "case-00007", "answer_relevancy", 0.9)
    cur = set_score(base, "case-00003", "answer_relevancy", 0.10)
    cur = set_score(cur, "case-00007", "answer_relevancy", 0.45)
    cur = set_score(cur, "case-00011", "answer_relevancy", 0.99)  # an improvement, unless it already was
    old = {c.case_id: c.metrics["answer_relevancy"].score for c in base.cases}
    result = compare(cur, base, tolerance=1.0)
    ids = [(c.case_id, c.metric) for c in result.regressions]
    assert ids == [("case-00003", "answer_relevancy"), ("case-00007", "answer_relevancy")]
    first = result.regressions[0]
    assert first.old_score == old["case-00003"] and first.new_score == 0.10
    assert first.drop == pytest.approx(old["case-00003"] - 0.10)
    assert first.reason == "changed to 0.1"
    assert first.input.startswith("Question number 3")
    assert [(c.case_id, c.metric) for c in result.improvements] == (
        [("case-00011", "answer_relevancy")] if old["case-00011"] < 0.99 else []
    )


def test_new_and_removed_cases_are_listed_and_do_not_count_as_regressions() -> None:
    base = make_report(20)
    cur = drop_cases(base, {"case-00002", "case-00005"})
    base_without = drop_cases(base, {"case-00019"})
    result = compare(cur, base_without, 0.0)
    assert result.removed == ["case-00002", "case-00005"]
    assert result.new == ["case-00019"]
    assert result.regressions == [] and not result.regressed


def test_an_errored_case_is_a_regression_with_the_error_named() -> None:
    base = make_report(10)
    cur = set_score(base, "case-00004", "exact_match", None)
    result = compare(cur, base, 1.0)
    regressed = [c for c in result.regressions if c.case_id == "case-00004" and c.metric == "exact_match"]
    if (base.cases[4].metrics["exact_match"].score or 0) > 0:
        assert regressed and regressed[0].new_score is None and regressed[0].error == "judge failed"


def test_the_tolerance_is_held_to_the_interval_not_the_point() -> None:
    """One flipped case of 10 drops exact_match's mean and pass rate by exactly 0.1, but 10 cases cannot tell that
    from noise: whatever the tolerance, the metric is INCONCLUSIVE (the gate's reading), never a regression."""
    base = make_report(10, seed=1)
    passing = next(c.case_id for c in base.cases if c.metrics["exact_match"].score == 1.0)
    cur = set_score(base, passing, "exact_match", 0.0)
    for tolerance in (0.0, 0.09, 0.1):
        result = compare(cur, base, tolerance)
        assert not result.regressed and "exact_match" in [m.name for m in result.undecided_metrics]
    strict = compare(cur, base, 0.09)
    line = next(text for text in strict.undecided() if text.startswith("metric exact_match"))
    assert "tolerance 0.09" in line and "difference -0.100" in line
    delta = next(m for m in strict.metrics if m.name == "exact_match")
    assert delta.mean_delta == pytest.approx(-0.1) and delta.pass_rate_delta == pytest.approx(-0.1)
    assert delta.difference is not None and delta.difference.method == "tango"


def _fail_exact_match(report: Report, case_ids: set[str]) -> Report:
    """The aggregate after these cases' exact_match dropped to 0 (one rewrite of the shard files)."""

    def change(records: list[ResultRecord]) -> list[ResultRecord]:
        for record in records:
            if record.case_id in case_ids:
                entry = record.metrics["exact_match"]
                record.metrics["exact_match"] = entry.model_copy(update={"score": 0.0, "success": False})
                record.success = False
        return records

    return _rewrite(report, dict.fromkeys({c.shard for c in report.cases if c.case_id in case_ids}, change))


def test_a_drop_the_cases_can_show_is_a_regression() -> None:
    base = make_report(60, pass_all=True)
    cur = _fail_exact_match(base, {f"case-{i:05d}" for i in range(0, 60, 4)})  # 15 of 60: -0.25
    result = compare(cur, base, 0.05)
    assert [m.name for m in result.regressed_metrics] == ["exact_match"]
    assert (
        result.reasons()[0].startswith("metric exact_match vs baseline") and "difference -0.250" in result.reasons()[0]
    )


def test_deltas_use_matched_cases_only() -> None:
    base = make_report(20)
    # Removing the 5 lowest answer_relevancy cases raises the report's mean, but no matched case changed.
    low = sorted(base.cases, key=lambda c: c.metrics["answer_relevancy"].score)[:5]
    cur = drop_cases(base, {c.case_id for c in low})
    result = compare(cur, base, 0.0)
    assert cur.metrics["answer_relevancy"].mean > base.metrics["answer_relevancy"].mean
    delta = next(m for m in result.metrics if m.name == "answer_relevancy")
    assert delta.matched == 15 and delta.mean_delta == pytest.approx(0.0)


def test_tolerance_comes_from_the_suite_gate() -> None:
    assert tolerance_of(make_report(2, regression_tolerance=0.07)) == 0.07
    report = make_report(2, regression_tolerance=None)
    assert tolerance_of(report, default=0.0) == 0.0
    with pytest.raises(ValueError):
        compare(report, report, -0.1)
