"""Shared helpers of the benchmark scripts: an offline environment, the stub server process, the records a run
wrote, a plain table."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing: `python bench/bench_x.py`
    sys.path.insert(0, str(ROOT))

from openai_stub.server import get_stats  # noqa: E402
from openai_stub.server import stub_process as stub_process  # noqa: E402  (the bench scripts import it from here)

# DeepEval stays on this machine: no telemetry (PostHog), no PyPI update check, no Confident AI upload
# (that needs CONFIDENT_API_KEY, removed below), no .env loading, no interactive "inspect" prompt.
OFFLINE_ENV = {
    "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "DEEPEVAL_NO_INSPECT_PROMPT": "1",
    "ERROR_REPORTING": "NO",
    "TOKENIZERS_PARALLELISM": "false",
}
_REMOVED = ("CONFIDENT_API_KEY", "API_KEY", "DEEPEVAL_UPDATE_WARNING_OPT_IN", "OPENAI_BASE_URL", "HTTPS_PROXY")


def offline_environ(**extra: str) -> dict[str, str]:
    """The current environment with DeepEval kept offline; for child processes."""
    env = {k: v for k, v in os.environ.items() if k not in _REMOVED}
    env.update(OFFLINE_ENV)
    env.update(extra)
    return env


def apply_offline_environ() -> None:
    for name in _REMOVED:
        os.environ.pop(name, None)
    os.environ.update(OFFLINE_ENV)


class OutboundGuard:
    """Refuses any socket connection that is not to loopback and counts the attempts.

    Installed in the benchmark's DeepEval process so 'nothing calls out of the machine' is checked, not hoped.
    """

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self._original = socket.socket.connect
        self._original_ex = socket.socket.connect_ex

    def _allowed(self, address: object) -> bool:
        if isinstance(address, tuple) and address:
            host = str(address[0])
            return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
        return True  # unix sockets

    def install(self) -> None:
        guard = self

        def connect(sock: socket.socket, address: object) -> None:
            if not guard._allowed(address):
                guard.blocked.append(repr(address))
                raise ConnectionRefusedError(f"benchmark guard: outbound connection to {address!r} refused")
            return guard._original(sock, address)  # type: ignore[arg-type]

        def connect_ex(sock: socket.socket, address: object) -> int:
            if not guard._allowed(address):
                guard.blocked.append(repr(address))
                return 111  # ECONNREFUSED
            return guard._original_ex(sock, address)  # type: ignore[arg-type]

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


def count_results(out: Path) -> tuple[int, int]:
    """(records, records with an error) over every shard's results.jsonl."""
    records = errored = 0
    for results in out.glob("shard-*/results.jsonl"):
        with results.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    records += 1
                    errored += json.loads(line).get("error") is not None
    return records, errored


def stub_stats(base_url: str) -> dict[str, object]:
    return get_stats(base_url)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("x"))
    except ValueError:
        return False
    return True


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]
