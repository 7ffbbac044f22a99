"""`evaluator serve-demo-model`: the built-in model that `evaluator demo` runs against, on its own."""

from __future__ import annotations

import time

import click

from evaluator.commands.common import handle_errors
from evaluator.errors import InputError


@click.command("serve-demo-model")
@click.option("--port", type=int, default=8080, show_default=True)
@handle_errors
def serve_demo_model(port: int) -> None:
    """Serve the built-in SmolLM2-135M on 127.0.0.1:PORT (OpenAI-compatible) until interrupted."""
    from evaluator.localmodel import serve_model

    if port < 1 or port > 65535:
        raise InputError(f"--port must be 1..65535, got {port}")
    with serve_model(port=port) as base_url:
        click.echo(f"serving {base_url} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
