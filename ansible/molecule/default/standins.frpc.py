#!/usr/bin/env python3
"""STAND-IN for frpc in the Molecule test of the ci_stack role (no frp binary, and no frps to reach, here).

Run as frpc is (`-c FILE`), it does with the mounted file what frpc does before it dials frps, and checks what
frps would check:

- renders the file as frp does (a Go text/template over the environment): `{{ .Envs.NAME }}` of a missing
  variable renders as `<no value>`; the guarded form `{{ with .Envs.NAME }}...{{ else }}{{ template "MSG" }}`
  fails with MSG, as Go's undefined-template error stops frpc;
- parses the TOML; requires TLS on with a CA certificate file (trustedCaFile) and a server name, the token from
  a non-empty file (auth.tokenSource), auth.additionalScopes as frps.toml requires;
- for every proxy, connects to its local address (the receiver, in this network namespace).

It writes the rendered configuration to /tmp/frpc-rendered.toml for the verifier and stays up; any failure
exits 1 (the container restarts, and the verifier sees it not running). Every line starts with "STAND-IN".
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
import tomllib
from pathlib import Path

GUARDED = re.compile(
    r'\{\{ with \.Envs\.([A-Z][A-Z0-9_]*) \}\}\{\{ \. \}\}\{\{ else \}\}\{\{ template "([^"]+)" \}\}\{\{ end \}\}'
)
PLAIN = re.compile(r"\{\{ \.Envs\.([A-Z][A-Z0-9_]*) \}\}")


def fail(message: str) -> None:
    print(f"STAND-IN frpc: {message}", flush=True)
    sys.exit(1)


def render(text: str) -> str:
    def guarded(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1), "")
        if not value:
            fail(f'template: frp: template "{match.group(2)}" not defined')
        return value

    out = PLAIN.sub(lambda m: os.environ.get(m.group(1), "<no value>"), GUARDED.sub(guarded, text))
    if "{{" in out:
        fail(f"cannot render {out[out.index('{{') :][:60]!r}")
    return out


def main() -> None:
    if sys.argv[1:2] != ["-c"] or len(sys.argv) != 3:
        fail("usage: frpc -c FILE")
    rendered = render(Path(sys.argv[2]).read_text())
    config = tomllib.loads(rendered)
    tls = config.get("transport", {}).get("tls", {})
    if tls.get("enable", True) is not True:
        fail("TLS is off")
    ca = Path(tls.get("trustedCaFile", ""))
    if not ca.is_file() or "-----BEGIN CERTIFICATE-----" not in ca.read_text():
        fail(f"trustedCaFile {ca} is not a PEM certificate: frps could not be verified")
    if not tls.get("serverName"):
        fail("no transport.tls.serverName")
    auth = config.get("auth", {})
    token_file = Path(auth.get("tokenSource", {}).get("file", {}).get("path", ""))
    if "token" in auth or not token_file.is_file() or not token_file.read_text().strip():
        fail(f"the token must come from a non-empty file (auth.tokenSource), got {token_file}")
    if set(auth.get("additionalScopes", [])) != {"HeartBeats", "NewWorkConns"}:
        fail("auth.additionalScopes differs from frps.toml's")
    for proxy in config.get("proxies", []):
        address = (proxy["localIP"], int(proxy["localPort"]))
        for _ in range(120):
            try:
                socket.create_connection(address, timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            fail(f"proxy {proxy['name']}: nothing listens on {address[0]}:{address[1]}")
    Path("/tmp/frpc-rendered.toml").write_text(rendered)
    names = ", ".join(f"{p['name']} ({p['type']} {p.get('locations')})" for p in config.get("proxies", []))
    print(f"STAND-IN frpc: would dial {config['serverAddr']}:{config['serverPort']} over TLS; proxies: {names}")
    sys.stdout.flush()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
