"""The files the evaluator writes, as typed models: one result record per case, one manifest per shard, one report.

This module is their one import path and publishes their JSON Schemas; the models live by file in
`evaluator/formats/` (`shard`: result records and manifests, `report`: REPORT.json, `base`: what both share).
They import the gate's and the comparison's settings from `evaluator.policy`, never the suite schema: a file
outlives the suite that made it.

Every writer builds these models and every reader validates through them, so a field means the same thing to
the runner, the aggregate, the gate, the reports, `capacity` and the tests. Each file names its schema and version
in its `schema` field; JSON Schemas generated from these models are published in docs/schemas/ (a test fails
when they drift), and docs/contract.md explains them.

Validation is strict (a score must be a JSON number, an id a string, a flag a boolean): a damaged file is
reported with the field that is wrong instead of being coerced into something that looks right.

Versions:
- `evaluator.result/v2`: v1 plus `variant` (which named target answered). v1 records read as variant `default`.
- `evaluator.manifest/v3`: v2 plus `case_variants`, `targets`, `judge`, `g_eval_steps`, `profile`, `compare`.
  v2 (v1 plus each endpoint's `limit_changes`) and v1 manifests are still read.
- `evaluator.report/v3`: v2 plus `cases[].variant`, `variants` (per-variant summaries with confidence
  intervals), `reference`, `comparisons` (paired differences), `judge`, `g_eval_steps`, `profile`, `compare`,
  and `ci_low`/`ci_high` on metric summaries. v2 (v1 plus `shards.per_shard[].endpoints` and `problems[].field`)
  and v1 reports are still read: the new fields are empty, every case is variant `default`.
- The run's life cycle: `evaluator.result/v3` adds `scored_with` (each metric's scoring fingerprint),
  `rescored` and `calls[].cached`; `evaluator.manifest/v4` adds `state` (`complete` or `cancelled`), `stop`,
  `scoring`, `cache`, `provenance` and `profile.limit`; `evaluator.report/v4` adds `provenance`, `notes`,
  `shards.cancelled` and `shards.per_shard[].provenance`/`state`. Older files load with these empty.
- Output for people and for logs: result v3 and report v4 also add `metrics.*.scoring` (how a G-Eval
  score was computed) and a case's `metadata` (the dataset's own columns), manifest v4 and report v4 a profile's
  `metadata` filter. Each is written only where present (no `scoring` for other metrics, no empty `metadata`).
- Reports that stream: `evaluator.report/v5` is v4 with its cases moved out of REPORT.json into a
  gzip-compressed JSON Lines file beside it (`cases_file`: its name, count and sha256; one `ReportCase` a
  line, in report order), so REPORT.json is a summary whose size does not grow with the run and the aggregate
  writes the cases as it merges them. `load_report` reads the file back into `cases` (verified against the
  count and checksum; a missing or damaged file is an InputError naming it). v1-v4 reports, whose cases are
  inline, load as before; a v5 report may also carry its cases inline (no `cases_file`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from evaluator.formats.base import (
    MANIFEST_SCHEMA,
    MANIFEST_SCHEMA_V1,
    MANIFEST_SCHEMAS,
    REPORT_SCHEMA,
    REPORT_SCHEMA_V1,
    REPORT_SCHEMAS,
    RESULT_SCHEMA,
    RESULT_SCHEMAS,
    NonNegativeFloat,
    NonNegativeInt,
    describe,
    first_error,
    to_dict,
    to_json,
    unit_key,
)
from evaluator.formats.report import (
    CasesFile,
    CasesWriter,
    Difference,
    LatencySummary,
    MetricSummary,
    PairComparison,
    Problem,
    Report,
    ReportCase,
    Shards,
    ShardTiming,
    SlowCase,
    SuiteInfo,
    Totals,
    VariantSummary,
    cases_path,
    load_report,
    read_cases,
    report_from,
    write_cases,
)
from evaluator.formats.shard import (
    CacheStats,
    Call,
    CaseOutcome,
    Counts,
    EndpointSummary,
    ErrorInfo,
    JudgeInfo,
    LimitChange,
    Manifest,
    MetricResult,
    ModelProvenance,
    ProfileInfo,
    Provenance,
    ResultRecord,
    StopInfo,
    TargetInfo,
)

__all__ = [
    "MANIFEST_SCHEMA",
    "MANIFEST_SCHEMAS",
    "MANIFEST_SCHEMA_V1",
    "REPORT_SCHEMA",
    "REPORT_SCHEMAS",
    "REPORT_SCHEMA_V1",
    "RESULT_SCHEMA",
    "RESULT_SCHEMAS",
    "SCHEMA_MODELS",
    "CacheStats",
    "Call",
    "CaseOutcome",
    "CasesFile",
    "CasesWriter",
    "Counts",
    "Difference",
    "EndpointSummary",
    "ErrorInfo",
    "JudgeInfo",
    "LatencySummary",
    "LimitChange",
    "Manifest",
    "MetricResult",
    "MetricSummary",
    "ModelProvenance",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PairComparison",
    "Problem",
    "ProfileInfo",
    "Provenance",
    "Report",
    "ReportCase",
    "ResultRecord",
    "ShardTiming",
    "Shards",
    "SlowCase",
    "StopInfo",
    "SuiteInfo",
    "TargetInfo",
    "Totals",
    "VariantSummary",
    "cases_path",
    "describe",
    "first_error",
    "json_schemas",
    "load_report",
    "read_cases",
    "report_from",
    "to_dict",
    "to_json",
    "unit_key",
    "write_cases",
]

SCHEMA_MODELS: dict[str, type[BaseModel]] = {"result": ResultRecord, "manifest": Manifest, "report": Report}


def json_schemas() -> dict[str, str]:
    """File name -> text of the published JSON Schemas (docs/schemas/), generated from the models.

    Regenerate after changing a model: `python -m evaluator.contract docs/schemas`.
    """
    out = {}
    for name, model in SCHEMA_MODELS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  **model.model_json_schema(by_alias=True, mode="validation")}  # fmt: skip
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


if __name__ == "__main__":
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in json_schemas().items():
        (folder / file_name).write_text(text, encoding="utf-8")
        print(folder / file_name)
