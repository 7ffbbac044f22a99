"""`release-receiver`: receive, verify and forward release webhooks; sign a body; redeliver failed deliveries.

release-receiver serve --secret-file F --store S --repository OWNER/NAME [--forward-url URL ...]
release-receiver verify --secret-file F --repository OWNER/NAME --signature S --delivery D [--timestamp T] < body
    prints the pipeline parameters (JSON or KEY=value lines); exit 0 release merge,
    1 authentic but nothing to build, 2 rejected or bad input.
release-receiver sign --secret-file F < body
release-receiver health URL                 exit 0 when the receiver at URL answers its health check
release-receiver outbox --store S [--retry] what waits to be forwarded, and why; --retry: forward it now
release-receiver redeliver --repository OWNER/NAME --hook-id N --token-file F

Every secret file is read the same way (release_receiver/secret.py): UTF-8 hex or base64 text, a trailing
newline dropped, exactly as Jenkins' `${trim:${readFile:...}}` and the release-trigger workflow read theirs.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click

from release_receiver.errors import ConfigError, WebhookError
from release_receiver.outbox import Backoff, Forwarder
from release_receiver.payload import Ignored
from release_receiver.redeliver import GitHubError, GitHubHooks, redeliver_failed
from release_receiver.refs import ReleasePolicy, canonical_repository
from release_receiver.replay import ReplayStore
from release_receiver.secret import read_secret
from release_receiver.server import HEALTH_PATH, ReceiverConfig, make_server
from release_receiver.signature import sign
from release_receiver.verify import MAX_MERGE_AGE_S, REDELIVERY_WINDOW_S, Delivery, VerifierConfig, verify_delivery

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
    help="SQLite file of accepted deliveries and releases (replay protection, the outbox).",
)
_policy_options = [
    click.option(
        "--repository",
        "repositories",
        multiple=True,
        metavar="OWNER/NAME",
        help="A repository whose release merges this receiver accepts (repeatable; required). Others: 403.",
    ),
    click.option(
        "--release-branch",
        "release_branches",
        multiple=True,
        default=("release",),
        show_default=True,
        metavar="NAME",
        help="The exact base branch that counts as a release branch (repeatable).",
    ),
    click.option(
        "--release-branch-glob",
        "release_branch_globs",
        multiple=True,
        metavar="PATTERN",
        help="Opt-in: base branches matching PATTERN release too. Every branch it matches must be protected, "
        "or any writer can create one and merge their own pull request into it.",
    ),
    click.option(
        "--max-age", type=click.IntRange(min=1), default=300, show_default=True, help="Timestamp header age, seconds."
    ),
    click.option(
        "--max-merge-age",
        type=click.IntRange(min=1),
        default=MAX_MERGE_AGE_S,
        show_default=True,
        help="Age of the signed pull_request.merged_at a release may have, seconds. Default: GitHub's redelivery "
        "window (3 days from the delivery) plus 12 h of GitHub's delivery lag, so a failed delivery redelivered on "
        "its last day still passes.",
    ),
    click.option(
        "--require-timestamp/--no-require-timestamp",
        default=True,
        show_default=True,
        help="Our release-trigger sender adds a signed timestamp; GitHub's own webhooks do not.",
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
    secret_file: Path,
    repositories: tuple[str, ...],
    branches: tuple[str, ...],
    globs: tuple[str, ...],
    max_age: int,
    max_merge_age: int,
    require_timestamp: bool,
) -> VerifierConfig:
    secret = read_secret(secret_file)
    if not repositories:
        raise ConfigError("--repository OWNER/NAME is required: the receiver releases only repositories it is told")
    return VerifierConfig(
        secret=secret,
        policy=ReleasePolicy(repositories, branches, globs),
        require_timestamp=require_timestamp,
        max_age_s=max_age,
        max_merge_age_s=max_merge_age,
    )


def default_store_window(config: VerifierConfig) -> int:
    """How long the store remembers keys: every delivery that could still pass, and GitHub's redelivery window."""
    return max(MAX_MERGE_AGE_S + config.max_skew_s, config.replay_window_s)


def _store(path: Path | None, config: VerifierConfig) -> ReplayStore | None:
    return None if path is None else ReplayStore(path, window_s=default_store_window(config))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="release-receiver")
def main() -> None:
    """Verify signed release webhooks and forward each accepted release to Jenkins exactly once.

    \b
    The release path: GitHub (or the release-trigger workflow) -> frps -> frpc -> this receiver -> Jenkins.
      release-receiver serve ...      the receiver the CI stack runs
      release-receiver verify ...     check one delivery read from stdin, print its parameters
      release-receiver sign ...       the signature header of a body (for a sender and for tests)
      release-receiver health URL     the compose health check
      release-receiver outbox ...     what waits to be forwarded to Jenkins, and why
      release-receiver redeliver ...  ask GitHub to redeliver the hook's failed deliveries

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
    repositories: tuple[str, ...],
    release_branches: tuple[str, ...],
    release_branch_globs: tuple[str, ...],
    max_age: int,
    max_merge_age: int,
    require_timestamp: bool,
    fmt: str,
) -> None:
    """Check one delivery read from stdin (raw bytes, exactly as received) and print its parameters."""
    try:
        config = _config(
            secret_file, repositories, release_branches, release_branch_globs, max_age, max_merge_age,
            require_timestamp,
        )  # fmt: skip
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


def _listen_address(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"--host {host!r} is not an IP address") from None
    if address.is_unspecified:
        raise ConfigError(
            f"--host {host}: bind one address, loopback or the stack's fixed address frpc reaches, never all of them"
        )
    return host


@main.command()
@_secret_option
@_store_option
@_with_policy
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="One address to listen on: loopback, or the fixed address on the stack's network that frpc reaches "
    "(never 0.0.0.0).",
)
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
    "--retry-max",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Longest wait, seconds, between two forwarding attempts of a release Jenkins has not acknowledged.",
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
    repositories: tuple[str, ...],
    release_branches: tuple[str, ...],
    release_branch_globs: tuple[str, ...],
    max_age: int,
    max_merge_age: int,
    require_timestamp: bool,
    host: str,
    port: int,
    url_path: str,
    forward_url: str | None,
    forward_secret_file: Path | None,
    forward_token_file: Path | None,
    retry_max: float,
    read_timeout: float,
    workers: int,
    queue: int,
) -> None:
    """Receive deliveries, keep each accepted release in the outbox, forward it to Jenkins until acknowledged.

    Requests are served by a fixed pool of worker threads (--workers, --queue) and must arrive whole within
    --read-timeout; the process is meant to sit behind frpc, which alone connects to it. GET /healthz answers
    the health check."""
    if (forward_url is None) != (forward_secret_file is None):
        _fail("--forward-url and --forward-secret-file go together")
        return
    if store is None:
        _fail("--store is required for the receiver (replay protection and the outbox)")
        return
    if not url_path.startswith("/") or url_path == HEALTH_PATH:
        _fail(f"--path must start with '/' and not be {HEALTH_PATH}")
        return
    try:
        _listen_address(host)
        config = _config(
            secret_file, repositories, release_branches, release_branch_globs, max_age, max_merge_age,
            require_timestamp,
        )  # fmt: skip
        replay = _store(store, config)
        assert replay is not None
        forward = None
        if forward_url is not None and forward_secret_file is not None:
            if not forward_url.startswith(("http://", "https://")):
                raise ConfigError("--forward-url must be an http(s) URL")
            token = read_secret(forward_token_file).decode() if forward_token_file is not None else None
            forward = Forwarder(forward_url, read_secret(forward_secret_file), token)
        receiver = ReceiverConfig(
            url_path, config, replay, forward, read_timeout_s=read_timeout, workers=workers, queue=queue,
            backoff=Backoff(max_s=retry_max),
        )  # fmt: skip
        server = make_server(host, port, receiver)
    except WebhookError as exc:
        _fail(exc.message)
        return
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return
    bound_port = server.server_address[1]
    pending = len(replay.entries(("pending",)))
    click.echo(f"listening on http://{host}:{bound_port}{url_path} ({pending} release(s) to forward)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command()
@click.argument("url")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=3.0, show_default=True)
def health(url: str, timeout: float) -> None:
    """Exit 0 when the receiver at URL (its /healthz) answers that it serves; print what its outbox holds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        click.echo(f"unhealthy: {url}: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(document, sort_keys=True))
    sys.exit(0 if document.get("status") == "ok" else 1)


def _iso(when: float | None) -> str:
    return "-" if when is None else datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@main.command()
@click.option("--store", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=True)
@click.option("--retry", is_flag=True, help="Forward every pending or refused release at once (Jenkins is back).")
def outbox(store: Path, retry: bool) -> None:
    """List the releases the receiver accepted and what became of each (pending, delivered, refused)."""
    try:
        replay = ReplayStore(store, window_s=REDELIVERY_WINDOW_S)
        if retry:
            click.echo(f"{replay.retry_now(time.time())} release(s) due now", err=True)
        for entry in replay.entries():
            click.echo(
                f"{entry.state:9} {entry.release_key}  accepted {_iso(entry.accepted_at)}  attempts {entry.attempts}"
                f"  {entry.last_failure or ''}".rstrip()
            )
    except WebhookError as exc:
        _fail(exc.message)


@main.command()
@click.option("--repository", required=True, metavar="OWNER/NAME", help="The repository the webhook belongs to.")
@click.option("--hook-id", type=click.IntRange(min=1), required=True, help="The webhook's id (gh api repos/O/R/hooks).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="A token with 'Webhooks: read and write' on the repository, in a file.",
)
@click.option(
    "--since",
    type=click.IntRange(min=60, max=REDELIVERY_WINDOW_S),
    default=REDELIVERY_WINDOW_S,
    show_default=True,
    help="Look back this many seconds (GitHub keeps and redelivers 3 days; --max-merge-age covers them).",
)
@click.option("--api-url", envvar="GITHUB_API_URL", default="https://api.github.com", show_default=True)
@click.option("--dry-run", is_flag=True, help="List what would be redelivered, redeliver nothing.")
def redeliver(repository: str, hook_id: int, token_file: Path, since: int, api_url: str, dry_run: bool) -> None:
    """Redeliver the hook's deliveries that never reached the receiver (GitHub does not retry by itself).

    A delivery (guid) counts as delivered when any attempt was answered 2xx or 409; each other guid's newest
    attempt is redelivered once. Run it from cron or a systemd timer, e.g. every 15 minutes. Exit 1 when a
    redelivery failed, 2 on bad input or an API error."""
    try:
        token = token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise ConfigError(f"{token_file}: the token file is empty")
        hooks = GitHubHooks(api_url, canonical_repository(repository), hook_id, token)
        done = redeliver_failed(hooks, time.time() - since, dry_run=dry_run)
    except OSError as exc:
        _fail(f"{token_file}: cannot read the token: {exc.strerror or exc}")
        return
    except (WebhookError, GitHubError) as exc:
        _fail(str(exc.message if isinstance(exc, WebhookError) else exc))
        return
    for item in done:
        click.echo(f"{item.guid}  {_iso(item.delivered_at)}  HTTP {item.status_code}  {item.outcome}")
    problems = [d for d in done if d.outcome.startswith("failed")]
    verb = "listed" if dry_run else "redelivered"
    click.echo(f"{len(done) - len(problems)} of {len(done)} failed delivery(ies) {verb}", err=True)
    sys.exit(1 if problems else 0)
