"""The HTML report opened in a real headless Chromium: every plot drawn from the one plotting library beside the
page, no empty plot, the case table searchable, no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluator.baseline import compare
from evaluator.reporting import html
from tests.reporting.chromium_helper import dump_dom, plots_in, png_pixels, screenshot
from tests.reporting.real_runs import make_report, set_score

PLOTS = ("plot-scores", "plot-baseline", "plot-latency", "plot-shards", "plot-limits")
ROW = re.compile(r'<tr class="(?:passed|failed|errored)"[^>]*>')

pytestmark = pytest.mark.browser


def assert_rendered(page: Path, tmp_path: Path, *, query: str, matching: int, total: int, shot: bool) -> str:
    """Plots drawn, the search (given in the URL fragment, as typed in the box) filtered, screenshot not blank.

    Shared by the fixture test below and the test on a real aggregate (test_report_real_aggregate.py).
    """
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<(?:script|img|iframe)[^>]+src=\"?(?:https?:)?//|<link[^>]+href=\"?(?:https?:)?//", text), (
        "the report must load nothing from the network"
    )
    # The plotting library is the one file beside the page, loaded by its relative name.
    (library,) = re.findall(r'<script src="([^"/]+\.js)"></script>', text)
    assert (page.parent / library).is_file() and library.startswith("plotly-")
    dom = dump_dom(page, fragment=f"q={query}")
    found = plots_in(dom)
    for plot in PLOTS:
        assert found.svgs.get(plot, 0) >= 1, f"{plot}: plotly drew no svg.main-svg"
        assert found.traces.get(plot, 0) >= 1, f"{plot}: no trace drawn"
    rows = ROW.findall(dom)
    assert set(found.svgs) == set(PLOTS), "no other plot, and none empty"
    assert len(rows) == min(matching, html.CASE_PAGE_SIZE), "the table draws the matching rows, a page at a time"
    assert f"{matching} of {total} cases" in dom
    if shot:
        assert_screenshot_drawn(screenshot(page, tmp_path / "report.png"))
    return dom


def assert_screenshot_drawn(png: Path) -> None:
    """Not blank, and plotly's trace colour present: the plots are on screen, not only in the DOM."""
    width, height, pixels = png_pixels(png)
    assert (width, height) == (1024, 1536)
    step = len(pixels[0]) // width
    sampled = [row[x : x + 3] for row in pixels[::4] for x in range(0, len(row), step * 4)]
    assert len(set(sampled)) > 50, "the screenshot is nearly uniform: nothing was drawn"
    # Plotly's first trace colour (#636efa) filling histogram bars: the plots are drawn, not just the text.
    plotly_blue = sum(1 for p in sampled if abs(p[0] - 99) < 12 and abs(p[1] - 110) < 12 and abs(p[2] - 250) < 6)
    assert plotly_blue > 200, f"only {plotly_blue} sampled pixels in plotly's trace colour"


def test_html_report_renders_every_plot_offline_and_searches(tmp_path: Path) -> None:
    base = make_report(300, total_shards=6, seed=1)
    cur = make_report(300, total_shards=6, seed=1, missing_shards=(4,), errored_every=40, straggler_shard=2)
    cur = set_score(cur, "case-00007", "answer_relevancy", 0.05)
    page = tmp_path / "report.html"
    html.write(page, cur, base, compare(cur, base, 0.05))
    # case-0003x: ten cases, all in shard 0.
    # The screenshot is taken on the real aggregate's report (test_report_real_aggregate.py); one is enough.
    dom = assert_rendered(page, tmp_path, query="case-0003", matching=10, total=len(cur.cases), shot=False)
    assert "straggler" in dom and "case-00007" in dom


def test_case_table_pages_and_searches_every_case(tmp_path: Path) -> None:
    """Issue 22: the rows are data drawn a page at a time; the source holds no row markup, the first page is drawn,
    and the search finds a case on any page (here the last one)."""
    report = make_report(450, total_shards=3, seed=2)
    page = tmp_path / "report.html"
    html.write(page, report)
    assert not ROW.search(page.read_text(encoding="utf-8")), "rows are data, not markup, in the file"
    dom = dump_dom(page)
    assert len(ROW.findall(dom)) == html.CASE_PAGE_SIZE and "page 1 of 5" in dom and "450 of 450 cases" in dom
    last = report.cases[-1].case_id
    assert last not in re.sub(r"<script.*?</script>", "", dom, flags=re.S), "the last case is not on page 1"
    found = dump_dom(page, fragment=f"q={last}")
    assert len(ROW.findall(found)) == 1 and f"<td>{last}</td>" in found and "1 of 450 cases" in found


def test_the_rows_live_beside_the_page_and_inline_when_rendered_alone(tmp_path: Path) -> None:
    """Issue 22: `write` puts the case rows in `<page>.cases.js` beside the page (the page's DOM stays small, so
    100,000 cases open as fast as a few), `render` alone keeps them inline; both draw the same first page, and a
    page copied without its rows file says which file is missing instead of an empty table."""
    report = make_report(150, total_shards=2, seed=3)
    report.cases[0].case_id = "odd\u2028id"  # a line separator: JSON allows it in a string, old JavaScript did not
    report.cases[0].actual_output = "ends </script><!-- here"
    written = tmp_path / "written" / "report.html"
    html.write(written, report)
    rows_file = html.case_data_path(written)
    assert rows_file.name == "report.cases.js" and report.cases[-1].case_id in rows_file.read_text(encoding="utf-8")
    assert report.cases[-1].case_id not in written.read_text(encoding="utf-8")
    alone = written.with_name("alone.html")
    alone.write_text(html.render(report), encoding="utf-8")
    drawn = {}
    for page in (written, alone):
        dom = dump_dom(page)
        drawn[page.name] = ROW.findall(dom)
        assert len(drawn[page.name]) == html.CASE_PAGE_SIZE and "150 of 150 cases" in dom
        assert "<td>odd\u2028id</td>" in dom and "ends &lt;/script&gt;&lt;!-- here" in dom
    assert drawn["report.html"] == drawn["alone.html"]
    rows_file.unlink()
    dom = dump_dom(written)
    assert not ROW.findall(dom) and "the case rows are missing: copy report.cases.js with this page" in dom
