#!/usr/bin/env python3
"""STAND-IN for the Jenkins controller in the Molecule test of the ci_stack role (no Jenkins can run here).

It reads the real jenkins/casc/*.yaml the stack mounts (CASC_JENKINS_CONFIG) and does, for the release path
only, what the plugins do with them:

- configuration-as-code: resolves `${...}` like its SecretSourceResolver (environment variables with `:-`
  defaults; readFile decoded as UTF-8 with replacement characters; readFileBase64; trim = strip trailing
  whitespace as Java's Character.isWhitespace sees it) and, with CASC_STRICT_SECRET_RESOLUTION=true, refuses to
  start on anything unresolved (a missing secret file), as the plugin aborts the configuration;
- Generic Webhook Trigger: POST /generic-webhook-trigger/invoke is accepted only from an address the whitelist
  admits (an empty host admits anyone, as in the plugin), with X-Hub-Signature-256 the HMAC-SHA256 of the body
  keyed by the whitelist credential's UTF-8 bytes, and the job token as `Authorization: Bearer`; the release
  job's genericVariables (`$.key`) are extracted and appended to $JENKINS_HOME/triggers.jsonl;
- the SSH agent: `standins.jenkins.py agent-check` connects to the node's host with the node's private key,
  pinning the host key the node declares (OpenSSH here, trilead in Jenkins), and runs `docker version` there.

Every line it prints starts with "STAND-IN". Tests import `resolve` to compare it with the receiver and sender.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Java's Character.isWhitespace, which StringUtils.stripEnd(s, null) uses (JCasC's TrimLookup): the ASCII
# controls \t \n \x0b \x0c \r \x1c-\x1f, the space, and the Unicode space separators except the no-break ones.
_JAVA_WHITESPACE = set("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u1680\u2028\u2029\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B) if c != 0x2007
}


class Unresolved(Exception):
    """What JCasC's strict mode aborts the configuration with."""


def java_strip_end(value: str) -> str:
    end = len(value)
    while end > 0 and value[end - 1] in _JAVA_WHITESPACE:
        end -= 1
    return value[:end]


def _read_file(path: str) -> str | None:
    try:
        return Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def _read_file_base64(path: str) -> str | None:
    try:
        return base64.b64encode(Path(path).read_bytes()).decode()
    except OSError:
        return None


LOOKUPS: dict[str, Callable[[str], str | None]] = {
    "readFile": _read_file,
    "file": _read_file,
    "readFileBase64": _read_file_base64,
    "fileBase64": _read_file_base64,
    "base64": lambda key: base64.b64encode(key.encode()).decode(),
    "decodeBase64": lambda key: base64.b64decode(key).decode("utf-8", errors="replace"),
    "trim": java_strip_end,
}


def _interpolate(name: str, env: Mapping[str, str]) -> str | None:
    """FixedInterpolatorStringLookup: "prefix:key" to the prefix's lookup, else (or when it gives None) the
    secret sources (here the environment, as EnvSecretSource)."""
    prefix, colon, key = name.partition(":")
    if colon:
        lookup = LOOKUPS.get(prefix) or next((v for k, v in LOOKUPS.items() if k.lower() == prefix.lower()), None)
        value = lookup(key) if lookup is not None else None
        if value is not None:
            return value
    return env.get(name)


def _substitute(buf: list[str], offset: int, length: int, lookup: Callable[[str], str | None],
                nested: bool, preserve_escapes: bool, prior: list[str]) -> int:  # fmt: skip
    """commons-text 1.x StringSubstitutor.substitute(builder, offset, length, priorVariables): prefix "${",
    suffix "}", escape '^', value delimiter ":-", substitution in variable names when `nested`, and in values
    always (the resolved value is scanned again, with the same cycle check). Returns the length change."""
    pos, end, change_total = offset, offset + length, 0
    while pos < end:
        if buf[pos] != "$" or pos + 1 >= end or buf[pos + 1] != "{":
            pos += 1
            continue
        if pos > offset and buf[pos - 1] == "^":
            if preserve_escapes:
                pos += 1
                continue
            del buf[pos - 1]
            change_total -= 1
            end -= 1
            continue
        start = pos
        pos += 2
        depth = 0
        while pos < end:
            if nested and buf[pos] == "$" and pos + 1 < end and buf[pos + 1] == "{":
                depth += 1
                pos += 2
                continue
            if buf[pos] != "}":
                pos += 1
                continue
            if depth:
                depth -= 1
                pos += 1
                continue
            expression = buf[start + 2 : pos]
            if nested:
                _substitute(expression, 0, len(expression), lookup, nested, preserve_escapes, prior)
            text = "".join(expression)
            pos += 1
            name, default = text, None
            if ":-" in text:
                name, default = text.split(":-", 1)
            if name in prior:
                raise Unresolved(f"Infinite loop in property interpolation of {name}")
            prior.append(name)
            value = lookup(name)
            if value is None:
                value = default
            if value is not None:
                buf[start:pos] = list(value)
                change = _substitute(buf, start, len(value), lookup, nested, preserve_escapes, prior)
                change += len(value) - (pos - start)
                pos += change
                end += change
                change_total += change
            prior.pop()
            break
    return change_total


def resolve(text: str, env: Mapping[str, str], strict: bool) -> str:
    """One configuration value as JCasC's SecretSourceResolver resolves it (configuration-as-code 2117, on
    commons-text's StringSubstitutor): a first pass with the lookups and the environment, escapes preserved; a
    second that turns whatever is left unresolved into "" or, in strict mode, aborts. tests/pipeline/
    test_jcasc_secrets.py holds this port against the real commons-text (Debian's libcommons-text-java)."""
    if not text.strip() or "${" not in text:
        return text
    buf = list(text)
    _substitute(buf, 0, len(buf), lambda name: _interpolate(name, env), True, True, [])

    def unresolved(name: str) -> str:
        if strict:
            raise Unresolved(f"Unable to resolve variable '{name}'. Aborting configuration reload.")
        return ""

    _substitute(buf, 0, len(buf), unresolved, False, False, [])
    return "".join(buf)


def resolve_tree(node: Any, env: Mapping[str, str], strict: bool) -> Any:
    if isinstance(node, dict):
        return {k: resolve_tree(v, env, strict) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_tree(v, env, strict) for v in node]
    if isinstance(node, str):
        return resolve(node, env, strict)
    return node


def merge(into: Any, other: Any) -> Any:
    """JCasC's merge of several files: mappings recursively, sequences appended."""
    if isinstance(into, dict) and isinstance(other, dict):
        for key, value in other.items():
            into[key] = merge(into[key], value) if key in into else value
        return into
    if isinstance(into, list) and isinstance(other, list):
        return into + other
    raise Unresolved(f"conflicting configuration values {into!r} and {other!r}")


def load_casc(env: Mapping[str, str]) -> dict[str, Any]:
    import yaml  # python3-yaml in the stand-in image

    strict = env.get("CASC_STRICT_SECRET_RESOLUTION", "").lower() == "true"
    merged: dict[str, Any] = {}
    for path in env["CASC_JENKINS_CONFIG"].split(","):
        merged = merge(merged, yaml.safe_load(Path(path).read_text()))
    return dict(resolve_tree(merged, env, strict))


def credentials(casc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for domain in casc["credentials"]["system"]["domainCredentials"]:
        for item in domain["credentials"]:
            ((_, fields),) = item.items()
            found[fields["id"]] = fields
    return found


def admitted(remote: str, host: str) -> bool:
    if not host.strip():
        return True  # the plugin's WhitelistHost("") is ANY
    if "/" in host:
        return ipaddress.ip_address(remote) in ipaddress.ip_network(host.strip(), strict=False)
    return ipaddress.ip_address(remote) == ipaddress.ip_address(host.strip())


class Release:
    """The release job's trigger, as the plugins configured from casc would run it."""

    def __init__(self, casc: Mapping[str, Any], home: Path) -> None:
        creds = credentials(casc)
        whitelist = casc["unclassified"]["whitelist"]
        self.items = [
            (item["host"], creds[item["hmacCredentialId"]]["secret"], item["hmacHeader"])
            for item in whitelist["whitelistItems"]
        ]
        script = casc["jobs"][0]["script"]
        token_id = re.search(r"tokenCredentialId\('([^']+)'\)", script)
        assert token_id, "the release job has no token credential"
        self.token = creds[token_id.group(1)]["secret"]
        self.variables = re.findall(r"genericVariable \{ key\('([^']+)'\); value\('\$\.([a-z_]+)'\) \}", script)
        self.home = home

    def invoke(self, remote: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        problems = []
        for host, secret, header in self.items:
            if not admitted(remote, host):
                problems.append(f'Sending host "{remote}" was not matched by whitelist.')
                continue
            given = headers.get(header, "").removeprefix("sha256=")
            expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(given.lower(), expected):
                problems.append("HMAC verification failed")
                continue
            break
        else:
            return 403, "Did not find a matching whitelisted host: " + "; ".join(problems)
        if not hmac.compare_digest(headers.get("Authorization", ""), f"Bearer {self.token}"):
            return 404, "Did not find any jobs with GenericTrigger configured (token)"
        document = json.loads(body)
        values = {key: str(document.get(path, "")) for key, path in self.variables}
        with (self.home / "triggers.jsonl").open("a") as out:
            out.write(json.dumps({"remote": remote, "params": values}) + "\n")
        return 200, json.dumps({"jobs": {"release": {"triggered": True, "params": values}}})


def serve(env: Mapping[str, str]) -> None:
    try:
        casc = load_casc(env)
    except Unresolved as exc:
        print(f"STAND-IN jenkins: configuration-as-code: {exc}", flush=True)
        sys.exit(1)
    home = Path(env.get("JENKINS_HOME", "/var/jenkins_home"))
    release = Release(casc, home)
    print(
        f"STAND-IN jenkins: casc resolved, executors on the controller: {casc['jenkins']['numExecutors']}", flush=True
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            print("STAND-IN jenkins: " + format % args, flush=True)

        def _answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200 if self.path == "/login" else 404, "stand-in")

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/generic-webhook-trigger/invoke":
                self._answer(404, "not found")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(*release.invoke(self.client_address[0], dict(self.headers), body))

    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()


def agent_check(env: Mapping[str, str]) -> None:
    """Reach the agent as the controller's SSH launcher would, and run a container through its socket."""
    casc = load_casc(env)
    (node,) = casc["jenkins"]["nodes"]
    ssh = node["permanent"]["launcher"]["ssh"]
    key = credentials(casc)[ssh["credentialsId"]]
    host_key = ssh["sshHostKeyVerificationStrategy"]["manuallyProvidedKeyVerificationStrategy"]["key"]
    with tempfile.TemporaryDirectory() as folder:
        private = Path(folder) / "id"
        private.write_text(key["privateKeySource"]["directEntry"]["privateKey"].rstrip("\n") + "\n")
        private.chmod(0o600)
        known = Path(folder) / "known_hosts"
        host = ssh["host"] if int(ssh["port"]) == 22 else f"[{ssh['host']}]:{ssh['port']}"
        known.write_text(f"{host} {host_key.strip()}\n")
        result = subprocess.run(
            [
                "ssh", "-i", str(private), "-p", str(ssh["port"]), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
                f"{key['username']}@{ssh['host']}", "docker", "version", "--format", "{{.Server.Version}}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    print(
        f"STAND-IN jenkins: agent-check exit {result.returncode}: {result.stdout.strip()} {result.stderr.strip()}",
        flush=True,
    )
    sys.exit(result.returncode)


if __name__ == "__main__":
    if sys.argv[1:] == ["agent-check"]:
        agent_check(os.environ)
    serve(os.environ)
