"""Merge every shard folder into one report, and write down every reason not to trust it.

Fail closed: a missing, incomplete, corrupt or foreign shard, a damaged record or manifest, or a case counted
twice, is recorded in `problems` (with the file, line and field) and the gate refuses any report that has one.
Damage never stops the aggregate: a report that names what is wrong is more useful than a traceback. The
report is the single input of the gate, the reports (JUnit, Markdown, HTML), the baseline diff and `capacity`.

This module reads the shards (two passes, below); the checks of the manifests are in `run_checks`, the running
numbers in `tallies`, the report's summary in `report_assembly`.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import threading
from array import array
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby, islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import pydantic_core

from evaluator.contract import CasesWriter, Manifest, Report, ReportCase, Shards, ShardTiming, SuiteInfo, unit_key
from evaluator.errors import InputError
from evaluator.formats.shard import _RecordHead
from evaluator.policy import DEFAULT_VARIANT, Gate
from evaluator.report_assembly import build_report, compare_settings
from evaluator.results import MANIFEST_FILE, RESULTS_FILE, ShardFile, read_manifest, scan_results, shard_dirs
from evaluator.run_checks import (
    Problems,
    identity_problems,
    latest_gate,
    manifest_problems,
    provenance_notes,
    run_settings_agree,
    shard_count_problems,
)
from evaluator.tallies import Summaries


class _CaseList:
    """Where the merged cases go when the caller wants them in memory (the Python API, tests)."""

    def __init__(self) -> None:
        self.cases: list[ReportCase] = []

    def add(self, case: dict[str, Any]) -> None:
        self.cases.append(ReportCase.model_validate(case))


class _CaseFile:
    """Where they go for `evaluator aggregate`: straight into the report's sidecar, one line at a time (pydantic's
    JSON writer: the same JSON as the standard library's, several times faster)."""

    def __init__(self, path: Path) -> None:
        self.writer = CasesWriter(path)

    def add(self, case: dict[str, Any]) -> None:
        self.writer.write_bytes(pydantic_core.to_json(case))


@dataclass
class _ShardScan:
    """What the first pass keeps of one shard: where each valid record is, not the record (memory is 8 bytes a
    line plus one int a record, whatever the record holds)."""

    index: int
    results_path: Path
    manifest: Manifest | None
    offsets: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    case_indexes: array[int] = field(default_factory=lambda: array("q"))
    variant_ids: array[int] = field(default_factory=lambda: array("l"))
    order: array[int] = field(default_factory=lambda: array("q"))
    cases: int = 0
    errored: int = 0
    stale: int = 0


@dataclass
class _Seen:
    """What the first pass gathers across shards: identities, shard counts, variants, manifests."""

    identities: Counter[tuple[str, str]] = field(default_factory=Counter)
    totals_from_shards: Counter[int] = field(default_factory=Counter)
    variant_ids: dict[str, int] = field(default_factory=dict)
    manifests: dict[int, Manifest] = field(default_factory=dict)


def aggregate(
    out: Path, *, expect_shards: int | None = None, gate: Gate | None = None, cases_to: Path | None = None
) -> Report:
    """Builds the report of the run whose shard folders are under `out`.

    Two passes, so memory does not grow with what the records hold: the first validates every line of every
    shard and keeps only where each valid record is and its sort key (case index, variant); the second merges the
    shards in report order (a k-way merge of the per-shard sorted keys), reads each unit's records back, decides
    duplicates, adds the winner to running summaries and hands it on: to `cases_to` (the report's gzip sidecar,
    written as it goes; the returned report then has no `cases` in memory) or, without it, into `Report.cases`.
    """
    if not out.is_dir():
        raise InputError(f"{out}: not a directory")
    folders = list(shard_dirs(out))
    if not folders:
        raise InputError(f"{out}: no shard-NNNNN folders; did any `evaluator run --out {out}` happen?")
    problems = Problems()
    seen = _Seen()
    scans = _scan_all(folders, seen, problems)
    manifests = seen.manifests
    present = {index for index, _ in folders}
    expected, missing = shard_count_problems(present, seen.totals_from_shards, expect_shards, problems)
    run_ids, suites = identity_problems(seen.identities, problems)
    run_settings_agree(manifests, problems)
    first = next(iter(manifests.values()), None)
    variants = _variant_order(first, seen.variant_ids)
    sink: _CaseList | _CaseFile = _CaseFile(cases_to) if cases_to is not None else _CaseList()
    shared = len(variants) == 1 and set(seen.variant_ids) <= set(variants)
    summaries = Summaries(variants, keep_cases=len(variants) > 1, shared=shared)
    try:
        _merge(scans, variants, seen.variant_ids, problems, sink, summaries)
        cases_file = sink.writer.close() if isinstance(sink, _CaseFile) else None
    except BaseException:
        if isinstance(sink, _CaseFile):
            sink.writer.abandon()
        raise

    _intervals_ahead(summaries, compare_settings(first).confidence)

    per_shard = [
        ShardTiming(
            index=scan.index,
            cases=scan.cases,
            errored=scan.errored,
            started_at=scan.manifest.started_at,
            finished_at=scan.manifest.finished_at,
            wall_time_s=scan.manifest.wall_time_s,
            endpoints=scan.manifest.endpoints,
            state=scan.manifest.state,
            provenance=scan.manifest.provenance,
        )
        for scan in scans
        if scan.manifest is not None
    ]
    complete = sorted(i for i, m in manifests.items() if m.state == "complete")
    cancelled = sorted(i for i, m in manifests.items() if m.state == "cancelled")
    notes = provenance_notes(per_shard)
    run_gate, gate_note = latest_gate(manifests)
    notes += [gate_note] if gate_note else []
    return build_report(
        summaries,
        cases=sink.cases if isinstance(sink, _CaseList) else [],
        cases_file=cases_file,
        problems=problems,
        run_id=first.run_id if first else (run_ids[0] if run_ids else None),
        suite=SuiteInfo(
            name=first.suite_name if first else None,
            hash=first.suite_hash if first else (suites[0] if suites else None),
            path=first.suite_path if first else None,
            max_calls_per_endpoint=first.max_calls_per_endpoint if first else None,
        ),
        results_dir=str(out),
        commit=first.commit if first else None,
        shards=Shards(
            expected=expected,
            complete=complete,
            missing=missing,
            incomplete=sorted(present - set(complete)),
            cancelled=cancelled,
            per_shard=per_shard,
        ),
        gate=gate or run_gate,
        first=first,
        variants=variants,
        notes=notes,
    )


def _intervals_ahead(summaries: Summaries, confidence: float) -> None:
    """The metric means' intervals, each in a forked process of its own when there are CPUs and enough scores to
    share (a betting interval is a dozen passes over its scores): the report's numbers are the same either way."""
    jobs = summaries.interval_jobs()
    if sum(len(tally.metric_scores[name]) for tally, name in jobs) < _FORKED_INTERVALS_FROM:
        return
    workers = _fork_workers(len(jobs))
    if workers >= 2:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            summaries.compute_intervals(confidence, pool.map)


_FORKED_INTERVALS_FROM = 20_000  # scores: fewer take less time than forking


def _scan_all(folders: list[tuple[int, Path]], seen: _Seen, problems: Problems) -> list[_ShardScan]:
    """The first pass over every shard, in shard order. Validating every line is most of the aggregate's work and
    each shard's is its own: with several CPUs and shards, forked processes share it (only from a process with no
    other thread, which a fork could leave holding a lock); what they find is merged in shard order, so the
    report is the same either way."""
    workers = _fork_workers(len(folders))
    if workers < 2:
        return [_scan(index, folder, seen, problems) for index, folder in folders]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        found = pool.starmap(_scan_alone, folders, chunksize=1)
    scans = []
    for scan, alone, shard_problems in found:
        ids = [seen.variant_ids.setdefault(name, len(seen.variant_ids)) for name in alone.variant_ids]
        scan.variant_ids = array("l", [ids[vid] for vid in scan.variant_ids])
        seen.identities.update(alone.identities)
        seen.totals_from_shards.update(alone.totals_from_shards)
        seen.manifests.update(alone.manifests)
        problems.extend(shard_problems)
        scans.append(scan)
    return scans


_MAX_SCAN_PROCESSES = 4


def _fork_workers(jobs: int) -> int:
    """How many forked processes may share `jobs` pieces of work: at most one a CPU, and none (0) from a process
    with another thread (a fork copies one thread and every lock as it was) or where fork does not exist."""
    workers = min(jobs, len(os.sched_getaffinity(0)), _MAX_SCAN_PROCESSES)
    if workers < 2 or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return workers


def _scan_alone(index: int, folder: Path) -> tuple[_ShardScan, _Seen, Problems]:
    """`_scan` in a process of its own: what it found, for the parent to merge."""
    seen, problems = _Seen(), Problems()
    return _scan(index, folder, seen, problems), seen, problems


def _scan(index: int, folder: Path, seen: _Seen, problems: Problems) -> _ShardScan:
    """The first pass over one shard: its manifest checked, every line validated, where each valid record is."""
    results_path, manifest_path = folder / RESULTS_FILE, folder / MANIFEST_FILE
    read = read_manifest(manifest_path)
    manifest = read.manifest
    manifest_problems(index, read, manifest_path, results_path, problems)
    if manifest is not None:
        seen.identities[(manifest.run_id, manifest.suite_hash)] += 1
        seen.totals_from_shards[manifest.total_shards] += 1
    scan = _ShardScan(index, results_path, manifest)
    unassigned = {unit_key(v, cid) for v, cid in manifest.units()} if manifest is not None else set()
    content = ShardFile()
    variant_ids, identities = seen.variant_ids, seen.identities
    for line, offset, record in scan_results(results_path, content):
        identities[(record.run_id, record.suite_hash)] += 1
        if record.shard_index != index:
            problems.add(
                "misplaced_record", f"record of shard {record.shard_index} found in shard {index}", index,
                results_path, line,
            )  # fmt: skip
        unassigned.discard(unit_key(record.variant, record.case_id))
        scan.offsets.append(offset)
        scan.lines.append(line)
        scan.case_indexes.append(record.case_index)
        scan.variant_ids.append(variant_ids.setdefault(record.variant, len(variant_ids)))
    for bad in content.problems:
        problems.add(bad.kind, f"shard {index}: {bad.message}", index, results_path, bad.line, bad.field)
    if manifest is not None:
        if manifest.state != "cancelled":  # a cancelled shard's incomplete_shard problem says it already
            missing_cases = [(v, cid) for v, cid in manifest.units() if unit_key(v, cid) in unassigned]
            for variant, cid in missing_cases[:20]:
                problems.add("missing_case", f"shard {index}: assigned {_unit(variant, cid)} has no result",
                             index, results_path)  # fmt: skip
        # the case list is what the manifest weighs; nothing after this pass reads it
        scan.manifest = seen.manifests[index] = manifest.model_copy(update={"case_ids": [], "case_variants": []})
    return scan


_HEAD_FIELDS = frozenset(_RecordHead.model_fields) | {"schema", "scored_with", "rescored"}
_Entry = tuple[int, int, dict[str, Any]]  # (position of the shard's scan, line, record)


@dataclass
class _Merging:
    """What the second pass reads, set before its processes fork (they inherit it: nothing is sent to them)."""

    scans: list[_ShardScan]
    variants: list[str]
    keep_cases: bool
    shared: bool


@dataclass
class _Part:
    """What a forked process merged of one range of units: the cases' JSON lines, their summaries, the problems
    found, and the (cases, errored, stale) it counted for each shard."""

    block: bytes  # the cases' JSON lines, each followed by a newline
    lengths: array[int]  # each line's, without it
    summaries: Summaries
    problems: Problems
    counts: list[tuple[int, int, int]]


class _CaseLines:
    """The sink of a forked process: the cases' JSON lines, for the parent to write in report order."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def add(self, case: dict[str, Any]) -> None:
        self.lines.append(pydantic_core.to_json(case))

    def block(self) -> bytes:
        """The lines as one block, each followed by a newline (one object to send, and to free, not one a line)."""
        return b"\n".join([*self.lines, b""])


_Sink = _CaseList | _CaseFile | _CaseLines
_MERGE_PART = 10_000  # records a forked process merges at a time (~5 MB of case lines)
_merging: _Merging | None = None


def _merge(
    scans: list[_ShardScan],
    variants: list[str],
    variant_ids: dict[str, int],
    problems: Problems,
    sink: _CaseList | _CaseFile,
    summaries: Summaries,
) -> None:
    """The second pass: every unit's records in report order (case index, then the suite's variant order), the
    duplicate rules applied (within a shard the last record wins; across shards the first shard's), each winner
    summarised and handed to `sink` as a ReportCase's JSON.

    Into a cases file, with CPUs to share it, forked processes merge consecutive ranges of units (a unit's records
    are all in one range) and the parent writes their lines and adds their summaries range by range, in report
    order: the same file, summaries and problems as one process merging them all."""
    position = {name: i for i, name in enumerate(variants)}
    rank = [0] * len(variant_ids)
    for name, vid in variant_ids.items():
        rank[vid] = position.get(name, len(variants))
    width = len(variants) + 1
    for scan in scans:  # one sorted 8-byte int a record: (case index, variant rank, line) packed
        scan.order = array("q", sorted(
            ((ci * width + rank[vid]) << 32) | i
            for i, (ci, vid) in enumerate(zip(scan.case_indexes, scan.variant_ids, strict=True))
        ))  # fmt: skip
        scan.case_indexes, scan.variant_ids = array("q"), array("l")
    bounds = _part_bounds(scans) if isinstance(sink, _CaseFile) else []
    workers = _fork_workers(len(bounds) + 1) if bounds else 0
    if workers < 2 or not isinstance(sink, _CaseFile):
        _merge_range(scans, variants, problems, sink, summaries, None, None)
        return
    global _merging
    _merging = _Merging(scans, variants, summaries.keep_cases, summaries.shared)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            ranges = iter(zip([None, *bounds], [*bounds, None], strict=True))
            # two ranges a process in flight: the parent holds a few ranges' lines, however far behind it falls
            pending = deque(pool.apply_async(_merge_part, (keys,)) for keys in islice(ranges, 2 * workers))
            while pending:
                part = pending.popleft().get()
                pending.extend(pool.apply_async(_merge_part, (keys,)) for keys in islice(ranges, 1))
                _add_part(part, scans, problems, sink, summaries)
    finally:
        _merging = None


def _part_bounds(scans: list[_ShardScan]) -> list[int]:
    """The unit keys where the ranges of about `_MERGE_PART` records a forked process merges start (none: one
    range), from a sample of every shard's sorted keys."""
    total = sum(len(scan.order) for scan in scans)
    parts = -(-total // _MERGE_PART)
    if parts < 2:
        return []
    step = max(1, total // (parts * 64))
    sample = sorted(packed >> 32 for scan in scans for packed in scan.order[::step])
    return sorted({sample[len(sample) * j // parts] for j in range(1, parts)} - {sample[0]})


def _merge_part(keys: tuple[int | None, int | None]) -> _Part:
    """One range of units merged in a forked process, counted from zero (the parent adds the counts up)."""
    state = _merging
    assert state is not None
    for scan in state.scans:
        scan.cases = scan.errored = scan.stale = 0
    sink, problems = _CaseLines(), Problems()
    summaries = Summaries(state.variants, keep_cases=state.keep_cases, shared=state.shared)
    _merge_range(state.scans, state.variants, problems, sink, summaries, *keys)
    counts = [(scan.cases, scan.errored, scan.stale) for scan in state.scans]
    return _Part(sink.block(), array("q", map(len, sink.lines)), summaries, problems, counts)


def _add_part(part: _Part, scans: list[_ShardScan], problems: Problems, sink: _CaseFile,
              summaries: Summaries) -> None:  # fmt: skip
    """A forked process's range, after the ranges before it: its lines written, its summaries and counts added,
    and its stale-scoring problems kept while its shard has had no more than 20 (what `_decide_one` keeps)."""
    stale_before: dict[int | None, int] = {scan.index: scan.stale for scan in scans}
    for scan, (cases, errored, stale) in zip(scans, part.counts, strict=True):
        scan.cases += cases
        scan.errored += errored
        scan.stale += stale
    stale_seen: Counter[int | None] = Counter()
    for problem in part.problems:
        if problem.kind == "stale_scoring":
            stale_seen[problem.shard] += 1
            if stale_before.get(problem.shard, 0) + stale_seen[problem.shard] > _STALE_SHOWN:
                continue
        problems.append(problem)
    sink.writer.write_block(part.block, part.lengths)
    summaries.extend(part.summaries)


def _merge_range(
    scans: list[_ShardScan],
    variants: list[str],
    problems: Problems,
    sink: _Sink,
    summaries: Summaries,
    low: int | None,
    high: int | None,
) -> None:
    """The units whose keys are from `low` up to (not including) `high` (None: no limit), merged in report order."""
    handles = [scan.results_path.open("rb") if scan.order else None for scan in scans]
    try:

        def keyed(position_: int, scan: _ShardScan) -> Iterator[tuple[int, int, int]]:
            order = scan.order
            if low is not None or high is not None:  # a copy of the range (8 bytes a record), not a walk to it
                start = 0 if low is None else bisect_left(order, low << 32)
                order = order[start : len(order) if high is None else bisect_left(order, high << 32)]
            for packed in order:
                yield packed >> 32, position_, packed & 0xFFFFFFFF

        def read(where: int, i: int) -> _Entry:
            handle = handles[where]
            assert handle is not None
            handle.seek(scans[where].offsets[i])
            return where, scans[where].lines[i], _parse(handle.readline())

        merged = heapq.merge(*(keyed(p, scan) for p, scan in enumerate(scans)))
        for _, group in groupby(merged, key=itemgetter(0)):
            entries = [read(where, i) for _, where, i in group]
            if len(entries) == 1:  # the common case: one record of one unit
                record = entries[0][2]
                variant = record.get("variant", DEFAULT_VARIANT)
                _hand_on(variant, _decide_one(variant, entries[0], scans, problems), scans, sink, summaries)
                continue
            units: dict[tuple[str, str], list[_Entry]] = {}
            for item in entries:
                units.setdefault((item[2].get("variant", DEFAULT_VARIANT), item[2]["case_id"]), []).append(item)
            for (variant, case_id), records in units.items():
                _hand_on(variant, _decide(variant, case_id, records, scans, problems), scans, sink, summaries)
    finally:
        for handle in handles:
            if handle is not None:
                handle.close()


def _parse(line: bytes) -> dict[str, Any]:
    """A record the first pass validated, parsed again: by pydantic's parser (the first pass's, and about twice as
    fast as the standard library's), else as the first pass's fallback read it."""
    try:
        record: dict[str, Any] = pydantic_core.from_json(line)
    except ValueError:
        record = json.loads(line)
    return record


def _hand_on(variant: str, winner: _Entry, scans: list[_ShardScan], sink: _Sink,
             summaries: Summaries) -> None:  # fmt: skip
    """The winning record as a ReportCase's JSON (the record without its run, suite and shard fields, with the
    shard it came from), into the summaries and the sink."""
    case = winner[2]  # read for this unit alone: taken apart in place
    for name in _HEAD_FIELDS.intersection(case):
        del case[name]
    case["variant"] = variant
    case["shard"] = scans[winner[0]].index
    summaries.add(case)
    sink.add(case)


def _decide(variant: str, case_id: str, records: list[_Entry], scans: list[_ShardScan], problems: Problems) -> _Entry:
    """The record that stands for a unit (records in shard, then line order), and a problem for each duplicate."""
    kept: _Entry | None = None
    for where, shard_records in groupby(records, key=itemgetter(0)):
        scan = scans[where]
        latest: _Entry | None = None
        for entry in shard_records:
            if latest is not None and latest[2].get("error") is None and not _rescores(entry[2], latest[2]):
                problems.add(
                    "duplicate_case",
                    f"{_unit(variant, case_id)} recorded twice in shard {scan.index} (lines {latest[1]} and "
                    f"{entry[1]})",
                    scan.index, scan.results_path, entry[1],
                )  # fmt: skip
            latest = entry
        assert latest is not None
        _decide_one(variant, latest, scans, problems)
        if kept is None:
            kept = latest
            continue
        problems.add(
            "duplicate_case",
            f"{_unit(variant, case_id)} in shard {scan.index} (line {latest[1]}) and shard {scans[kept[0]].index} "
            f"(line {kept[1]})",
            scan.index, scan.results_path, latest[1],
        )  # fmt: skip
    assert kept is not None
    return kept


def _decide_one(variant: str, entry: _Entry, scans: list[_ShardScan], problems: Problems) -> _Entry:
    """A shard's record of a unit counted in its shard, and checked against the scoring its manifest says."""
    scan, record = scans[entry[0]], entry[2]
    scan.cases += 1
    error = record.get("error")
    if error is not None:
        scan.errored += 1
        return entry
    scoring = scan.manifest.scoring if scan.manifest is not None else {}
    if scoring and record.get("scored_with", {}) != scoring:
        scan.stale += 1
        if (
            scan.stale <= _STALE_SHOWN
        ):  # an errored record kept by --keep-errors is counted as an error, whatever its scoring
            problems.add(
                "stale_scoring",
                f"shard {scan.index}: {_unit(variant, record['case_id'])} was scored otherwise than its manifest "
                f"says (metrics {sorted(record.get('scored_with', {}))} vs {sorted(scoring)})",
                scan.index, scan.results_path, entry[1],
            )  # fmt: skip
    return entry


_STALE_SHOWN = 20  # stale-scoring problems a shard names (the count is in its per-shard numbers)


def _unit(variant: str, case_id: str) -> str:
    """A unit as a message names it: the bare case id for the implicit variant, as the dataset names it."""
    return f"case {case_id!r}" + (f" of variant {variant!r}" if variant != DEFAULT_VARIANT else "")


def _variant_order(first: Manifest | None, seen: Iterable[str]) -> list[str]:
    """The suite's variant order (the manifests record every variant's target), else the order seen."""
    if first is not None and first.targets:
        return list(first.targets)
    return list(seen) or [DEFAULT_VARIANT]


def _rescores(record: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """A later record of a unit that re-scores the earlier one (same answer, other scoring), not a duplicate."""
    return bool(
        record.get("rescored")
        and record.get("actual_output") == earlier.get("actual_output")
        and record.get("scored_with", {}) != earlier.get("scored_with", {})
    )
