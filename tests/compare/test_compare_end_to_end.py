"""The acceptance journey of issue 13 on the local stub server: the example comparison suite (3 variants x 300
cases, evaluator/examples/compare) runs as 6 shards through `--workers`, aggregates, and the gate passes, fails
or says INCONCLUSIVE on planted differences of known size.

The stub plants answer quality per model name (`quality`): a question is answered badly by a model when the
question's draw is at or above the model's quality, so a worse model fails a superset of the better one's cases
and the difference is known exactly (`openai_stub.planted_difference`). Three runs of the same suite:

- no difference (every variant at 0.85)                  -> PASS, exit 0
- a real regression (creative at 0.65: -0.197)           -> FAIL, exit 1, named
- a difference too small for 300 cases (creative at 0.83: -0.020 against a tolerance of 0.03) -> INCONCLUSIVE,
  exit 1 under `--mode block` (fail closed), with how many more cases would decide it; exit 0 with a WARN line
  when the suite says `inconclusive: warn`.

Each run also walks one sharding mode over the (variant, case) product: contiguous, many (chunks of 150 units)
and balanced (from the first run's per-unit timings).
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaluator.contract import MANIFEST_SCHEMA, REPORT_SCHEMA, load_report
from evaluator.stats import paired_cases_to_decide
from openai_stub import planted_difference, set_controls
from tests.helpers import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = REPO / "evaluator" / "examples" / "compare"
MODELS = {"reference": "smollm2-135m-instruct", "terse": "smollm2-135m-terse", "creative": "smollm2-135m-creative"}
QUESTIONS = [json.loads(line)["input"] for line in (EXAMPLE / "questions.jsonl").read_text().splitlines()]
BASE_QUALITY = 0.85
TOLERANCE = 0.03


def plant(stub_url: str, **quality: float) -> None:
    shares = {MODELS[name]: quality.get(name, BASE_QUALITY) for name in MODELS}
    set_controls(stub_url, quality=",".join(f"{model}={share}" for model, share in shares.items()))


def run_suite(evaluator_cli: Any, stub_url: str, suite: Path, out: Path, *extra: str) -> dict[str, Any]:
    env = {"EVAL_TARGET_BASE_URL": stub_url, "EVAL_JUDGE_BASE_URL": stub_url}
    done = evaluator_cli(
        "run", str(suite), "--out", str(out), "--workers", "3", "--total-shards", "6", "--profile", "nightly",
        "--run-id", out.name, "-q", *extra, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report_path = out.parent / f"{out.name}.json"
    done = evaluator_cli("aggregate", str(out), "--out", str(report_path), "--expect-shards", "6", "-q")
    assert done.returncode == 0, done.stderr
    return {"path": report_path, "json": json.loads(report_path.read_text())}


def difference(report: dict[str, Any], candidate: str, metric: str = "correctness") -> dict[str, Any]:
    (pair,) = [p for p in report["comparisons"] if p["candidate"] == candidate]
    assert pair["reference"] == "reference" and pair["cases"] == 300
    return pair["metrics"][metric] if metric != "pass rate" else pair["pass_rate"]


def assert_product_sharded(out: Path) -> None:
    """Every shard holds whole cases for every variant, and the 6 shards cover the 900 units exactly once."""
    seen: Counter[tuple[str, str]] = Counter()
    for index in range(6):
        manifest = json.loads((out / f"shard-{index:05d}" / "manifest.json").read_text())
        assert manifest["schema"] == MANIFEST_SCHEMA
        units = list(zip(manifest["case_variants"], manifest["case_ids"], strict=True))
        seen.update(units)
        per_variant = Counter(v for v, _ in units)
        assert set(per_variant) == set(MODELS), f"shard {index} lacks a variant: {per_variant}"
        assert manifest["profile"]["name"] == "nightly" and manifest["profile"]["selected_cases"] == 300
        assert manifest["judge"]["model"] == "smollm2-135m-instruct"
        assert manifest["g_eval_steps"]["correctness"][0].startswith("Read the input question")
    assert len(seen) == 900 and set(seen.values()) == {1}


def test_three_variants_300_cases_6_shards_pass_fail_inconclusive(
    tmp_path: Path, module_stub: str, evaluator_cli: Any
) -> None:
    stub_url = module_stub
    suite = EXAMPLE / "suite.yaml"

    # 1. No difference: every variant answers the same questions well. Contiguous shards.
    plant(stub_url)
    same = run_suite(evaluator_cli, stub_url, suite, tmp_path / "same")
    assert_product_sharded(tmp_path / "same")
    report = same["json"]
    assert report["schema"] == REPORT_SCHEMA and report["problems"] == []
    assert list(report["variants"]) == ["reference", "terse", "creative"] and report["reference"] == "reference"
    assert report["totals"]["cases"] == 900 and report["totals"]["errored"] == 0
    expected_rate = sum(1 for q in QUESTIONS if _draw(q) < BASE_QUALITY) / 300
    for name, summary in report["variants"].items():
        assert summary["target"]["model"] == MODELS[name]
        assert summary["totals"]["pass_rate"] == pytest.approx(expected_rate)
        low, high = summary["pass_rate_ci_low"], summary["pass_rate_ci_high"]
        assert low < expected_rate < high
    for name in ("terse", "creative"):
        diff = difference(report, name)
        assert (diff["difference"], diff["ties"]) == (0.0, 300)
        # 300 ties are no proof of "no difference at all", but they do rule out a drop of the tolerance
        assert -TOLERANCE < diff["ci_low"] < 0.0 < diff["ci_high"] < TOLERANCE
    done = evaluator_cli("gate", str(same["path"]), "--mode", "block")
    assert done.returncode == 0, done.stderr
    assert "PASS" in done.stdout and "no_regression" in done.stdout

    # 2. A real regression: `creative` at 0.65. Sharded as fixed chunks of 150 units ('many').
    plant(stub_url, creative=0.65)
    chunked = tmp_path / "suite-many"
    shutil.copytree(EXAMPLE, chunked)
    content = yaml.safe_load((chunked / "suite.yaml").read_text())
    content["sharding"] = {"mode": "many", "chunk_size": 150}
    (chunked / "suite.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    regressed = run_suite(evaluator_cli, stub_url, chunked / "suite.yaml", tmp_path / "regressed")
    assert_product_sharded(tmp_path / "regressed")
    report = regressed["json"]
    planted = planted_difference(0, QUESTIONS, BASE_QUALITY, 0.65)
    diff = difference(report, "creative")
    assert diff["difference"] == pytest.approx(planted) and planted == pytest.approx(-59 / 300)
    assert diff["losses"] == 59 and diff["wins"] == 0 and diff["p_value"] < 1e-10
    assert diff["ci_high"] < -TOLERANCE
    (pair,) = [p for p in report["comparisons"] if p["candidate"] == "creative"]
    assert len(pair["flipped_to_fail"]) == 59 and pair["flipped_to_pass"] == []
    done = evaluator_cli("gate", str(regressed["path"]), "--mode", "block")
    assert done.returncode == 1
    assert "regression: creative vs reference: correctness: difference -0.197" in done.stderr
    assert "terse" not in done.stderr  # the unchanged candidate is not blamed

    # 3. A difference too small for 300 cases: `creative` at 0.83. Balanced shards from run 1's unit timings.
    plant(stub_url, creative=0.83)
    small = run_suite(
        evaluator_cli, stub_url, suite, tmp_path / "small", "--sharding", "balanced", "--timings", str(same["path"])
    )
    assert_product_sharded_balanced(tmp_path / "small")
    report = small["json"]
    planted = planted_difference(0, QUESTIONS, BASE_QUALITY, 0.83)
    diff = difference(report, "creative")
    assert diff["difference"] == pytest.approx(planted) and planted == pytest.approx(-6 / 300)
    assert diff["ci_low"] < -TOLERANCE < diff["ci_high"]
    loaded = load_report(small["path"])
    by_variant = {name: {c.case_id: c for c in loaded.cases_of(name)} for name in ("reference", "creative")}
    scores = [(by_variant["reference"][cid].metrics["correctness"].score, case.metrics["correctness"].score)
              for cid, case in by_variant["creative"].items()]  # fmt: skip
    more = paired_cases_to_decide([r or 0.0 for r, _ in scores], [c or 0.0 for _, c in scores], TOLERANCE)
    assert more is not None and more > 0
    done = evaluator_cli("gate", str(small["path"]), "--mode", "block")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "inconclusive: creative vs reference: correctness: difference -0.020" in done.stderr
    assert f"{more} more cases would decide it" in done.stderr
    assert re.search(r"^INCONCLUSIVE: run small: 0 failure\(s\), \d+ inconclusive$", done.stderr, re.MULTILINE)
    # The suite's own gate says `mode: warn`: the same verdict, not blocking (exit 0, said plainly).
    done = evaluator_cli("gate", str(small["path"]))
    assert done.returncode == 0 and "WARN: gate INCONCLUSIVE" in done.stderr


def assert_product_sharded_balanced(out: Path) -> None:
    """Balanced shards hold any mix of units; together they still cover the 900 units exactly once."""
    seen: Counter[tuple[str, str]] = Counter()
    for index in range(6):
        manifest = json.loads((out / f"shard-{index:05d}" / "manifest.json").read_text())
        assert manifest["sharding"] == "balanced"
        seen.update(zip(manifest["case_variants"], manifest["case_ids"], strict=True))
    assert len(seen) == 900 and set(seen.values()) == {1}


def _draw(question: str) -> float:
    from openai_stub import quality_draw

    return quality_draw(0, question)
