"""Fixtures of the reporting tests: the metric tests' stub server, one process per module."""

from __future__ import annotations

from tests.metrics.conftest import module_stub

__all__ = ["module_stub"]
