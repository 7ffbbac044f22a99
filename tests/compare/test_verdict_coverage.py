"""The `no_regression` verdict keeps its promise at pull-request sizes: a coverage test by simulation.

A 95 % two-sided interval promises that a candidate truly worse than the reference by more than the tolerance is
called PASS (its interval wholly above -tolerance) in at most 2.5 % of runs. Here a seeded Monte Carlo draws paired
runs of n = 10, 20, 30 and 100 cases, for binary pass/fail scores and for bounded continuous scores, with the
candidate equal to the reference except on some cases (the correlated pairs of a real comparison), sends each
through the gate's own path (`compare.difference` -> `gate.classify`), and counts the verdicts.

An honest tolerance for a simulated rate: with R runs per cell the count of false PASSes is Binomial(R, p); the
cell fails when the count exceeds the 99.9 % quantile of Binomial(R, 0.025), i.e. when a one-sided binomial test
rejects "p <= 2.5 %" at the 0.1 % level. A test that cannot fail is a defect, so the same simulation also shows the
gate can PASS: with no regression and enough cases it does (power rows).

bench/bench_verdict.py prints the same table with more runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from scipy import stats as sp

from evaluator.compare import difference
from evaluator.gate import classify
from evaluator.suite import CompareSettings

TOLERANCE = 0.03
SETTINGS = CompareSettings()
Draw = Callable[[random.Random, int], tuple[list[float], list[float]]]


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def binary(fail_share: float, fix_share: float) -> Draw:
    """Reference passes 80 % of cases; the candidate fails `fail_share` of those and passes `fix_share` of the
    others, and answers every other case as the reference did. True difference 0.2*fix - 0.8*fail."""

    def draw(rng: random.Random, n: int) -> tuple[list[float], list[float]]:
        reference = [1.0 if rng.random() < 0.8 else 0.0 for _ in range(n)]
        candidate = []
        for r in reference:
            flip = rng.random() < (fail_share if r == 1.0 else fix_share)
            candidate.append(1.0 - r if flip else r)
        return reference, candidate

    return draw


def continuous(share: float, drop: float, jitter: float = 0.0) -> Draw:
    """Reference scores Beta(5, 2) (mean 0.71); the candidate scores `drop` less on a `share` of the cases, and
    with `jitter` every case moves by Normal(0, jitter) (a judge that never scores twice alike); clipped to 0..1."""

    def draw(rng: random.Random, n: int) -> tuple[list[float], list[float]]:
        reference = [rng.betavariate(5, 2) for _ in range(n)]
        candidate = []
        for r in reference:
            c = r + (rng.gauss(0.0, jitter) if jitter else 0.0)
            if rng.random() < share:
                c = r - drop
            candidate.append(_clip(c))
        return reference, candidate

    return draw


def true_difference(draw: Draw, size: int = 200_000) -> float:
    reference, candidate = draw(random.Random(12345), size)
    return (sum(candidate) - sum(reference)) / size


REGRESSIONS: dict[str, Draw] = {
    "binary: fails 5% of passes (-0.04)": binary(0.05, 0.0),
    "binary: fails 11%, fixes 25% (-0.04)": binary(0.1125, 0.25),
    "binary: fails 12.5% of passes (-0.10)": binary(0.125, 0.0),
    "continuous: 10% of cases drop 0.4 (-0.04)": continuous(0.10, 0.4),
    "continuous: 50% drop 0.1 (-0.05)": continuous(0.50, 0.1),
    "continuous: jitter 0.03, 10% drop 0.5 (-0.05)": continuous(0.10, 0.5, jitter=0.03),
}
SIZES = (10, 20, 30, 100)


def rates(draw: Draw, n: int, runs: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    counts = {"no_regression": 0, "regression": 0, "inconclusive": 0}
    for _ in range(runs):
        reference, candidate = draw(rng, n)
        reading = classify(difference(reference, candidate, SETTINGS), SETTINGS.confidence, TOLERANCE)
        counts[reading.verdict if reading is not None else "inconclusive"] += 1
    return {k: v / runs for k, v in counts.items()}


def _allowed(runs: int) -> int:
    """The most false PASSes of `runs` a 2.5 % rate explains (one-sided binomial test at the 0.1 % level)."""
    return int(sp.binom.ppf(0.999, runs, 0.025))


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_a_regression_beyond_the_tolerance_is_almost_never_called_pass(name: str) -> None:
    draw = REGRESSIONS[name]
    delta = true_difference(draw)
    assert delta < -TOLERANCE - 0.005, f"the scenario must regress beyond the tolerance, it regresses {delta:+.3f}"
    runs = 1000 if name.startswith("binary") else 400  # a binary interval costs microseconds, a betting one a pass
    lines, failures = [], []
    for index, n in enumerate(SIZES):
        seen = rates(draw, n, runs, seed=1000 * index + len(name))
        false_pass = round(seen["no_regression"] * runs)
        lines.append(
            f"n={n:3d}: PASS {seen['no_regression']:6.1%}  INCONCLUSIVE {seen['inconclusive']:6.1%}  "
            f"FAIL {seen['regression']:6.1%}"
        )
        if false_pass > _allowed(runs):
            failures.append(f"n={n}: {false_pass} of {runs} runs called PASS (at most {_allowed(runs)} allowed)")
    print(f"\n{name}: true difference {delta:+.3f}, tolerance {TOLERANCE}, {runs} runs per n\n  " + "\n  ".join(lines))
    assert not failures, f"{name}: " + "; ".join(failures)


POWER: dict[str, Draw] = {
    "binary: identical answers": binary(0.0, 0.0),
    "continuous: 30% of cases gain 0.2 (+0.05)": continuous(0.30, -0.2),
}


@pytest.mark.parametrize("name", list(POWER))
def test_without_a_regression_enough_cases_pass(name: str) -> None:
    """The other side of the promise: the gate can say PASS. Identical or better candidates pass at 400 cases;
    with 10 cases nothing can be shown, and an all-ties run of 10 cases is INCONCLUSIVE, never PASS."""
    draw = POWER[name]
    few = rates(draw, 10, 100, seed=7)
    many = rates(draw, 400, 40, seed=8)
    print(f"\n{name}: n=10 PASS {few['no_regression']:.1%}; n=400 PASS {many['no_regression']:.1%}")
    assert few["no_regression"] == 0.0
    assert many["no_regression"] >= 0.9
