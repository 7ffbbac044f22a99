"""How a process that evaluated ends: its files are written and closed, so the interpreter's own teardown is skipped.

Once DeepEval is imported, Python's finalization (tearing down some 2,000 modules and their objects) takes about
0.2 s of CPU after the last result is written: at the end of every pod, and at the end of every `run --workers`
worker, where the parent waits for it. Nothing is left to do by then (the results file and the manifest are
closed, the manifest written atomically), so, like `multiprocessing`'s children, the process ends with
`os._exit` once the `atexit` handlers ran (logging's flush among them) and stdout and stderr are flushed.

Only the program (`run_process`: the console script and `python -m evaluator`) ends this way, and only after a
command asked for it (`skip_teardown`); a command invoked in-process (click's test runner, the Python API) returns
as usual.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

_skip = False


def skip_teardown() -> None:
    """This process evaluates: when its command ends, end it without the interpreter's teardown."""
    global _skip
    _skip = True


def end(code: int) -> None:
    """Ends the process with `code` when `skip_teardown` was asked; returns otherwise."""
    if not _skip:
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
