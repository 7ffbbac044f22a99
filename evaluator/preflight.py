"""Checks that a suite and its dataset fit together, before the first call is made (not mid-run)."""

from __future__ import annotations

from evaluator.dataset import Case
from evaluator.errors import InputError, location
from evaluator.suite import LoadedSuite


def check_cases(loaded: LoadedSuite, cases: list[Case]) -> None:
    """Every case has what its metrics declare they need, and an answer or a target to produce one."""
    from evaluator.engine.checks import check_metrics  # imports DeepEval for a custom metric: only when running

    check_metrics(loaded, cases)
    if any(target is None for target in loaded.suite.targets().values()):
        for case in cases:
            if case.actual_output is None:
                raise InputError(
                    f"{location(str(loaded.dataset_path), case.line, 'actual_output')}: missing, and the suite "
                    f"has no 'target' to generate it"
                )
