"""Baseline comparison on constructed regressions: every changed case is classified, nothing else is."""

from __future__ import annotations

import pytest

from evaluator.baseline import compare, tolerance_of
from tests.reporting.real_runs import drop_cases, make_report, set_score


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


def test_tolerance_is_a_strict_bound_on_the_metric_drop() -> None:
    base = make_report(10, seed=1)
    # exact_match is 0 or 1; flipping one passing case of 10 drops its mean and pass rate by exactly 0.1.
    passing = next(c.case_id for c in base.cases if c.metrics["exact_match"].score == 1.0)
    cur = set_score(base, passing, "exact_match", 0.0)
    assert not compare(cur, base, 0.1).regressed  # dropped exactly the tolerance: allowed
    strict = compare(cur, base, 0.09)
    assert strict.regressed
    assert [m.name for m in strict.regressed_metrics] == ["exact_match"]
    assert "exact_match" in strict.reasons()[0] and "0.09" in strict.reasons()[0]
    delta = next(m for m in strict.metrics if m.name == "exact_match")
    assert delta.mean_delta == pytest.approx(-0.1) and delta.pass_rate_delta == pytest.approx(-0.1)


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
