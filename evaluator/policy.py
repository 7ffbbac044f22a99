"""What a suite declares and its report carries unchanged: the gate, the comparison's settings, the implicit variant.

These sit apart from the suite schema (`evaluator.suite`) and the file formats (`evaluator.contract`) because both
hold them: the manifests and the report copy the suite's gate and comparison settings so that the gate can decide
from the report alone, and the on-disk format must not depend on the input schema that it outlives.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_VARIANT = "default"  # the one implicit variant of a suite with a single `target` (or none)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(_Strict):
    """When a release may ship.

    `policy: absolute` (the default) holds every variant to `min_pass_rate`; `no_regression` passes a candidate
    unless it is shown to be worse than the reference variant (or the baseline report) by more than
    `regression_tolerance`: the paired difference's confidence interval must lie below -tolerance to fail, above
    it to pass, and anything in between is inconclusive (`inconclusive: block` fails closed, `warn` does not).
    """

    min_pass_rate: float = Field(default=0.8, ge=0.0, le=1.0)
    error_budget: float = Field(default=0.02, ge=0.0, le=1.0, description="Max share of errored cases.")
    mode: Literal["block", "warn"] = "block"
    regression_tolerance: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Max drop of any metric's mean against the baseline."
    )
    policy: Literal["absolute", "no_regression"] = Field(
        default="absolute", description="absolute thresholds, or no regression against a reference variant or report"
    )
    inconclusive: Literal["block", "warn"] = Field(
        default="block", description="What a comparison that cannot decide does: block (fail closed) or warn."
    )

    @model_validator(mode="after")
    def _tolerance_for_no_regression(self) -> Gate:
        if self.policy == "no_regression" and self.regression_tolerance is None:
            raise ValueError(
                "policy 'no_regression' needs 'regression_tolerance': the largest drop you accept (e.g. 0.02)"
            )
        return self


class CompareSettings(_Strict):
    """How variants are compared: which is the reference, and the statistics' settings (seeded: reproducible)."""

    reference: str | None = Field(default=None, description="The variant others are compared with [the first].")
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0)
    resamples: int = Field(
        default=2000,
        ge=100,
        le=100_000,
        description="Read by no interval (each is exact or a betting interval); accepted so suites that set it load.",
    )
    seed: int = 0
    tie_margin: float = Field(default=0.0, ge=0.0, le=1.0, description="Score differences within this are ties.")
