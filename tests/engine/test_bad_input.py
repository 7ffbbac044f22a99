"""Every user mistake: exit 2, one clear line naming file, line and field; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

GOOD_SUITE = {
    "name": "bad-input",
    "dataset": "data.jsonl",
    "target": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
    "judge": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
    "metrics": [{"type": "answer_relevancy", "threshold": 0.5}, {"type": "exact_match"}],
}
GOOD_DATA = '{"id": "a", "input": "q1", "expected_output": "x"}\n{"id": "b", "input": "q2", "expected_output": "y"}\n'


def suite_with(**changes: object) -> str:
    suite = {**GOOD_SUITE, **changes}
    return yaml.safe_dump({k: v for k, v in suite.items() if v is not None}, sort_keys=False)


def metrics_with(extra: dict) -> list:
    return [{"type": "answer_relevancy"}, extra]


# (id, suite text, dataset file name, dataset text, extra CLI args, expected fragments of stderr)
CASES = [
    ("yaml-syntax", "name: x\nmetrics: [\n", "data.jsonl", GOOD_DATA, [], ["suite.yaml:3", "invalid YAML"]),
    ("not-a-mapping", "- a\n- b\n", "data.jsonl", GOOD_DATA, [], ["suite.yaml:1", "must be a YAML mapping"]),
    ("missing-name", suite_with(name=None), "data.jsonl", GOOD_DATA, [], ["field 'name'", "Field required"]),
    ("unknown-field", suite_with(metricz=[]), "data.jsonl", GOOD_DATA, [], ["suite.yaml:", "field 'metricz'", "Extra inputs"]),
    ("unknown-metric", suite_with(metrics=[{"type": "bleu"}]), "data.jsonl", GOOD_DATA, [], ["suite.yaml:10", "field 'metrics.0'", "bleu"]),
    ("threshold-range", suite_with(metrics=[{"type": "answer_relevancy", "threshold": 1.5}]), "data.jsonl", GOOD_DATA, [],
     ["field 'metrics.0.threshold'", "less than or equal to 1"]),
    ("url-scheme", suite_with(target={"base_url": "127.0.0.1:8000", "model": "m"}), "data.jsonl", GOOD_DATA, [],
     ["suite.yaml:4: field 'target.base_url'", "http://"]),
    ("judge-missing", suite_with(judge=None), "data.jsonl", GOOD_DATA, [], ["LLM-judged metrics need a 'judge'"]),
    ("duplicate-metric", suite_with(metrics=[{"type": "exact_match"}, {"type": "exact_match"}]), "data.jsonl", GOOD_DATA, [],
     ["metric names must be unique", "exact_match"]),
    ("template-placeholder", suite_with(target={"base_url": "http://h/v1", "model": "m", "prompt_template": "{question}"}),
     "data.jsonl", GOOD_DATA, [], ["field 'target.prompt_template'", "unknown placeholder"]),
    ("bad-regex", suite_with(metrics=metrics_with({"type": "pattern_match", "pattern": "(unclosed"})), "data.jsonl", GOOD_DATA, [],
     ["field 'metrics.1.pattern'", "not a valid regular expression"]),
    ("dataset-missing", suite_with(dataset="nope.jsonl"), "data.jsonl", GOOD_DATA, [], ["suite.yaml:2: field 'dataset'", "file not found"]),
    ("concurrency-order", suite_with(concurrency={"max_calls_per_endpoint": 2, "min_calls_per_endpoint": 4}), "data.jsonl", GOOD_DATA, [],
     ["field 'concurrency'", "min_calls_per_endpoint is above"]),
    ("gate-mode", suite_with(gate={"mode": "maybe"}), "data.jsonl", GOOD_DATA, [], ["field 'gate.mode'", "'block' or 'warn'"]),
    ("jsonl-syntax", suite_with(), "data.jsonl", GOOD_DATA + '{"id": "c", "input": \n', [], ["data.jsonl:3", "invalid JSON"]),
    ("jsonl-no-input", suite_with(), "data.jsonl", '{"id": "a", "input": "q"}\n{"id": "b", "expected_output": "x"}\n', [],
     ["data.jsonl:2: field 'input'", "required"]),
    ("jsonl-metadata-type", suite_with(), "data.jsonl", '{"id": "a", "input": "q", "expected_output": "x", "metadata": 1}\n', [],
     ["data.jsonl:1: field 'metadata'", "must be an object"]),
    ("jsonl-context-type", suite_with(), "data.jsonl", '{"id": "a", "input": "q", "expected_output": "x", "context": "c"}\n', [],
     ["data.jsonl:1: field 'context'", "list of strings"]),
    ("jsonl-duplicate-id", suite_with(), "data.jsonl", GOOD_DATA + '{"id": "a", "input": "q3", "expected_output": "z"}\n', [],
     ["data.jsonl:3: field 'id'", "duplicate case id 'a' (first at line 1)"]),
    ("metric-needs-field", suite_with(), "data.jsonl", '{"id": "a", "input": "q", "expected_output": "x"}\n{"id": "b", "input": "q2"}\n', [],
     ["data.jsonl:2: field 'expected_output'", "required by metric 'exact_match'"]),
    ("csv-no-input", suite_with(dataset="data.csv"), "data.csv", "question,expected_output\nq,x\n", [],
     ["data.csv:1: field 'input'", "'input' column"]),
    ("goldens-not-array", suite_with(dataset="data.json"), "data.json", '{"input": "q"}', [], ["data.json:1", "JSON array"]),
    ("goldens-syntax", suite_with(dataset="data.json"), "data.json", '[\n {"input": "q", "expected_output": "x"},\n {"input": }\n]', [],
     ["data.json:3", "invalid JSON"]),
    ("empty-dataset", suite_with(), "data.jsonl", "\n", [], ["data.jsonl", "no cases"]),
    ("which-shard", suite_with(), "data.jsonl", GOOD_DATA, ["--total-shards", "4"], ["which shard of 4?"]),
    ("index-range", suite_with(), "data.jsonl", GOOD_DATA, ["--shard-index", "4", "--total-shards", "4"], ["shard index 4 is outside 0..3"]),
    ("balanced-no-timings", suite_with(), "data.jsonl", GOOD_DATA, ["--sharding", "balanced"], ["'balanced' sharding needs --timings"]),
    ("many-wrong-count", suite_with(sharding={"mode": "many", "chunk_size": 1}), "data.jsonl", GOOD_DATA, ["--total-shards", "3", "--shard-index", "0"],
     ["needs exactly 2 shards"]),
]  # fmt: skip


@pytest.mark.parametrize(("suite_text", "data_name", "data_text", "args", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_exits_2_with_location(
    tmp_path: Path, evaluator_cli, suite_text: str, data_name: str, data_text: str, args: list[str], expected: list[str]
) -> None:
    (tmp_path / "suite.yaml").write_text(suite_text)
    (tmp_path / data_name).write_text(data_text)
    done = evaluator_cli("run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("error: ")
    for fragment in expected:
        assert fragment in done.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for a rejected run"


def test_bad_job_completion_index_from_the_environment(tmp_path: Path, evaluator_cli) -> None:
    (tmp_path / "suite.yaml").write_text(suite_with())
    (tmp_path / "data.jsonl").write_text(GOOD_DATA)
    done = evaluator_cli(
        "run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "o"), env={"JOB_COMPLETION_INDEX": "x"}
    )
    assert done.returncode == 2 and "JOB_COMPLETION_INDEX must be an integer, got 'x'" in done.stderr


def test_missing_suite_file_in_a_real_process(tmp_path: Path, evaluator_cli) -> None:
    done = evaluator_cli("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o"), subprocess=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: suite file not found"


def test_environment_overrides_urls_and_keys_never_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluator.suite import load_suite

    suite = {**GOOD_SUITE, "target": {"base_url": "http://a/v1", "model": "m", "api_key_env": "MY_KEY"}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    (tmp_path / "data.jsonl").write_text(GOOD_DATA)
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    loaded = load_suite(tmp_path / "suite.yaml", environ={"EVAL_TARGET_BASE_URL": "http://b:8000/v1"})
    assert loaded.suite.target is not None
    assert loaded.suite.target.base_url == "http://b:8000/v1"
    assert loaded.suite.target.api_key() == "sk-secret-value"
    assert "sk-secret-value" not in loaded.model_dump_json()
    # The URL an env var moves does not change the run's identity.
    assert load_suite(tmp_path / "suite.yaml", environ={}).suite_hash == loaded.suite_hash
