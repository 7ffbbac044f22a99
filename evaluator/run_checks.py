"""Whether the shard folders make one whole run, and every reason to doubt it, as the aggregate's `problems`.

Apart from the aggregate's passes (aggregation.py) because these read the manifests, not the records: shard
counts, identities, settings that every shard of a run must share, the gate and provenance each shard recorded.
Each check adds a `Problem` (with its file, line and field where there is one) and never raises: the report names
what is wrong and the gate refuses it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from evaluator.contract import Manifest, Problem, ShardTiming
from evaluator.policy import Gate
from evaluator.provenance import differences
from evaluator.results import ManifestRead, file_sha256


class Problems(list[Problem]):
    def add(
        self,
        kind: str,
        message: str,
        shard: int | None = None,
        file: Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.append(
            Problem(kind=kind, message=message, shard=shard, file=str(file) if file else None, line=line, field=field)
        )


def manifest_problems(index: int, read: ManifestRead, manifest_path: Path, results_path: Path,
                      problems: Problems) -> None:  # fmt: skip
    """A shard whose manifest is missing, unreadable or cancelled did not finish; one whose results changed after
    its manifest was written is not what the manifest vouches for."""
    manifest = read.manifest
    if manifest is None:
        if read.problem is not None:
            problems.add("invalid_manifest", f"shard {index}: {read.problem}", index, manifest_path, None, read.field)
        state = "has no manifest" if read.missing else "has an unreadable manifest"
        problems.add(
            "incomplete_shard", f"shard {index} {state}: it was killed or is still running", index, manifest_path
        )
        return
    if manifest.state == "cancelled":
        stopped = f" by {manifest.stop.signal}" if manifest.stop is not None else ""
        done = manifest.counts.passed + manifest.counts.failed + manifest.counts.errored
        problems.add(
            "incomplete_shard",
            f"shard {index} was cancelled{stopped} after {done} of {manifest.counts.cases} units: re-run the same "
            f"command to resume it",
            index, manifest_path,
        )  # fmt: skip
    if results_path.exists() and file_sha256(results_path) != manifest.results_sha256:
        problems.add(
            "checksum_mismatch", f"shard {index}: results changed after the manifest was written", index, results_path
        )


def shard_count_problems(
    present: set[int], totals_from_shards: Counter[int], expect_shards: int | None, problems: Problems
) -> tuple[int | None, list[int]]:
    """(the shard count the run expects, the shards that produced no folder): the caller's count, else the
    largest count a manifest names; shards that disagree, are missing or lie beyond it are problems."""
    expected = expect_shards
    if expected is None and totals_from_shards:
        expected = max(totals_from_shards)
    if len(totals_from_shards) > 1:
        problems.add("mixed_shard_count", f"shards disagree on the shard count: {sorted(totals_from_shards)}")
    if expect_shards is not None and totals_from_shards and set(totals_from_shards) != {expect_shards}:
        problems.add("mixed_shard_count", f"expected {expect_shards} shards, shards say {sorted(totals_from_shards)}")
    missing = sorted(set(range(expected or 0)) - present)
    for index in missing:
        problems.add("missing_shard", f"shard {index} of {expected} produced no folder", index)
    for index in sorted(i for i in present if expected is not None and i >= expected):
        problems.add("unexpected_shard", f"shard {index} is beyond the {expected} expected shards", index)
    return expected, missing


def identity_problems(identities: Counter[tuple[str, str]], problems: Problems) -> tuple[list[str], list[str]]:
    """(run ids, suite hashes) that manifests and records name; more than one of either is a problem."""
    run_ids = sorted({rid for rid, _ in identities})
    suites = sorted({sh for _, sh in identities})
    if len(run_ids) > 1:
        problems.add("mixed_run_id", f"shards belong to different runs: {', '.join(run_ids)}")
    if len(suites) > 1:
        problems.add(
            "mixed_suite", f"shards were run from different suite versions: {', '.join(s[:12] for s in suites)}"
        )
    return run_ids, suites


def provenance_notes(per_shard: list[ShardTiming]) -> list[str]:
    """Each way a shard's provenance differs from the first shard's, named (the gate's hook reads the same)."""
    first = next((s.provenance for s in per_shard if s.provenance is not None), None)
    if first is None:
        return []
    return [
        mismatch.message
        for shard in per_shard
        if shard.provenance is not None
        for mismatch in differences(first, shard.provenance, f"shard {shard.index}")
    ]


def latest_gate(manifests: dict[int, Manifest]) -> tuple[Gate, str | None]:
    """The gate of the most recently written manifest (the gate is no part of the results: a re-run with another
    gate rewrites only the manifests), and a note when the shards recorded different ones."""
    if not manifests:
        return Gate(), None
    newest = max(manifests.values(), key=lambda m: (m.finished_at, m.shard_index))
    others = sorted(i for i, m in manifests.items() if m.gate != newest.gate)
    if not others:
        return newest.gate, None
    return newest.gate, (
        f"shards {', '.join(map(str, others))} recorded another gate than the latest shard ({newest.shard_index}): "
        f"the latest one applies"
    )


def run_settings_agree(manifests: dict[int, Manifest], problems: Problems) -> None:
    """Every shard of a run selected the same cases and scored with the same metrics, G-Eval steps and judge."""
    for kind, label, value in (
        ("mixed_profile", "selected different cases (profile or dataset)",
         lambda m: (m.profile.name, m.profile.selection_sha256) if m.profile else None),
        ("mixed_g_eval_steps", "scored G-Eval with different evaluation steps", lambda m: m.g_eval_steps),
        ("mixed_judge", "used different judges or judge settings", lambda m: m.judge),
        ("mixed_scoring", "scored with different metrics, thresholds or DeepEval versions (re-run every shard "
         "with the same suite: the answers are re-scored, not asked again)", lambda m: m.scoring),
    ):  # fmt: skip
        seen: dict[str, list[int]] = {}
        for index, manifest in manifests.items():
            seen.setdefault(repr(value(manifest)), []).append(index)
        if len(seen) > 1:
            groups = "; ".join(f"shards {', '.join(map(str, indexes))}" for indexes in seen.values())
            problems.add(kind, f"the shards of this run {label}: {groups}")
