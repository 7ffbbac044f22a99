"""evaluator/stats.py against scipy (the reference, a dev-only dependency) and against cases worked by hand."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as sp

from evaluator import stats

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _scores(n: int, seed: int, shift: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    return [min(1.0, max(0.0, rng.gauss(0.7 + shift, 0.15))) for _ in range(n)]


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9, 29, 120, 4999])
@pytest.mark.parametrize("p", [0.5, 0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_and_cdf_match_scipy(df: int, p: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(sp.t.ppf(p, df), rel=1e-9, abs=1e-10)
    for t in (-3.0, -0.5, 0.0, 0.7, 2.5, 10.0):
        assert stats.t_cdf(t, df) == pytest.approx(sp.t.cdf(t, df), rel=1e-10, abs=1e-13)


@pytest.mark.parametrize(("n", "confidence"), [(2, 0.95), (10, 0.95), (300, 0.95), (5000, 0.99), (40, 0.8)])
def test_mean_ci_matches_scipy_t_interval(n: int, confidence: float) -> None:
    values = _scores(n, seed=n)
    interval = stats.mean_ci(values, confidence)
    low, high = sp.t.interval(confidence, n - 1, loc=sp.tmean(values), scale=sp.sem(values))
    assert interval.estimate == pytest.approx(sum(values) / n, rel=1e-12)
    assert (interval.low, interval.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert interval.n == n and interval.confidence == confidence


def test_mean_ci_by_hand() -> None:
    # values 0, 0.5, 1: mean 0.5, sample sd 0.5, se 0.5/sqrt(3); t(0.975, 2) = 4.302652729749464
    interval = stats.mean_ci([0.0, 0.5, 1.0])
    half = 4.302652729749464 * 0.5 / math.sqrt(3)
    assert (interval.low, interval.high) == (pytest.approx(0.5 - half, abs=1e-12), pytest.approx(0.5 + half, abs=1e-12))
    one = stats.mean_ci([0.8])
    assert one.estimate == 0.8 and one.low == -math.inf and one.high == math.inf
    same = stats.mean_ci([0.6] * 5)
    assert same.low == pytest.approx(0.6) and same.high == pytest.approx(0.6)


@pytest.mark.parametrize(("n", "shift"), [(30, 0.0), (300, -0.05), (1000, 0.02)])
def test_paired_bootstrap_agrees_with_scipy_bootstrap(n: int, shift: float) -> None:
    """Different random draws, same method (percentile, pairs resampled together): the intervals agree within
    the Monte-Carlo error of 10,000 resamples."""
    reference = _scores(n, seed=1)
    candidate = [min(1.0, max(0.0, r + shift + random.Random(i).gauss(0, 0.05))) for i, r in enumerate(reference)]
    ours = stats.paired_bootstrap_ci(reference, candidate, resamples=10_000, seed=7)
    diffs = [c - r for r, c in zip(reference, candidate, strict=True)]
    theirs = sp.bootstrap((diffs,), lambda x, axis: x.mean(axis=axis), n_resamples=10_000, method="percentile",
                          confidence_level=0.95, random_state=7).confidence_interval  # fmt: skip
    width = theirs.high - theirs.low
    assert ours.estimate == pytest.approx(sum(diffs) / n, abs=1e-12)
    assert ours.low == pytest.approx(theirs.low, abs=0.05 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.05 * width)
    # ... and both agree with the t interval of the differences, which a sample this size approaches
    t = stats.mean_ci(diffs)
    assert ours.low == pytest.approx(t.low, abs=0.1 * width) and ours.high == pytest.approx(t.high, abs=0.1 * width)


def test_paired_bootstrap_is_reproducible_and_seeded() -> None:
    reference, candidate = _scores(200, seed=3), _scores(200, seed=4)
    first = stats.paired_bootstrap_ci(reference, candidate, seed=11)
    assert stats.paired_bootstrap_ci(reference, candidate, seed=11) == first
    assert stats.paired_bootstrap_ci(reference, candidate, seed=12) != first


def test_paired_bootstrap_by_hand() -> None:
    """Two pairs with differences 0 and 1: every resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2,
    1/4, so the 2.5th and 97.5th percentiles are 0 and 1 and the estimate 0.5."""
    interval = stats.paired_bootstrap_ci([0.5, 0.0], [0.5, 1.0], resamples=4000, seed=0)
    assert (interval.estimate, interval.low, interval.high) == (0.5, 0.0, 1.0)
    constant = stats.paired_bootstrap_ci([0.2, 0.3, 0.4], [0.3, 0.4, 0.5])
    assert (constant.low, constant.high) == (pytest.approx(0.1), pytest.approx(0.1))


def test_paired_keeps_only_shared_cases_in_a_stable_order() -> None:
    reference, candidate = stats.paired({"b": 0.2, "a": 0.1, "x": 0.9}, {"a": 0.3, "b": 0.2, "y": 0.0})
    assert (reference, candidate) == ([0.1, 0.2], [0.3, 0.2])
    with pytest.raises(ValueError, match="differ in length"):
        stats.differences([0.1], [0.1, 0.2])


def test_win_tie_loss_by_hand() -> None:
    reference = [0.5, 0.5, 0.5, 0.5, 0.5]
    candidate = [0.9, 0.5, 0.49, 0.2, 0.52]
    assert stats.win_tie_loss(reference, candidate) == stats.WinTieLoss(wins=2, ties=1, losses=2)
    assert stats.win_tie_loss(reference, candidate, tie_margin=0.05) == stats.WinTieLoss(wins=1, ties=3, losses=1)


@pytest.mark.parametrize(("wins", "losses"), [(0, 0), (1, 0), (5, 5), (9, 1), (2, 10), (60, 40), (2600, 2400), (0, 30)])
def test_sign_test_is_scipys_exact_binomial_test(wins: int, losses: int) -> None:
    p = stats.sign_test(stats.WinTieLoss(wins, 7, losses))
    expected = 1.0 if wins + losses == 0 else sp.binomtest(wins, wins + losses, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_sign_test_by_hand() -> None:
    # 9 wins, 1 loss: P(X <= 1) for Bin(10, 1/2) = 11/1024, two-sided 22/1024
    assert stats.sign_test(stats.WinTieLoss(9, 3, 1)) == 22 / 1024


def _interval(estimate: float, half: float, n: int) -> stats.Interval:
    return stats.Interval(estimate, estimate - half, estimate + half, 0.95, n)


def test_non_inferiority_verdicts() -> None:
    assert stats.non_inferiority(_interval(0.0, 0.02, 400), 0.05).verdict == "no_regression"
    assert stats.non_inferiority(_interval(-0.10, 0.02, 400), 0.05).verdict == "regression"
    inconclusive = stats.non_inferiority(_interval(-0.04, 0.03, 100), 0.05)
    assert inconclusive.verdict == "inconclusive"
    # half-width 0.03 must shrink below the distance 0.01 to -0.05: n must grow by (0.03/0.01)^2 = 9 times,
    # to just over 900 cases: 801 more.
    assert inconclusive.more_cases == 801


def test_more_cases_estimate_is_where_the_t_interval_decides() -> None:
    """Planted: a real mean difference of -0.02 against a tolerance of 0.05, on too few cases to tell. Grown with
    the same differences (same mean, same spread) to the estimated size, the interval clears -0.05; grown to
    well under it, it still straddles -0.05."""
    rng = random.Random(5)
    reference = [rng.random() for _ in range(20)]
    candidate = [r - 0.02 + rng.gauss(0, 0.15) for r in reference]
    diffs = stats.differences(reference, candidate)
    first = stats.non_inferiority(stats.mean_ci(diffs), 0.05)
    assert first.verdict == "inconclusive" and first.more_cases is not None and first.more_cases > 20
    total = first.difference.n + first.more_cases
    enough = math.ceil(total / len(diffs))
    decided = stats.non_inferiority(stats.mean_ci(diffs * enough), 0.05)
    assert decided.verdict == ("no_regression" if first.difference.estimate > -0.05 else "regression")
    too_few = math.floor(0.7 * total / len(diffs))
    assert too_few >= 1
    assert stats.non_inferiority(stats.mean_ci(diffs * too_few), 0.05).verdict == "inconclusive"


def test_more_cases_edge_cases() -> None:
    assert stats.cases_to_decide(_interval(-0.05, 0.02, 100), 0.05) is None  # on the boundary: never decides
    assert stats.cases_to_decide(stats.Interval(0.0, -math.inf, math.inf, 0.95, 1), 0.05) is None
    assert stats.cases_to_decide(_interval(0.0, 0.01, 100), 0.05) == 0  # already decided


def test_bad_arguments_are_refused() -> None:
    for call in (
        lambda: stats.mean_ci([]),
        lambda: stats.mean_ci([0.1, 0.2], confidence=1.0),
        lambda: stats.paired_bootstrap_ci([], []),
        lambda: stats.paired_bootstrap_ci([0.1], [0.2], resamples=0),
        lambda: stats.t_quantile(1.0, 3),
        lambda: stats.non_inferiority(_interval(0, 0.1, 10), -0.1),
        lambda: stats.win_tie_loss([0.1], [0.2], tie_margin=-1),
    ):
        with pytest.raises(ValueError):
            call()
