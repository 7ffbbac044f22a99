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


# --- Tango's score interval (paired 0/1 scores) --------------------------------------------------------------
def test_tango_matches_the_published_cavo_2012_example() -> None:
    """Fagerland, Lydersen & Laake's `contingencytables` R package (its tests): Cavo et al. 2012, the paired
    table [[59, 6], [16, 80]], Tango asymptotic score CI: estimate -0.0621 (95% CI -0.1240 to -0.0054)."""
    interval = stats.tango_interval(wins=6, losses=16, n=161)
    assert round(interval.estimate, 4) == -0.0621
    assert (round(interval.low, 4), round(interval.high, 4)) == (-0.1240, -0.0054)


def _tango_by_profile(wins: int, losses: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The same definition computed independently with scipy: the loss rate maximising the multinomial likelihood
    under each d numerically (not Tango's closed form), and the score equation solved by brentq."""
    from scipy.optimize import brentq, minimize_scalar

    z, estimate, ties = sp.norm.ppf(0.5 + confidence / 2), (wins - losses) / n, n - wins - losses

    def score(d: float) -> float:
        def minus_loglik(q: float) -> float:
            return -(losses * math.log(q) if losses else 0.0) - (wins * math.log(q + d) if wins else 0.0) - (
                ties * math.log(1 - 2 * q - d) if ties else 0.0)  # fmt: skip

        lo, hi = max(0.0, -d) + 1e-13, (1 - d) / 2 - 1e-13
        q = minimize_scalar(minus_loglik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14}).x
        return (estimate - d) / math.sqrt((2 * q + d * (1 - d)) / n)

    low = brentq(lambda d: score(d) - z, -1 + 1e-9, estimate) if estimate > -1 else -1.0
    high = brentq(lambda d: score(d) + z, estimate, 1 - 1e-9) if estimate < 1 else 1.0
    return low, high


@pytest.mark.parametrize(("wins", "losses", "n"), [(0, 0, 10), (0, 3, 10), (6, 0, 10), (2, 5, 30), (40, 20, 160),
                                                   (1, 1, 2), (0, 8, 9), (13, 50, 5000)])  # fmt: skip
def test_tango_closed_form_agrees_with_the_likelihood_computed_numerically(wins: int, losses: int, n: int) -> None:
    interval = stats.tango_interval(wins, losses, n)
    low, high = _tango_by_profile(wins, losses, n)
    assert (interval.low, interval.high) == (pytest.approx(low, abs=2e-6), pytest.approx(high, abs=2e-6))
    assert -1.0 <= interval.low <= interval.estimate <= interval.high <= 1.0


def test_tango_all_ties_is_not_a_point() -> None:
    """0 wins and 0 losses of n: the interval is +-z^2/(n + z^2) (the score equation solved by hand), 0.278 at
    n = 10: ten ties cannot rule out a drop of 0.03."""
    z2 = sp.norm.ppf(0.975) ** 2
    for n in (10, 30, 300):
        interval = stats.tango_interval(0, 0, n)
        assert (interval.low, interval.high) == (pytest.approx(-z2 / (n + z2)), pytest.approx(z2 / (n + z2)))


# --- betting intervals (bounded scores) ----------------------------------------------------------------------
def _betting_numpy(
    values: list[float], low: float, high: float, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """An independent, vectorised reading of Waudby-Smith & Ramdas (2024) for the same order: predictable
    plug-in bets for a fixed n, stakes capped at 3/4 of ruin, one-sided capitals at alpha/2 with a running
    maximum, the bounds read off a fine grid of candidate means."""
    import numpy as np

    ys = [(v - low) / (high - low) for v in values]
    random.Random(seed).shuffle(ys)
    y = np.array(ys)
    n, t = len(y), np.arange(1, len(y) + 1)
    mu = (0.5 + np.cumsum(y)) / (t + 1)
    sigma2 = np.concatenate([[0.25], (0.25 + np.cumsum((y - mu) ** 2))[:-1] / t[1:]])
    alpha = (1 - confidence) / 2
    bets = np.sqrt(2 * math.log(1 / alpha) / (n * sigma2))
    grid = np.linspace(1e-7, 1 - 1e-7, 20001)
    stake_up = np.minimum(bets[None, :], 0.75 / grid[:, None])
    stake_down = np.minimum(bets[None, :], 0.75 / (1 - grid[:, None]))
    up = np.cumsum(np.log1p(stake_up * (y[None, :] - grid[:, None])), axis=1).max(axis=1)
    down = np.cumsum(np.log1p(-stake_down * (y[None, :] - grid[:, None])), axis=1).max(axis=1)
    kept = grid[(up < math.log(1 / alpha)) & (down < math.log(1 / alpha))]
    return low + (high - low) * kept.min(), low + (high - low) * kept.max()


@pytest.mark.parametrize(("n", "seed"), [(5, 1), (30, 2), (200, 3)])
def test_betting_interval_agrees_with_an_independent_implementation(n: int, seed: int) -> None:
    rng = random.Random(seed)
    diffs = [max(-1.0, min(1.0, rng.choice([0.0, 0.0, -0.4, rng.gauss(0.05, 0.2)]))) for _ in range(n)]
    ours = stats.betting_interval(diffs, low=-1.0, high=1.0, seed=seed)
    low, high = _betting_numpy(diffs, -1.0, 1.0, seed)
    step = 2.0 / 20000  # the grid's resolution on -1..1
    assert ours.low == pytest.approx(low, abs=step) and ours.high == pytest.approx(high, abs=step)
    assert ours.estimate == pytest.approx(sum(diffs) / n)


def test_betting_interval_stays_within_its_bounds_and_is_seeded() -> None:
    assert stats.betting_interval([1.0] * 10) == stats.betting_interval([1.0] * 10)
    top = stats.betting_interval([1.0, 0.95, 1.0, 0.9, 1.0])
    assert 0.0 <= top.low < top.estimate <= top.high == 1.0
    ties = stats.betting_interval([0.0] * 30, low=-1.0, high=1.0)
    assert ties.low < -0.1 and ties.high > 0.1  # 30 ties cannot rule out a drop on a rare case
    values = _scores(300, seed=9)
    assert stats.betting_interval(values, seed=1) != stats.betting_interval(values, seed=2)
    with pytest.raises(ValueError, match="within"):
        stats.betting_interval([0.5, 1.2])


def test_betting_interval_approaches_the_t_interval_with_many_cases() -> None:
    """Valid at every n costs width at small n; with 5,000 cases it is within 1.5 times the t interval."""
    values = _scores(5000, seed=4)
    bet, t = stats.betting_interval(values), stats.mean_ci(values)
    assert bet.low <= t.estimate <= bet.high
    assert 1.0 <= (bet.high - bet.low) / (t.high - t.low) < 1.5


def test_score_interval_picks_the_method_by_the_scores() -> None:
    assert stats.score_method([0.0, 1.0, 1.0]) == "wilson"
    assert stats.score_interval([0.0, 1.0, 1.0]) == stats.wilson_interval(2, 3)
    assert stats.score_method([0.2, 1.0]) == "betting"
    assert stats.score_method([0.2, 7.0]) == "t"
    assert stats.paired_method([1.0, 0.0], [0.0, 0.0]) == "tango"
    assert stats.paired_method([1.0, 0.5], [0.0, 0.0]) == "betting"
    assert stats.paired_method([1.0, 5.0], [0.0, 0.0]) == "t"
    unbounded, method = stats.paired_interval([2.0, 3.0], [2.5, 3.5])  # no spread, no bounds: nothing bounds it
    assert method == "t" and unbounded.low == -math.inf and unbounded.high == math.inf


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
        lambda: stats.betting_interval([]),
        lambda: stats.tango_interval(3, 9, 10),
        lambda: stats.paired_interval([], []),
        lambda: stats.t_quantile(1.0, 3),
        lambda: stats.non_inferiority(_interval(0, 0.1, 10), -0.1),
        lambda: stats.win_tie_loss([0.1], [0.2], tie_margin=-1),
    ):
        with pytest.raises(ValueError):
            call()
