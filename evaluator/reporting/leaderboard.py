"""What every report shows of a comparison, computed once: the leaderboard, the paired differences with the gate's
reading of each, and the cases that flipped from pass to fail. JUnit, the PR comment, the HTML page and the
terminal format these rows; none of them recomputes a number."""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.compare import report_compared
from evaluator.contract import Difference, PairComparison, Report, ReportCase
from evaluator.gate import pair_label
from evaluator.gate import reading as gate_reading
from evaluator.reporting.fields import excerpt, fmt


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None = None
    high: float | None = None

    def text(self, spec: str = ".3f") -> str:
        """'0.812 [0.77, 0.85]', or the value alone without an interval."""
        if self.value is None:
            return "–"
        if self.low is None or self.high is None:
            return format(self.value, spec)
        return f"{format(self.value, spec)} [{format(self.low, spec)}, {format(self.high, spec)}]"


@dataclass(frozen=True)
class LeaderRow:
    rank: int
    variant: str
    model: str
    reference: bool
    cases: int
    errored: int
    pass_rate: Estimate
    metrics: dict[str, Estimate]
    latency_p50: float | None
    latency_p95: float | None
    tokens: int
    tokens_per_case: float | None
    cost: float | None  # with a price per 1,000 tokens


@dataclass(frozen=True)
class PairRow:
    pair: str
    candidate: str
    metric: str
    difference: Estimate
    wins: int
    ties: int
    losses: int
    p_value: float | None
    verdict: str  # regression, no_regression, inconclusive, or n/a
    more_cases: int | None

    @property
    def decision(self) -> str:
        if self.verdict == "inconclusive":
            more = f": {self.more_cases} more cases would decide" if self.more_cases else ""
            return f"inconclusive{more}"
        return {"regression": "regression", "no_regression": "no regression"}.get(self.verdict, "–")


@dataclass(frozen=True)
class Flip:
    pair: str
    case_id: str
    input: str
    reference_output: str
    candidate_output: str
    reason: str


@dataclass
class VariantsView:
    """Everything the reports show of a multi-variant run (empty for a single variant)."""

    leaderboard: list[LeaderRow] = field(default_factory=list)
    pairs: list[PairRow] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    flips_total: int = 0
    metrics: list[str] = field(default_factory=list)
    judge_line: str = ""
    profile_line: str = ""
    tolerance: float = 0.0

    @property
    def active(self) -> bool:
        return len(self.leaderboard) > 1


def profile_line(report: Report) -> str:
    """Which cases ran: the profile and its selection (the sample a baseline must match)."""
    info = report.profile
    if info is None:
        return ""
    how = []
    if info.tags:
        how.append(f"tags {', '.join(info.tags)}")
    if info.sample is not None:
        how.append(f"a sample of {info.sample} stratified by first tag, seed {info.seed}")
    detail = f" ({'; '.join(how)})" if how else ""
    name = f"profile '{info.name}'" if info.name else "every case (no profile)"
    selection = info.selection_sha256[:12]
    return f"{name}{detail}: {info.selected_cases} of {info.dataset_cases} cases, selection {selection}"


def judge_line(report: Report) -> str:
    """The one judge of every variant and its sampling settings, and how G-Eval's steps were fixed."""
    judge = report.judge
    if judge is None:
        return "no judge (deterministic metrics only)"
    line = (
        f"judge '{judge.model}' (temperature {judge.temperature:g}, seed {judge.seed}, max_tokens "
        f"{judge.max_tokens}, {judge.structured_output}), the same for every variant"
    )
    if report.g_eval_steps:
        line += f"; G-Eval steps fixed for the whole run ({', '.join(sorted(report.g_eval_steps))})"
    return line


def _target_p(report: Report, variant: str, key: str) -> float | None:
    summary = report.variants.get(variant)
    entry = summary.latency.get("target") if summary else None
    return getattr(entry, key) if entry is not None else None


def leaderboard(report: Report, price_per_1k_tokens: float = 0.0) -> list[LeaderRow]:
    """Variants ranked by case pass rate (then mean of the first metric), the reference marked."""
    rows = []
    for name, summary in report.variants.items():
        t = summary.totals
        tokens = t.prompt_tokens + t.completion_tokens
        target = summary.target
        rows.append(
            LeaderRow(
                rank=0,
                variant=name,
                model=target.model if target is not None else "(recorded answers)",
                reference=name == report.reference,
                cases=t.cases,
                errored=t.errored,
                pass_rate=Estimate(t.pass_rate, summary.pass_rate_ci_low, summary.pass_rate_ci_high),
                metrics={m: Estimate(s.mean, s.ci_low, s.ci_high) for m, s in summary.metrics.items()},
                latency_p50=_target_p(report, name, "p50"),
                latency_p95=_target_p(report, name, "p95"),
                tokens=tokens,
                tokens_per_case=tokens / t.cases if t.cases else None,
                cost=tokens / 1000 * price_per_1k_tokens if price_per_1k_tokens else None,
            )
        )
    rows.sort(key=lambda r: (-(r.pass_rate.value or 0.0), r.variant))
    return [LeaderRow(**{**r.__dict__, "rank": i}) for i, r in enumerate(rows, start=1)]


def pair_rows(report: Report, pairs: list[PairComparison] | None = None) -> list[PairRow]:
    """One row per (pair, metric) and the pair's pass rate, read as the gate reads it."""
    tolerance = report.gate.regression_tolerance or 0.0
    rows = []
    # the paired scores, so that "N more cases" is the gate's own number
    scored = {c.pair.candidate: c for c in report_compared(report)} if pairs is None else {}
    for pair in report.comparisons if pairs is None else pairs:
        entries: list[tuple[str, Difference]] = [*sorted(pair.metrics.items()), ("pass rate", pair.pass_rate)]
        item = scored.get(pair.candidate)
        for metric, diff in entries:
            scores = None if item is None else (item.pass_rate if metric == "pass rate" else item.metrics.get(metric))
            reading = gate_reading(pair, diff, tolerance, scores)
            rows.append(
                PairRow(
                    pair=pair_label(pair),
                    candidate=pair.candidate,
                    metric=metric,
                    difference=Estimate(diff.difference, diff.ci_low, diff.ci_high),
                    wins=diff.wins,
                    ties=diff.ties,
                    losses=diff.losses,
                    p_value=diff.p_value,
                    verdict=reading.verdict if reading is not None else "n/a",
                    more_cases=reading.more_cases if reading is not None else None,
                )
            )
    return rows


def _score_line(case: ReportCase | None) -> str:
    if case is None:
        return "(not evaluated)"
    if case.error is not None:
        return f"error {case.error.kind}: {case.error.message}"
    return case.actual_output or ""


def flips(report: Report, limit: int, pairs: list[PairComparison] | None = None) -> tuple[list[Flip], int]:
    """The first `limit` pass->fail flips over every pair (reference's failing metric reasons first), and how
    many there are in all."""
    by_key = {(c.variant, c.case_id): c for c in report.cases}
    out: list[Flip] = []
    total = 0
    for pair in report.comparisons if pairs is None else pairs:
        total += len(pair.flipped_to_fail)
        for case_id in pair.flipped_to_fail:
            if len(out) >= limit:
                break
            ref, cand = by_key.get((pair.reference, case_id)), by_key.get((pair.candidate, case_id))
            failing = [
                f"{name}: {fmt(entry.score)} {excerpt(entry.error or entry.reason, 120)}".strip()
                for name, entry in sorted(cand.metrics.items())
                if not entry.success
            ] if cand is not None else []  # fmt: skip
            source = cand if cand is not None else ref
            out.append(
                Flip(
                    pair=pair_label(pair),
                    case_id=case_id,
                    input=source.input if source is not None else "",
                    reference_output=_score_line(ref),
                    candidate_output=_score_line(cand),
                    reason="; ".join(failing),
                )
            )
    return out, total


def view(report: Report, *, flips_limit: int = 10, price_per_1k_tokens: float = 0.0) -> VariantsView:
    if len(report.variants) < 2:
        return VariantsView()
    found, total = flips(report, flips_limit)
    metrics = sorted({m for s in report.variants.values() for m in s.metrics})
    return VariantsView(
        leaderboard=leaderboard(report, price_per_1k_tokens),
        pairs=pair_rows(report),
        flips=found,
        flips_total=total,
        metrics=metrics,
        judge_line=judge_line(report),
        profile_line=profile_line(report),
        tolerance=report.gate.regression_tolerance or 0.0,
    )
