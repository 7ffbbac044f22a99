"""The comparison's numbers against references: scipy (a dev-only dependency) and cases worked by hand.

stats.py itself is checked in tests/metrics/test_stats.py; here: what the aggregate and `compare` build from it
(the Wilson interval of a pass rate and of a 0/1 metric's mean, the paired Difference of a candidate, cases errored
on either side left out as the pass rate leaves them out, the flipped cases) on a real aggregate."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy import stats as sp

import evaluator
from evaluator import stats
from evaluator.compare import compare_pair, difference
from evaluator.suite import CompareSettings
from tests.helpers import report_case, write_suite

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(("k", "n", "confidence"), [(0, 10, 0.95), (10, 10, 0.95), (7, 10, 0.95), (261, 300, 0.95),
                                                    (4000, 5000, 0.99), (1, 2, 0.8)])  # fmt: skip
def test_wilson_interval_matches_scipy(k: int, n: int, confidence: float) -> None:
    ours = stats.wilson_interval(k, n, confidence)
    theirs = sp.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert ours.estimate == k / n
    assert (ours.low, ours.high) == (pytest.approx(theirs.low, abs=1e-12), pytest.approx(theirs.high, abs=1e-12))


def test_wilson_by_hand() -> None:
    # 8 of 10, z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10), half z*sqrt(0.016 + z^2/400) / (1 + z^2/10)
    z = 1.959963984540054
    denominator = 1 + z * z / 10
    centre, half = (0.8 + z * z / 20) / denominator, z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / denominator
    interval = stats.wilson_interval(8, 10)
    assert (interval.low, interval.high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_a_paired_difference_by_hand() -> None:
    settings = CompareSettings()
    # differences 0, -1, 0, +1, -1: mean -0.2; one win, two ties, two losses; sign test p = P(X<=1 | 3, 1/2)*2
    diff = difference([1.0, 1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 1.0, 0.0], settings)
    assert (diff.n, diff.reference_mean, diff.candidate_mean) == (5, 0.8, 0.6)
    assert diff.difference == pytest.approx(-0.2)
    assert (diff.wins, diff.ties, diff.losses) == (1, 2, 2)
    assert diff.p_value == pytest.approx(sp.binomtest(1, 3, 0.5).pvalue) == 1.0
    assert diff.method == "tango"  # 0/1 scores on both sides: Tango's score interval, as computed in test_stats
    assert (diff.ci_low, diff.ci_high) == (stats.tango_interval(1, 2, 5).low, stats.tango_interval(1, 2, 5).high)
    # Every pair differing by the same amount is no proof of that amount on four cases: a betting interval
    same = difference([0.5] * 4, [0.25] * 4, settings)
    assert same.method == "betting" and same.difference == -0.25
    assert same.ci_low is not None and same.ci_high is not None and -1.0 <= same.ci_low < -0.25 < same.ci_high
    one = difference([1.0], [0.0], settings)
    assert one.difference == -1.0 and one.ci_low == -1.0 and one.ci_high is not None and one.ci_high > -1.0
    empty = difference([], [], settings)
    assert empty.n == 0 and empty.difference is None and empty.p_value is None


def test_a_case_errored_on_either_side_is_left_out_and_counted() -> None:
    case = report_case
    reference = [case("c0", "r", 1.0), case("c1", "r", 1.0), case("c2", "r", None, error=True),
                 case("c3", "r", 0.0), case("c4", "r", None, error=True)]  # fmt: skip
    candidate = [case("c0", "k", 1.0), case("c1", "k", None, error=True), case("c2", "k", 1.0),
                 case("c3", "k", 0.0), case("c4", "k", None, error=True), case("c9", "k", 1.0)]  # fmt: skip
    pair = compare_pair(reference, candidate, ["m"], CompareSettings(), reference_name="r", candidate_name="k").pair
    assert pair.cases == 5 and pair.errored == 3  # c9 has no reference answer; c1, c2, c4 errored on a side
    m = pair.metrics["m"]
    assert m.n == 2 and (m.wins, m.ties, m.losses) == (0, 2, 0) and m.difference == 0.0
    assert pair.flipped_to_fail == [] and pair.flipped_to_pass == [] and pair.pass_rate.n == 2


def test_the_aggregate_intervals_match_scipy(tmp_path: Path, evaluator_cli) -> None:
    """Per-variant metric means (t interval) and pass rates (Wilson), on a real aggregate of recorded answers."""
    answers = ["a", "a", "b", "a", "a", "b", "a", "a", "a", "b", "a", "a"]
    cases = [{"id": f"c{i:02d}", "input": f"q{i}", "actual_output": out, "expected_output": "a"}
             for i, out in enumerate(answers)]  # fmt: skip
    variants = [{"name": name, "base_url": "http://127.0.0.1:9/v1", "model": name} for name in ("x", "y")]
    suite = write_suite(tmp_path, cases, metrics=[{"type": "exact_match"}], target=None, judge=None,
                        variants=variants)  # fmt: skip
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    report = evaluator.aggregate(tmp_path / "out")
    wilson = sp.binomtest(9, 12).proportion_ci(method="wilson")  # exact_match scores 0/1: its mean is a proportion
    for name in ("x", "y"):
        summary = report.variants[name]
        m = summary.metrics["exact_match"]
        assert (m.mean, m.ci_low, m.ci_high) == (0.75, pytest.approx(wilson.low), pytest.approx(wilson.high))
        assert (m.pass_rate_ci_low, m.pass_rate_ci_high) == (pytest.approx(wilson.low), pytest.approx(wilson.high))
        assert summary.pass_rate_ci_low == pytest.approx(wilson.low)
    (pair,) = report.comparisons
    assert pair.metrics["exact_match"].difference == 0.0 and pair.metrics["exact_match"].ties == 12
