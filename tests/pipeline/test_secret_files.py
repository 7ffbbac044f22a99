"""One secret, three readers: the sender (the release-trigger workflow's signing step, given the GitHub secret),
the receiver (`release-receiver serve --secret-file`) and Jenkins (configuration-as-code's
`${trim:${readFile:...}}`, emulated by the Molecule stand-in, ansible/molecule/default/standins.jenkins.py).

Each content below is a file (or secret) an admin might write. Either all three end up with the same key bytes,
or the sender and the receiver refuse it with a clear message: a secret Jenkins would read differently (not
UTF-8, or with characters trim keeps) must never be used on one side only."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from release_receiver import ConfigError
from release_receiver.verify import read_secret
from tests.pipeline.conftest import REPO
from tests.pipeline.jenkins_standin import JENKINS

HEX = "9b2f0c4d6e8a1b3c5d7e9f0a2b4c6d8e"


CONTENTS = [
    HEX.encode(),
    HEX.encode() + b"\n",  # echo SECRET > file
    HEX.encode() + b"\r\n",  # an editor on Windows
    HEX.encode() + b" \t\n\n",
    HEX.encode() + b"\x1c",  # trailing control that Java counts as whitespace
    b"bWFkZSB3aXRoIG9wZW5zc2wgcmFuZCAtYmFzZTY0IDI0+/8=\n",  # openssl rand -base64
    b"release-secret-for-tests\n",  # base64url alphabet
    b"\xff\xfe" + HEX.encode(),  # not UTF-8: Jenkins would read U+FFFD, never these bytes
    b"caf\xc3\xa9" + HEX.encode(),  # UTF-8, but not hex or base64
    b"It's a Secret to Everybody\n",
    b" " + HEX.encode(),  # leading space: trim keeps it
    b"-" + HEX.encode() + b"\n",  # JCasC reads ${trim:-...} as the variable `trim` with a default: the dash is lost
    HEX.encode() + "\u00a0".encode(),  # no-break space: Java's trim keeps it
    HEX.encode() + "\u2003\n".encode(),  # em space: Java strips it; refused here rather than guessed
    b"\n",
]


def jenkins_reads(path: Path) -> bytes:
    """The HMAC key Jenkins uses: the credential's string (as casc resolves it), UTF-8 encoded (the plugin's
    getBytes(UTF_8))."""
    value: str = JENKINS.resolve(f"${{trim:${{readFile:{path}}}}}", {}, strict=True)
    return value.encode("utf-8")


SEND_STEP = next(
    step["run"]
    for step in yaml.safe_load((REPO / ".github" / "workflows" / "release-trigger.yml").read_text())["jobs"]["trigger"][
        "steps"
    ]
    if "signature=" in step.get("run", "")
)
SIGN_SNIPPET = SEND_STEP.split("signature=\"$(python3 -c '", 1)[1].split('\' "$payload")"', 1)[0]


def sender_signs(secret: bytes, body_file: Path) -> tuple[int, str]:
    """The workflow's own signing snippet, run with the GitHub secret in its environment as bytes."""
    env = {b"PATH": os.environb[b"PATH"], b"WEBHOOK_SECRET": secret}
    result = subprocess.run(
        [sys.executable, "-c", SIGN_SNIPPET, str(body_file)], env=env, capture_output=True, timeout=30, check=False
    )
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", errors="replace").strip()


@pytest.mark.parametrize("content", CONTENTS, ids=lambda c: repr(c)[:40])
def test_sender_receiver_and_jenkins_agree_or_refuse(tmp_path: Path, content: bytes) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(content)
    body = b'{"action":"closed"}'
    (tmp_path / "body").write_bytes(body)
    try:
        receiver_key: bytes | None = read_secret(secret_file)
    except ConfigError as exc:
        receiver_key = None
        assert str(secret_file) in exc.message
        assert any(word in exc.message for word in ("not UTF-8", "hex or base64", "empty")), exc.message
    code, output = sender_signs(content, tmp_path / "body")
    if receiver_key is None:
        # Refused on every side that can refuse; Jenkins cannot, which is why the others must.
        assert code != 0, f"the sender signed with a secret the receiver refuses: {output}"
        assert "hex or base64" in output or "not UTF-8" in output or "empty" in output, output
        return
    assert receiver_key == jenkins_reads(secret_file)
    assert code == 0, output
    assert output == "sha256=" + hmac.new(receiver_key, body, hashlib.sha256).hexdigest()


def test_strict_resolution_refuses_a_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(JENKINS.Unresolved):
        jenkins_reads(tmp_path / "missing")
    # What strict mode prevents: without it, a missing file is an empty password.
    assert JENKINS.resolve(f"${{trim:${{readFile:{tmp_path / 'missing'}}}}}", {}, strict=False) == ""


def test_the_emulation_shows_why_a_leading_dash_is_refused(tmp_path: Path) -> None:
    """commons-text's StringSubstitutor splits `trim:-abc` at the first ':-': variable `trim`, default `abc`."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"-abc123\n")
    assert jenkins_reads(secret_file) == b"abc123\n"
