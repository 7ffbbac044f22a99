"""frp/frps.toml and frp/frpc.toml parsed with tomllib: TLS forced and verified, secrets templated from the
environment, one http proxy limited to the webhook path, dashboards on loopback with a password."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from evaluator.webhook.cli import serve
from tests.pipeline.conftest import REPO

TEMPLATE = re.compile(r"^\{\{ \.Envs\.[A-Z][A-Z0-9_]* \}\}$")


def load(name: str) -> dict[str, Any]:
    return tomllib.loads((REPO / "frp" / name).read_text())


@pytest.fixture(scope="module")
def frps() -> dict[str, Any]:
    return load("frps.toml")


@pytest.fixture(scope="module")
def frpc() -> dict[str, Any]:
    return load("frpc.toml")


def test_server_forces_tls_with_its_certificate(frps: dict[str, Any]) -> None:
    tls = frps["transport"]["tls"]
    assert tls["force"] is True
    assert tls["certFile"] and tls["keyFile"]


def test_client_verifies_the_server_certificate(frpc: dict[str, Any]) -> None:
    tls = frpc["transport"]["tls"]
    assert tls.get("enable", True) is True
    assert tls["trustedCaFile"].endswith(".crt")
    assert TEMPLATE.fullmatch(tls["serverName"])


@pytest.mark.parametrize("name", ["frps.toml", "frpc.toml"])
def test_token_and_passwords_come_from_the_environment(name: str) -> None:
    config = load(name)
    auth = config["auth"]
    assert auth["method"] == "token"
    assert ("token" in auth) != ("tokenSource" in auth)
    if "token" in auth:
        assert TEMPLATE.fullmatch(auth["token"]), "literal frp token"
    assert set(auth["additionalScopes"]) == {"HeartBeats", "NewWorkConns"}
    web = config["webServer"]
    assert web["addr"] == "127.0.0.1"
    assert web["user"] and TEMPLATE.fullmatch(web["password"])


def test_the_public_vhost_is_behind_the_tls_edge(frps: dict[str, Any]) -> None:
    assert frps["proxyBindAddr"] == "127.0.0.1"
    assert "vhostHTTPSPort" not in frps


def test_one_http_proxy_limited_to_the_receivers_path(frpc: dict[str, Any]) -> None:
    (proxy,) = frpc["proxies"]
    assert proxy["type"] == "http"
    assert proxy["localIP"] == "127.0.0.1"
    receiver_path = next(p for p in serve.params if p.name == "url_path").default
    receiver_port = next(p for p in serve.params if p.name == "port").default
    assert proxy["locations"] == [receiver_path]
    assert proxy["localPort"] == receiver_port
    assert all(TEMPLATE.fullmatch(d) for d in proxy["customDomains"])
