"""Policy pack: `pulumi preview --policy-pack pulumi/policy` (mandatory rules from rules.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rules

Rule = Callable[..., list[str]]


def make_validate(rule: Rule, configurable: bool = False) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """Adapt a plain rule to pulumi_policy's `validate(args, report_violation)`."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not args.resource_type.startswith("kubernetes:"):
            return
        stack = rules.stack_of(args.urn)
        extra: dict[str, Any] = {}
        if configurable:
            config: Mapping[str, Any] = args.get_config()
            extra["forbidden_stacks"] = tuple(config.get("forbiddenStacks", ["dev"]))
        for message in rule(args.resource_type, args.props, stack, **extra):
            report_violation(message, None)

    return validate


def policies() -> list[ResourceValidationPolicy]:
    out = []
    for name, (rule, description) in rules.RULES.items():
        configurable = rule is rules.no_load_balancer
        schema = (
            PolicyConfigSchema(properties={"forbiddenStacks": {"type": "array", "items": {"type": "string"}}})
            if configurable
            else None
        )
        out.append(
            ResourceValidationPolicy(
                name=name,
                description=description,
                validate=make_validate(rule, configurable),
                enforcement_level=EnforcementLevel.MANDATORY,
                config_schema=schema,
            )
        )
    return out


if __name__ == "__main__":
    PolicyPack(name="ai-eval-factory-cluster", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
