"""Files of the evaluator before variants still load (result v1, manifest v2, report v2), as the one implicit
variant `default`, and compare with files of this version; a report from a newer evaluator is refused plainly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import evaluator
from evaluator.contract import REPORT_SCHEMA, load_report
from evaluator.errors import InputError
from evaluator.gate import apply_gate
from evaluator.reporting import markdown
from tests.helpers import pre_recorded_run, read_report_json

V3_ONLY = ("variants", "reference", "comparisons", "compare", "judge", "g_eval_steps", "profile")
METRIC_V3 = ("ci_low", "ci_high", "pass_rate_ci_low", "pass_rate_ci_high")
V4_ONLY = ("provenance", "notes")


def _as_v3(content: dict[str, Any]) -> dict[str, Any]:
    """What the evaluator of issue 13 wrote: variants, no provenance, no cancelled shards."""
    old = {k: v for k, v in content.items() if k not in V4_ONLY and k != "cases_file"}  # v5's cases file: inline
    old["schema"] = "evaluator.report/v3"
    old["shards"] = {k: v for k, v in old["shards"].items() if k != "cancelled"}
    old["shards"]["per_shard"] = [
        {k: v for k, v in shard.items() if k not in ("state", "provenance")} for shard in old["shards"]["per_shard"]
    ]
    return old


def _as_v2(content: dict[str, Any]) -> dict[str, Any]:
    """What the evaluator of issue 12 wrote: no variants, no intervals."""
    old = {k: v for k, v in _as_v3(content).items() if k not in V3_ONLY}
    old["schema"] = "evaluator.report/v2"
    old["metrics"] = {n: {k: v for k, v in m.items() if k not in METRIC_V3} for n, m in old["metrics"].items()}
    old["cases"] = [{k: v for k, v in c.items() if k != "variant"} for c in old["cases"]]
    return old


def _as_older_shard(
    out: Path, record_edit: Callable[[dict[str, Any]], None], manifest_edit: Callable[[dict[str, Any]], None]
) -> None:
    """Shard 0 of `out` as an older evaluator wrote it: each record and the manifest edited in place, and the
    manifest's results_sha256 that of the edited records (the aggregate checks it)."""
    from evaluator.results import file_sha256

    folder = out / "shard-00000"
    results = folder / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    for record in records:
        record_edit(record)
    results.write_text("".join(json.dumps(record) + "\n" for record in records))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest_edit(manifest)
    manifest["results_sha256"] = file_sha256(results)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_v2_report_loads_as_the_default_variant_and_compares_with_v3(tmp_path: Path) -> None:
    # 100 cases: enough ties to rule out a drop of 0.05 (Tango: +-0.037); 6 would be INCONCLUSIVE, not PASS
    report = evaluator.aggregate(pre_recorded_run(tmp_path, 100, 2))
    assert report.schema_version == REPORT_SCHEMA
    path = tmp_path / "old.json"
    evaluator.write_report(report, tmp_path / "new.json")
    old_content = _as_v2(read_report_json(tmp_path / "new.json"))
    old_content["run_id"] = "earlier"  # another run's report (the same report would be nothing to compare)
    path.write_text(json.dumps(old_content))
    old = load_report(path)
    assert old.schema_version == "evaluator.report/v2" and old.variants == {} and old.comparisons == []
    assert {c.variant for c in old.cases} == {"default"} and old.variant_names == ["default"]
    assert apply_gate(old).passed and "Evaluation PASS" in markdown.render(old)
    verdict = apply_gate(report.model_copy(update={"gate": report.gate.model_copy(
        update={"policy": "no_regression", "regression_tolerance": 0.05})}), baseline=old)  # fmt: skip
    assert verdict.passed  # the same cases, the same answers: like with like
    assert verdict.notes == ["provenance: the baseline records no provenance: versions not compared"]


def test_a_v3_report_loads_without_provenance_and_gates_against_v4(tmp_path: Path) -> None:
    report = evaluator.aggregate(pre_recorded_run(tmp_path, 6, 2))
    evaluator.write_report(report, tmp_path / "new.json")
    path = tmp_path / "v3.json"
    path.write_text(json.dumps(_as_v3(read_report_json(tmp_path / "new.json"))))
    old = load_report(path)
    assert old.schema_version == "evaluator.report/v3" and old.provenance is None and old.notes == []
    assert old.shards.cancelled == [] and all(s.state == "complete" for s in old.shards.per_shard)
    assert apply_gate(old).passed and apply_gate(report, baseline=old).passed


def test_v2_records_and_a_v3_manifest_aggregate(tmp_path: Path) -> None:
    """A folder of the evaluator before the life cycle fields still aggregates (it no longer resumes: its suite
    hash covered the metrics)."""
    out = pre_recorded_run(tmp_path, 4, 1)

    def record_v2(record: dict[str, Any]) -> None:
        record["schema"] = "evaluator.result/v2"
        for key in ("scored_with", "rescored"):
            del record[key]
        for call in record["calls"]:
            del call["cached"]

    def manifest_v3(manifest: dict[str, Any]) -> None:
        for key in ("state", "stop", "scoring", "cache", "provenance"):
            del manifest[key]
        del manifest["profile"]["limit"]
        manifest["schema"] = "evaluator.manifest/v3"

    _as_older_shard(out, record_v2, manifest_v3)
    report = evaluator.aggregate(out)
    assert report.problems == [] and report.totals.cases == 4 and report.shards.complete == [0]
    assert report.provenance is None and report.notes == []


def test_a_v1_record_and_a_v2_manifest_aggregate(tmp_path: Path) -> None:
    out = pre_recorded_run(tmp_path, 4, 1)

    def record_v1(record: dict[str, Any]) -> None:
        record["schema"] = "evaluator.result/v1"
        del record["variant"]

    def manifest_v2(manifest: dict[str, Any]) -> None:
        for key in ("case_variants", "targets", "judge", "g_eval_steps", "profile", "compare", "state", "stop",
                    "scoring", "cache", "provenance"):  # fmt: skip
            del manifest[key]
        manifest["schema"] = "evaluator.manifest/v2"

    _as_older_shard(out, record_v1, manifest_v2)
    report = evaluator.aggregate(out)
    assert report.problems == [] and report.totals.cases == 4
    assert list(report.variants) == ["default"] and {c.variant for c in report.cases} == {"default"}


def test_a_newer_report_is_refused_plainly(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"schema": "evaluator.report/v9"}))
    with pytest.raises(InputError, match="written by a newer evaluator"):
        load_report(path)
