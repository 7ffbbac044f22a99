"""`release-receiver`: sign, verify and receive release webhooks.

release-receiver verify --secret-file F --signature S --delivery D --timestamp T < body
    prints the pipeline parameters (JSON or KEY=value lines); exit 0 release merge,
    1 authentic but nothing to build, 2 rejected or bad input.
release-receiver sign --secret-file F < body
release-receiver serve --secret-file F --store S [--forward-url URL --forward-secret-file F2]

Every secret file is read the same way (receiver/release_receiver/secret.py): UTF-8 hex or base64 text, a trailing
newline dropped, exactly as Jenkins' `${trim:${readFile:...}}` and the release-trigger workflow read theirs.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import sys
import time
from pathlib import Path
from typing import BinaryIO

import click

from release_receiver.errors import ConfigError, WebhookError
from release_receiver.payload import DEFAULT_RELEASE_BRANCHES, Ignored
from release_receiver.replay import ReplayStore
from release_receiver.secret import read_secret
from release_receiver.server import Forwarder, ReceiverConfig, make_server
from release_receiver.signature import sign
from release_receiver.verify import Delivery, VerifierConfig, verify_delivery

EXIT_ACCEPTED = 0
EXIT_IGNORED = 1
EXIT_REJECTED = 2

_secret_option = click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File holding the shared HMAC secret, hex or base64 text (never pass the secret on a command line).",
)
_store_option = click.option(
    "--store",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SQLite file of accepted deliveries and releases (replay protection). Without it replays are not detected.",
)
_policy_options = [
    click.option(
        "--max-age", type=click.IntRange(min=1), default=300, show_default=True, help="Timestamp header age, seconds."
    ),
    click.option(
        "--max-merge-age",
        type=click.IntRange(min=1),
        default=3600,
        show_default=True,
        help="Age of the signed pull_request.merged_at a release may have, seconds (bounds GitHub's own deliveries).",
    ),
    click.option(
        "--require-timestamp/--no-require-timestamp",
        default=True,
        show_default=True,
        help="Our release-trigger sender adds a signed timestamp; GitHub's own webhooks do not.",
    ),
    click.option(
        "--release-branch",
        "release_branches",
        multiple=True,
        default=DEFAULT_RELEASE_BRANCHES,
        show_default=True,
        help="Base-branch glob that counts as a release branch (repeatable).",
    ),
]


def _with_policy(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_policy_options):
        func = option(func)
    return func


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_REJECTED)


def _read_body(body_file: Path | None, stdin: BinaryIO) -> bytes:
    if body_file is None:
        return stdin.read()
    try:
        return body_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{body_file}: cannot read the body: {exc.strerror or exc}") from None


def _config(
    secret_file: Path, max_age: int, max_merge_age: int, require_timestamp: bool, branches: tuple[str, ...]
) -> VerifierConfig:
    return VerifierConfig(
        secret=read_secret(secret_file),
        require_timestamp=require_timestamp,
        max_age_s=max_age,
        max_merge_age_s=max_merge_age,
        release_branches=branches,
    )


def _store(path: Path | None, config: VerifierConfig) -> ReplayStore | None:
    if path is None:
        return None
    # The window covers every delivery that could still pass, and at least a day (GitHub's redeliveries).
    return ReplayStore(path, window_s=max(86400, config.replay_window_s))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="release-receiver")
def main() -> None:
    """Verify signed release webhooks (HMAC-SHA256, timestamp, replay) and emit pipeline parameters.

    \b
    The release path: GitHub (or the release-trigger workflow) -> frps -> frpc -> this receiver -> Jenkins.
      release-receiver serve ...    the receiver the CI stack runs
      release-receiver verify ...   check one delivery read from stdin, print its parameters
      release-receiver sign ...     the signature header of a body (for a sender and for tests)

    \b
    Exit codes: 0 accepted, 1 authentic but nothing to build, 2 rejected or bad input.
    """


@main.command()
@_secret_option
@click.option("--signature", default=None, help="The X-Hub-Signature-256 header value ('sha256=<hex>').")
@click.option("--delivery", default=None, help="The X-GitHub-Delivery header value (unique per delivery).")
@click.option("--timestamp", default=None, help="The X-Release-Timestamp header value (Unix seconds).")
@click.option("--event", default="pull_request", show_default=True, help="The X-GitHub-Event header value.")
@click.option("--body-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Default: stdin.")
@_store_option
@_with_policy
@click.option("--format", "fmt", type=click.Choice(["json", "env"]), default="json", show_default=True)
def verify(
    secret_file: Path,
    signature: str | None,
    delivery: str | None,
    timestamp: str | None,
    event: str,
    body_file: Path | None,
    store: Path | None,
    max_age: int,
    max_merge_age: int,
    require_timestamp: bool,
    release_branches: tuple[str, ...],
    fmt: str,
) -> None:
    """Check one delivery read from stdin (raw bytes, exactly as received) and print its parameters."""
    try:
        config = _config(secret_file, max_age, max_merge_age, require_timestamp, release_branches)
        body = _read_body(body_file, sys.stdin.buffer)
        outcome = verify_delivery(
            Delivery(body=body, signature=signature, delivery_id=delivery, event=event, timestamp=timestamp),
            config,
            _store(store, config),
            time.time(),
        )
    except WebhookError as exc:
        _fail(f"{exc.reason}: {exc.message}")
        return
    if isinstance(outcome, Ignored):
        click.echo(f"ignored: {outcome.reason}", err=True)
        sys.exit(EXIT_IGNORED)
    if fmt == "json":
        click.echo(json.dumps(outcome.as_json(), sort_keys=True))
    else:
        for key, value in outcome.as_env().items():
            click.echo(f"{key}={shlex.quote(value)}")


@main.command(name="sign")
@_secret_option
@click.option("--body-file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Default: stdin.")
def sign_command(secret_file: Path, body_file: Path | None) -> None:
    """Print the X-Hub-Signature-256 value for a body (for our own sender and for tests)."""
    try:
        click.echo(sign(read_secret(secret_file), _read_body(body_file, sys.stdin.buffer)))
    except WebhookError as exc:
        _fail(exc.message)


@main.command()
@_secret_option
@_store_option
@_with_policy
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback only: frpc connects locally.")
@click.option("--port", type=click.IntRange(0, 65535), default=8089, show_default=True)
@click.option("--path", "url_path", default="/hooks/release", show_default=True, help="The only path served.")
@click.option("--forward-url", default=None, help="Jenkins Generic Webhook Trigger URL for accepted deliveries.")
@click.option(
    "--forward-secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="HMAC secret Jenkins checks the forwarded parameters with (its whitelist credential).",
)
@click.option(
    "--forward-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Generic Webhook Trigger token of the release job, sent as 'Authorization: Bearer'.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send its whole request; a slower one is cut off.",
)
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Requests handled at once.")
@click.option(
    "--queue",
    type=click.IntRange(min=0),
    default=16,
    show_default=True,
    help="Connections waiting for a worker; more are answered 503 at once.",
)
def serve(
    secret_file: Path,
    store: Path | None,
    max_age: int,
    max_merge_age: int,
    require_timestamp: bool,
    release_branches: tuple[str, ...],
    host: str,
    port: int,
    url_path: str,
    forward_url: str | None,
    forward_secret_file: Path | None,
    forward_token_file: Path | None,
    read_timeout: float,
    workers: int,
    queue: int,
) -> None:
    """Receive deliveries on 127.0.0.1 and forward accepted release merges to Jenkins.

    Requests are served by a fixed pool of worker threads (--workers, --queue) and must arrive whole within
    --read-timeout; the process is meant to sit behind frpc, which alone connects to it."""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise ConfigError(f"--host {host}: the receiver binds loopback only (frpc forwards to it)")
    except ValueError:
        _fail(f"--host {host!r} is not an IP address")
        return
    except ConfigError as exc:
        _fail(exc.message)
        return
    if (forward_url is None) != (forward_secret_file is None):
        _fail("--forward-url and --forward-secret-file go together")
        return
    if store is None:
        _fail("--store is required for the receiver (replay protection)")
        return
    if not url_path.startswith("/"):
        _fail("--path must start with '/'")
        return
    try:
        config = _config(secret_file, max_age, max_merge_age, require_timestamp, release_branches)
        replay = _store(store, config)
        assert replay is not None
        forward = None
        if forward_url is not None and forward_secret_file is not None:
            if not forward_url.startswith(("http://", "https://")):
                raise ConfigError("--forward-url must be an http(s) URL")
            token = read_secret(forward_token_file).decode() if forward_token_file is not None else None
            forward = Forwarder(forward_url, read_secret(forward_secret_file), token)
        receiver = ReceiverConfig(
            url_path, config, replay, forward, read_timeout_s=read_timeout, workers=workers, queue=queue
        )
        server = make_server(host, port, receiver)
    except WebhookError as exc:
        _fail(exc.message)
        return
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return
    bound_port = server.server_address[1]
    click.echo(f"listening on http://{host}:{bound_port}{url_path}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
