"""JSON Lines end at \\n only: a row holding a raw U+2028, U+2029, U+0085, \\x1c or \\x0b is one valid row.

`str.splitlines()` treats all of those as line breaks and cut such rows in two (both halves invalid JSON).
DeepEval exports and model answers contain them; the dataset reader, the results reader and the history
reader must all keep them whole, and the engine must write them back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.dataset import load_dataset
from tests.helpers import read_report_json, write_suite

ODD = "a\u2028b\u2029c\u0085d\x1ce\x0bf"


def _raw_line(row: dict[str, str]) -> str:
    return json.dumps(row, ensure_ascii=False)  # the characters raw in the file, not \\u escapes


def test_dataset_rows_with_unicode_line_separators_are_one_row_each(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    rows = [{"id": "x", "input": f"first {ODD}", "expected_output": ODD}, {"id": "y", "input": "second"}]
    path.write_text("\n".join(_raw_line(r) for r in rows) + "\n", encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")
    cases = load_dataset(path)
    assert [(c.id, c.line) for c in cases] == [("x", 1), ("y", 2)]
    assert cases[0].input == f"first {ODD}" and cases[0].expected_output == ODD


def test_csv_cells_with_unicode_line_separators_stay_in_their_row(tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(f"id,input,expected_output\nx,first {ODD},ok\ny,second,ok\n", encoding="utf-8")
    cases = load_dataset(path)
    assert [(c.id, c.input, c.line) for c in cases] == [("x", f"first {ODD}", 2), ("y", "second", 3)]


def test_a_run_keeps_them_through_results_and_report(tmp_path: Path, evaluator_cli) -> None:
    data = [{"id": f"c{i}", "input": f"q{i} {ODD}", "expected_output": ODD, "actual_output": ODD} for i in range(3)]
    suite = write_suite(tmp_path, [], metrics=[{"type": "exact_match"}], target=None, judge=None)
    (tmp_path / "data.jsonl").write_text("".join(_raw_line(r) + "\n" for r in data), encoding="utf-8")
    out = tmp_path / "out"
    done = evaluator_cli("run", str(suite), "--out", str(out))
    assert done.returncode == 0, done.stderr
    report_path = tmp_path / "report.json"
    assert evaluator_cli("aggregate", str(out), "--out", str(report_path), "-q").returncode == 0
    report = read_report_json(report_path)
    assert report["problems"] == [] and report["totals"]["passed"] == 3
    assert [c["input"] for c in report["cases"]] == [f"q{i} {ODD}" for i in range(3)]
    history = tmp_path / "history.jsonl"
    assert evaluator_cli("report", str(report_path), "--history", str(history), "-q").returncode == 0
    lines = history.read_bytes().split(b"\n")
    assert len([line for line in lines if line]) == 1
