"""`release-receiver` as the pipeline calls it: GitHub's example end to end, parameters, exit codes, and
clear one-line errors (never a traceback) for bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.conftest import MERGE_SHA, REPO, body_of, release_payload

GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def receiver(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    if args[:1] in (("verify",), ("serve",)) and "--repository" not in args:
        args = (*args, "--repository", "acme/ai-eval-factory")  # the repository of conftest's payloads
    process = subprocess.run(
        [sys.executable, "-m", "release_receiver", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        process.args, process.returncode, process.stdout.decode(), process.stderr.decode()
    )


def test_sign_trims_the_secret_file_like_jenkins_and_the_sender(tmp_path: Path) -> None:
    """`echo SECRET > FILE` leaves a newline; the key is SECRET, as Jenkins' ${trim:${readFile:FILE}} reads it."""
    secret = tmp_path / "secret"
    secret.write_text("9b2f0c4d6e8a1b3c5d7e9f0a2b4c6d8e\n")
    result = receiver("sign", "--secret-file", str(secret), stdin=b"Hello, World!")
    assert result.returncode == 0, result.stderr
    expected = hmac.new(b"9b2f0c4d6e8a1b3c5d7e9f0a2b4c6d8e", b"Hello, World!", hashlib.sha256).hexdigest()
    assert result.stdout.strip() == "sha256=" + expected


def test_a_secret_that_is_not_hex_or_base64_is_refused_with_the_reason(tmp_path: Path) -> None:
    """GitHub's documented example secret has spaces and a quote: fine for the HMAC itself (test_webhook_signature
    checks GitHub's example there), refused as a secret file, which Jenkins and the sender must read identically."""
    secret = tmp_path / "secret"
    secret.write_text("It's a Secret to Everybody\n")
    result = receiver("sign", "--secret-file", str(secret), stdin=b"Hello, World!")
    assert result.returncode == 2
    assert "hex or base64" in result.stderr and str(secret) in result.stderr
    assert "Traceback" not in result.stderr


def _signed(secret_file: Path, payload: dict[str, object]) -> tuple[bytes, str]:
    body = body_of(payload)
    signature = receiver("sign", "--secret-file", str(secret_file), stdin=body).stdout.strip()
    return body, signature


def test_verify_prints_parameters_as_json_and_env(secret_file: Path, tmp_path: Path) -> None:
    now = int(time.time())
    payload = release_payload(merged_at=now, release_trigger={"delivery": "gh-1", "timestamp": now})
    body, signature = _signed(secret_file, payload)
    common = ["--secret-file", str(secret_file), "--signature", signature, "--timestamp", str(now)]
    store = ["--store", str(tmp_path / "replay.sqlite")]
    as_json = receiver("verify", *common, "--delivery", "gh-1", *store, stdin=body)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["commit"] == MERGE_SHA
    replay = receiver("verify", *common, "--delivery", "gh-1", *store, stdin=body)
    assert replay.returncode == 2
    assert replay.stderr.startswith("error: replay:")
    as_env = receiver("verify", *common, "--delivery", "gh-1", "--format", "env", stdin=body)
    assert as_env.returncode == 0, as_env.stderr
    assert f"COMMIT={MERGE_SHA}" in as_env.stdout.splitlines()
    assert "PR_NUMBER=42" in as_env.stdout.splitlines()


def test_verify_exits_1_for_an_authentic_delivery_that_builds_nothing(secret_file: Path) -> None:
    body, signature = _signed(secret_file, release_payload(action="opened"))
    result = receiver(
        "verify", "--secret-file", str(secret_file), "--signature", signature, "--delivery", "gh-2",
        "--no-require-timestamp", stdin=body,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "ignored" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--secret-file", "/nonexistent/secret", "--signature", GITHUB_SIGNATURE, "--delivery", "x"], "cannot read"),
        (["--signature", "sha256=" + "0" * 64, "--delivery", "x", "--no-require-timestamp"], "signature"),
        (["--delivery", "x", "--no-require-timestamp"], "missing X-Hub-Signature-256"),
    ],
)
def test_bad_input_is_one_clear_line_not_a_traceback(secret_file: Path, args: list[str], needle: str) -> None:
    if "--secret-file" not in args:
        args = ["--secret-file", str(secret_file), *args]
    result = receiver("verify", *args, stdin=b"{}")
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = receiver("sign", "--secret-file", str(empty), stdin=b"x")
    assert result.returncode == 2
    assert "empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_non_loopback_address_and_a_missing_store(secret_file: Path, tmp_path: Path) -> None:
    # (A store under tmp_path: a fixed /tmp path may be anything on a shared machine.)
    public = receiver("serve", "--secret-file", str(secret_file), "--host", "0.0.0.0", "--store", str(tmp_path / "s"))
    assert public.returncode == 2
    assert "loopback" in public.stderr
    no_store = receiver("serve", "--secret-file", str(secret_file))
    assert no_store.returncode == 2
    assert "--store" in no_store.stderr


def test_serve_runs_as_a_process_on_loopback(secret_file: Path, tmp_path: Path) -> None:
    """`release-receiver serve` as frpc's local target: GitHub's own delivery format (no timestamp)."""
    import re
    import urllib.error
    import urllib.request

    from release_receiver import sign
    from tests.pipeline.conftest import SECRET

    process = subprocess.Popen(
        [
            sys.executable, "-m", "release_receiver", "serve", "--secret-file", str(secret_file),
            "--store", str(tmp_path / "replay.sqlite"), "--port", "0", "--no-require-timestamp",
            "--repository", "acme/ai-eval-factory",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/hooks/release)", line)
        assert match, line
        body = body_of(release_payload(merged_at=time.time()))
        headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
        request = urllib.request.Request(
            match.group(1), data=body, method="POST", headers=headers | {"X-Hub-Signature-256": sign(SECRET, body)}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            assert json.loads(response.read())["accepted"]["commit"] == MERGE_SHA
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 409
    finally:
        process.terminate()
        process.wait(timeout=10)
