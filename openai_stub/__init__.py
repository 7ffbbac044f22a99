"""A local OpenAI-compatible stub server for volume, fault and journey tests, and for `bench/`.

Test support, not runtime: it lives beside the `evaluator` package, is not installed with it and is not in the
evaluator image. Tests and benchmarks import it from the repository root; a shell starts it with
`python -m openai_stub` from there (or with the repository root on PYTHONPATH, as in a container that mounts it).
"""

from openai_stub.server import (
    Controls,
    StubServer,
    get_stats,
    planted_difference,
    quality_draw,
    reset_stats,
    run_stub_in_process,
    running_stub,
    set_controls,
    stub_process,
)

__all__ = [
    "Controls",
    "StubServer",
    "get_stats",
    "planted_difference",
    "quality_draw",
    "reset_stats",
    "run_stub_in_process",
    "running_stub",
    "set_controls",
    "stub_process",
]
