"""G-Eval's probability-weighted score (issue 18 item 7), through a real run on the stub server.

G-Eval as published weights the judge's 0-10 score by the probabilities of the score's token; DeepEval does so
when the judge serves raw responses with `top_logprobs` (vLLM and OpenAI return them). The stub plants a known
distribution of the score's token (7: 0.6, 8: 0.3, 6: 0.1), so the weighted score is exactly 0.72 where the
whole-number score is 0.70. A server that answers without logprobs, or refuses them, gives whole-number scores,
and every case records which one it got (`metrics.<name>.scoring`), for the report's notes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_stub import get_stats, reset_stats, set_controls
from tests.helpers import read_records, write_suite

pytestmark = pytest.mark.e2e

G_EVAL = {"type": "g_eval", "name": "correct", "evaluation_steps": ["Is the answer correct?"],
          "evaluation_params": ["input", "actual_output", "expected_output"], "threshold": 0.5}  # fmt: skip
CASES = [{"id": f"c{i}", "input": f"q{i}", "actual_output": "ok", "expected_output": "ok"} for i in range(4)]
PLANTED = "7=0.6,8=0.3,6=0.1"
WEIGHTED = (7 * 0.6 + 8 * 0.3 + 6 * 0.1) / 10


def _run(tmp_path: Path, stub: str, evaluator_cli, **controls: object) -> list[dict[str, object]]:
    set_controls(stub, **{"score_logprobs": PLANTED, **controls})
    reset_stats(stub)
    suite = write_suite(tmp_path, CASES, base_url=stub, metrics=[G_EVAL], target=None)
    done = evaluator_cli("run", str(suite), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    return [r["metrics"]["correct"] for r in read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")]


def test_the_weighted_score_is_used_where_the_server_returns_logprobs(tmp_path: Path, stub: str, evaluator_cli) -> None:
    results = _run(tmp_path, stub, evaluator_cli, logprobs="serve")
    assert [r["score"] for r in results] == [pytest.approx(WEIGHTED)] * len(CASES)
    assert pytest.approx(0.7) != WEIGHTED  # the whole-number score the same answers would get
    assert {r["scoring"] for r in results} == {"weighted"}
    assert get_stats(stub)["total"] == len(CASES)  # one judge call per case, as before
    # Without a planted distribution the score's token is certain: the weighted score is the whole number.
    assert {r["score"] for r in _run(tmp_path / "certain", stub, evaluator_cli, score_logprobs="")} == {1.0}


def test_an_answer_without_logprobs_keeps_the_whole_number_and_says_so(
    tmp_path: Path, stub: str, evaluator_cli
) -> None:
    results = _run(tmp_path, stub, evaluator_cli, logprobs="omit")
    assert [r["score"] for r in results] == [pytest.approx(0.7)] * len(CASES)
    assert {r["scoring"] for r in results} == {"integer_absent"}
    assert get_stats(stub)["total"] == len(CASES)


def test_a_server_that_refuses_logprobs_is_asked_plainly_once_it_said_so(
    tmp_path: Path, stub: str, evaluator_cli
) -> None:
    results = _run(tmp_path, stub, evaluator_cli, logprobs="refuse")
    assert [r["score"] for r in results] == [pytest.approx(0.7)] * len(CASES)
    assert {r["scoring"] for r in results} == {"integer_refused"}
    # Asked with logprobs once (the other cases waited for that answer), then plainly.
    assert get_stats(stub)["by_status"] == {"400": 1, "200": len(CASES)}
    assert all(r["error"] is None for r in results)


def test_llama_cpp_pythons_500_is_a_refusal_not_an_outage(tmp_path: Path, stub: str, evaluator_cli) -> None:
    """The built-in model's server (llama-cpp-python, logits_all=False) answers 500 naming logprobs: not retried,
    asked once (the other cases wait for the first answer), then plainly."""
    results = _run(tmp_path, stub, evaluator_cli, logprobs="error")
    assert [r["score"] for r in results] == [pytest.approx(0.7)] * len(CASES)
    assert {r["scoring"] for r in results} == {"integer_refused"}
    assert get_stats(stub)["by_status"] == {"500": 1, "200": len(CASES)}


def test_a_server_capped_below_20_top_logprobs_is_asked_with_its_cap(tmp_path: Path, stub: str, evaluator_cli) -> None:
    """vLLM started with --max-logprobs 2 refuses DeepEval's 20 naming its maximum: asked again with 2, the score
    is weighted over the two likeliest tokens (7: 0.6, 8: 0.3)."""
    results = _run(tmp_path, stub, evaluator_cli, max_logprobs=2)
    assert [r["score"] for r in results] == [pytest.approx((7 * 0.6 + 8 * 0.3) / 0.9 / 10)] * len(CASES)
    assert {r["scoring"] for r in results} == {"weighted"}
    assert get_stats(stub)["by_status"] == {"400": 1, "200": len(CASES)}


def test_non_g_eval_metrics_record_no_scoring(tmp_path: Path, stub: str, evaluator_cli) -> None:
    suite = write_suite(tmp_path, CASES, base_url=stub, metrics=[{"type": "exact_match"}], target=None)
    assert evaluator_cli("run", str(suite), "--out", str(tmp_path / "out")).returncode == 0
    records = read_records(tmp_path / "out" / "shard-00000" / "results.jsonl")
    assert all("scoring" not in r["metrics"]["exact_match"] for r in records)


def test_every_report_says_how_each_g_eval_metric_was_scored(tmp_path: Path, stub: str, evaluator_cli) -> None:
    from html import unescape

    import evaluator
    from evaluator.reporting import html, markdown
    from evaluator.reporting.terminal import make_console, print_summary

    _run(tmp_path / "weighted", stub, evaluator_cli, logprobs="serve")
    _run(tmp_path / "refused", stub, evaluator_cli, logprobs="refuse")
    weighted = evaluator.aggregate(tmp_path / "weighted" / "out", expect_shards=1)
    refused = evaluator.aggregate(tmp_path / "refused" / "out", expect_shards=1)
    said = "G-Eval 'correct': weighted by the judge's token probabilities in 4 of 4 answers"
    fallback = (
        "G-Eval 'correct': whole-number scores in 4 of 4 answers (the judge server refused `logprobs`, so DeepEval "
        "asked again without them)"
    )
    assert said in markdown.render(weighted) and said in unescape(html.render(weighted))
    assert fallback in markdown.render(refused) and fallback in unescape(html.render(refused))
    log = tmp_path / "summary.log"
    with log.open("w") as handle:
        print_summary(refused, console=make_console(file=handle))
    assert f"note: {fallback}" in log.read_text()


@pytest.mark.parametrize(("mode", "scoring", "score", "judge_calls"), [
    ("serve", "weighted", WEIGHTED, {}),
    # A refusal is no answer, so it is not recorded: the one raw call is refused again, the plain ones are cached.
    ("refuse", "integer_refused", 0.7, {"400": 1}),
])  # fmt: skip
def test_re_scoring_keeps_the_scoring_without_asking_the_judge_again(
    tmp_path: Path, stub: str, evaluator_cli, mode: str, scoring: str, score: float, judge_calls: dict[str, int]
) -> None:
    """A changed threshold re-scores the recorded answers from the shard's response cache, inside
    `ChatClient.chat()`, which keeps the server's whole answer: the logprobs come back from it too, so a weighted
    score stays weighted (not a whole number, as if the server had sent none) and the judge is not asked again."""
    import evaluator

    _run(tmp_path, stub, evaluator_cli, logprobs=mode)
    reset_stats(stub)
    stricter = write_suite(tmp_path, CASES, base_url=stub, metrics=[{**G_EVAL, "threshold": 0.71}], target=None)
    done = evaluator_cli("run", str(stricter), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert get_stats(stub)["by_status"] == judge_calls
    report = evaluator.aggregate(tmp_path / "out", expect_shards=1)
    assert report.problems == []
    for case in report.cases:
        result = case.metrics["correct"]
        assert (result.score, result.threshold, result.scoring) == (pytest.approx(score), 0.71, scoring)
        assert result.success is (score >= 0.71)
    assert all(call.cached for case in report.cases for call in case.calls[-1:])
