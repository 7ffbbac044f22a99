"""Files of the evaluator before variants still load (result v1, manifest v2, report v2), as the one implicit
variant `default`, and compare with files of this version; a report from a newer evaluator is refused plainly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import evaluator
from evaluator.contract import REPORT_SCHEMA, load_report
from evaluator.errors import InputError
from evaluator.gate import judge
from evaluator.reporting import markdown
from tests.helpers import pre_recorded_run

V3_ONLY = ("variants", "reference", "comparisons", "compare", "judge", "g_eval_steps", "profile")
METRIC_V3 = ("ci_low", "ci_high", "pass_rate_ci_low", "pass_rate_ci_high")


def _as_v2(content: dict[str, Any]) -> dict[str, Any]:
    """What the evaluator of issue 12 wrote: no variants, no intervals."""
    old = {k: v for k, v in content.items() if k not in V3_ONLY}
    old["schema"] = "evaluator.report/v2"
    old["metrics"] = {n: {k: v for k, v in m.items() if k not in METRIC_V3} for n, m in old["metrics"].items()}
    old["cases"] = [{k: v for k, v in c.items() if k != "variant"} for c in old["cases"]]
    return old


def test_a_v2_report_loads_as_the_default_variant_and_compares_with_v3(tmp_path: Path) -> None:
    # 100 cases: enough ties to rule out a drop of 0.05 (Tango: +-0.037); 6 would be INCONCLUSIVE, not PASS
    report = evaluator.aggregate(pre_recorded_run(tmp_path, 100, 2))
    assert report.schema_version == REPORT_SCHEMA
    path = tmp_path / "old.json"
    evaluator.write_report(report, tmp_path / "new.json")
    old_content = _as_v2(json.loads((tmp_path / "new.json").read_text()))
    old_content["run_id"] = "earlier"  # another run's report (the same report would be nothing to compare)
    path.write_text(json.dumps(old_content))
    old = load_report(path)
    assert old.schema_version == "evaluator.report/v2" and old.variants == {} and old.comparisons == []
    assert {c.variant for c in old.cases} == {"default"} and old.variant_names == ["default"]
    assert judge(old).passed and "Evaluation PASS" in markdown.render(old)
    verdict = judge(report.model_copy(update={"gate": report.gate.model_copy(
        update={"policy": "no_regression", "regression_tolerance": 0.05})}), baseline=old)  # fmt: skip
    assert verdict.passed and not verdict.notes  # the same cases, the same answers: like with like


def test_a_v1_record_and_a_v2_manifest_aggregate(tmp_path: Path) -> None:
    out = pre_recorded_run(tmp_path, 4, 1)
    results = out / "shard-00000" / "results.jsonl"
    lines = []
    for line in results.read_text().splitlines():
        record = json.loads(line)
        record["schema"] = "evaluator.result/v1"
        del record["variant"]
        lines.append(json.dumps(record))
    results.write_text("\n".join(lines) + "\n")
    manifest_path = out / "shard-00000" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("case_variants", "targets", "judge", "g_eval_steps", "profile", "compare"):
        del manifest[key]
    manifest["schema"] = "evaluator.manifest/v2"
    from evaluator.results import file_sha256

    manifest["results_sha256"] = file_sha256(results)
    manifest_path.write_text(json.dumps(manifest))
    report = evaluator.aggregate(out)
    assert report.problems == [] and report.totals.cases == 4
    assert list(report.variants) == ["default"] and {c.variant for c in report.cases} == {"default"}


def test_a_newer_report_is_refused_plainly(tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"schema": "evaluator.report/v9"}))
    with pytest.raises(InputError, match="written by a newer evaluator"):
        load_report(path)
