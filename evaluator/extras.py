"""Optional extras, imported only where used: a missing one is a clear exit 2 with the install command.

The base install (`pip install ai-eval-factory`, the evaluator image) runs shards, aggregates, gates, plans and
writes JUnit and Markdown; only the HTML reports need plotly and jinja2 (the 'report' extra).
"""

from __future__ import annotations

import importlib.util

from evaluator.errors import InputError

REPORT_EXTRA_INSTALL = "pip install 'ai-eval-factory[report]'"
REPORT_EXTRA_MODULES = ("plotly", "jinja2")


def require_report_extra(feature: str) -> None:
    """Raises InputError (exit 2) naming the missing modules and the install command."""
    missing = [name for name in REPORT_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"{feature} needs {' and '.join(missing)} (the 'report' extra), not installed here: {REPORT_EXTRA_INSTALL}"
        )
