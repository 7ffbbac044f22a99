"""The JUnit writer as it was before it wrote text directly: an ElementTree, indented and serialized at the end.

Kept only as the reference `junit.render` must equal byte for byte (tests/reporting/test_report_junit.py), so the
streaming writer cannot drift from the document Jenkins has been reading. Not used by the evaluator.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from evaluator.contract import Report, ReportCase
from evaluator.reporting.fields import metadata_text

# XML 1.0 forbids most control characters; LLM output contains them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(value: Any, limit: int = 20_000) -> str:
    text = _INVALID_XML.sub("\ufffd", "" if value is None else str(value))
    return text if len(text) <= limit else text[:limit] + "…"


def _classname(suite: str, metric: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", suite) or "suite"
    return f"evaluator.{safe}.{metric}"


def _time(case: ReportCase, first: bool) -> str:
    """The case's time on its first metric's testcase, 0 on the others (see the module doc)."""
    return f"{case.duration_s:.3f}" if first else "0.000"


def _testcase(case: ReportCase, metric: str, suite: str, first: bool) -> tuple[ET.Element, str]:
    """The <testcase> of one case and metric, and its outcome: pass, failure or error."""
    el = ET.Element(
        "testcase",
        {"name": _clean(case.case_id), "classname": _classname(suite, metric), "time": _time(case, first)},
    )
    return _outcome(el, case, metric)


def _outcome(el: ET.Element, case: ReportCase, metric: str) -> tuple[ET.Element, str]:
    entry = case.metrics.get(metric)
    details = f"input: {_clean(case.input, 4000)}\nactual_output: {_clean(case.actual_output, 4000)}"
    if case.metadata:
        details += f"\nmetadata: {_clean(metadata_text(case.metadata, 2000))}"
    if case.error is not None:
        attributes = {"type": _clean(case.error.kind), "message": _clean(case.error.message, 1000)}
        ET.SubElement(el, "error", attributes).text = details
        outcome = "error"
    elif entry is None:
        ET.SubElement(el, "error", {"type": "not_evaluated", "message": f"metric {metric} has no result"})
        outcome = "error"
    elif entry.error:
        ET.SubElement(el, "error", {"type": "metric", "message": _clean(entry.error, 1000)}).text = details
        outcome = "error"
    elif not entry.success:
        score = entry.score
        message = f"{metric} score {score if score is None else round(score, 4)} below threshold {entry.threshold}"
        reason = _clean(entry.reason) or "(the judge gave no reason)"
        ET.SubElement(el, "failure", {"type": "quality", "message": message}).text = f"{reason}\n\n{details}"
        outcome = "failure"
    else:
        outcome = "pass"
    return el, outcome


def _properties(parent: ET.Element, props: dict[str, Any]) -> None:
    el = ET.SubElement(parent, "properties")
    for name, value in props.items():
        ET.SubElement(el, "property", {"name": name, "value": _clean(value)})


def _variant_suites(report: Report, root: ET.Element, totals: dict[str, int]) -> float:
    """One <testsuite> per variant; returns the run's wall time they share (see the module doc)."""
    suite = report.suite.name or "suite"
    metrics = sorted(report.metrics)
    pairs = {p.candidate: p for p in report.comparisons}
    busy = sum(c.duration_s for c in report.cases)
    wall = report.totals.wall_time_s or busy
    for name, summary in report.variants.items():
        cases = report.cases_of(name)
        ts = ET.SubElement(root, "testsuite", {"name": f"{suite}.{name}"})
        props: dict[str, Any] = {
            "run_id": report.run_id or "", "commit": report.commit or "", "suite": suite,
            "suite_hash": report.suite.hash or "", "variant": name,
            "model": summary.target.model if summary.target is not None else "",
            "reference": str(name == report.reference).lower(),
            "pass_rate": "" if summary.totals.pass_rate is None else f"{summary.totals.pass_rate:.4f}",
            "profile": (report.profile.name or "") if report.profile else "",
            "judge": report.judge.model if report.judge else "",
        }  # fmt: skip
        pair = pairs.get(name)
        if pair is not None and pair.pass_rate.difference is not None:
            low, high = pair.pass_rate.ci_low, pair.pass_rate.ci_high
            props["pass_rate_difference"] = f"{pair.pass_rate.difference:+.4f}"
            props["pass_rate_difference_ci"] = "" if low is None or high is None else f"{low:+.4f} {high:+.4f}"
            props["flipped_to_fail"] = len(pair.flipped_to_fail)
        _properties(ts, props)
        counts = {"tests": 0, "failure": 0, "error": 0}
        classname = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{suite}.{name}")
        for case in sorted(cases, key=lambda c: (c.case_index, c.case_id)):
            for position, metric in enumerate(metrics or sorted(case.metrics)):
                el = ET.Element(
                    "testcase",
                    {"name": _clean(case.case_id), "classname": f"evaluator.{classname}.{metric}",
                     "time": _time(case, position == 0)},
                )  # fmt: skip
                _, outcome = _outcome(el, case, metric)
                ts.append(el)
                counts["tests"] += 1
                if outcome in counts:
                    counts[outcome] += 1
        seconds = wall * sum(c.duration_s for c in cases) / busy if busy else 0.0
        for key, value in (("tests", counts["tests"]), ("failures", counts["failure"]), ("errors", counts["error"])):
            ts.set(key, str(value))
            totals[key] += value
        ts.set("skipped", "0")
        ts.set("time", f"{seconds:.3f}")
    return wall


def build(report: Report) -> ET.Element:
    """The <testsuites> tree for report."""
    suite = report.suite.name or "suite"
    run_id, commit = report.run_id or "", report.commit or ""
    shards = report.shards
    total_shards = shards.expected or 0
    metrics = sorted(report.metrics)
    by_shard: dict[int, list[ReportCase]] = {}
    for case in report.cases:
        by_shard.setdefault(case.shard, []).append(case)
    root = ET.Element("testsuites", {"name": f"evaluator {suite}"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    time_total = 0.0
    if len(report.variants) > 1:
        time_total = _variant_suites(report, root, totals)
        by_shard = {}
    wall = {p.index: p.wall_time_s for p in shards.per_shard}
    started = {p.index: p.started_at or "" for p in shards.per_shard}
    for shard in sorted(by_shard):
        ts = ET.SubElement(root, "testsuite", {"name": f"{suite}.shard-{shard:05d}"})
        _properties(
            ts,
            {"run_id": run_id, "commit": commit, "shard": shard, "total_shards": total_shards, "suite": suite,
             "suite_hash": report.suite.hash or ""},
        )  # fmt: skip
        counts = {"tests": 0, "failure": 0, "error": 0}
        for case in sorted(by_shard[shard], key=lambda c: (c.case_index, c.case_id)):
            for position, metric in enumerate(metrics or sorted(case.metrics)):
                el, outcome = _testcase(case, metric, suite, position == 0)
                ts.append(el)
                counts["tests"] += 1
                if outcome in counts:
                    counts[outcome] += 1
        shard_time = wall.get(shard) or sum(c.duration_s for c in by_shard[shard])
        ts.set("tests", str(counts["tests"]))
        ts.set("failures", str(counts["failure"]))
        ts.set("errors", str(counts["error"]))
        ts.set("skipped", "0")
        ts.set("time", f"{shard_time:.3f}")
        if started.get(shard):
            ts.set("timestamp", started[shard][:19])
        totals["tests"] += counts["tests"]
        totals["failures"] += counts["failure"]
        totals["errors"] += counts["error"]
        time_total = max(time_total, shard_time)
    problems = report.problems
    unlisted = sorted(set(shards.missing + shards.incomplete) - {p.shard for p in problems if p.shard is not None})
    if problems or unlisted:
        ts = ET.SubElement(root, "testsuite", {"name": f"{suite}.aggregate"})
        _properties(ts, {"run_id": run_id, "commit": commit, "shard": "all", "total_shards": total_shards})
        n = 0
        for p in problems:
            where = ", ".join(
                f"{k} {v}" for k, v in (("shard", p.shard), ("file", p.file), ("line", p.line)) if v not in (None, "")
            )
            el = ET.SubElement(
                ts, "testcase", {"name": f"{p.kind} {where}".strip(), "classname": "evaluator.aggregate"}
            )
            ET.SubElement(el, "error", {"type": _clean(p.kind), "message": _clean(p.message)})
            n += 1
        for shard in unlisted:
            el = ET.SubElement(ts, "testcase", {"name": f"shard {shard}", "classname": "evaluator.aggregate"})
            ET.SubElement(el, "error", {"type": "missing_shard", "message": f"shard {shard} has no results"})
            n += 1
        ts.set("tests", str(n))
        ts.set("failures", "0")
        ts.set("errors", str(n))
        ts.set("skipped", "0")
        ts.set("time", "0")
        totals["tests"] += n
        totals["errors"] += n
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{report.totals.wall_time_s or time_total:.3f}")
    return root


def render(report: Report) -> str:
    """The JUnit XML document as text (UTF-8 declared)."""
    root = build(report)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
