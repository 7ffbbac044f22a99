"""Output for people and for logs (issue 18 item 9): what each command prints, and what each report file holds.

- piped (CI logs), tables are printed at full width, uncut and without colour codes;
- each command prints its own part once: `aggregate` what it merged, `report` the summary;
- `prepare` names the sharding the run uses;
- the single-variant PR comment lists the failed cases without a baseline;
- JUnit times each case once, not once per metric;
- the HTML page grows with the cases, not with the plotting library (one copy of it per folder), shows each
  variant's metrics, and draws no empty plot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

import evaluator
from evaluator.reporting import junit, markdown
from evaluator.reporting.api import write_reports
from openai_stub import set_controls
from tests.helpers import write_suite
from tests.reporting.real_runs import make_report

LONG_METRIC = "exact_match_on_the_normalised_final_answer_text"
VARIANTS = [
    {"name": "reference-model-with-a-long-name", "model": "model-a"},
    {"name": "candidate-model-with-a-longer-name", "model": "model-b"},
]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, its output piped (as in a CI log: not a TTY)."""
    environment = {**os.environ, "DEEPEVAL_TELEMETRY_OPT_OUT": "1", **(env or {})}
    environment.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "evaluator", *args], capture_output=True, text=True, env=environment, timeout=300,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def variants_run(tmp_path_factory: pytest.TempPathFactory, module_stub: str) -> Iterator[Path]:
    """A real 2-variant run on the stub (long variant and metric names), merged into report.json."""
    from click.testing import CliRunner

    from evaluator.cli import main

    folder = tmp_path_factory.mktemp("variants")
    cases = [{"id": f"q{i:02d}", "input": f"Answer with exactly: {'ok' if i % 4 else 'no'}", "expected_output": "ok"}
             for i in range(12)]  # fmt: skip
    suite = write_suite(
        folder, cases, base_url=module_stub, metrics=[{"type": "exact_match", "name": LONG_METRIC}],
        variants=VARIANTS, judge=None,
    )  # fmt: skip
    set_controls(module_stub, quality="model-b=0.4")  # the candidate answers worse: the variants differ
    try:
        result = CliRunner().invoke(main, ["run", str(suite), "--out", str(folder / "out")], catch_exceptions=False)
    finally:
        set_controls(module_stub, quality="")
    assert result.exit_code == 0, result.output
    report = evaluator.aggregate(folder / "out", expect_shards=1)
    evaluator.write_report(report, folder / "report.json")
    yield folder


def test_piped_tables_are_full_width_and_plain(variants_run: Path) -> None:
    done = _cli("report", str(variants_run / "report.json"))
    assert done.returncode == 0, done.stderr
    text = done.stderr
    assert "\x1b[" not in text, "no colour codes in a log"
    assert "…" not in text, "no cell cut short"
    for name in (LONG_METRIC, *(v["name"] for v in VARIANTS)):
        assert name in text
    assert max(len(line) for line in text.splitlines()) > 80


def test_each_command_prints_its_own_part_once(variants_run: Path, tmp_path: Path) -> None:
    merged = _cli("aggregate", str(variants_run / "out"), "--out", str(tmp_path / "report.json"))
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.strip() == str(tmp_path / "report.json")
    assert "aggregated run" in merged.stderr and "1/1 shards complete" in merged.stderr
    assert "12 cases x 2 variants" in merged.stderr
    assert "Leaderboard" not in merged.stderr + merged.stdout, "the summary is `report`'s"
    assert len((merged.stdout + merged.stderr).splitlines()) <= 3
    summary = _cli("report", str(tmp_path / "report.json"))
    assert summary.returncode == 0, summary.stderr
    assert summary.stderr.count("Leaderboard") == 1 and summary.stdout == ""


def test_prepare_prints_the_sharding_the_run_uses(tmp_path: Path, evaluator_cli) -> None:
    cases = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "a", "expected_output": "a"} for i in range(30)]
    suite = write_suite(tmp_path, cases, metrics=[{"type": "exact_match"}], target=None, judge=None)
    done = evaluator_cli("prepare", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "sharding 'contiguous' (the suite's)" in done.stdout and "'many'" not in done.stdout
    done = evaluator_cli("prepare", str(suite), "--out", str(tmp_path / "out"), env={"EVAL_SHARDING": "many"})
    assert done.returncode == 0, done.stderr
    assert "sharding 'many': chunks of 25 units, 2 shards" in done.stdout


def test_the_single_variant_comment_lists_failed_cases_without_a_baseline() -> None:
    report = make_report(40, errored_every=13)
    failed = [c for c in report.cases if not c.success]
    assert failed and any(c.error for c in failed)
    comment = markdown.render(report)
    assert f"failed cases (of {len(failed)}" in comment
    rows = [line for line in comment.splitlines() if line.startswith("| `case-")]
    assert len(rows) == min(markdown.TOP_FAILED, len(failed))
    assert "| errored |" in rows[0], "errored cases first"
    shown = {re.search(r"`(case-\d+)`", row).group(1) for row in rows}  # type: ignore[union-attr]
    assert shown <= {c.case_id for c in failed}


def test_junit_times_each_case_once() -> None:
    report = make_report(20)
    root = ET.fromstring(junit.render(report))
    cases = root.findall(".//testcase")
    assert len(cases) == 2 * len(report.cases)  # two metrics each
    total = sum(float(tc.get("time") or 0) for tc in cases)
    assert total == pytest.approx(sum(c.duration_s for c in report.cases), abs=0.001 * len(cases))


def test_junit_variant_suites_add_up_to_the_runs_wall_time(variants_run: Path) -> None:
    """Jenkins sums the testsuites' `time`: the variants, whose cases ran interleaved, share the run's wall time."""
    report = evaluator.load_report(variants_run / "report.json")
    root = ET.fromstring(junit.render(report))
    suites = [s for s in root.findall("testsuite") if not s.get("name", "").endswith(".aggregate")]
    assert len(suites) == len(VARIANTS)
    assert report.totals.wall_time_s is not None
    assert sum(float(s.get("time") or 0) for s in suites) == pytest.approx(report.totals.wall_time_s, abs=0.002)


def test_html_grows_with_the_cases_not_the_plotting_library(tmp_path: Path) -> None:
    small, large = make_report(20), make_report(400)
    write_reports(small, html_path=tmp_path / "small.html")
    write_reports(large, html_path=tmp_path / "large.html")
    size_small, size_large = (
        sum((tmp_path / name).stat().st_size for name in (f"{stem}.html", f"{stem}.cases.js"))
        for stem in ("small", "large")
    )  # the page and its case rows beside it
    assert size_small < 150_000, f"20 cases in {size_small} bytes"
    assert size_large < 20 * size_small
    scripts = sorted(p.name for p in tmp_path.glob("plotly-*.js"))
    assert len(scripts) == 1, "one copy of the plotting code per folder"
    assert sorted(p.name for p in tmp_path.glob("*.cases.js")) == ["large.cases.js", "small.cases.js"]
    for page in ("small.html", "large.html"):
        assert f'<script src="{scripts[0]}"></script>' in (tmp_path / page).read_text()


def test_no_plot_is_drawn_empty() -> None:
    from evaluator.reporting import html

    alone = html.render(make_report(20))
    assert 'id="plot-baseline"' not in alone, "no baseline: no baseline plot"
    assert 'id="plot-scores"' in alone and 'id="plot-latency"' in alone


def test_the_html_metrics_table_is_per_variant(variants_run: Path) -> None:
    from evaluator.reporting import html

    report = evaluator.load_report(variants_run / "report.json")
    page = html.render(report)
    table = page[page.index('<table id="metrics">') : page.index("</table>", page.index('<table id="metrics">'))]
    for variant in VARIANTS:
        assert f"<td>{variant['name']}</td><td>{LONG_METRIC}</td>" in table
    rows = re.findall(r"<tr><td>([^<]+)</td><td>" + LONG_METRIC + r"</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", table)
    means = {variant: re.findall(r">([^<]*)</td>", cells)[2] for variant, cells in rows}
    assert means == {name: format(report.variants[name].metrics[LONG_METRIC].mean, ".3f") for name in means}
    assert len(set(means.values())) == 2, "each variant its own numbers, not the pooled ones"
