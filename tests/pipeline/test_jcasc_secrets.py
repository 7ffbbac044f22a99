"""One secret rule for every secret JCasC reads (issue 17, item 4), proven against the real substitutor.

configuration-as-code resolves `${trim:${readFile:FILE}}` with Apache commons-text's StringSubstitutor,
substituting inside variable names and again inside values. Run here with Debian's libcommons-text-java on
Debian's JDK (tests/pipeline/jcasc/CascResolve.java configures it exactly as SecretSourceResolver does): a
secret holding `:-` or `${` comes out changed. The ci_stack role refuses such secrets with one rule
(ansible/roles/ci_stack/vars/main.yml); everything the rule admits survives the real substitutor unchanged;
and the Molecule stand-in of Jenkins (standins.jenkins.py) resolves exactly as the real one does."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pipeline import ci_stack
from tests.pipeline.conftest import REPO
from tests.pipeline.jenkins_standin import JENKINS

JARS = [Path("/usr/share/java/commons-text.jar"), Path("/usr/share/java/commons-lang3.jar")]
HARNESS = Path(__file__).with_name("jcasc") / "CascResolve.java"
RULE = yaml.safe_load((REPO / "ansible" / "roles" / "ci_stack" / "vars" / "main.yml").read_text())[
    "ci_stack_jcasc_secret_pattern"
]


def real_jcasc(values: list[str], env: dict[str, str] | None = None, strict: bool = True) -> list[tuple[bool, str]]:
    """Each configuration value resolved by the real commons-text, configured as JCasC configures it."""
    if shutil.which("java") is None or not all(jar.exists() for jar in JARS):
        pytest.fail("needs Debian's JDK and libcommons-text-java (apt-get install $(cat scripts/apt/pipeline.txt))")
    lines = "".join(base64.b64encode(v.encode()).decode() + "\n" for v in values)
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/home/jenkins-test"} | (env or {})
    environment["CASC_STRICT_SECRET_RESOLUTION"] = "true" if strict else "false"
    done = subprocess.run(
        ["java", "-cp", ":".join(map(str, JARS)), str(HARNESS)], input=lines, env=environment,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = []
    for line in done.stdout.splitlines():
        status, _, payload = line.partition(" ")
        results.append((status == "OK", base64.b64decode(payload).decode()))
    assert len(results) == len(values)
    return results


def stand_in(value: str, env: dict[str, str], strict: bool = True) -> tuple[bool, str]:
    try:
        return True, JENKINS.resolve(value, env, strict)
    except JENKINS.Unresolved as exc:
        return False, str(exc)


def as_file_reference(tmp_path: Path, secrets: list[str]) -> list[str]:
    references = []
    for i, secret in enumerate(secrets):
        path = tmp_path / f"secret-{i}"
        path.write_bytes(secret.encode())
        references.append(f"${{trim:${{readFile:{path}}}}}")
    return references


def test_the_real_substitutor_rewrites_secrets_with_a_default_separator_or_a_reference(tmp_path: Path) -> None:
    """What the issue reported, reproduced with the real commons-text."""
    secrets = ["Correct:-horse-battery\n", "abc${HOME}def\n", "-leading-dash\n", "trailing space \n"]
    resolved = real_jcasc(as_file_reference(tmp_path, secrets))
    # `trim:-leading...` is the variable `trim` with a default: the dash is lost and nothing is trimmed.
    assert resolved == [(True, "Correct"), (True, "abc/home/jenkins-testdef"), (True, "leading-dash\n"),
                        (True, "trailing space")]  # fmt: skip
    assert not any(re.match(RULE, s) for s in secrets), "the rule must refuse every one of them"


SECRET_TEXT = st.lists(
    st.sampled_from([*"aZ09$:-{}^\\/ !#%&*+=?@_.,'\"é€\t", "${HOME}", ":-", "${trim:x}", "^${X}", "${X:-d}"]),
    min_size=1,
    max_size=12,
).map(lambda parts: "".join(parts) + "\n")


@settings(max_examples=1, deadline=None)
@given(st.lists(SECRET_TEXT, min_size=300, max_size=300))
def test_what_the_rule_admits_survives_the_real_substitutor_and_the_stand_in_agrees(
    tmp_path_factory: pytest.TempPathFactory, secrets: list[str]
) -> None:
    """300 generated secrets through one JVM: each one the rule admits comes out as written (trailing newline
    trimmed); for all of them, admitted or not, the Molecule stand-in gives what the real substitutor gives."""
    tmp_path = tmp_path_factory.mktemp("secrets")
    secrets += ["Tr0ub4dor&3\n", "github_pat_11AAAAAAA0123456789abcdef\n", "pa}ss{word\n", "x^y\\z\n", "ok:dash-\n"]
    references = as_file_reference(tmp_path, secrets)
    env = {"HOME": "/home/jenkins-test", "X": "ex"}
    real = real_jcasc(references, env)
    admitted = 0
    for secret, reference, outcome in zip(secrets, references, real, strict=True):
        assert stand_in(reference, env) == outcome, f"the stand-in differs from commons-text on {secret!r}"
        if re.match(RULE, secret):
            admitted += 1
            assert outcome == (True, secret.rstrip("\n")), f"{secret!r} came out as {outcome!r}"
    assert admitted >= 50, admitted  # the generator reaches both sides of the rule


def test_the_stand_in_and_the_real_substitutor_agree_on_the_casc_forms_themselves() -> None:
    values = ["${FOO:-default}", "^${FOO}", "^^${FOO}", "${A}:${B:-b}", "${protocol:-https}://${FOO:-x}",
              "${trim:${FOO}}", "${MISSING}", "${:-d}", "${FOO:-a:-b}", "plain", "$FOO", "${FOO"]  # fmt: skip
    env = {"FOO": "foo\n", "A": "a"}
    for strict in (True, False):
        assert [stand_in(v, env, strict) for v in values] == real_jcasc(values, env, strict)


def test_every_secret_casc_reads_is_under_the_rule() -> None:
    """The secrets an admin gives, and the generated ones (hex keys, an ed25519 public key line): each file casc
    reads with trim is either checked by validate.yml with the rule, or generated in a form the rule admits."""
    casc = "".join(p.read_text() for p in (REPO / "jenkins" / "casc").glob("*.yaml"))
    trimmed = set(re.findall(r"\$\{trim:\$\{readFile:/run/secrets/([^}]+)\}\}", casc))
    given = {"jenkins-admin-password": "ci_stack_jenkins_admin_password", "github-token": "ci_stack_github_token",
             "registry-password": "ci_stack_registry_password"}  # fmt: skip
    generated = {"release-forward-hmac": "0f" * 32 + "\n", "release-gwt-token": "a1" * 32 + "\n",
                 "agent-host-key.pub": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnR7Gq0p2bQe0pGZl8 \n"}  # fmt: skip
    assert trimmed == set(given) | set(generated)
    validate = (REPO / "ansible" / "roles" / "ci_stack" / "tasks" / "validate.yml").read_text()
    for variable in given.values():
        assert f"{variable} is match(ci_stack_jcasc_secret_pattern)" in validate, variable
    for name, example in generated.items():
        assert re.match(RULE, example.replace(" \n", "\n")), name


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"ci_stack_jenkins_admin_password": "Correct:-horse-battery"}, "':-'"),
        ({"ci_stack_github_token": "ghp_abc${HOME}def"}, "'$'"),
        ({"ci_stack_jenkins_admin_password": "-leading-dash-pw"}, "start with"),
    ],
)
def test_the_role_refuses_such_a_secret_before_it_touches_the_host(
    tmp_path: Path, overrides: dict[str, str], needle: str
) -> None:
    done = ci_stack.validate(tmp_path, **overrides)
    assert done.returncode != 0
    assert "Check the Jenkins and webhook secrets" in done.stdout and needle in done.stdout, done.stdout[-3000:]
    assert next(iter(overrides.values())) not in done.stdout + done.stderr  # no_log: the value is never shown


def test_the_role_accepts_secrets_the_rule_admits(tmp_path: Path) -> None:
    done = ci_stack.validate(tmp_path, ci_stack_jenkins_admin_password="Tr0ub4dor&3 pa}ss{word: ok-")
    assert done.returncode == 0, done.stdout[-3000:]
