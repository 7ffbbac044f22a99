"""The demo's comparison mode on the built-in model (llama.cpp serving SmolLM2-135M on 127.0.0.1): the same
comparison suite as the stub journey (evaluator/examples/compare), its `smoke` profile (one case per family: 3
variants x 5 cases on two cores), sharded, aggregated, reported and gated. The scores are meaningless (a 135M
model judging itself): this proves the journey with a real model, not quality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.compare.test_profiles import SMOKE
from tests.helpers import read_report_json

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_compare_runs_three_variants_on_the_built_in_model(tmp_path: Path, evaluator_cli: Any) -> None:
    pytest.importorskip("llama_cpp", reason="the 'demo' extra is installed by scripts/test.sh")
    out = tmp_path / "demo-compare"
    done = evaluator_cli("demo", "--compare", "--out", str(out), "--workers", "2", subprocess=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "profile 'smoke': 5 of 300 cases x 3 variant(s) (reference, terse, creative) = 15 units" in done.stderr
    report = read_report_json(out / "report.json")
    assert report["problems"] == [] and report["shards"]["complete"] == [0, 1]
    assert report["profile"]["name"] == "smoke" and report["totals"]["cases"] == 15
    assert list(report["variants"]) == ["reference", "terse", "creative"]
    assert sorted({c["case_id"] for c in report["cases"]}) == sorted(SMOKE)
    assert [p["candidate"] for p in report["comparisons"]] == ["terse", "creative"]
    assert all(p["cases"] == 5 for p in report["comparisons"])
    target_calls = [c for case in report["cases"] for c in case["calls"] if c["type"] == "target"]
    assert len(target_calls) == 15 and all(c["completion_tokens"] > 0 for c in target_calls)  # it really answered
    assert report["variants"]["creative"]["target"]["temperature"] == 0.8
    assert report["judge"]["model"] == "smollm2-135m-instruct"
    for name in ("report.xml", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    assert "### Leaderboard" in (out / "report.md").read_text()
    assert "gate: " in done.stderr
