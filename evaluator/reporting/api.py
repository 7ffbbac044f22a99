"""One call that writes every requested report from an aggregate: what `evaluator report` and `demo` use."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.reporting import history, html, junit, markdown
from evaluator.reporting.baseline import Comparison, compare, tolerance_of
from evaluator.reporting.load import validate


def write_text(path: Path, text: str) -> None:
    """Atomic write (temp file + fsync + rename): Jenkins never archives half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        Path(tmp).chmod(0o666 & ~umask)  # mkstemp makes 0600; a report is meant to be read by others
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Written:
    comparison: Comparison | None = None
    files: list[tuple[str, Path]] = field(default_factory=list)
    history_appended: bool | None = None


def write_reports(
    report: dict[str, Any],
    *,
    baseline: dict[str, Any] | None = None,
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
    out = Written()
    if baseline is not None:
        out.comparison = compare(report, baseline, tolerance if tolerance is not None else tolerance_of(report))
    if junit_path is not None:
        write_text(junit_path, junit.render(report))
        out.files.append(("junit", junit_path))
    if markdown_path is not None:
        write_text(markdown_path, markdown.render(report, out.comparison, suite_path=suite_path, out_dir=out_dir))
        out.files.append(("markdown", markdown_path))
    if html_path is not None:
        write_text(html_path, html.render(report, baseline, out.comparison, suite_path=suite_path, out_dir=out_dir))
        out.files.append(("html", html_path))
    if history_path is not None:
        out.history_appended = history.append(history_path, history.summarize(report, price_per_1k_tokens)).appended
        out.files.append(("history", history_path))
    return out


def write_all(report: dict[str, Any], out: Path) -> list[tuple[str, Path]]:
    """JUnit, Markdown and HTML next to the report in folder out (report.xml, report.md, report.html)."""
    validate(report, str(out))
    return write_reports(
        report,
        junit_path=out / "report.xml",
        markdown_path=out / "report.md",
        html_path=out / "report.html",
        out_dir=str(out),
    ).files
