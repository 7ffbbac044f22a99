"""The pull-request comment: verdict, metric table with deltas, the 10 most regressed cases, shards to re-run.

GitHub rejects comments over 65,536 characters, so every list here is bounded (top 10 cases, 20 problems,
shard indexes as ranges) and cells are cut to excerpts; `render` guarantees the limit whatever the report.
"""

from __future__ import annotations

import shlex
from typing import Any

from evaluator.reporting.baseline import Comparison
from evaluator.reporting.fields import (
    compress_ranges,
    duration,
    excerpt,
    int_list,
    items,
    num,
    opt_num,
    section,
)
from evaluator.reporting.verdict import judge

GITHUB_COMMENT_LIMIT = 65_536
TOP_REGRESSIONS = 10
MAX_PROBLEMS = 20


def _cell(text: Any, limit: int) -> str:
    """A table cell: one line, pipes and HTML escaped, at most limit characters."""
    s = excerpt(text, limit)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|") or " "


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def _delta(value: float | None, fmt: str = "+.3f") -> str:
    if value is None:
        return "–"
    if abs(value) < 5e-4:
        return "±0"
    arrow = "🔻" if value < 0 else "🔺"
    return f"{arrow} {format(value, fmt)}"


def rerun_command(report: dict[str, Any], shard: int, suite_path: str, out_dir: str) -> str:
    """The exact command that re-runs one shard of this run into the same results folder."""
    total = int(num(section(report, "shards").get("expected")))
    return (
        f"evaluator run {shlex.quote(suite_path)} --out {shlex.quote(out_dir)} --shard-index {shard}"
        f" --total-shards {total} --run-id {shlex.quote(str(report.get('run_id', '')))}"
    )


def failed_shards(report: dict[str, Any]) -> list[int]:
    """Shards to re-run: missing, incomplete, or named by a problem."""
    shards = section(report, "shards")
    bad = set(int_list(shards.get("missing")) + int_list(shards.get("incomplete")))
    for p in items(report, "problems"):
        shard = p.get("shard")
        if isinstance(shard, int) and not isinstance(shard, bool) and p.get("kind") != "duplicate_case":
            bad.add(shard)
    return sorted(bad)


def render(
    report: dict[str, Any],
    comparison: Comparison | None = None,
    *,
    suite_path: str | None = None,
    out_dir: str | None = None,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """Markdown for a PR comment, at most limit characters."""
    suite = section(report, "suite")
    totals = section(report, "totals")
    verdict = judge(report)
    regressed = comparison is not None and comparison.regressed
    icon = "✅" if verdict.passed and not regressed else "❌"
    title = f"{icon} **Evaluation {verdict.label}**" + (" — regressed vs baseline" if regressed else "")
    lines = [
        f"## {title}: `{excerpt(suite.get('name', 'suite'), 80)}`",
        "",
        f"Run `{excerpt(report.get('run_id', ''), 80)}` at commit `{str(report.get('commit') or '?')[:12]}`"
        + (f", compared with baseline `{excerpt(comparison.baseline_run_id, 80)}`" if comparison else ""),
        "",
        f"**{int(num(totals.get('cases')))} cases**: {int(num(totals.get('passed')))} passed, "
        f"{int(num(totals.get('failed')))} failed, {int(num(totals.get('errored')))} errored · "
        f"pass rate {num(totals.get('pass_rate')):.1%} · error rate {num(totals.get('error_rate')):.1%} · "
        f"wall time {duration(num(totals.get('wall_time_s')))} · "
        f"{int(num(totals.get('prompt_tokens')) + num(totals.get('completion_tokens')))} tokens",
        "",
    ]
    for reason in verdict.reasons[:MAX_PROBLEMS]:
        lines.append(f"- ⚠️ {_cell(reason, 300)}")
    if comparison is not None:
        for reason in comparison.reasons():
            lines.append(f"- 🔻 {_cell(reason, 300)}")
    if verdict.reasons or regressed:
        lines.append("")
    lines += _metric_table(report, comparison)
    if comparison is not None:
        lines += _regressions(comparison)
    lines += _shards(report, suite_path or str(suite.get("path") or "SUITE.yaml"), out_dir or "DIR")
    lines += _problems(report)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > limit:  # cannot happen with the bounds above; kept as the hard guarantee
        note = "\n\n_…cut to fit the comment limit._\n"
        text = text[: limit - len(note)] + note
    return text


def _metric_table(report: dict[str, Any], comparison: Comparison | None) -> list[str]:
    metrics = section(report, "metrics")
    deltas = {m.name: m for m in comparison.metrics} if comparison else {}
    header = "| metric | mean | p50 | p95 | pass rate | threshold |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if comparison:
        header += " Δ mean | Δ pass rate |"
        rule += "---:|---:|"
    out = ["### Metrics", "", header, rule]
    for name in sorted(set(metrics) | set(deltas)):
        m = metrics.get(name) if isinstance(metrics.get(name), dict) else {}
        assert isinstance(m, dict)
        row = (
            f"| {_cell(name, 60)} | {_f(opt_num(m.get('mean')))} | {_f(opt_num(m.get('p50')))} | "
            f"{_f(opt_num(m.get('p95')))} | {_f(opt_num(m.get('pass_rate')), '.1%')} | "
            f"{_f(opt_num(m.get('threshold')), 'g')} |"
        )
        if comparison:
            d = deltas.get(name)
            flag = " ❗" if d is not None and d.regressed else ""
            row += (
                f" {_delta(d.mean_delta if d else None)}{flag} | {_delta(d.pass_rate_delta if d else None, '+.1%')} |"
            )
        out.append(row)
    if comparison:
        out += [
            "",
            f"Deltas over the cases both runs scored; tolerance {comparison.tolerance:g}. "
            f"{len(comparison.regressions)} case-metric results regressed, {len(comparison.improvements)} "
            f"improved; {len(comparison.new)} new and {len(comparison.removed)} removed cases.",
        ]
    return [*out, ""]


def _regressions(comparison: Comparison) -> list[str]:
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
        new = _f(c.new_score) if c.error is None else f"error ({_cell(c.error, 30)})"
        out.append(
            f"| `{_cell(c.case_id, 60)}` | {_cell(c.metric, 40)} | {_cell(c.input, 100)} | "
            f"{_f(c.old_score)} | {new} | {_cell(c.reason, 200)} |"
        )
    return [*out, ""]


def _shards(report: dict[str, Any], suite_path: str, out_dir: str) -> list[str]:
    bad = failed_shards(report)
    expected = int(num(section(report, "shards").get("expected")))
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


def _problems(report: dict[str, Any]) -> list[str]:
    problems = items(report, "problems")
    if not problems:
        return []
    out = [f"<details><summary>{len(problems)} problem(s) recorded by the aggregate</summary>", ""]
    for p in problems[:MAX_PROBLEMS]:
        where = " ".join(f"{k}={p[k]}" for k in ("shard", "file", "line") if p.get(k) is not None)
        where_cell = f" {_cell(where, 120)}" if where else ""
        out.append(f"- `{_cell(p.get('kind'), 40)}`{where_cell}: {_cell(p.get('message'), 200)}")
    if len(problems) > MAX_PROBLEMS:
        out.append(f"- … and {len(problems) - MAX_PROBLEMS} more (see REPORT.json)")
    return [*out, "", "</details>", ""]
