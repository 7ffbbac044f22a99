"""Every report says what produced its numbers (the report's `provenance`: versions, image, the models as their
servers describe them) and the report's own `notes` (a shard whose provenance differs, shards that recorded
another gate), each note once, however many parts of the gate repeat it."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
from html import unescape
from pathlib import Path

import evaluator
from evaluator.reporting import html, markdown
from evaluator.reporting.terminal import make_console, print_summary
from tests.helpers import pre_recorded_run

VERSION_NOTE = "DeepEval 4.2.0 in shard 1"
GATE_NOTE = "shards 1 recorded another gate than the latest shard (0): the latest one applies"


def _mixed_run(tmp_path: Path) -> evaluator.Report:
    """Two real shards; shard 1 claims another DeepEval version and an older, stricter gate."""
    out = pre_recorded_run(tmp_path, 20, 2)
    path = out / "shard-00001" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["provenance"]["deepeval_version"] = "4.2.0"
    manifest["gate"]["min_pass_rate"] = 0.99
    manifest["finished_at"] = "2000-01-01T00:00:00+00:00"
    path.write_text(json.dumps(manifest))
    report = evaluator.aggregate(out, expect_shards=2)
    assert any(VERSION_NOTE in note for note in report.notes) and GATE_NOTE in report.notes, report.notes
    return report


def _produced() -> str:
    return (
        f"evaluator {evaluator.__version__} · DeepEval {importlib.metadata.version('deepeval')} · "
        f"Python {platform.python_version()} · image not recorded (EVAL_IMAGE unset) · target none called"
    )


def test_the_comment_says_what_produced_the_numbers_and_each_note_once(tmp_path: Path) -> None:
    comment = markdown.render(_mixed_run(tmp_path))
    assert f"<sub>Produced by {_produced()}</sub>" in comment
    assert comment.count(VERSION_NOTE) == 1, "the gate's provenance note and the report's are one note"
    assert comment.count(GATE_NOTE) == 1


def test_the_html_page_has_a_provenance_table_and_each_note_once(tmp_path: Path) -> None:
    page = unescape(html.render(_mixed_run(tmp_path)))
    table = page[page.index('<table id="provenance">') : page.index("</table>", page.index('<table id="provenance">'))]
    rows = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", table))
    assert rows["evaluator"] == evaluator.__version__
    assert rows["DeepEval"] == importlib.metadata.version("deepeval") and rows["Python"] == platform.python_version()
    notes = page[page.index('<ul class="notes">') : page.index("</ul>", page.index('<ul class="notes">'))]
    assert notes.count(VERSION_NOTE) == 1 and notes.count(GATE_NOTE) == 1


def test_the_summary_says_it_too(tmp_path: Path) -> None:
    log = tmp_path / "summary.log"
    with log.open("w") as handle:
        print_summary(_mixed_run(tmp_path), console=make_console(file=handle))
    text = log.read_text()
    assert f"produced by {_produced()}" in text
    assert text.count(VERSION_NOTE) == 1 and f"note: {GATE_NOTE}" in text


def test_a_report_from_before_provenance_shows_none(tmp_path: Path) -> None:
    report = evaluator.aggregate(pre_recorded_run(tmp_path, 5, 1)).model_copy(update={"provenance": None})
    assert "Produced by" not in markdown.render(report)
    assert 'id="provenance"' not in html.render(report)


def test_models_are_named_as_their_servers_describe_them() -> None:
    from evaluator.contract import ModelProvenance, Provenance
    from evaluator.reporting.notes import provenance_rows

    sha = "0123456789abcdef0123456789abcdef01234567"
    provenance = Provenance(
        evaluator_version="1", deepeval_version=None, python_version="3.11", image="registry.local/evaluator:abc",
        targets={"small": ModelProvenance(model="m-small", listed=False),
                 "big": ModelProvenance(model="m-big", listed=True, root="/models/big")},
        judge=ModelProvenance(model="judge-m", listed=True, root=f"/hub/snapshots/{sha}", revision=sha),
    )  # fmt: skip
    assert provenance_rows(provenance) == [
        ("evaluator", "1"), ("DeepEval", "not recorded"), ("Python", "3.11"), ("image", "registry.local/evaluator:abc"),
        ("target small", "m-small (not listed by the server)"), ("target big", "m-big from /models/big"),
        ("judge", "judge-m revision 0123456789ab"),
    ]  # fmt: skip
