"""JUnit XML: valid against the Jenkins JUnit schema, one testcase per case and metric, errors apart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema

from evaluator.contract import Report, TargetInfo, VariantSummary
from evaluator.reporting import junit
from tests.reporting import junit_reference
from tests.reporting.real_runs import make_report

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "schemas" / "jenkins-junit-4.xsd")


def test_schema_is_live() -> None:
    """The validation below could pass vacuously if the schema accepted anything: it must not."""
    good = junit.render(make_report(4))
    SCHEMA.validate(good)
    for bad in (
        good.replace("<properties>", "<properties><oops/>", 1),
        good.replace(' tests="', ' tests_="', 2),
        good.replace("<testcase ", '<testcase name="x"><system-out/><failure/></testcase><testcase ', 1),
    ):
        assert not SCHEMA.is_valid(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_cases": 40, "total_shards": 4},
        {"n_cases": 40, "total_shards": 4, "missing_shards": (1,), "incomplete_shards": (2,), "errored_every": 3},
        {"n_cases": 1, "total_shards": 1},
    ],
)
def test_output_validates_against_the_jenkins_schema(kwargs: dict[str, object]) -> None:
    SCHEMA.validate(junit.render(make_report(**kwargs)))  # type: ignore[arg-type]


def test_one_testcase_per_case_and_metric_with_failures_and_errors_apart() -> None:
    report = make_report(30, total_shards=3, errored_every=5)
    root = ET.fromstring(junit.render(report))
    cases = root.findall("./testsuite/testcase")
    metrics = sorted(report.metrics)
    assert len(cases) == 30 * len(metrics)
    expected_failures = sum(1 for c in report.cases if c.error is None for m in metrics if not c.metrics[m].success)
    expected_errors = sum(len(metrics) for c in report.cases if c.error is not None)
    assert len(root.findall(".//failure")) == expected_failures > 0
    assert len(root.findall(".//error")) == expected_errors == 6 * len(metrics)
    assert root.get("tests") == str(len(cases))
    assert root.get("failures") == str(expected_failures) and root.get("errors") == str(expected_errors)
    # A failure carries the judge's reason; an error carries the infrastructure error kind, not a quality verdict.
    failing = next(c for c in report.cases if c.error is None and not c.metrics["answer_relevancy"].success)
    el = next(
        e for e in cases if e.get("name") == failing.case_id and e.get("classname", "").endswith(".answer_relevancy")
    )
    failure = el.find("failure")
    assert failure is not None and failing.metrics["answer_relevancy"].reason in (failure.text or "")
    errored = next(e for e in cases if e.get("name") == "case-00004")
    error = errored.find("error")
    assert error is not None and error.get("type") == "timeout" and errored.find("failure") is None


def test_properties_carry_run_id_commit_and_shard() -> None:
    report = make_report(10, total_shards=2)
    root = ET.fromstring(junit.render(report))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["smoke.shard-00000", "smoke.shard-00001"]
    for index, suite in enumerate(suites):
        props = {p.get("name"): p.get("value") for p in suite.findall("./properties/property")}
        assert props["run_id"] == report.run_id
        assert props["commit"] == report.commit
        assert props["shard"] == str(index) and props["total_shards"] == "2"


def test_missing_shards_turn_into_errors() -> None:
    report = make_report(12, total_shards=3, missing_shards=(2,))
    root = ET.fromstring(junit.render(report))
    aggregate = root.find("testsuite[@name='smoke.aggregate']")
    assert aggregate is not None
    errors = aggregate.findall("./testcase/error")
    assert [e.get("type") for e in errors] == ["missing_shard"]


def test_control_characters_from_a_model_do_not_break_the_xml() -> None:
    report = make_report(2, total_shards=1)
    report.cases[0].input = "bell \x07 null \x00 esc \x1b and <tags> & ]]>"
    for m in report.cases[0].metrics.values():
        m.success = False
        m.reason = "judge said \x0c no"
    report.cases[0].success = False
    text = junit.render(report)
    SCHEMA.validate(text)
    assert "<tags>" in (ET.fromstring(text).find(".//failure").text or "")  # type: ignore[union-attr]


def _variant_report() -> Report:
    """Two variants with cases, a third without any, the reference first."""
    report = make_report(12, total_shards=2, errored_every=4)
    half = len(report.cases) // 2
    for index, case in enumerate(report.cases):
        case.variant = "base" if index < half else "cand"
    report.variants = {
        name: VariantSummary(
            totals=report.totals, metrics=report.metrics,
            target=TargetInfo(model=f"model-{name}", endpoint="http://127.0.0.1:1/v1", max_tokens=8, temperature=0.0),
        )
        for name in ("base", "cand", "empty")
    }  # fmt: skip
    report.reference = "base"
    return report


def _hostile_report() -> Report:
    """Text that XML must escape or cannot hold, in every place a case puts text; a case missing a metric."""
    report = make_report(3, total_shards=1)
    first = report.cases[0]
    first.case_id = 'id "quoted" <&> tab\there\nline'
    first.input = 'bell \x07 null \x00 esc \x1b and <tags> & ]]> "q" \t\r\n end \ud800 \ufffe'
    first.metadata = {"note": "a\nb <c>", "list": [1, "<2>"]}
    for entry in first.metrics.values():
        entry.success = False
        entry.reason = "judge said \x0c no <b>&amp;</b>"
    first.success = False
    report.cases[1].metrics.pop(sorted(report.cases[1].metrics)[0])
    next(iter(report.cases[2].metrics.values())).error = "judge timed out\r\n<again>"
    return report


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_report(40, total_shards=4),
        lambda: make_report(40, total_shards=4, missing_shards=(1,), incomplete_shards=(2,), errored_every=3),
        lambda: make_report(1, total_shards=1),
        lambda: make_report(0, total_shards=1),
        _variant_report,
        _hostile_report,
    ],
    ids=["plain", "problems", "one-case", "no-case", "variants", "hostile-text"],
)
def test_the_streaming_writer_writes_what_elementtree_wrote(build: Callable[[], Report]) -> None:
    """`render` writes text directly (issue 22: no tree of 200,000 elements); the document must stay the one the
    ElementTree writer produced, byte for byte, so Jenkins reads exactly what it read before."""
    report = build()
    text = junit.render(report)
    assert text == junit_reference.render(report)
    ET.fromstring(text)
