"""What a run is, and how its results were scored: two different things.

A run's identity (its id and the resume check) is what decides the ANSWERS: the dataset, the variants' target
settings and the selection (`suite.suite_hash`, the profile, `--limit`). How the answers are SCORED (metrics,
thresholds, the judge, G-Eval's steps, DeepEval's version) is recorded per metric as a fingerprint on every
result: a resumed shard re-scores the results whose fingerprints differ from the suite's and keeps the answers,
so changing a threshold or adding a metric never calls the target again. The gate is neither: it reads the
report, so changing it changes nothing on disk but the manifests' copy of it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Any

from evaluator.suite import Custom, Suite, uses_judge


def deepeval_version() -> str | None:
    """The installed DeepEval (its prompt templates are part of how a metric scores)."""
    try:
        return importlib.metadata.version("deepeval")
    except importlib.metadata.PackageNotFoundError:
        return None


def _judge_settings(suite: Suite) -> dict[str, Any] | None:
    """The judge as it shapes scores: its model and sampling settings, never its URL or key variable."""
    if suite.judge is None:
        return None
    return suite.judge.model_dump(mode="json", exclude={"base_url", "api_key_env"})


def metric_fingerprints(suite: Suite, steps: dict[str, list[str]]) -> dict[str, str]:
    """Metric key -> a short hash of everything that decides its score and verdict on a given answer: the
    metric's settings and threshold, the judge's model and sampling settings (for a metric that calls it, and
    for custom metrics, which are handed the judge), the G-Eval steps it scores with (`steps`, what
    `MetricFactory.prepare` returned), and DeepEval's version."""
    judge = _judge_settings(suite)
    version = deepeval_version()
    prints = {}
    for spec in suite.metrics:
        content: dict[str, Any] = {"metric": spec.model_dump(mode="json"), "deepeval": version}
        if uses_judge(spec) or isinstance(spec, Custom):
            content["judge"] = judge
        if spec.key in steps:
            content["steps"] = steps[spec.key]
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        prints[spec.key] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return prints
