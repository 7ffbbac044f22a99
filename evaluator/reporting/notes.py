"""Notes every report shows beside the gate's: how each G-Eval metric's scores were computed, the report's own
notes (shards whose provenance differs, shards that recorded another gate) and what produced the numbers.

G-Eval as published weights the judge's 0-10 score by the probabilities of the score's token; where the judge
server returns no logprobs, DeepEval keeps the whole number instead, a coarser score (see engine/judge.py). Each
case records which one it got (`metrics.<name>.scoring`); a report says so per metric, so that two runs scored
differently are not read as like with like.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from evaluator.contract import ModelProvenance, Provenance, Report

_WHY = {
    "integer_refused": "the judge server refused `logprobs`, so DeepEval asked again without them",
    "integer_absent": "the judge server returned no logprobs",
    "integer_unmatched": "the judge's logprobs had none for the score's token",
}


def scoring_notes(report: Report) -> list[str]:
    """One line per metric whose cases recorded a scoring (G-Eval), in metric order."""
    counts: dict[str, Counter[str]] = {}
    for case in report.cases:
        for name, entry in case.metrics.items():
            if entry.scoring is not None:
                counts.setdefault(name, Counter())[entry.scoring] += 1
    notes = []
    for name in sorted(counts):
        seen = counts[name]
        total = sum(seen.values())
        weighted = seen.get("weighted", 0)
        parts = []
        if weighted:
            parts.append(f"weighted by the judge's token probabilities in {weighted} of {total} answers")
        for kind, why in _WHY.items():
            if seen.get(kind):
                parts.append(f"whole-number scores in {seen[kind]} of {total} answers ({why})")
        notes.append(f"G-Eval '{name}': " + "; ".join(parts))
    return notes


def report_notes(report: Report, said: Iterable[str] = ()) -> list[str]:
    """The report's `notes` (written by `aggregate`) that no line already `said` holds: the gate repeats a
    provenance difference as its own note ("provenance: ...") or, under no_regression, as a reason to be
    inconclusive, and a reader needs it once."""
    lines = list(said)
    return [note for note in report.notes if not any(note in line for line in lines)]


def provenance_rows(provenance: Provenance | None) -> list[tuple[str, str]]:
    """What produced the numbers, as (what, which) rows: versions, image, each variant's target and the judge.
    Empty for a report from before provenance existed."""
    if provenance is None:
        return []
    rows = [
        ("evaluator", provenance.evaluator_version),
        ("DeepEval", provenance.deepeval_version or "not recorded"),
        ("Python", provenance.python_version),
        ("image", provenance.image or "not recorded (EVAL_IMAGE unset)"),
    ]
    named = len(provenance.targets) > 1
    for variant, target in provenance.targets.items():  # None: the answers came from the dataset
        rows.append((f"target {variant}" if named else "target", model_text(target) if target else "none called"))
    if provenance.judge is not None:
        rows.append(("judge", model_text(provenance.judge)))
    return rows


def provenance_line(provenance: Provenance | None) -> str | None:
    """`provenance_rows` on one line, for the PR comment and the terminal."""
    rows = provenance_rows(provenance)
    return " · ".join(f"{what} {which}" for what, which in rows) if rows else None


def model_text(model: ModelProvenance) -> str:
    """A model as its server described it: the name, its revision or loaded weights where known, and whether the
    server listed it at all."""
    parts = [model.model]
    if model.revision:
        parts.append(f"revision {model.revision[:12]}")
    elif model.root and model.root != model.model:
        parts.append(f"from {model.root}")
    if not model.listed:
        parts.append("(not listed by the server)")
    return " ".join(parts)
