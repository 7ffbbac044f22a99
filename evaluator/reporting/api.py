"""One call that writes every requested report from an aggregate: what `evaluator report` and `demo` use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evaluator.atomic import write_text_atomic
from evaluator.baseline import BaselineChanges, compare, tolerance_of
from evaluator.contract import Report
from evaluator.errors import InputError
from evaluator.extras import require_report_extra
from evaluator.gcpause import paused_gc
from evaluator.reporting import history, junit, markdown


@dataclass
class Written:
    comparison: BaselineChanges | None = None
    files: list[tuple[str, Path]] = field(default_factory=list)
    history_appended: bool | None = None


def write_reports(
    report: Report,
    *,
    baseline: Report | None = None,
    tolerance: float | None = None,
    junit_path: Path | None = None,
    markdown_path: Path | None = None,
    html_path: Path | None = None,
    history_path: Path | None = None,
    price_per_1k_tokens: float = 0.0,
    suite_path: str | None = None,
    out_dir: str | None = None,
) -> Written:
    """Write each report whose path is given; compare with baseline first when there is one."""
    with paused_gc():  # the writers make hundreds of thousands of short-lived objects, freed by refcounting
        return _write_reports(
            report, baseline=baseline, tolerance=tolerance, junit_path=junit_path, markdown_path=markdown_path,
            html_path=html_path, history_path=history_path, price_per_1k_tokens=price_per_1k_tokens,
            suite_path=suite_path, out_dir=out_dir,
        )  # fmt: skip


def _write_reports(
    report: Report,
    *,
    baseline: Report | None,
    tolerance: float | None,
    junit_path: Path | None,
    markdown_path: Path | None,
    html_path: Path | None,
    history_path: Path | None,
    price_per_1k_tokens: float,
    suite_path: str | None,
    out_dir: str | None,
) -> Written:
    out = Written()
    if baseline is not None:
        out.comparison = compare(report, baseline, tolerance if tolerance is not None else tolerance_of(report))
    if junit_path is not None:
        write_text_atomic(junit_path, junit.render(report))
        out.files.append(("junit", junit_path))
    if markdown_path is not None:
        text = markdown.render(
            report, out.comparison, suite_path=suite_path, out_dir=out_dir, price_per_1k_tokens=price_per_1k_tokens
        )
        write_text_atomic(markdown_path, text)
        out.files.append(("markdown", markdown_path))
    if html_path is not None:
        require_report_extra("the HTML report")
        from evaluator.reporting import html

        asset = html.write(
            html_path, report, baseline, out.comparison, suite_path=suite_path, out_dir=out_dir,
            price_per_1k_tokens=price_per_1k_tokens,
        )  # fmt: skip
        out.files.append(("html", html_path))
        out.files.append(("case rows", html.case_data_path(html_path)))
        out.files.append(("plotting code", asset))
    if history_path is not None:
        out.history_appended = history.append(history_path, history.summarize(report, price_per_1k_tokens)).appended
        out.files.append(("history", history_path))
    return out


def write_all(report: Report, out: Path) -> list[tuple[str, Path]]:
    """JUnit, Markdown and (with the 'report' extra) HTML next to the report: report.xml, .md, .html."""
    try:
        require_report_extra("the HTML report")
    except InputError:  # a base install: JUnit and Markdown only
        html_path = None
    else:
        html_path = out / "report.html"
    return write_reports(
        report,
        junit_path=out / "report.xml",
        markdown_path=out / "report.md",
        html_path=html_path,
        out_dir=str(out),
    ).files
