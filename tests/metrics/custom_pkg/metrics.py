"""Three custom metrics, written the ways DeepEval's docs show: async, sync-only calling the judge, conversational."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from deepeval.metrics import BaseConversationalMetric, BaseMetric
from deepeval.models import DeepEvalBaseLLM
from deepeval.test_case import ConversationalTestCase, LLMTestCase, SingleTurnParams
from pydantic import BaseModel


class KeywordMetric(BaseMetric):
    """Deterministic: 1 when the answer contains `keyword`. No `model` parameter: it is given no judge."""

    _required_params: ClassVar[list[SingleTurnParams]] = [SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT]

    def __init__(self, keyword: str, threshold: float = 0.5) -> None:
        self.keyword = keyword
        self.threshold = threshold

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        self.score = 1.0 if self.keyword.lower() in (test_case.actual_output or "").lower() else 0.0
        self.reason = f"keyword {self.keyword!r} {'found' if self.score else 'missing'}"
        self.success = self.score >= self.threshold
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case)

    def is_successful(self) -> bool:
        return bool(self.success)

    @property
    def __name__(self) -> str:
        return "Keyword"


class Verdict(BaseModel):
    verdict: Literal["yes", "no"]
    reason: str


class JudgedPolitenessMetric(BaseMetric):
    """Synchronous only (no `a_measure`), asks the judge through `self.model.generate`, and needs expected_output."""

    _required_params: ClassVar[list[SingleTurnParams]] = [
        SingleTurnParams.INPUT,
        SingleTurnParams.ACTUAL_OUTPUT,
        SingleTurnParams.EXPECTED_OUTPUT,
    ]

    def __init__(self, model: DeepEvalBaseLLM, threshold: float = 0.5, style: str = "polite") -> None:
        self.model = model
        self.threshold = threshold
        self.style = style
        self.model_seen = model

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        answer = self.model.generate(
            f"Is this answer {self.style}? Answer yes or no.\n{test_case.actual_output}", schema=Verdict
        )
        self.score = 1.0 if answer.verdict == "yes" else 0.0
        self.reason = answer.reason
        self.success = self.score >= self.threshold
        return self.score

    def is_successful(self) -> bool:
        return bool(self.success)

    @property
    def __name__(self) -> str:
        return "Judged politeness"


class AssistantTurnsMetric(BaseConversationalMetric):
    """Conversational: the share of turns that are the assistant's."""

    _required_test_case_params: ClassVar[list[Any]] = []

    def __init__(self, threshold: float = 0.25) -> None:
        self.threshold = threshold

    def measure(self, test_case: ConversationalTestCase, *args: Any, **kwargs: Any) -> float:
        turns = test_case.turns
        self.score = sum(1 for t in turns if t.role == "assistant") / len(turns)
        self.success = self.score >= self.threshold
        return self.score

    async def a_measure(self, test_case: ConversationalTestCase, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case)

    def is_successful(self) -> bool:
        return bool(self.success)

    @property
    def __name__(self) -> str:
        return "Assistant turns"


class NotAMetric:
    """A class that is not a DeepEval metric."""

    def __init__(self, **_: Any) -> None:
        pass


class NoThresholdMetric(KeywordMetric):
    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.threshold = None  # type: ignore[assignment]


class NeedsMetadataMetric(KeywordMetric):
    _required_params: ClassVar[list[SingleTurnParams]] = [SingleTurnParams.INPUT, SingleTurnParams.MCP_SERVERS]


class FailsInTheShardMetric(KeywordMetric):
    """Constructs fine at the load-time check, raises when the shard builds it (inside the event loop)."""

    def __init__(self, keyword: str, threshold: float = 0.5) -> None:
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            super().__init__(keyword, threshold)
            return
        raise ValueError("cannot be built in a shard")


class FixedScoreMetric(KeywordMetric):
    """Scores every case `value` (NaN and infinity too) and calls it a success: a metric whose score is no number."""

    def __init__(self, value: float, threshold: float = 0.5) -> None:
        super().__init__("unused", threshold)
        self.value = float(value)

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        self.score, self.reason, self.success = self.value, "fixed", True
        return self.score
