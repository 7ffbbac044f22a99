"""The pass/fail line shown at the top of every report: the gate's own judgement, not a second copy of it.

`evaluator gate` owns the exit code; the reports state what it decides (evaluator.gate.judge) so a PR comment
can never say PASS where the gate says FAIL. A gate section the gate cannot read is a failure (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from evaluator import gate
from evaluator.suite import Gate


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "PASS" if self.passed else "FAIL"


def judge(report: dict[str, Any]) -> Verdict:
    """The gate's verdict on report (without a baseline; reports show the baseline diff themselves)."""
    # The contract lets the gate section carry more than the gate reads (thresholds): pass on only its fields.
    section = report.get("gate") if isinstance(report.get("gate"), dict) else {}
    assert isinstance(section, dict)
    known = {k: v for k, v in section.items() if k in Gate.model_fields}
    try:
        verdict = gate.judge({**report, "gate": known})
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return Verdict(False, [f"gate section unreadable: gate.{where}: {first.get('msg')}"])
    except (TypeError, AttributeError, ValueError) as exc:
        return Verdict(False, [f"report unreadable by the gate: {exc}"])
    return Verdict(verdict.passed, list(verdict.reasons))
