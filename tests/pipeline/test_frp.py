"""frp/frps.toml and frp/frpc.toml parsed with tomllib: TLS forced and verified, the token read from a file
(never from the environment), every environment value guarded so that a missing one stops frp instead of
rendering as Go's `<no value>`, one http proxy limited to the webhook path, no admin UI."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from release_receiver.cli import serve
from tests.pipeline import frp_template
from tests.pipeline.conftest import REPO

# Only the guarded form: a missing or empty variable is an error, never the literal "<no value>".
TEMPLATE = re.compile(
    r'^\{\{ with \.Envs\.([A-Z][A-Z0-9_]*) \}\}\{\{ \. \}\}\{\{ else \}\}\{\{ template "\1 is not set" \}\}\{\{ end \}\}$'
)


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
def test_the_token_comes_from_a_file_and_no_admin_ui_is_opened(name: str) -> None:
    """A token templated from the environment renders as `<no value>` when the variable is missing: a guessable
    token. frp (>= 0.64) reads it from a file instead (auth.tokenSource, whitespace trimmed)."""
    config = load(name)
    auth = config["auth"]
    assert auth["method"] == "token"
    assert "token" not in auth, "the token must come from auth.tokenSource, not the file or the environment"
    assert auth["tokenSource"]["type"] == "file"
    assert auth["tokenSource"]["file"]["path"].startswith("/")
    assert set(auth["additionalScopes"]) == {"HeartBeats", "NewWorkConns"}
    # No dashboard or admin API: nothing listens besides the tunnel, and no password can be left unset.
    assert "webServer" not in config


@pytest.mark.parametrize("name", ["frps.toml", "frpc.toml"])
def test_a_missing_variable_stops_frp_and_never_renders_as_no_value(name: str) -> None:
    text = (REPO / "frp" / name).read_text()
    names = frp_template.env_names(text)
    env = {n: f"value-of-{n.lower()}" for n in names}
    rendered = frp_template.render(text, env)
    assert "<no value>" not in rendered
    tomllib.loads(rendered)
    for missing in sorted(names):
        for broken in ({k: v for k, v in env.items() if k != missing}, env | {missing: ""}):
            with pytest.raises(frp_template.TemplateError, match=f"{missing} is not set"):
                frp_template.render(text, broken)


def test_the_emulation_knows_gos_no_value() -> None:
    """The emulated renderer shows the failure the guard prevents: an unguarded missing variable."""
    assert frp_template.render('auth.token = "{{ .Envs.FRP_AUTH_TOKEN }}"', {}) == 'auth.token = "<no value>"'


def test_the_public_vhost_is_behind_the_tls_edge(frps: dict[str, Any]) -> None:
    assert frps["proxyBindAddr"] == "127.0.0.1"
    assert "vhostHTTPSPort" not in frps


def test_one_http_proxy_limited_to_the_receivers_path(frpc: dict[str, Any]) -> None:
    (proxy,) = frpc["proxies"]
    assert proxy["type"] == "http"
    assert TEMPLATE.fullmatch(proxy["localIP"])  # the receiver's fixed address, from the stack
    assert proxy["healthCheck"] == {"type": "http", "path": "/healthz", "intervalSeconds": 10, "maxFailed": 3,
                                    "timeoutSeconds": 3}  # fmt: skip
    receiver_path = next(p for p in serve.params if p.name == "url_path").default
    receiver_port = next(p for p in serve.params if p.name == "port").default
    assert proxy["locations"] == [receiver_path]
    assert proxy["localPort"] == receiver_port
    assert all(TEMPLATE.fullmatch(d) for d in proxy["customDomains"])


def test_the_documented_allowlist_matches_the_sender_in_use() -> None:
    """GitHub's webhook comes from the `hooks` ranges, the release-trigger workflow from the `actions` ranges:
    an edge that admits only `hooks` answers the workflow 404 (issue 17, item 8)."""
    readme = (REPO / "frp" / "README.md").read_text()
    assert "jq -r '.hooks \\| join(\" \")'" in readme and "jq -r '.actions \\| join(\" \")'" in readme
    assert "RELEASE_TRIGGER" in readme and "remote_ip {$GITHUB_SENDER_RANGES}" in readme
    assert not re.search(r"remote_ip (\d+\.){3}\d+/", readme), "a hard-coded list admits one sender and goes stale"
