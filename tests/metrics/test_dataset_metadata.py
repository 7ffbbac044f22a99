"""A dataset's own columns are the cases' metadata (issue 18 item 9): kept, not refused; selectable by a profile;
shown in the reports; never part of a case's identity. DeepEval's goldens carry theirs in `additional_metadata`
and `custom_column_key_values`, which join it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluator
from evaluator.dataset import content_id, load_dataset
from evaluator.errors import InputError
from evaluator.reporting import html, junit, markdown
from tests.helpers import write_suite

ROWS = [
    {"id": "a", "input": "q1", "expected_output": "x", "actual_output": "x", "difficulty": "easy", "source": 1},
    {"id": "b", "input": "q2", "expected_output": "x", "actual_output": "y", "difficulty": "hard", "source": 2},
    {"id": "c", "input": "q3", "expected_output": "x", "actual_output": "y",
     "additional_metadata": {"difficulty": "hard", "language": "de"}},
]  # fmt: skip


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_unknown_columns_and_deepeval_metadata_become_the_case_metadata(tmp_path: Path) -> None:
    cases = load_dataset(_jsonl(tmp_path / "d.jsonl", ROWS))
    assert [c.metadata for c in cases] == [
        {"difficulty": "easy", "source": 1},
        {"difficulty": "hard", "source": 2},
        {"difficulty": "hard", "language": "de"},
    ]
    # Metadata is not identity: a case without an id keeps the id it had without the column.
    plain = {"input": "q", "expected_output": "x"}
    (with_column,) = load_dataset(_jsonl(tmp_path / "m.jsonl", [{**plain, "team": "search"}]))
    assert with_column.id == content_id(plain)


def test_csv_columns_are_metadata_and_an_empty_cell_is_no_value(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('input,expected_output,difficulty,owner\nq1,x,hard,\nq2,x,,ana\nq3,x,easy,"{""not"": 1}"\n')
    assert [c.metadata for c in load_dataset(path)] == [
        {"difficulty": "hard"}, {"owner": "ana"}, {"difficulty": "easy", "owner": '{"not": 1}'}
    ]  # fmt: skip


def test_goldens_custom_columns_join_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "goldens.json"
    path.write_text(json.dumps([{"input": "q", "custom_column_key_values": {"team": "search"}, "comments": "x"}]))
    assert load_dataset(path)[0].metadata == {"team": "search"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"input": "q", "metadata": "x"}, "d.jsonl:1: field 'metadata': must be an object"),
        ({"input": "q", "difficulty": "easy", "additional_metadata": {"difficulty": "hard"}},
         "d.jsonl:1: field 'additional_metadata.difficulty': metadata 'difficulty' is also given by 'difficulty'"),
    ],
)  # fmt: skip
def test_bad_metadata_names_file_line_and_field(tmp_path: Path, row: dict[str, object], expected: str) -> None:
    with pytest.raises(InputError) as caught:
        load_dataset(_jsonl(tmp_path / "d.jsonl", [row]))
    assert expected in caught.value.message


def test_a_profile_selects_by_metadata_and_the_report_records_it(tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path, ROWS, metrics=[{"type": "exact_match"}], target=None, judge=None,
        profiles={"hard": {"metadata": {"difficulty": ["hard"]}}, "one": {"metadata": {"source": ["1"]}},
                  "none": {"metadata": {"difficulty": ["impossible"]}}},
    )  # fmt: skip
    loaded = evaluator.load_suite(suite)
    assert [c.id for c in evaluator.plan_run(loaded, profile="hard").cases] == ["b", "c"]
    assert [c.id for c in evaluator.plan_run(loaded, profile="one").cases] == ["a"]  # a CSV-style "1" matches 1
    with pytest.raises(InputError, match=r"profile 'none' selects no case: no case has metadata difficulty in"):
        evaluator.plan_run(loaded, profile="none")
    assert evaluator.plan_run(loaded, profile="hard").selection.info.metadata == {"difficulty": ["hard"]}


def test_the_reports_show_each_case_metadata(tmp_path: Path, evaluator_cli) -> None:
    suite = write_suite(tmp_path, ROWS, metrics=[{"type": "exact_match"}], target=None, judge=None)
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    report = evaluator.aggregate(tmp_path / "out", expect_shards=1)
    evaluator.write_report(report, tmp_path / "report.json")
    report = evaluator.load_report(tmp_path / "report.json")
    assert {c.case_id: c.metadata for c in report.cases} == {
        "a": {"difficulty": "easy", "source": 1},
        "b": {"difficulty": "hard", "source": 2},
        "c": {"difficulty": "hard", "language": "de"},
    }
    page = html.render(report)
    assert "<th>metadata</th>" in page and '"difficulty=hard, language=de"' in page  # a cell of the paged table
    comment = markdown.render(report)
    row = next(line for line in comment.splitlines() if line.startswith("| `b`"))
    assert row.endswith("| difficulty=hard, source=2 |")
    assert "metadata: difficulty=hard, source=2" in junit.render(report)
