"""JUnit XML: valid against the Jenkins JUnit schema, one testcase per case and metric, errors apart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from evaluator.reporting import junit
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
