#!/usr/bin/env python3
"""STAND-IN for frpc in the Molecule test of the ci_stack role (no frp binary, and no frps to reach, here).

Run as frpc is (`-c FILE`), it does with the mounted file what frpc does before it dials frps, and checks what
frps would check:

- renders the file as frp does (a Go text/template over the environment): `{{ .Envs.NAME }}` of a missing
  variable renders as `<no value>`; the guarded form `{{ with .Envs.NAME }}...{{ else }}{{ template "MSG" }}`
  fails with MSG, as Go's undefined-template error stops frpc;
- parses the TOML; requires TLS on with a CA certificate file (trustedCaFile) and a server name, the token from
  a non-empty file (auth.tokenSource), auth.additionalScopes as frps.toml requires;
- for every proxy, connects to its local address (the receiver, at its fixed address on the stack's network);
- then does what frpc does with the requests frps hands it: each one, on a new work connection, is sent to the
  proxy's local address, dialled anew for every request (so a receiver that restarted is simply reached again),
  if its path is one of the proxy's `locations` (frps answers 404 to any other). Where frps would hand requests
  over through the tunnel, this stand-in listens on 127.0.0.1:7000 of its own network namespace: the verifier
  posts there, as GitHub's request would arrive through frps;
- and runs the proxy's health check as frpc does (healthCheck.type http: GET localIP:localPort + path every
  intervalSeconds), printing when the proxy goes down or up again.

It writes the rendered configuration to /tmp/frpc-rendered.toml for the verifier and stays up; any failure
exits 1 (the container restarts, and the verifier sees it not running). Every line starts with "STAND-IN".
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

TUNNEL_ENTRANCE = ("127.0.0.1", 7000)

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
    (proxy,) = config["proxies"]
    threading.Thread(target=health_check, args=(proxy,), daemon=True).start()
    tunnel(proxy)


def health_check(proxy: dict[str, Any]) -> None:
    """frpc's http health check of a proxy's local service: down after maxFailed failures, up after a success."""
    check = proxy.get("healthCheck", {})
    if check.get("type") != "http":
        return
    url = f"http://{proxy['localIP']}:{proxy['localPort']}{check.get('path', '/')}"
    failures, up = 0, True
    while True:
        try:
            with urllib.request.urlopen(url, timeout=check.get("timeoutSeconds", 3)) as response:
                ok = 200 <= response.status < 300
        except OSError:
            ok = False
        failures = 0 if ok else failures + 1
        if up and failures >= check.get("maxFailed", 1):
            up = False
            print(f"STAND-IN frpc: health check of {url} failed {failures} times: proxy taken off frps", flush=True)
        elif not up and ok:
            up = True
            print(f"STAND-IN frpc: health check of {url} passed: proxy back on frps", flush=True)
        time.sleep(check.get("intervalSeconds", 10))


def relay(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def work_connection(client: socket.socket, proxy: dict[str, Any]) -> None:
    """One request handed over by frps: checked against the proxy's locations, then sent to the local service."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = client.recv(65536)
        if not chunk:
            client.close()
            return
        head += chunk
    path = head.split(b" ", 2)[1].decode(errors="replace").split("?")[0] if head.count(b" ") >= 2 else ""
    if not any(path == loc or path.startswith(loc.rstrip("/") + "/") for loc in proxy.get("locations", ["/"])):
        client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        return
    try:
        local = socket.create_connection((proxy["localIP"], int(proxy["localPort"])), timeout=10)
    except OSError as exc:
        print(f"STAND-IN frpc: cannot reach {proxy['localIP']}:{proxy['localPort']}: {exc}", flush=True)
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        return
    local.sendall(head)
    threading.Thread(target=relay, args=(client, local), daemon=True).start()
    relay(local, client)


def tunnel(proxy: dict[str, Any]) -> None:
    server = socket.create_server(TUNNEL_ENTRANCE)
    print(f"STAND-IN frpc: requests from frps are taken at {TUNNEL_ENTRANCE[0]}:{TUNNEL_ENTRANCE[1]}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=work_connection, args=(client, proxy), daemon=True).start()


if __name__ == "__main__":
    main()
