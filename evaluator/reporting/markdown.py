"""The pull-request comment: verdict, metric table with deltas, the failed cases (errored first, then the lowest
scores), the 10 most regressed cases against a baseline, shards to re-run; with variants, a leaderboard, each
candidate's paired differences from the reference (as the gate reads them) and the top cases that flipped from
pass to fail.

GitHub rejects comments over 65,536 characters, so every list here is bounded (top 10 cases, 20 problems,
40 leaderboard rows, 80 difference rows, shard indexes as ranges) and cells are cut to excerpts; `render`
guarantees the limit whatever the report.
"""

from __future__ import annotations

import shlex
from typing import Any

from evaluator.baseline import BaselineChanges
from evaluator.contract import Report, ReportCase
from evaluator.gate import apply_gate
from evaluator.reporting.fields import compress_ranges, duration, excerpt, fmt, metadata_text
from evaluator.reporting.leaderboard import VariantsView, view
from evaluator.reporting.notes import provenance_line, report_notes, scoring_notes

GITHUB_COMMENT_LIMIT = 65_536
TOP_REGRESSIONS = 10
TOP_FLIPS = 10
TOP_FAILED = 10
MAX_PROBLEMS = 20
MAX_LEADERBOARD = 40
MAX_PAIR_ROWS = 80
ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "❔"}


def _cell(text: Any, limit: int) -> str:
    """A table cell: one line, pipes and HTML escaped, at most limit characters."""
    s = excerpt(text, limit)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|") or " "


def _delta(value: float | None, spec: str = "+.3f") -> str:
    if value is None:
        return "–"
    if abs(value) < 5e-4:
        return "±0"
    arrow = "🔻" if value < 0 else "🔺"
    return f"{arrow} {format(value, spec)}"


def rerun_command(report: Report, shard: int, suite_path: str, out_dir: str) -> str:
    """The exact command that re-runs one shard of this run into the same results folder."""
    return (
        f"evaluator run {shlex.quote(suite_path)} --out {shlex.quote(out_dir)} --shard-index {shard}"
        f" --total-shards {report.shards.expected or 0} --run-id {shlex.quote(report.run_id or '')}"
    )


def failed_shards(report: Report) -> list[int]:
    """Shards to re-run: missing, incomplete, or named by a problem."""
    bad = set(report.shards.missing) | set(report.shards.incomplete)
    bad.update(p.shard for p in report.problems if p.shard is not None and p.kind != "duplicate_case")
    return sorted(bad)


def render(
    report: Report,
    comparison: BaselineChanges | None = None,
    *,
    suite_path: str | None = None,
    out_dir: str | None = None,
    limit: int = GITHUB_COMMENT_LIMIT,
    price_per_1k_tokens: float = 0.0,
) -> str:
    """Markdown for a PR comment, at most limit characters."""
    totals = report.totals
    verdict = apply_gate(report)
    regressed = comparison is not None and comparison.regressed
    icon = ICONS["fail"] if regressed else ICONS[verdict.status]
    title = f"{icon} **Evaluation {verdict.label}**" + (" — regressed vs baseline" if regressed else "")
    compared = view(report, flips_limit=TOP_FLIPS, price_per_1k_tokens=price_per_1k_tokens)
    counted = f"**{totals.cases} cases**"
    if compared.active:
        variants = len(compared.leaderboard)
        counted = f"**{variants} variants × {totals.cases // variants} cases = {totals.cases} answers**"
    lines = [
        f"## {title}: `{excerpt(report.suite.name or 'suite', 80)}`",
        "",
        f"Run `{excerpt(report.run_id or '', 80)}` at commit `{(report.commit or '?')[:12]}`"
        + (f", compared with baseline `{excerpt(comparison.baseline_run_id, 80)}`" if comparison else ""),
        "",
        f"{counted}: {totals.passed} passed, {totals.failed} failed, {totals.errored} errored · "
        f"pass rate {totals.pass_rate or 0:.1%} · error rate {totals.error_rate or 0:.1%} · "
        f"wall time {duration(totals.wall_time_s)} · {totals.prompt_tokens + totals.completion_tokens} tokens",
        "",
    ]
    if compared.active:
        lines += [f"Cases: {compared.profile_line or 'every case'}. Scored by {compared.judge_line}.", ""]
    elif report.profile is not None and report.profile.name:
        lines += [f"Cases: {_cell(report.profile.name, 60)} profile, {report.profile.selected_cases} cases.", ""]
    for reason in verdict.reasons[:MAX_PROBLEMS]:
        lines.append(f"- ⚠️ {_cell(reason, 300)}")
    for reason in verdict.inconclusive[:MAX_PROBLEMS]:
        lines.append(f"- ❔ {_cell(reason, 300)}")
    for note in verdict.notes[:MAX_PROBLEMS]:
        lines.append(f"- ℹ️ {_cell(note, 300)}")
    if comparison is not None:
        for reason in comparison.reasons():
            lines.append(f"- 🔻 {_cell(reason, 300)}")
        for reason in comparison.undecided()[:MAX_PROBLEMS]:
            lines.append(f"- ❔ {_cell(reason, 300)}")
        for note in comparison.notes:
            lines.append(f"- ℹ️ {_cell(note, 300)}")
    scoring = scoring_notes(report) + report_notes(report, [*verdict.reasons, *verdict.inconclusive, *verdict.notes])
    for note in scoring[:MAX_PROBLEMS]:
        lines.append(f"- ℹ️ {_cell(note, 300)}")
    if (verdict.reasons or verdict.inconclusive or verdict.notes or regressed or (comparison and comparison.notes)
            or scoring):  # fmt: skip
        lines.append("")
    produced = provenance_line(report.provenance)
    if produced is not None:
        lines += [f"<sub>Produced by {_cell(produced, 600)}</sub>", ""]
    if compared.active:
        lines += _leaderboard(compared) + _pairs(compared, report.reference or "") + _flips(compared)
    if not compared.active or comparison is not None:
        lines += _metric_table(report, comparison)
    if not compared.active:
        lines += _failed_cases(report)
    if comparison is not None:
        lines += _regressions(comparison)
    lines += _shards(report, suite_path or report.suite.path or "SUITE.yaml", out_dir or "DIR")
    lines += _problems(report)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > limit:  # cannot happen with the bounds above; kept as the hard guarantee
        note = "\n\n_…cut to fit the comment limit._\n"
        text = text[: limit - len(note)] + note
    return text


def _metric_table(report: Report, comparison: BaselineChanges | None) -> list[str]:
    metrics = report.metrics
    deltas = {m.name: m for m in comparison.metrics} if comparison else {}
    header = "| metric | mean | p50 | p95 | pass rate | threshold |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if comparison:
        header += " Δ mean | Δ pass rate |"
        rule += "---:|---:|"
    out = ["### Metrics", "", header, rule]
    for name in sorted(set(metrics) | set(deltas)):
        m = metrics.get(name)
        row = (
            f"| {_cell(name, 60)} | {fmt(m.mean if m else None)} | {fmt(m.p50 if m else None)} | "
            f"{fmt(m.p95 if m else None)} | {fmt(m.pass_rate if m else None, '.1%')} | "
            f"{fmt(m.threshold if m else None, 'g')} |"
        )
        if comparison:
            d = deltas.get(name)
            flag = {"regression": " ❗", "inconclusive": " ❔"}.get(d.reading, "") if d is not None else ""
            row += (
                f" {_delta(d.mean_delta if d else None)}{flag} | {_delta(d.pass_rate_delta if d else None, '+.1%')} |"
            )
        out.append(row)
    if comparison:
        out += [
            "",
            f"Deltas over the cases both runs scored (❗ the interval lies below −tolerance, ❔ it cannot tell yet); "
            f"tolerance {comparison.tolerance:g}. "
            f"{len(comparison.regressions)} case-metric results regressed, {len(comparison.improvements)} "
            f"improved; {len(comparison.new)} new and {len(comparison.removed)} removed cases.",
        ]
    return [*out, ""]


def _worst_first(case: ReportCase) -> tuple[int, float, int]:
    """Errored cases first, then failed ones by their lowest failing score, then in dataset order."""
    failing = [m.score for m in case.metrics.values() if not m.success and m.score is not None]
    return (0 if case.error is not None else 1, min(failing, default=0.0), case.case_index)


def _failed_cases(report: Report) -> list[str]:
    """The cases that did not pass (a single variant's comment; with variants, the flipped cases stand for them)."""
    failed = sorted((c for c in report.cases if not c.success), key=_worst_first)
    if not failed:
        return ["### Failed cases", "", f"Every one of the {len(report.cases)} cases passed.", ""]
    with_metadata = any(c.metadata for c in failed[:TOP_FAILED])
    header = "| case | status | failed metrics | input | actual output | why |"
    rule = "|---|---|---|---|---|---|"
    if with_metadata:
        header, rule = header + " metadata |", rule + "---|"
    out = [f"### {min(TOP_FAILED, len(failed))} failed cases (of {len(failed)}; errored first, then lowest score)",
           "", header, rule]  # fmt: skip
    for case in failed[:TOP_FAILED]:
        bad = {name: m for name, m in sorted(case.metrics.items()) if not m.success}
        metrics = ", ".join(f"{name} {fmt(m.score, '.2f')} < {fmt(m.threshold, 'g')}" if m.error is None
                            else f"{name} (error)" for name, m in bad.items())  # fmt: skip
        if case.error is not None:
            why = f"{case.error.kind}: {case.error.message}"
            status = "errored"
        else:
            why = " · ".join(f"{name}: {m.error or m.reason or '(no reason given)'}" for name, m in bad.items())
            status = "failed"
        row = (
            f"| `{_cell(case.case_id, 60)}` | {status} | {_cell(metrics, 120) if metrics else '–'} | "
            f"{_cell(case.input, 100)} | {_cell(case.actual_output, 120)} | {_cell(why, 200)} |"
        )
        if with_metadata:
            row += f" {_cell(metadata_text(case.metadata), 120)} |"
        out.append(row)
    return [*out, ""]


def _leaderboard(compared: VariantsView) -> list[str]:
    metrics = compared.metrics
    header = (
        "| # | variant | model | pass rate [95% CI] | "
        + " | ".join(f"{_cell(m, 40)} mean [95% CI]" for m in metrics)
        + " | target p50 / p95 s | tokens/case |"
    )
    rule = "|---:|---|---|---:|" + "---:|" * len(metrics) + "---:|---:|"
    with_cost = any(row.cost is not None for row in compared.leaderboard)
    if with_cost:
        header += " cost |"
        rule += "---:|"
    out = ["### Leaderboard", "", header, rule]
    for row in compared.leaderboard[:MAX_LEADERBOARD]:
        name = f"**{_cell(row.variant, 40)}** (reference)" if row.reference else _cell(row.variant, 40)
        cells = [
            str(row.rank), name, f"`{_cell(row.model, 60)}`", row.pass_rate.text(".1%"),
            *(row.metrics[m].text() if m in row.metrics else "–" for m in metrics),
            f"{fmt(row.latency_p50, '.2f')} / {fmt(row.latency_p95, '.2f')}", fmt(row.tokens_per_case, ".0f"),
        ]  # fmt: skip
        if with_cost:
            cells.append(fmt(row.cost, ".4f"))
        out.append("| " + " | ".join(cells) + " |")
    if len(compared.leaderboard) > MAX_LEADERBOARD:
        out.append(f"| … | {len(compared.leaderboard) - MAX_LEADERBOARD} more variants in REPORT.json |")
    return [*out, ""]


def _pairs(compared: VariantsView, reference: str) -> list[str]:
    out = [
        f"### Candidates vs reference `{_cell(reference, 40)}` (tolerance {compared.tolerance:g})",
        "",
        "Paired over the cases both answered: difference = candidate − reference with its 95% CI (Tango's score "
        "interval for 0/1 scores, a betting interval for scores in 0..1), "
        "wins/ties/losses per case, exact sign test p-value. A regression only when the whole interval lies "
        "below −tolerance.",
        "",
        "| candidate | metric | difference [95% CI] | W / T / L | p | decision |",
        "|---|---|---:|---:|---:|---|",
    ]
    marks = {"regression": "🔻 ", "inconclusive": "❔ ", "no_regression": "✅ "}
    for row in compared.pairs[:MAX_PAIR_ROWS]:
        out.append(
            f"| {_cell(row.candidate, 40)} | {_cell(row.metric, 40)} | {row.difference.text('+.3f')} | "
            f"{row.wins} / {row.ties} / {row.losses} | {fmt(row.p_value, '.3g')} | "
            f"{marks.get(row.verdict, '')}{_cell(row.decision, 80)} |"
        )
    if len(compared.pairs) > MAX_PAIR_ROWS:
        out.append(f"| … | {len(compared.pairs) - MAX_PAIR_ROWS} more rows in REPORT.json | | | | |")
    return [*out, ""]


def _flips(compared: VariantsView) -> list[str]:
    if not compared.flips:
        return ["### Flipped cases", "", "No case that the reference passed fails with a candidate.", ""]
    out = [
        f"### Top {len(compared.flips)} flipped cases: pass → fail (of {compared.flips_total})",
        "",
        "| pair | case | input | reference output | candidate output | why it failed |",
        "|---|---|---|---|---|---|",
    ]
    for f in compared.flips:
        out.append(
            f"| {_cell(f.pair, 50)} | `{_cell(f.case_id, 60)}` | {_cell(f.input, 100)} | "
            f"{_cell(f.reference_output, 120)} | {_cell(f.candidate_output, 120)} | {_cell(f.reason, 200)} |"
        )
    return [*out, ""]


def _regressions(comparison: BaselineChanges) -> list[str]:
    top = comparison.regressions[:TOP_REGRESSIONS]
    if not top:
        return ["### Regressions", "", "No case regressed against the baseline.", ""]
    out = [
        f"### {len(top)} most regressed cases (of {len(comparison.regressions)})",
        "",
        "| case | metric | input | old | new | reason |",
        "|---|---|---|---:|---:|---|",
    ]
    for c in top:
        new = fmt(c.new_score) if c.error is None else f"error ({_cell(c.error, 30)})"
        out.append(
            f"| `{_cell(c.case_id, 60)}` | {_cell(c.metric, 40)} | {_cell(c.input, 100)} | "
            f"{fmt(c.old_score)} | {new} | {_cell(c.reason, 200)} |"
        )
    return [*out, ""]


def _shards(report: Report, suite_path: str, out_dir: str) -> list[str]:
    bad = failed_shards(report)
    expected = report.shards.expected or 0
    if not bad:
        return [f"All {expected} shard(s) complete.", ""]
    out = [
        f"### {len(bad)} shard(s) failed or missing (of {expected})",
        "",
        f"Indexes: {excerpt(compress_ranges(bad), 2000)}",
        "",
        "Re-run one shard into the same results folder, then aggregate again:",
        "",
        "```sh",
        rerun_command(report, bad[0], suite_path, out_dir),
        f"evaluator aggregate {shlex.quote(out_dir)} --out REPORT.json --expect-shards {expected}",
        "```",
        "",
    ]
    return out


def _problems(report: Report) -> list[str]:
    problems = report.problems
    if not problems:
        return []
    out = [f"<details><summary>{len(problems)} problem(s) recorded by the aggregate</summary>", ""]
    for p in problems[:MAX_PROBLEMS]:
        where = " ".join(f"{k}={v}" for k, v in (("shard", p.shard), ("file", p.file), ("line", p.line),
                                                  ("field", p.field)) if v is not None)  # fmt: skip
        where_cell = f" {_cell(where, 120)}" if where else ""
        out.append(f"- `{_cell(p.kind, 40)}`{where_cell}: {_cell(p.message, 200)}")
    if len(problems) > MAX_PROBLEMS:
        out.append(f"- … and {len(problems) - MAX_PROBLEMS} more (see REPORT.json)")
    return [*out, "", "</details>", ""]
