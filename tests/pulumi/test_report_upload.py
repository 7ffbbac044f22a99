"""The opt-in upload of a run's report to S3-compatible object storage, against moto's S3 API on 127.0.0.1.

The aggregate Job's `upload` init container runs factory/upload.py's text (stdlib only) in the evaluator image; here
the very command and environment the rendered Job gives it run against a local moto server, and its signature is
held to botocore's own SigV4 signer for the same request.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from factory import evaluation, upload
from factory.settings import SettingsError, parse
from pulumi_harness import stack_config

UPLOAD = {"endpoint": "http://127.0.0.1:1", "bucket": "eval-reports", "prefix": "releases", "secret": "report-upload"}
EGRESS = [{"cidr": "10.0.0.0/8", "ports": [443, 9000]}]
KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}


def uploading(endpoint: str) -> Any:
    config = stack_config("prod")
    config["results"] = dict(config["results"], upload=dict(UPLOAD, endpoint=endpoint))
    config["eval"] = dict(config["eval"], egress=EGRESS)
    return parse(config, "prod", "Pulumi.prod.yaml")


@pytest.fixture
def s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def run_upload_container(
    job: dict[str, Any], report: Path, extra_env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The rendered `upload` init container's command, with its env (the Secret's keys filled in) and the report."""
    init = job["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["aggregate", "upload"]  # after the report exists, before the gate
    (container,) = [c for c in init if c["name"] == "upload"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert {r["name"] for r in secret_refs.values()} == {"report-upload"}
    assert not any(r.get("optional") for r in secret_refs.values())  # no credentials, no upload: fail closed
    env = {**env, **{k: KEYS[k] for k in secret_refs}, "EVAL_UPLOAD_FILE": str(report), **extra_env}
    command = [sys.executable, *container["command"][1:]]
    return subprocess.run(command, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=60)


def test_the_rendered_upload_puts_the_report_into_the_bucket(s3: str, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    client.create_bucket(Bucket="eval-reports")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"run_id": "r1", "totals": {"passed": 3}}))
    job = evaluation.aggregate_job(uploading(s3), "r1", "0123456")
    done = run_upload_container(job, report, {})
    assert done.returncode == 0, done.stderr
    assert "eval-reports/releases/r1/report.json stored" in done.stdout
    stored = client.get_object(Bucket="eval-reports", Key="releases/r1/report.json")["Body"].read()
    assert json.loads(stored) == {"run_id": "r1", "totals": {"passed": 3}}


def test_a_report_v5_goes_up_with_its_cases_file_first(s3: str, tmp_path: Path) -> None:
    """Report v5 keeps its cases in a file beside REPORT.json: a report pulled back from the bucket (a baseline)
    must find them, so the upload stores both under the same prefix, the cases first."""
    import boto3

    import evaluator
    from tests.helpers import pre_recorded_run

    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    client.create_bucket(Bucket="eval-reports")
    report = tmp_path / "report.json"
    evaluator.write_report(evaluator.aggregate(pre_recorded_run(tmp_path / "run", 6, 2)), report)
    assert json.loads(report.read_text())["cases_file"]["path"] == "report.cases.jsonl.gz"
    done = run_upload_container(evaluation.aggregate_job(uploading(s3), "r1", "0123456"), report, {})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "releases/r1/report.cases.jsonl.gz stored" in lines[0] and "releases/r1/report.json stored" in lines[1]
    back = tmp_path / "back"
    back.mkdir()
    for name in ("report.json", "report.cases.jsonl.gz"):
        client.download_file("eval-reports", f"releases/r1/{name}", str(back / name))
    assert evaluator.load_report(back / "report.json") == evaluator.load_report(report)


def test_an_upload_that_fails_fails_the_step_without_printing_the_credentials(s3: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{}")
    job = evaluation.aggregate_job(uploading(s3), "r1", "0123456")
    done = run_upload_container(job, report, {"EVAL_UPLOAD_BUCKET": "no-such-bucket"})
    assert done.returncode == 4 and "did not reach object storage" in done.stderr and "NoSuchBucket" in done.stderr
    unreachable = run_upload_container(job, report, {"EVAL_UPLOAD_ENDPOINT": "http://127.0.0.1:9"})
    assert unreachable.returncode == 4
    for output in (done.stdout + done.stderr, unreachable.stdout + unreachable.stderr):
        assert KEYS["AWS_SECRET_ACCESS_KEY"] not in output


def test_the_signature_is_botocores_sigv4_for_the_same_request() -> None:
    """AWS Signature Version 4 as botocore computes it (S3SigV4Auth), same time, same payload."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    now = datetime.datetime(2025, 5, 1, 12, 30, 45, tzinfo=datetime.UTC)
    url = "http://127.0.0.1:9000/eval-reports/releases/r1/report.json"
    payload = b'{"run_id": "r1"}'
    ours = upload.sign("PUT", url, payload, KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"], "eu-west-1", now)
    request = botocore.awsrequest.AWSRequest(method="PUT", url=url, data=payload)
    credentials = botocore.credentials.Credentials(KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"])
    fixed = mock.Mock(wraps=datetime.datetime)
    fixed.utcnow.return_value = now.replace(tzinfo=None)
    with mock.patch.object(botocore.auth.datetime, "datetime", fixed):
        botocore.auth.S3SigV4Auth(credentials, "s3", "eu-west-1").add_auth(request)
    assert request.headers["X-Amz-Date"] == ours["x-amz-date"]
    assert request.headers["X-Amz-Content-SHA256"] == ours["x-amz-content-sha256"]
    assert request.headers["Authorization"] == ours["Authorization"]


def test_an_upload_needs_its_egress_and_a_usable_endpoint() -> None:
    config = stack_config("prod")
    config["results"] = dict(config["results"], upload=UPLOAD)
    with pytest.raises(SettingsError, match=r"eval\.egress: .*the report upload to http://127\.0\.0\.1:1"):
        parse(config, "prod", "Pulumi.prod.yaml")
    config["eval"] = dict(config["eval"], egress=EGRESS)
    config["results"]["upload"] = dict(UPLOAD, endpoint="s3.example.com")
    with pytest.raises(SettingsError, match=r"results\.upload\.endpoint: expected the S3 endpoint's URL"):
        parse(config, "prod", "Pulumi.prod.yaml")
    assert "upload" not in json.dumps(
        evaluation.aggregate_job(parse(stack_config("prod"), "prod", "x"), "r1", "0123456")
    )
