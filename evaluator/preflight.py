"""Checks that a suite and its dataset fit together, before the first call is made (not mid-run)."""

from __future__ import annotations

from evaluator.dataset import Case
from evaluator.errors import InputError, location
from evaluator.suite import LoadedSuite, required_fields


def check_cases(loaded: LoadedSuite, cases: list[Case]) -> None:
    """Every case has what its metrics need, and an answer or a target to produce one."""
    suite = loaded.suite
    for spec in suite.metrics:
        for field in required_fields(spec):
            for case in cases:
                if getattr(case, field) is None:
                    raise InputError(
                        f"{location(str(loaded.dataset_path), case.line, field)}: required by metric "
                        f"'{spec.key}' but missing"
                    )
    if suite.target is None:
        for case in cases:
            if case.actual_output is None:
                raise InputError(
                    f"{location(str(loaded.dataset_path), case.line, 'actual_output')}: missing, and the suite "
                    f"has no 'target' to generate it"
                )
