"""Statistics of reports and release gates, in pure Python (the evaluator image carries no numpy or scipy).

- `percentile`: the one percentile definition behind every number the aggregate and `capacity` show.

Scores are per case, 0..1, higher is better. A comparison pairs a reference (what ships, or a baseline report) and
a candidate on the cases both scored; differences are candidate - reference, so a regression is a negative one.

Every interval here keeps its promise at every n, not only asymptotically, because the release gate reads them at
pull-request sizes (10 to 30 cases) where asymptotic intervals do not (a percentile bootstrap, for one, calls a
regression beyond the tolerance PASS in 35 % of runs at n = 10; bench/bench_verdict.py measures coverage):

- `wilson_interval`: a proportion (a pass rate, or the mean of 0/1 scores) with Wilson's score interval.
- `tango_interval`: the paired difference of two proportions (candidate - reference on 0/1 scores), with Tango's
  asymptotic score interval (Tango 1998, Stat Med 17:891; Newcombe's review 1998, Stat Med 17:2635, and Fagerland,
  Lydersen & Laake 2014, Stat Methods Med Res, recommend it for small samples). All ties is not a zero-width
  interval: 0 losses of 10 is [-0.28, +0.28].
- `betting_interval`: the mean of scores bounded in [low, high] (a mean of 0..1 scores, or a paired difference in
  -1..1) with two one-sided betting confidence bounds (Waudby-Smith & Ramdas 2024, JRSS-B 86:1, "Estimating means
  of bounded random variables by betting", hedged capital with the predictable plug-in for a fixed n). It holds
  its level for every distribution on the bounds and every n, including a candidate equal to the reference except
  on rare cases, which no interval built from the sample spread alone (Student-t, BCa, percentile bootstrap) does.
- `mean_ci`: a Student-t interval, only for scores with no known bounds (custom metrics off 0..1).
- `win_tie_loss` and `sign_test`: per-case wins, ties and losses, and the exact two-sided sign test of
  "neither is better" (ties left out, as the test prescribes).
- `non_inferiority`: the gate's question, "is the candidate worse by more than the tolerance?". A regression only
  when the whole difference interval lies below -tolerance; no regression when it lies above; otherwise
  inconclusive, with an estimate of how many more cases would decide it (`cases_to_decide`, or
  `paired_cases_to_decide` from the scores themselves).
"""

from __future__ import annotations

import math
import operator
import random
import statistics
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, count, islice, repeat
from typing import Literal

_CF_EPSILON = 1e-15
_CF_TINY = 1e-300
_CF_MAX_ITERATIONS = 500


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval; `low`/`high` are infinite when `n` cannot bound it."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int


@dataclass(frozen=True)
class WinTieLoss:
    """Per-case outcome of candidate against reference."""

    wins: int
    ties: int
    losses: int

    @property
    def total(self) -> int:
        return self.wins + self.ties + self.losses


@dataclass(frozen=True)
class NonInferiority:
    """The gate's verdict on one metric's paired difference (candidate − reference) against a tolerance."""

    verdict: Literal["no_regression", "regression", "inconclusive"]
    difference: Interval
    tolerance: float
    more_cases: int | None  # inconclusive only: about how many more paired cases would decide it; None if unknown


# --- distributions --------------------------------------------------------------------------------------------
def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by Lentz's continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side only: use the symmetry
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    front = math.exp(log_front) / a
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    result = d
    for m in range(1, _CF_MAX_ITERATIONS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _CF_TINY else _CF_TINY
            result *= c * d
        if abs(c * d - 1.0) < _CF_EPSILON:
            break
    return front * result


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value below which a share `p` of Student's t with `df` degrees of freedom lies (bisection)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# --- one sample -------------------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean with a two-sided Student-t interval (infinite for fewer than two values). For scores without known
    bounds only: on bounded scores it can leave the bounds and under-covers skewed samples (`score_interval`)."""
    _check_confidence(confidence)
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, -math.inf, math.inf, confidence, n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * math.sqrt(variance / n)
    return Interval(mean, mean - half, mean + half, confidence, n)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A proportion (a pass rate) with Wilson's score interval; unlike the normal approximation it stays inside
    0..1 and is honest for 0 or n successes (scipy: `binomtest(k, n).proportion_ci(method="wilson")`)."""
    _check_confidence(confidence)
    if n <= 0:
        raise ValueError("no trials")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    z = _z(confidence)
    share = successes / n
    denominator = 1.0 + z * z / n
    centre = (share + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(share * (1.0 - share) / n + z * z / (4.0 * n * n)) / denominator
    return Interval(share, max(0.0, centre - half), min(1.0, centre + half), confidence, n)


Method = Literal["wilson", "betting", "t"]
PairedMethod = Literal["tango", "betting", "t"]


def _binary(values: Sequence[float]) -> bool:
    return all(v == 0.0 or v == 1.0 for v in values)


def _within(values: Sequence[float], low: float, high: float) -> bool:
    return all(low <= v <= high for v in values)


def score_method(values: Sequence[float]) -> Method:
    """The interval a mean of these scores gets: Wilson for 0/1 scores, betting for scores in 0..1, else t."""
    if _binary(values):
        return "wilson"
    return "betting" if _within(values, 0.0, 1.0) else "t"


def score_interval(values: Sequence[float], confidence: float = 0.95, *, seed: int = 0) -> Interval:
    """A metric's mean with an interval that stays within 0..1 and holds its level at every n (`score_method`)."""
    if not values:
        raise ValueError("no values")
    method = score_method(values)
    if method == "wilson":
        return wilson_interval(sum(1 for v in values if v == 1.0), len(values), confidence)
    if method == "betting":
        return betting_interval(values, confidence, seed=seed)
    return mean_ci(values, confidence)


# --- bounded means by betting -----------------------------------------------------------------------------------
_BET_CAP = 0.75  # c in Waudby-Smith & Ramdas: a bet never stakes more than 3/4 of what ruin would take
_BISECTIONS = 40  # the bounds to 1e-12 of the range
_SECANT_STEPS = 30  # a bound takes about 6 (tests/metrics/test_betting_search.py counts them)
_GRID = 1 << _BISECTIONS  # each bound is a multiple of 1/_GRID of the range: where 40 bisections of [0, 1] land


def _bets(ys: Sequence[float], alpha_one_sided: float) -> array[float]:
    """The predictable plug-in bets: lambda_t = sqrt(2 log(1/a) / (n sigma^2_{t-1})), where sigma^2 and the mean
    it is taken around are running estimates started at 1/4 and 1/2 (WSR 2024, eqs. 26-27), so each bet uses only
    the scores before it (that is what makes the capital a test martingale). In C-level iterators, each step the
    same floating-point operation, in the same order, as the loop it replaced (tests/metrics/test_betting_search.py)."""
    numerator = 2.0 * math.log(1.0 / alpha_one_sided) / len(ys)
    means = map(operator.truediv, map(operator.add, repeat(0.5), accumulate(ys)), count(2))  # (0.5 + total)/(t+1)
    squares = accumulate(map(operator.pow, map(operator.sub, ys, means), repeat(2)), initial=0.25)
    variances = map(operator.truediv, squares, count(1))  # sigma^2_{t-1} = squares / t
    return array("d", islice(map(math.sqrt, map(operator.truediv, repeat(numerator), variances)), len(ys)))


def _rejects(ys: Sequence[float], bets: Sequence[float], m: float, sign: int, log_threshold: float) -> bool:
    """Did the capital betting that the mean is above m (sign +1) or below it (sign -1) ever reach the threshold?
    (By Ville's inequality a running maximum keeps the level.) Each stake is capped at c/m or c/(1-m), so the
    capital stays positive; capital of +1 decreases in m, of -1 increases (`betting_interval` finds each bound on
    the grid bisection walks, with `_peak_log_capital`, the same sums)."""
    cap = _BET_CAP / (m if sign > 0 else 1.0 - m) if 0.0 < m < 1.0 else math.inf
    log_capital = 0.0
    log1p = math.log1p
    for y, bet in zip(ys, bets, strict=True):
        log_capital += log1p(sign * (bet if bet < cap else cap) * (y - m))
        if log_capital >= log_threshold:
            return True
    return False


def betting_interval(
    values: Sequence[float], confidence: float = 0.95, *, low: float = 0.0, high: float = 1.0, seed: int = 0
) -> Interval:
    """Mean of values in [low, high] with two one-sided betting bounds at (1 - confidence)/2 each.

    The values are bet on in a seeded random order (the bounds depend on the order, not their level): the same
    inputs give the same interval on every machine. Valid for any distribution on [low, high] and every n; never
    outside [low, high]; all-equal values give an interval of positive width that shrinks as about 1/n.
    Each bound is the edge of the rejected means on a grid of 2^-40 of the range (what 40 bisections of [0, 1]
    find), located by `_edge` in about a dozen passes over the values (0.1 s for 100,000 values)."""
    _check_confidence(confidence)
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    if not high > low:
        raise ValueError("high must exceed low")
    if not _within(values, low, high):
        raise ValueError(f"values must lie within [{low}, {high}]")
    span = high - low
    ys = array("d", map(operator.truediv, map(operator.sub, values, repeat(low)), repeat(span)))  # 8 bytes a value
    random.Random(seed).shuffle(ys)
    alpha = (1.0 - confidence) / 2.0
    bets = _bets(ys, alpha)
    log_threshold = math.log(1.0 / alpha)
    peak_bet = max(bets)
    mean = math.fsum(values) / n

    def excess(k: int, sign: int) -> float:  # >= 0: the capital betting on "above (+1) / below (-1) k/2^40" won
        return _peak_log_capital(ys, bets, peak_bet, k / _GRID, sign) - log_threshold

    # where to look first: the sample mean, and a normal interval's arm (at least 1/n: all-equal values)
    guess = min(_GRID - 1, max(1, round((mean - low) / span * _GRID)))
    share = math.fsum(ys) / n
    spread = math.sqrt(max(0.0, math.fsum(map(operator.mul, ys, ys)) / n - share * share))
    arm = max(_z(1.0 - 2.0 * alpha) * spread / math.sqrt(n), 1.0 / n)
    reach = max(1, round(arm * _GRID))
    # the lower bound: the least grid mean not rejected by the capital betting on "above m" (0 when 0 is not)
    lower = _edge(lambda k: excess(k, +1), 0, _GRID, guess, reach) if excess(0, +1) >= 0.0 else 0
    # the upper bound: the greatest grid mean not rejected by the capital betting on "below m" (1 when 1 is not)
    upper = _edge(lambda k: excess(k, -1), _GRID, 0, guess, reach) if excess(_GRID, -1) >= 0.0 else _GRID
    bottom, top = low + span * (lower / _GRID), low + span * (upper / _GRID)
    return Interval(mean, max(low, bottom), min(high, top), confidence, n)


def _peak_log_capital(ys: Sequence[float], bets: Sequence[float], peak_bet: float, m: float, sign: int) -> float:
    """The running maximum of the log capital betting that the mean is above m (sign +1) or below it (-1): the
    same sums, term by term and in the same order, as `_rejects` adds (so `_rejects` is this >= its threshold),
    computed in C-level iterators instead of a Python loop."""
    cap = _BET_CAP / (m if sign > 0 else 1.0 - m) if 0.0 < m < 1.0 else math.inf
    stakes = bets if peak_bet < cap else [bet if bet < cap else cap for bet in bets]
    # sign * stake * (y - m): a sign of -1 is exactly stake * (m - y) in floating point
    moves = map(operator.sub, ys, repeat(m)) if sign > 0 else map(operator.sub, repeat(m), ys)
    return max(accumulate(map(math.log1p, map(operator.mul, stakes, moves))))


def _edge(excess: Callable[[int], float], rejected: int, kept: int, guess: int, reach: int) -> int:
    """The grid point next to the edge of the rejected means on the side of `kept` (a bound's far end, never
    evaluated), given that `rejected` is rejected: what bisecting between them finds, since the capital is
    monotone in the mean.

    Bisection takes 40 passes over the values. This brackets the edge near a first estimate instead (from
    `guess`, the mean, `reach` grid points towards `rejected`, doubling the reach until the bracket holds), then
    takes secant steps through the last two points on the capital's excess over its threshold (smooth near the
    edge), rounded to the grid past the estimate so the bracket closes from both sides; a bisection step
    whenever the secant leaves the bracket, and bisection only after `_SECANT_STEPS` (so never much worse)."""
    toward = 1 if rejected > kept else -1  # the direction from the kept end to the rejected one
    history: list[tuple[int, float]] = []

    def probe(point: int) -> float:
        value = excess(point)
        history[:] = [*history[-1:], (point, value)]
        return value

    bracketed = False  # a kept point has been evaluated (the far end never is)
    if probe(guess) >= 0.0:
        rejected = guess
        while abs(kept - rejected) > 1:  # walk towards the kept end until a point is kept
            point = rejected - toward * reach
            if (point - kept) * toward <= 0:
                break
            if probe(point) < 0.0:
                kept, bracketed = point, True
                break
            rejected, reach = point, reach * 2
    else:
        kept, bracketed = guess, True
        while abs(kept - rejected) > 1:  # walk towards the rejected end until a point is rejected
            point = kept + toward * reach
            if (rejected - point) * toward <= 0:
                break
            if probe(point) >= 0.0:
                rejected = point
                break
            kept, reach = point, reach * 2
    secant_steps = 0
    while abs(kept - rejected) > 1:
        ends = min(rejected, kept), max(rejected, kept)
        point = (rejected + kept) // 2
        if bracketed and secant_steps < _SECANT_STEPS and history[0][1] != history[-1][1]:
            (p1, f1), (p2, f2) = history
            estimate = p2 - f2 * (p2 - p1) / (f2 - f1)
            if ends[0] < estimate < ends[1]:  # rounded past the estimate, away from the last point's side
                ahead = toward if f2 < 0.0 else -toward
                point = math.ceil(estimate) if ahead > 0 else math.floor(estimate)
                point = min(max(point, ends[0] + 1), ends[1] - 1)
                secant_steps += 1
        if probe(point) >= 0.0:
            rejected = point
        else:
            kept, bracketed = point, True
    return kept


# --- pairs ------------------------------------------------------------------------------------------------------
def paired(reference: Mapping[str, float], candidate: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Scores of the cases both sides scored, in case-id order (cases only one side has are left out)."""
    shared = sorted(set(reference) & set(candidate))
    return [reference[c] for c in shared], [candidate[c] for c in shared]


def differences(reference: Sequence[float], candidate: Sequence[float]) -> list[float]:
    if len(reference) != len(candidate):
        raise ValueError(f"paired samples differ in length ({len(reference)} vs {len(candidate)})")
    return [c - r for r, c in zip(reference, candidate, strict=True)]


def paired_method(reference: Sequence[float], candidate: Sequence[float]) -> PairedMethod:
    """Tango for 0/1 scores on both sides, betting for scores in 0..1, Student-t for scores without bounds."""
    if _binary(reference) and _binary(candidate):
        return "tango"
    if _within(reference, 0.0, 1.0) and _within(candidate, 0.0, 1.0):
        return "betting"
    return "t"


def tango_interval(wins: float, losses: float, n: float, confidence: float = 0.95) -> Interval:
    """Candidate - reference on paired 0/1 scores: wins (0 -> 1), losses (1 -> 0) of n pairs, with Tango's score
    interval: the d whose score statistic (estimate - d) / sqrt(V(d)) lies within +-z, where V(d) takes the loss
    rate at its maximum-likelihood value under d (Tango 1998, eq. 4: a closed-form quadratic root). Counts may be
    fractional (`paired_cases_to_decide` scales them)."""
    _check_confidence(confidence)
    if n <= 0:
        raise ValueError("no pairs")
    if wins < 0 or losses < 0 or wins + losses > n:
        raise ValueError(f"wins ({wins}) and losses ({losses}) must be counts within {n} pairs")
    z = _z(confidence)
    estimate = (wins - losses) / n

    def score(d: float) -> float:  # decreasing in d; +inf at -1, -inf at +1
        a = 2.0 * n
        b = -(wins + losses) + d * (2.0 * n - wins + losses)
        c = -losses * d * (1.0 - d)
        loss_rate = (math.sqrt(max(0.0, b * b - 4.0 * a * c)) - b) / (2.0 * a)
        variance = (2.0 * loss_rate + d * (1.0 - d)) / n
        if variance <= 0.0:
            return 0.0 if estimate == d else math.copysign(math.inf, estimate - d)
        return (estimate - d) / math.sqrt(variance)

    def solve(target: float, left: float, right: float) -> float:
        for _ in range(60):  # to 1e-18 of the range
            middle = (left + right) / 2.0
            if score(middle) > target:
                left = middle
            else:
                right = middle
        return (left + right) / 2.0

    lower = -1.0 if estimate <= -1.0 else solve(z, -1.0, estimate)
    upper = 1.0 if estimate >= 1.0 else solve(-z, estimate, 1.0)
    return Interval(estimate, lower, upper, confidence, round(n))


def paired_interval(
    reference: Sequence[float], candidate: Sequence[float], confidence: float = 0.95, *, seed: int = 0
) -> tuple[Interval, PairedMethod]:
    """Candidate - reference with the interval `paired_method` picks, and which one it was."""
    diffs = differences(reference, candidate)
    if not diffs:
        raise ValueError("no paired cases")
    method = paired_method(reference, candidate)
    if method == "tango":
        outcome = win_tie_loss(reference, candidate)
        return tango_interval(outcome.wins, outcome.losses, len(diffs), confidence), method
    if method == "betting":
        return betting_interval(diffs, confidence, low=-1.0, high=1.0, seed=seed), method
    interval = mean_ci(diffs, confidence)
    if interval.high - interval.low <= 0.0:  # no spread and no bounds: nothing bounds the mean
        interval = Interval(interval.estimate, -math.inf, math.inf, confidence, interval.n)
    return interval, method


def win_tie_loss(reference: Sequence[float], candidate: Sequence[float], *, tie_margin: float = 0.0) -> WinTieLoss:
    """A win when the candidate scored more than `tie_margin` above the reference, a loss when below, else a tie."""
    if tie_margin < 0:
        raise ValueError("tie_margin must be >= 0")
    diffs = differences(reference, candidate)
    wins = sum(1 for d in diffs if d > tie_margin)
    losses = sum(1 for d in diffs if d < -tie_margin)
    return WinTieLoss(wins, len(diffs) - wins - losses, losses)


def sign_test(outcome: WinTieLoss) -> float:
    """Exact two-sided sign test p-value of "wins and losses are equally likely" (ties left out); 1.0 when there
    are no untied cases. Exact integer arithmetic: no normal approximation, whatever the number of cases."""
    n = outcome.wins + outcome.losses
    if n == 0:
        return 1.0
    k = min(outcome.wins, outcome.losses)
    term = tail = 1  # C(n, 0); then C(n, i) = C(n, i - 1) * (n - i + 1) / i, exactly, in integers
    for i in range(1, k + 1):
        term = term * (n - i + 1) // i
        tail += term
    return min(1.0, (2 * tail) / (1 << n))


# --- the gate's question --------------------------------------------------------------------------------------
def non_inferiority(difference: Interval, tolerance: float) -> NonInferiority:
    """Regression only if the whole interval of candidate − reference lies below −tolerance; no regression if it
    lies above; else inconclusive, with `cases_to_decide`."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    boundary = -tolerance
    if difference.low > boundary:
        return NonInferiority("no_regression", difference, tolerance, None)
    if difference.high < boundary:
        return NonInferiority("regression", difference, tolerance, None)
    return NonInferiority("inconclusive", difference, tolerance, cases_to_decide(difference, tolerance))


def cases_to_decide(difference: Interval, tolerance: float) -> int | None:
    """About how many more paired cases would make an inconclusive test decide, from the interval alone: the arm
    on the side of the estimate that straddles -tolerance (the lower arm when the estimate is above it, the upper
    when below: intervals of bounded scores are lopsided) shrinks as about 1/sqrt(n), and must shrink below the
    distance between the estimate and -tolerance. 0 when already decided; None when no number of cases would do
    (the estimate sits on the boundary) or the interval is unbounded. `paired_cases_to_decide` projects the
    scores themselves, which is exact for the intervals used here."""
    boundary = -tolerance
    if difference.low > boundary or difference.high < boundary:
        return 0
    distance = abs(difference.estimate - boundary)
    arm = (
        difference.estimate - difference.low
        if difference.estimate > boundary
        else difference.high - difference.estimate
    )
    if distance == 0.0 or not math.isfinite(arm) or difference.n < 1:
        return None
    needed = difference.n * (arm / distance) ** 2  # the n at which the arm equals the distance
    needed *= 1.0 + 1e-9  # a ratio that is whole on paper must not round down to one case too few
    return max(1, math.floor(needed) + 1 - difference.n)


_PROJECTION_LIMIT = {"tango": 10_000_000, "t": 10_000_000, "betting": 100_000}


def paired_cases_to_decide(
    reference: Sequence[float], candidate: Sequence[float], tolerance: float, confidence: float = 0.95, *, seed: int = 0
) -> int | None:
    """How many more paired cases would decide an inconclusive comparison if the cases to come looked like these
    (for 0/1 scores the same shares of wins and losses; otherwise the same differences over again): the least
    total at which the same interval clears -tolerance, by doubling and then bisection. 0 when already decided;
    None when the estimate sits on -tolerance or more cases than the method's limit (a million; a hundred
    thousand for betting, whose check costs one pass over the cases) would still not do."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    interval, method = paired_interval(reference, candidate, confidence, seed=seed)
    if non_inferiority(interval, tolerance).verdict != "inconclusive":
        return 0
    boundary, n = -tolerance, interval.n
    if interval.estimate == boundary:
        return None
    above = interval.estimate > boundary  # decided means: the lower bound clears it (else the upper)
    diffs = differences(reference, candidate)

    def decides(total: int) -> bool:
        if method == "tango":
            outcome, scale = win_tie_loss(reference, candidate), total / n
            grown = tango_interval(outcome.wins * scale, outcome.losses * scale, total, confidence)
        elif method == "t":
            spread = statistics.stdev(diffs) if n > 1 else 0.0
            half = t_quantile(0.5 + confidence / 2.0, total - 1) * spread / math.sqrt(total)
            grown = Interval(interval.estimate, interval.estimate - half, interval.estimate + half, confidence, total)
        else:
            ys = [(d + 1.0) / 2.0 for d in diffs]
            random.Random(seed).shuffle(ys)
            cycled = [ys[i % n] for i in range(total)]
            alpha = (1.0 - confidence) / 2.0
            return _rejects(cycled, _bets(cycled, alpha), (boundary + 1.0) / 2.0, +1 if above else -1,
                            math.log(1.0 / alpha))  # fmt: skip
        return grown.low > boundary if above else grown.high < boundary

    limit = _PROJECTION_LIMIT[method]
    low, high = n, max(2 * n, n + 1)
    while not decides(high):
        if high >= limit:
            return None
        low, high = high, min(limit, 2 * high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if decides(middle) else (middle, high)
    return high - n


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def percentile(values: Sequence[float], q: float, *, ordered: bool = False) -> float | None:
    """Linear-interpolated percentile (q in 0..100, numpy's default method); None for no data. `ordered`: the
    values are sorted already (several percentiles of many values, one sort)."""
    if not values:
        return None
    ordered_values = values if ordered else sorted(values)
    return _interpolated(ordered_values, q)


def _interpolated(ordered: Sequence[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
