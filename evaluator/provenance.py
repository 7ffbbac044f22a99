"""Provenance: what produced a shard's numbers, and where two sets of numbers were produced differently.

Every shard records the evaluator, DeepEval and Python versions, the image it ran in (`EVAL_IMAGE`), and each
model as its server describes it on `GET /v1/models` (vLLM lists `root`, the path or repository it loaded,
`parent` and `max_model_len`; a revision where the server says one: a `revision` field, or the commit of a
Hugging Face cache path `.../snapshots/<sha>`). The report carries the first shard's and names any shard that
differs in its `notes`; `evaluator gate` names a baseline that differs.

A different judge (model, weights or revision) or DeepEval version changes scores without any change to the
answers (DeepEval's prompt templates move between releases), so under `no_regression` such a difference makes
the verdict INCONCLUSIVE unless `evaluator gate --allow-mixed-versions` (`mixed_versions`, the gate's hook).
What neither side recorded is not compared: a report from before provenance existed is said to be so, not
refused.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from typing import Any

from evaluator.contract import ModelProvenance, Provenance, Report
from evaluator.version import __version__

_SNAPSHOT = re.compile(r"/snapshots/([0-9a-f]{40})(?:/|$)")


def local_provenance(
    targets: dict[str, ModelProvenance | None] | None = None, judge: ModelProvenance | None = None
) -> Provenance:
    """This process's versions and image, with the models its servers described."""
    from evaluator.identity import deepeval_version  # here: the aggregate, which compares provenance, loads no suite

    return Provenance(
        evaluator_version=__version__,
        deepeval_version=deepeval_version(),
        python_version=platform.python_version(),
        image=os.environ.get("EVAL_IMAGE") or None,
        targets=dict(targets or {}),
        judge=judge,
    )


def model_from_listing(model: str, listing: Any) -> ModelProvenance:
    """The entry for `model` in a `/v1/models` answer (`{"data": [{"id": ...}, ...]}`), as recorded."""
    entries = listing.get("data") if isinstance(listing, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            root, parent = _text(entry.get("root")), _text(entry.get("parent"))
            length = entry.get("max_model_len")
            return ModelProvenance(
                model=model,
                listed=True,
                root=root,
                parent=parent,
                revision=_text(entry.get("revision")) or _snapshot(root) or _snapshot(parent),
                max_model_len=length if isinstance(length, int) and not isinstance(length, bool) else None,
            )
    return ModelProvenance(model=model, listed=False)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _snapshot(path: str | None) -> str | None:
    found = _SNAPSHOT.search(path) if path else None
    return found.group(1) if found else None


async def served_model(client: Any, model: str, timeout_s: float = 10.0) -> ModelProvenance:
    """`GET {base_url}/models` on an open `ChatClient`'s session, with its endpoint's key; no answer (a server
    without the route, a timeout) records the model as not listed: provenance never fails a shard."""
    import asyncio  # here: the aggregate, which only compares provenance, starts no event loop

    session = client.session
    if session is None:
        return ModelProvenance(model=model, listed=False)
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(f"{client.base_url}/models", headers=client.headers) as response:
                if response.status != 200:
                    return ModelProvenance(model=model, listed=False)
                listing = await response.json(content_type=None)
    except Exception:  # a timeout, a refused connection, no JSON: unknown, never an error
        return ModelProvenance(model=model, listed=False)
    return model_from_listing(model, listing)


# --- comparing ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mismatch:
    """One way two provenances differ; `blocking` when it can move scores (the judge, DeepEval)."""

    field: str
    message: str
    blocking: bool


def differences(ours: Provenance, theirs: Provenance, who: str) -> list[Mismatch]:
    """How `theirs` (a shard, a baseline: `who`) differs from `ours`; a value only one side recorded is said but
    never blocks (it shows no difference)."""
    found: list[Mismatch] = []

    def check(field: str, label: str, mine: Any, other: Any, blocking: bool = False) -> None:
        if mine == other:
            return
        if mine is None or other is None:  # known on one side only: said, but it proves no difference
            there = f"{other} in {who}" if other is not None else f"not recorded in {who}"
            here = f"{mine} here" if mine is not None else "not recorded here"
            found.append(Mismatch(field, f"{label} {there}, {here}", False))
        else:
            found.append(Mismatch(field, f"{label} {other} in {who}, {mine} here", blocking))

    check("deepeval_version", "DeepEval", ours.deepeval_version, theirs.deepeval_version, blocking=True)
    if ours.judge is not None and theirs.judge is not None:
        check("judge.model", "judge model", ours.judge.model, theirs.judge.model, blocking=True)
        check("judge.revision", "judge revision", ours.judge.revision, theirs.judge.revision, blocking=True)
        check("judge.root", "judge weights (root)", ours.judge.root, theirs.judge.root, blocking=True)
    check("evaluator_version", "evaluator", ours.evaluator_version, theirs.evaluator_version)
    check("python_version", "Python", ours.python_version, theirs.python_version)
    check("image", "image", ours.image, theirs.image)
    for variant in sorted(set(ours.targets) & set(theirs.targets)):
        mine, other = ours.targets[variant], theirs.targets[variant]
        if mine is None or other is None:
            continue
        label = f"variant {variant}: target"
        check(f"targets.{variant}.model", f"{label} model", mine.model, other.model)
        check(f"targets.{variant}.revision", f"{label} revision", mine.revision, other.revision)
        check(f"targets.{variant}.root", f"{label} weights (root)", mine.root, other.root)
    return found


def shard_mismatches(report: Report, prefix: str = "") -> list[Mismatch]:
    """How each shard's provenance differs from the report's (the first shard's)."""
    if report.provenance is None:
        return []
    found = []
    for shard in report.shards.per_shard:
        if shard.provenance is not None:
            found.extend(differences(report.provenance, shard.provenance, f"{prefix}shard {shard.index}"))
    return found


def mixed_versions(report: Report, baseline: Report | None = None) -> list[Mismatch]:
    """The gate's hook: every provenance difference within the report's shards, and between the report and the
    baseline (and within the baseline's shards). A baseline that recorded none is said to be so (not blocking)."""
    found = shard_mismatches(report)
    if baseline is None:
        return found
    if report.provenance is None or baseline.provenance is None:
        side = "the baseline" if baseline.provenance is None else "this report"
        found.append(Mismatch("provenance", f"{side} records no provenance: versions not compared", False))
        return found
    found.extend(differences(report.provenance, baseline.provenance, f"the baseline ({baseline.run_id})"))
    found.extend(shard_mismatches(baseline, prefix="the baseline's "))
    return found
