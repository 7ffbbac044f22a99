"""The betting interval's bounds are found by regula falsi on the grid that bisection walks (evaluator/stats.py
`_edge`): the bounds must be exactly those of the bisection it replaced, which is kept here, as it was, as the
reference. Random inputs cover the shapes a report meets: continuous scores, ties, all-equal values, 0/1 values,
paired differences on -1..1, tiny and large n, and every usual confidence."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from evaluator import stats


def _reference_bets(ys: Sequence[float], alpha_one_sided: float) -> list[float]:
    """evaluator/stats.py's predictable plug-in bets as its Python loop computed them."""
    n = len(ys)
    numerator = 2.0 * math.log(1.0 / alpha_one_sided) / n
    bets: list[float] = []
    total, squares = 0.0, 0.25
    for t, y in enumerate(ys, start=1):
        bets.append(math.sqrt(numerator / (squares / t)))
        total += y
        squares += (y - (0.5 + total) / (t + 1)) ** 2
    return bets


def _reference_rejects(ys: Sequence[float], bets: Sequence[float], m: float, sign: int, log_threshold: float) -> bool:
    cap = 0.75 / (m if sign > 0 else 1.0 - m) if 0.0 < m < 1.0 else math.inf
    log_capital = 0.0
    for y, bet in zip(ys, bets, strict=True):
        log_capital += math.log1p(sign * (bet if bet < cap else cap) * (y - m))
        if log_capital >= log_threshold:
            return True
    return False


def _reference_bounds(
    values: Sequence[float], confidence: float, low: float, high: float, seed: int
) -> tuple[float, float]:
    """evaluator/stats.py's betting bounds as bisection computed them (40 steps a bound, one pass a step)."""
    span = high - low
    ys = [(v - low) / span for v in values]
    random.Random(seed).shuffle(ys)
    alpha = (1.0 - confidence) / 2.0
    bets, log_threshold = _reference_bets(ys, alpha), math.log(1.0 / alpha)
    bottom, top = 0.0, 1.0
    if _reference_rejects(ys, bets, 0.0, +1, log_threshold):
        for _ in range(40):
            middle = (bottom + top) / 2.0
            bottom, top = (middle, top) if _reference_rejects(ys, bets, middle, +1, log_threshold) else (bottom, middle)
        lower = top
    else:
        lower = 0.0
    bottom, top = 0.0, 1.0
    if _reference_rejects(ys, bets, 1.0, -1, log_threshold):
        for _ in range(40):
            middle = (bottom + top) / 2.0
            bottom, top = (bottom, middle) if _reference_rejects(ys, bets, middle, -1, log_threshold) else (middle, top)
        upper = bottom
    else:
        upper = 1.0
    return max(low, low + span * lower), min(high, low + span * upper)


def _sample(rng: random.Random, n: int, shape: str) -> list[float]:
    if shape == "beta":
        a, b = rng.uniform(0.2, 5.0), rng.uniform(0.2, 5.0)
        return [rng.betavariate(a, b) for _ in range(n)]
    if shape == "rounded":  # few distinct values, many ties (judge scores)
        return [round(rng.random() ** rng.uniform(0.2, 3.0), 1) for _ in range(n)]
    if shape == "constant":
        value = rng.choice([0.0, 1.0, 0.5, rng.random()])
        return [value] * n
    if shape == "binary":
        p = rng.random()
        return [1.0 if rng.random() < p else 0.0 for _ in range(n)]
    if shape == "rare":  # equal except on a rare case: the paired difference a small regression leaves
        return [0.0 if rng.random() > 0.03 else -rng.random() for _ in range(n)]
    raise AssertionError(shape)


SHAPES = ["beta", "rounded", "constant", "binary", "rare"]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_bounds_equal_bisection_on_random_inputs(shape: str) -> None:
    rng = random.Random(f"betting-{shape}")
    for trial in range(40):
        n = rng.choice([1, 2, 3, 5, 10, 17, 30, 64, 100, 333, 1000])
        values = _sample(rng, n, shape)
        low, high = (-1.0, 1.0) if shape == "rare" or trial % 3 == 0 else (0.0, 1.0)
        confidence = rng.choice([0.8, 0.9, 0.95, 0.99, 0.999])
        seed = rng.randrange(1000)
        interval = stats.betting_interval(values, confidence, low=low, high=high, seed=seed)
        expected = _reference_bounds(values, confidence, low, high, seed)
        assert (interval.low, interval.high) == expected, (shape, n, confidence, seed)


def test_the_bounds_equal_bisection_at_report_scale() -> None:
    """A metric of a large run (the aggregate's case), where the edge lies far from both ends of [0, 1]."""
    rng = random.Random(22)
    values = [round(rng.random() ** 0.3, 4) for _ in range(20_000)]
    interval = stats.betting_interval(values)
    assert (interval.low, interval.high) == _reference_bounds(values, 0.95, 0.0, 1.0, 0)


def test_the_bets_equal_the_loop_they_replaced() -> None:
    rng = random.Random(5)
    for n in (1, 2, 7, 100, 5000):
        ys = [rng.random() ** rng.uniform(0.3, 3.0) for _ in range(n)]
        for alpha in (0.025, 0.005):
            assert list(stats._bets(ys, alpha)) == _reference_bets(ys, alpha)


def test_a_bound_takes_a_few_passes_not_forty(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes a 100,000-case aggregate take seconds: each pass reads every value once, and bisection took 41
    a bound (82 an interval)."""
    passes = 0
    peak = stats._peak_log_capital

    def counted(*args: object) -> float:
        nonlocal passes
        passes += 1
        return peak(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(stats, "_peak_log_capital", counted)
    rng = random.Random(3)
    for shape in SHAPES:
        passes = 0
        stats.betting_interval(_sample(rng, 2000, shape), low=-1.0 if shape == "rare" else 0.0)
        assert passes <= 30, (shape, passes)
