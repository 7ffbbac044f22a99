"""One copy of the plotting code per folder, and each page's figures as data: why an HTML report stays small.

plotly.js is about 4.6 MB. Inlined into every page it made a 20-case report 4.9 MB, and every archived build
another copy. Instead the library is written once beside the pages, under a versioned name
(`plotly-<version>.min.js`), and each page loads it with a relative `<script src>`: the folder still opens from
disk with no network (file:// loads scripts), and Jenkins' HTML publisher archives the folder as a whole. Pages
written into the same folder share that one file; a page written by another plotly version names its own.

A page carries its figures as one JSON object, `{div id: {data, layout}}`, with the shared layout template once
(plotly.py repeats the whole template inside every figure), and one small script draws them all. So a page grows
with what it plots, and histograms are binned here, in Python, so that they do not grow with the cases at all.
Issue 22's paged case table extends the same way: its rows are a script beside the page (`<page>.cases.js`;
file:// pages cannot fetch JSON), see html.write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly
import plotly.io as pio
import plotly.offline
from plotly.io.json import to_json_plotly

from evaluator.atomic import write_text_atomic

TEMPLATE = "plotly_white"
CONFIG = {"displaylogo": False, "responsive": True}


def asset_name() -> str:
    """The library's file name beside the pages: versioned, so two versions never overwrite each other."""
    return f"plotly-{plotly.__version__}.min.js"


def write_asset(folder: Path) -> Path:
    """Writes the library into `folder` unless the same file is there already; returns its path."""
    path = folder / asset_name()
    code = plotly.offline.get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(code.encode("utf-8")):
        write_text_atomic(path, code)
    return path


def script_tags(figures: Sequence[tuple[str, Any]]) -> str:
    """The `<script>` elements a page needs to draw `figures` ((div id, plotly figure) pairs): the library by its
    relative name, then the figures' data and the code that draws them into the divs of those ids."""
    if not figures:
        return ""
    specs = {}
    for div_id, figure in figures:
        spec = figure.to_plotly_json()
        spec.get("layout", {}).pop("template", None)
        specs[div_id] = {"data": spec.get("data", []), "layout": spec.get("layout", {})}
    template = pio.templates[TEMPLATE].to_plotly_json()
    payload = to_json_plotly({"template": template, "config": CONFIG, "figures": specs})
    drawing = (
        "(function () {\n"
        '  var spec = JSON.parse(document.getElementById("figures").textContent);\n'
        "  Object.keys(spec.figures).forEach(function (id) {\n"
        "    var figure = spec.figures[id];\n"
        "    figure.layout.template = spec.template;\n"
        "    Plotly.newPlot(id, figure.data, figure.layout, spec.config);\n"
        "  });\n"
        "})();"
    )
    return (
        f'<script src="{asset_name()}"></script>\n'
        f'<script type="application/json" id="figures">{_safe(payload)}</script>\n'
        f"<script>\n{drawing}\n</script>"
    )


def _safe(text: str) -> str:
    """JSON inside a <script> element: `</` would end the element early."""
    return text.replace("</", "<\\/")


def safe_json(text: str) -> str:
    """Any JSON document inside a <script> element: every `<` escaped (`\\u003c`, the same string to JSON.parse), so
    no `</script>` or `<!--` in the data can end or confuse the element."""
    return text.replace("<", "\\u003c")


def script_json(text: str) -> str:
    """A JSON document as a JavaScript expression in a script file: `safe_json`, and the two line separators JSON
    allows in strings escaped too (older JavaScript engines end a line at them)."""
    return safe_json(text).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def bins(values: Sequence[float], start: float, size: float, count: int) -> tuple[list[float], list[int]]:
    """(bin centres, counts) of `values` over `count` bins of `size` from `start` (the last bin takes the rest):
    a histogram whose size on the page does not depend on how many values it counts."""
    counts = [0] * count
    indexes = Counter([int((value - start) // size) for value in values]) if size > 0 else {0: len(values)}
    for index, n in indexes.items():  # a few distinct indexes, each clamped once
        counts[min(max(index, 0), count - 1)] += n
    return [start + size * (i + 0.5) for i in range(count)], counts
