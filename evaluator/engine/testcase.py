"""A dataset case → the DeepEval test case its metrics score: `LLMTestCase` or `ConversationalTestCase`.

One function, so the runner never needs to know which kind of case it holds: a single-turn case gets the output
the target just produced (or the recorded one), a conversational case is scored on its recorded turns.
"""

from __future__ import annotations

from deepeval.test_case import ConversationalTestCase, LLMTestCase

from evaluator.dataset import Case

TestCase = LLMTestCase | ConversationalTestCase


def build_test_case(case: Case, actual_output: str | None) -> TestCase:
    """The DeepEval test case of `case`; `actual_output` is ignored for a conversation (its turns are its output)."""
    if case.turns is not None:
        return ConversationalTestCase(
            turns=list(case.turns),
            scenario=case.scenario,
            context=list(case.context) if case.context is not None else None,
            name=case.id,
            user_description=case.user_description,
            expected_outcome=case.expected_outcome,
            chatbot_role=case.chatbot_role,
        )
    return LLMTestCase(
        input=case.input,
        actual_output=actual_output,
        expected_output=case.expected_output,
        context=list(case.context) if case.context is not None else None,
        retrieval_context=list(case.retrieval_context) if case.retrieval_context is not None else None,
        tools_called=list(case.tools_called) if case.tools_called is not None else None,
        expected_tools=list(case.expected_tools) if case.expected_tools is not None else None,
        name=case.id,
    )
