"""The stub server over real HTTP on 127.0.0.1: answers, faults, the ceiling, runtime control, counters."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from deepeval.metrics.answer_relevancy import schema as relevancy
from deepeval.metrics.faithfulness import schema as faithfulness
from deepeval.metrics.hallucination import schema as hallucination

from openai_stub.server import (
    StubServer,
    get_stats,
    reset_stats,
    run_stub_in_process,
    run_stub_in_thread,
    running_stub,
    set_controls,
)


def run(test: Callable[[StubServer, aiohttp.ClientSession], Awaitable[None]], **controls: Any) -> None:
    """Run `test` against a fresh stub on a fresh loop (no pytest-asyncio needed)."""

    async def main() -> None:
        async with running_stub(**controls) as stub, aiohttp.ClientSession() as session:
            await test(stub, session)

    asyncio.run(main())


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "judge-1", "messages": [{"role": "user", "content": text}], **extra}


async def post(session: aiohttp.ClientSession, stub: StubServer, body: dict[str, Any]) -> tuple[int, Any, Any]:
    async with session.post(f"{stub.base_url}/chat/completions", json=body) as response:
        return response.status, await response.json(), response.headers


def test_health_and_models() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        async with session.get(stub.base_url.removesuffix("/v1") + "/health") as response:
            assert response.status == 200 and (await response.json()) == {"status": "ok"}
        async with session.get(f"{stub.base_url}/models") as response:
            assert (await response.json())["data"][0]["id"] == "my-model"

    run(check, model="my-model")


def test_models_are_listed_with_vllms_fields() -> None:
    """vLLM's ModelCard (vllm/entrypoints/openai/protocol.py): root is what the server loaded."""

    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{stub.base_url}/models") as response:
            card = (await response.json())["data"][0]
        assert card == {"id": "m", "object": "model", "created": 0, "owned_by": "stub", "root": "/models/m@abc",
                        "parent": None, "max_model_len": 4096, "permission": []}  # fmt: skip

    run(check, model="m", root="/models/m@abc", max_model_len=4096)


def test_text_answers_default_and_exact_with_word_usage() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        status, body, _ = await post(session, stub, chat_body("What is two plus two?"))
        assert status == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "fixed answer here"}
        assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        assert body["model"] == "judge-1"
        exact = chat_body("Question?\nAnswer with exactly: Paris, France  \nThanks")
        status, body, _ = await post(session, stub, exact)
        assert body["choices"][0]["message"]["content"] == "Paris, France"

    run(check, answer="fixed answer here")


SCHEMAS = [
    relevancy.Statements,
    relevancy.Verdicts,
    faithfulness.Truths,
    faithfulness.Verdicts,
    hallucination.Verdicts,
]


@pytest.mark.parametrize("model", SCHEMAS, ids=lambda m: f"{m.__module__.split('.')[-2]}.{m.__name__}")
def test_schema_constrained_answers_validate_in_both_request_styles(model: Any) -> None:
    schema = model.model_json_schema()

    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        styles = [
            {"type": "json_object", "schema": schema},  # llama.cpp style
            {
                "type": "json_schema",
                "json_schema": {"name": model.__name__, "schema": schema, "strict": True},
            },
        ]
        for response_format in styles:
            body = chat_body("Judge this. Answer with exactly: not json", response_format=response_format)
            status, answer, _ = await post(session, stub, body)
            assert status == 200
            parsed = model.model_validate_json(answer["choices"][0]["message"]["content"])
            if "verdicts" in schema["properties"]:
                assert parsed.verdicts[0].verdict == "yes"
        body = chat_body("stub-verdict: no", response_format=styles[0])
        _, answer, _ = await post(session, stub, body)
        parsed = model.model_validate_json(answer["choices"][0]["message"]["content"])
        if "verdicts" in schema["properties"]:
            assert parsed.verdicts[0].verdict == "no"

    run(check)


def test_json_mode_without_schema_is_still_json() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        _, body, _ = await post(session, stub, chat_body("hi", response_format={"type": "json_object"}))
        assert json.loads(body["choices"][0]["message"]["content"]) == {"answer": "The stub model answers: ok."}

    run(check)


async def statuses(stub: StubServer, session: aiohttp.ClientSession, n: int) -> list[tuple[int, str | None]]:
    results = await asyncio.gather(*(post(session, stub, chat_body(f"case {i}")) for i in range(n)))
    return [(status, headers.get("Retry-After")) for status, _, headers in results]


def test_fault_fractions_retry_after_and_stats() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        seen = await statuses(stub, session, 400)
        counts = Counter(status for status, _ in seen)
        assert 50 <= counts[429] <= 110, counts  # 20 % of 400 = 80
        assert 20 <= counts[500] <= 60, counts  # 10 % of 400 = 40
        assert counts[200] + counts[429] + counts[500] == 400
        assert {retry for status, retry in seen if status == 429} == {"2"}
        stats = await (await session.get(stub.base_url.removesuffix("/v1") + "/_stats")).json()
        assert stats["total"] == 400 and stats["in_flight"] == 0
        assert stats["by_status"] == {str(k): v for k, v in counts.items()}
        assert stats["faults"] == {"rate_limited": counts[429], "server_error": counts[500]}
        assert stats["by_model"] == {"judge-1": 400}
        assert 1 < stats["max_in_flight"] <= 400

    run(check, rate_429=0.2, rate_500=0.1, retry_after=2, latency=0.05)


def test_faults_are_reproducible_from_the_seed_and_retries_get_fresh_draws() -> None:
    def sequence(seed: int) -> list[int]:
        out: list[int] = []

        async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
            for i in range(60):  # sequential: the body, not the order, decides
                out.append((await post(session, stub, chat_body(f"case {i % 20}")))[0])

        run(check, rate_429=0.3, rate_500=0.2, seed=seed)
        return out

    first = sequence(7)
    assert first == sequence(7)
    assert first != sequence(8)
    # the same body seen again (a retry) is drawn afresh: not every repeat of a failing body fails
    repeats = [first[i::20] for i in range(20)]
    assert any(len(set(r)) > 1 for r in repeats)


def test_concurrency_ceiling_rejects_at_once_with_retry_after() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        seen = await statuses(stub, session, 20)
        assert Counter(status for status, _ in seen) == {200: 5, 429: 15}
        assert all(retry == "1" for status, retry in seen if status == 429)
        assert stub.stats.max_in_flight == 5 and stub.stats.faults["ceiling"] == 15

    run(check, latency=0.5, max_concurrency=5)


def test_token_bucket_accepts_the_rate_and_says_when_to_retry() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        url = f"{stub.base_url}/chat/completions"
        answers = []
        for _ in range(8):  # at once: the bucket holds 5
            async with session.post(url, json=chat_body("x")) as response:
                answers.append((response.status, response.headers.get("Retry-After"),
                                response.headers.get("retry-after-ms")))  # fmt: skip
        assert [status for status, _, _ in answers] == [200] * 5 + [429] * 3
        for _, seconds, millis in answers[5:]:
            assert seconds == "1" and millis is not None and 1 <= int(millis) <= 100  # 1 token per 100 ms
        await asyncio.sleep(int(answers[-1][2] or 0) / 1000 + 0.01)
        async with session.post(url, json=chat_body("x")) as response:
            assert response.status == 200  # retrying after retry-after-ms is accepted
        assert stub.stats.faults["rate_limit"] == 3

    run(check, rate_limit=10, rate_burst=5)


def test_hung_call_is_freed_when_the_client_gives_up() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        url = f"{stub.base_url}/chat/completions"
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(url, json=chat_body("x"), timeout=aiohttp.ClientTimeout(total=0.3)):
                pass
        for _ in range(100):  # the server notices the closed connection shortly after
            if stub.stats.cancelled:
                break
            await asyncio.sleep(0.05)
        assert stub.stats.faults["hang"] == 1 and stub.stats.cancelled == 1 and stub.stats.in_flight == 0

    run(check, rate_hang=1.0)


def test_runtime_control_changes_behaviour_and_rejects_bad_values() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        root = stub.base_url.removesuffix("/v1")
        assert (await post(session, stub, chat_body("a")))[0] == 200
        async with session.post(f"{root}/_control", json={"rate_500": 1.0}) as response:
            assert response.status == 200 and (await response.json())["rate_500"] == 1.0
        assert (await post(session, stub, chat_body("b")))[0] == 500
        for bad, field in (
            ({"rate_500": 1.5}, "rate_500"),
            ({"nope": 1}, "nope"),
            ({"latency": "x"}, "latency"),
        ):
            async with session.post(f"{root}/_control", json=bad) as response:
                assert response.status == 400
                assert field in (await response.json())["error"]["message"]
        assert stub.controls.rate_500 == 1.0  # a rejected change leaves the controls untouched
        async with session.post(f"{root}/_control", json={"rate_429": 0.5, "rate_500": 0.6}) as response:
            assert response.status == 400

    run(check)


def test_reset_during_a_call_keeps_in_flight_right() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        root = stub.base_url.removesuffix("/v1")
        call = asyncio.ensure_future(post(session, stub, chat_body("slow")))
        for _ in range(200):  # until the server holds the call
            if stub.stats.in_flight:
                break
            await asyncio.sleep(0.01)
        async with session.post(f"{root}/_reset") as response:
            stats = await response.json()
            assert stats["in_flight"] == 1 and stats["total"] == 0
        assert (await call)[0] == 200
        assert stub.stats.in_flight == 0 and stub.stats.by_status == {"200": 1}

    run(check, latency=0.3)


def test_bad_requests_and_api_key() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        url = f"{stub.base_url}/chat/completions"
        async with session.post(url, json=chat_body("x")) as response:
            assert response.status == 401
        auth = {"Authorization": "Bearer sekrit"}
        async with session.post(url, data=b"{not json", headers=auth) as response:
            assert response.status == 400 and "invalid request" in (await response.json())["error"]["message"]
        async with session.post(url, json={"messages": []}, headers=auth) as response:
            assert response.status == 400
        async with session.post(url, json=chat_body("x", stream=True), headers=auth) as response:
            assert response.status == 400
        async with session.post(url, json=chat_body("x"), headers=auth) as response:
            assert response.status == 200

    run(check, api_key="sekrit")


def test_a_set_of_keys_is_accepted_and_each_call_is_counted_by_key_position() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        url = f"{stub.base_url}/chat/completions"
        for key, model, status in (("first", "m-a", 200), ("second", "m-b", 200), ("second", "m-b", 200),
                                   ("third", "m-a", 401), (None, "m-b", 401)):  # fmt: skip
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            body = {**chat_body("x"), "model": model}
            async with session.post(url, json=body, headers=headers) as response:
                assert response.status == status
        stats = await (await session.get(stub.base_url.removesuffix("/v1") + "/_stats")).json()
        assert stats["keys_by_model"] == {"m-a": {"key-0": 1, "unknown": 1}, "m-b": {"key-1": 2, "none": 1}}
        assert "first" not in json.dumps(stats) and "second" not in json.dumps(stats)  # labels, never keys

    run(check, api_key="first,second")


def test_thread_runner_and_blocking_helpers() -> None:
    base_url, stop = run_stub_in_thread(rate_429=0.0)
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        set_controls(base_url, rate_429=1.0, retry_after=3)

        async def one() -> int:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{base_url}/chat/completions", json=chat_body("x")) as response,
            ):
                assert response.headers["Retry-After"] == "3"
                return response.status

        assert asyncio.run(one()) == 429
        assert get_stats(base_url)["by_status"] == {"429": 1}
        reset_stats(base_url)
        assert get_stats(base_url)["total"] == 0
    finally:
        stop()


def test_cli_process_prints_url_and_serves() -> None:
    base_url, stop = run_stub_in_process(latency=0.01, max_concurrency=8, seed=3)
    try:
        assert base_url.startswith("http://127.0.0.1:")
        assert get_stats(base_url)["total"] == 0
    finally:
        stop()


def test_cli_rejects_bad_controls_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "openai_stub", "--rate-429", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "rate_429" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("question", "score"), [("What is 2+2?", 1.0), ("What is 2+2? stub-verdict: no", 0.0)])
def test_deepeval_metric_runs_against_the_stub(question: str, score: float) -> None:
    """DeepEval's own OpenAI model class (structured outputs through the openai SDK) judges via the stub."""
    from deepeval.metrics import AnswerRelevancyMetric
    from deepeval.models import GPTModel
    from deepeval.test_case import LLMTestCase

    base_url, stop = run_stub_in_thread()
    try:
        judge = GPTModel(model="gpt-4o-mini", base_url=base_url, api_key="stub-key")
        metric = AnswerRelevancyMetric(model=judge, threshold=0.5, async_mode=True)
        metric.measure(LLMTestCase(input=question, actual_output="Four."), _show_indicator=False)
        assert metric.score == score and metric.success is (score >= 0.5)
        assert get_stats(base_url)["by_status"] == {"200": 3}  # statements, verdicts, reason
    finally:
        stop()


def test_planted_quality_per_model_is_nested_and_known_exactly() -> None:
    """`quality`: a listed model answers a question badly when the question's draw is at or above its share; the
    draw depends on the question only, so a worse model fails a superset, and `planted_difference` is exact."""
    from openai_stub import planted_difference, quality_draw

    questions = [f"Question {i}: what is {i} plus {i}?" for i in range(200)]

    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        answers: dict[str, list[bool]] = {}
        for model in ("good", "bad", "unlisted"):
            answers[model] = []
            for question in questions:
                status, body, _ = await post(session, stub, {**chat_body(question), "model": model})
                text = body["choices"][0]["message"]["content"]
                assert status == 200 and text.startswith("The stub model answers: ok.")
                answers[model].append("stub-verdict: no" not in text)
        assert answers["unlisted"] == [True] * 200
        assert answers["good"] == [quality_draw(3, q) < 0.9 for q in questions]
        assert all(g or not b for g, b in zip(answers["good"], answers["bad"], strict=True))  # nested: bad ⊆ good
        share = (sum(answers["bad"]) - sum(answers["good"])) / 200
        assert share == planted_difference(3, questions, 0.9, 0.6) and -0.45 < share < -0.15
        # Judge calls (schema-constrained answers) are never degraded: only a model's text answers are.
        schema = {"type": "json_object", "schema": relevancy.Verdicts.model_json_schema()}
        bad_question = next(q for q, ok in zip(questions, answers["bad"], strict=True) if not ok)
        status, body, _ = await post(
            session, stub, {**chat_body(bad_question), "model": "bad", "response_format": schema}
        )
        assert status == 200 and "stub-verdict" not in body["choices"][0]["message"]["content"]

    run(check, quality="good=0.9,bad=0.6", seed=3)


def test_a_bad_quality_control_is_refused_naming_it() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        async with session.post(stub.base_url.removesuffix("/v1") + "/_control", json={"quality": "m=1.5"}) as r:
            assert r.status == 400 and "control 'quality': 'm=1.5' must be MODEL=SHARE" in await r.text()

    run(check)


# --- logprobs, as vLLM serves them -----------------------------------------------------------------------------
def _g_eval_format() -> dict[str, Any]:
    from deepeval.metrics.g_eval.schema import ReasonScore

    return {"type": "json_schema", "json_schema": {"name": "ReasonScore", "schema": ReasonScore.model_json_schema()}}


def test_logprobs_are_served_in_vllms_format_with_a_planted_score_distribution() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        body = chat_body("score it", logprobs=True, top_logprobs=2, response_format=_g_eval_format())
        status, data, _ = await post(session, stub, body)
        assert status == 200
        choice = data["choices"][0]
        content = choice["message"]["content"]
        assert json.loads(content)["score"] == 7  # the likeliest score is the answer's
        tokens = choice["logprobs"]["content"]
        assert "".join(t["token"] for t in tokens) == content
        assert all(t["bytes"] == list(t["token"].encode()) for t in tokens)
        (score,) = [t for t in tokens if t["token"] == "7"]
        assert score["logprob"] == pytest.approx(math.log(0.6))
        tops = [(t["token"], math.exp(t["logprob"])) for t in score["top_logprobs"]]
        assert tops == [("7", pytest.approx(0.6)), ("8", pytest.approx(0.3))]  # at most top_logprobs of them
        assert all(t["logprob"] == 0.0 and len(t["top_logprobs"]) == 1 for t in tokens if t is not score)
        _, plain, _ = await post(session, stub, chat_body("score it", response_format=_g_eval_format()))
        assert plain["choices"][0]["logprobs"] is None  # not asked for: none
        assert plain["choices"][0]["message"]["content"] == content

    run(check, score_logprobs="7=0.6,8=0.3,6=0.1")


@pytest.mark.parametrize(
    ("extra", "controls", "message"),
    [
        ({"top_logprobs": 3}, {}, "when using `top_logprobs`, `logprobs` must be set to true."),
        ({"logprobs": True, "top_logprobs": -1}, {}, "`top_logprobs` must be a positive value."),
        ({"logprobs": True, "top_logprobs": 21}, {},
         "Requested sample logprobs of 21, which is greater than max allowed: 20"),
        ({"logprobs": True, "top_logprobs": 6}, {"max_logprobs": 5},
         "Requested sample logprobs of 6, which is greater than max allowed: 5"),
        ({"logprobs": True, "top_logprobs": 5}, {"logprobs": "refuse"}, "logprobs are not supported"),
    ],
)  # fmt: skip
def test_logprobs_requests_are_refused_as_vllm_refuses_them(
    extra: dict[str, Any], controls: dict[str, Any], message: str
) -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        status, data, _ = await post(session, stub, chat_body("x", **extra))
        assert status == 400 and message in data["error"]["message"]

    run(check, **controls)


def test_llama_cpp_pythons_refusal_is_a_500_naming_logprobs() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        status, data, _ = await post(session, stub, chat_body("x", logprobs=True, top_logprobs=5))
        assert status == 500 and "logprobs is not supported" in data["error"]["message"]
        assert (await post(session, stub, chat_body("x")))[0] == 200

    run(check, logprobs="error")


def test_a_server_that_ignores_logprobs_answers_without_them() -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        status, data, _ = await post(session, stub, chat_body("x", logprobs=True, top_logprobs=5))
        assert status == 200 and data["choices"][0]["logprobs"] is None

    run(check, logprobs="omit")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"logprobs": "sometimes"}, "control 'logprobs' must be one of serve, omit, refuse, error"),
        ({"score_logprobs": "7=0.9,8=0.3"}, "control 'score_logprobs': the probabilities sum to more than 1"),
        ({"score_logprobs": "seven=0.5"}, "control 'score_logprobs': 'seven=0.5' must be SCORE=PROBABILITY"),
        ({"max_logprobs": -1}, "control 'max_logprobs' must be >= 0"),
    ],
)
def test_bad_logprobs_controls_are_refused_naming_them(change: dict[str, Any], message: str) -> None:
    async def check(stub: StubServer, session: aiohttp.ClientSession) -> None:
        async with session.post(stub.base_url.removesuffix("/v1") + "/_control", json=change) as response:
            assert response.status == 400 and message in await response.text()

    run(check)
