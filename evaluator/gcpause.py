"""Pause Python's cyclic garbage collector while a command builds many long-lived objects at once.

Reading a 100,000-case report creates some 1.5 million objects (models, dicts, strings) that all stay alive; the
collector, triggered by allocation counts, walks the growing heap again and again and found nothing to free: it
tripled the time of reading the cases (bench/bench_report_scale.py). Objects without cycles are still freed at
once by reference counting while the collector is paused; cycles made meanwhile are collected when it resumes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block (restored as it was after, also on an exception)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
