"""Notes every report shows beside the gate's: how each G-Eval metric's scores were computed.

G-Eval as published weights the judge's 0-10 score by the probabilities of the score's token; where the judge
server returns no logprobs, DeepEval keeps the whole number instead, a coarser score (see engine/judge.py). Each
case records which one it got (`metrics.<name>.scoring`); a report says so per metric, so that two runs scored
differently are not read as like with like.
"""

from __future__ import annotations

from collections import Counter

from evaluator.contract import Report

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
