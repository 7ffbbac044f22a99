"""JUnit XML for Jenkins' `junit` step: one testcase per evaluation case and metric.

Shape (valid against the junit-4.xsd that Jenkins' JUnit parsers accept; see tests/reporting/schemas/):
one <testsuite> per shard carrying run id, commit and shard as <properties> (the schema allows properties on a
suite only) or, when the suite compares variants, one <testsuite> per variant (its model, whether it is the
reference, its pass rate and its paired difference from the reference as properties; testcase classnames
`evaluator.<suite>.<variant>.<metric>`); quality failures as <failure> with the judge's reason, infrastructure
errors as <error> (Jenkins counts them apart), and one extra <testsuite name="...aggregate"> with an <error> per
recorded problem (a missing shard must turn the build red even though it has no cases).

Times: a case is timed once, on its first metric's testcase (the others say 0): its metrics share the case's
calls, and Jenkins sums testcase times, so repeating the case's time per metric multiplied the run's time by the
number of metrics. Jenkins takes a testsuite's duration from its `time` attribute (junit-plugin's SuiteResult) and
the run's as the sum over testsuites: a shard's testsuite carries the shard's wall time; the variants of a run
share its wall time (their cases ran interleaved), so each variant's testsuite carries the share of the run's wall
time that its cases' times are of all cases' times, and the testsuites add up to the run's wall time.

Written as text, element by element (no ElementTree of 200,000 testcases held and indented at the end): the bytes
are what `xml.etree.ElementTree` wrote before, indented by `ET.indent(space=" ")`, with its escaping of text and
attribute values (tests/reporting/test_report_junit.py compares the two on every shape).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from evaluator.contract import Report, ReportCase
from evaluator.reporting.fields import metadata_text

# XML 1.0 forbids most control characters; LLM output contains them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _clean(value: Any, limit: int = 20_000) -> str:
    text = "" if value is None else str(value)
    if not (text.isascii() and text.isprintable()):  # printable ASCII holds nothing to replace
        text = _INVALID_XML.sub("\ufffd", text)
    return text if len(text) <= limit else text[:limit] + "…"


def _text(text: str) -> str:
    """Character data escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _attr(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it (quotes, and line ends as character references)."""
    text = _text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _tag(opening: str, attributes: Iterable[tuple[str, Any]]) -> str:
    """`opening a="v" ...` (opening is the indented `<name`; unclosed: the caller ends it with `>` or ` />`)."""
    return opening + "".join(f' {key}="{_attr(str(value))}"' for key, value in attributes)


def _classname(suite: str, metric: str) -> str:
    safe = _UNSAFE_NAME.sub("_", suite) or "suite"
    return f"evaluator.{safe}.{metric}"


class _Suite:
    """One <testsuite>: its testcases are written as they come, its counts go into its opening tag at the end."""

    def __init__(self, name: str, props: dict[str, Any]) -> None:
        self.name = name
        self.lines = ["  <properties>"]
        self.lines += [f"{_tag('   <property', (('name', k), ('value', _clean(v))))} />" for k, v in props.items()]
        self.lines.append("  </properties>")
        self.counts = {"tests": 0, "failures": 0, "errors": 0}

    def cases(self, cases: Iterable[ReportCase], metrics: list[str], classname: str) -> None:
        """Each case's testcases, one per metric (`metrics`, else the case's own), in the given order."""
        lines, counts = self.lines, self.counts
        classnames: dict[str, str] = {}
        for case in cases:
            name = _attr(_clean(case.case_id))
            details: str | None = None
            for position, metric in enumerate(metrics or sorted(case.metrics)):
                metric_class = classnames.get(metric)
                if metric_class is None:
                    metric_class = classnames[metric] = _attr(f"{classname}.{metric}")
                seconds = f"{case.duration_s:.3f}" if position == 0 else "0.000"  # see the module doc
                head = f'  <testcase name="{name}" classname="{metric_class}" time="{seconds}"'
                counts["tests"] += 1
                entry = case.metrics.get(metric)
                if case.error is None and entry is not None and not entry.error and entry.success:
                    lines.append(head + " />")
                    continue
                if details is None:
                    details = _text(_details(case))
                lines.append(head + ">")
                if case.error is not None:
                    attributes = (("type", _clean(case.error.kind)), ("message", _clean(case.error.message, 1000)))
                    lines.append(f"{_tag('   <error', attributes)}>{details}</error>")
                    counts["errors"] += 1
                elif entry is None:
                    attributes = (("type", "not_evaluated"), ("message", f"metric {metric} has no result"))
                    lines.append(f"{_tag('   <error', attributes)} />")
                    counts["errors"] += 1
                elif entry.error:
                    attributes = (("type", "metric"), ("message", _clean(entry.error, 1000)))
                    lines.append(f"{_tag('   <error', attributes)}>{details}</error>")
                    counts["errors"] += 1
                else:
                    score = entry.score
                    message = (
                        f"{metric} score {score if score is None else round(score, 4)} below threshold "
                        f"{entry.threshold}"
                    )
                    reason = _clean(entry.reason) or "(the judge gave no reason)"
                    attributes = (("type", "quality"), ("message", message))
                    lines.append(f"{_tag('   <failure', attributes)}>{_text(reason)}\n\n{details}</failure>")
                    counts["failures"] += 1
                lines.append("  </testcase>")

    def write(self, out: list[str], time: str, timestamp: str | None = None) -> None:
        attributes: list[tuple[str, Any]] = [("name", self.name), *self.counts.items(), ("skipped", "0")]
        attributes.append(("time", time))
        if timestamp:
            attributes.append(("timestamp", timestamp))
        out.append(_tag(" <testsuite", attributes) + ">")
        out.extend(self.lines)
        out.append(" </testsuite>")


def _details(case: ReportCase) -> str:
    details = f"input: {_clean(case.input, 4000)}\nactual_output: {_clean(case.actual_output, 4000)}"
    if case.metadata:
        details += f"\nmetadata: {_clean(metadata_text(case.metadata, 2000))}"
    return details


def _in_order(cases: Iterable[ReportCase]) -> list[ReportCase]:
    return sorted(cases, key=lambda c: (c.case_index, c.case_id))


def _variant_suites(report: Report, out: list[str], totals: dict[str, int]) -> float:
    """One <testsuite> per variant; returns the run's wall time they share (see the module doc)."""
    suite = report.suite.name or "suite"
    metrics = sorted(report.metrics)
    pairs = {p.candidate: p for p in report.comparisons}
    by_variant: dict[str, list[ReportCase]] = {name: [] for name in report.variants}
    for case in report.cases:
        if case.variant in by_variant:
            by_variant[case.variant].append(case)
    busy = sum(c.duration_s for c in report.cases)
    wall = report.totals.wall_time_s or busy
    for name, summary in report.variants.items():
        cases = by_variant[name]
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
        ts = _Suite(f"{suite}.{name}", props)
        ts.cases(_in_order(cases), metrics, "evaluator." + _UNSAFE_NAME.sub("_", f"{suite}.{name}"))
        seconds = wall * sum(c.duration_s for c in cases) / busy if busy else 0.0
        for key, value in ts.counts.items():
            totals[key] += value
        ts.write(out, f"{seconds:.3f}")
    return wall


def lines(report: Report) -> list[str]:
    """The document's lines after the XML declaration (join with newlines): the <testsuites> element."""
    suite = report.suite.name or "suite"
    run_id, commit = report.run_id or "", report.commit or ""
    shards = report.shards
    total_shards = shards.expected or 0
    metrics = sorted(report.metrics)
    out: list[str] = []
    totals = {"tests": 0, "failures": 0, "errors": 0}
    time_total = 0.0
    by_shard: dict[int, list[ReportCase]] = {}
    if len(report.variants) > 1:
        time_total = _variant_suites(report, out, totals)
    else:
        for case in report.cases:
            by_shard.setdefault(case.shard, []).append(case)
    wall = {p.index: p.wall_time_s for p in shards.per_shard}
    started = {p.index: p.started_at or "" for p in shards.per_shard}
    classname = _classname(suite, "")[:-1]
    for shard in sorted(by_shard):
        ts = _Suite(
            f"{suite}.shard-{shard:05d}",
            {"run_id": run_id, "commit": commit, "shard": shard, "total_shards": total_shards, "suite": suite,
             "suite_hash": report.suite.hash or ""},
        )  # fmt: skip
        ts.cases(_in_order(by_shard[shard]), metrics, classname)
        shard_time = wall.get(shard) or sum(c.duration_s for c in by_shard[shard])
        ts.write(out, f"{shard_time:.3f}", started[shard][:19] if started.get(shard) else None)
        for key, value in ts.counts.items():
            totals[key] += value
        time_total = max(time_total, shard_time)
    problems = report.problems
    unlisted = sorted(set(shards.missing + shards.incomplete) - {p.shard for p in problems if p.shard is not None})
    if problems or unlisted:
        ts = _Suite(f"{suite}.aggregate", {"run_id": run_id, "commit": commit, "shard": "all",
                                           "total_shards": total_shards})  # fmt: skip
        for p in problems:
            where = ", ".join(
                f"{k} {v}" for k, v in (("shard", p.shard), ("file", p.file), ("line", p.line)) if v not in (None, "")
            )
            ts.lines.append(_tag("  <testcase", (("name", f"{p.kind} {where}".strip()),
                                                 ("classname", "evaluator.aggregate"))) + ">")  # fmt: skip
            ts.lines.append(_tag("   <error", (("type", _clean(p.kind)), ("message", _clean(p.message)))) + " />")
            ts.lines.append("  </testcase>")
        for shard in unlisted:
            ts.lines.append(f'  <testcase name="shard {shard}" classname="evaluator.aggregate">')
            ts.lines.append(f'   <error type="missing_shard" message="shard {shard} has no results" />')
            ts.lines.append("  </testcase>")
        n = len(problems) + len(unlisted)
        ts.counts = {"tests": n, "failures": 0, "errors": n}
        ts.write(out, "0")
        totals["tests"] += n
        totals["errors"] += n
    head = _tag("<testsuites", [("name", f"evaluator {suite}"), *totals.items(),
                                ("time", f"{report.totals.wall_time_s or time_total:.3f}")])  # fmt: skip
    if not out:
        return [head + " />"]
    return [head + ">", *out, "</testsuites>"]


def render(report: Report) -> str:
    """The JUnit XML document as text (UTF-8 declared)."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(lines(report)) + "\n"
