"""The published JSON Schemas and docs/contract.md agree with the contract models; real files validate.

Other tools read our files through docs/schemas/*.schema.json: a model change that is not regenerated there
(`python -m evaluator.contract docs/schemas`) or not documented in docs/contract.md fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.contract import (
    MANIFEST_SCHEMA,
    REPORT_SCHEMA,
    RESULT_SCHEMA,
    SCHEMA_MODELS,
    json_schemas,
)
from tests.helpers import REPO, write_suite

SCHEMAS = REPO / "docs" / "schemas"
CONTRACT_DOC = REPO / "docs" / "contract.md"


def test_published_schemas_are_generated_from_the_models() -> None:
    expected = json_schemas()
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(expected)
    for name, text in expected.items():
        assert (SCHEMAS / name).read_text(encoding="utf-8") == text, (
            f"docs/schemas/{name} drifted from evaluator/contract.py: run `python -m evaluator.contract docs/schemas`"
        )


def test_contract_doc_names_every_version_and_field() -> None:
    doc = CONTRACT_DOC.read_text(encoding="utf-8")
    for version in (RESULT_SCHEMA, MANIFEST_SCHEMA, REPORT_SCHEMA, "evaluator.manifest/v1", "evaluator.report/v1"):
        assert version in doc
    for name, model in SCHEMA_MODELS.items():
        for field_name, field in model.model_fields.items():
            shown = field.alias or field_name
            assert shown in doc, f"docs/contract.md does not document {name} field {shown!r}"


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from click.testing import CliRunner

    from evaluator.cli import main

    folder = tmp_path_factory.mktemp("files")
    data = [{"id": f"c{i}", "input": f"q{i}", "expected_output": "a", "actual_output": "a"} for i in range(3)]
    suite = write_suite(folder, data, metrics=[{"type": "exact_match"}], target=None, judge=None)
    assert CliRunner().invoke(main, ["run", str(suite), "--out", str(folder / "out")]).exit_code == 0
    result = CliRunner().invoke(main, ["aggregate", str(folder / "out"), "--out", str(folder / "report.json"), "-q"])
    assert result.exit_code == 0
    return folder


def test_real_files_validate_against_the_published_schemas(real_files: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schemas = {name: json.loads((SCHEMAS / f"{name}.schema.json").read_text()) for name in SCHEMA_MODELS}
    shard = real_files / "out" / "shard-00000"
    records = [json.loads(line) for line in (shard / "results.jsonl").read_bytes().split(b"\n") if line]
    for record in records:
        jsonschema.validate(record, schemas["result"])
    jsonschema.validate(json.loads((shard / "manifest.json").read_text()), schemas["manifest"])
    report = json.loads((real_files / "report.json").read_text())
    jsonschema.validate(report, schemas["report"])
    # The schemas are live: the damage the models refuse, the published schema refuses too.
    records[0]["metrics"]["exact_match"]["score"] = "high"
    assert not jsonschema.Draft202012Validator(schemas["result"]).is_valid(records[0])
    report["totals"].pop("cases")
    assert not jsonschema.Draft202012Validator(schemas["report"]).is_valid(report)
