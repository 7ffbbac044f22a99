"""Cancellation is an outcome: SIGINT and SIGTERM stop a run cleanly, and it can be resumed.

What a signal does, in every mode (one shard, a pod of the Indexed Job, `run --workers`): no new unit starts;
the units in flight get `grace_s` to finish and write their records (default 20 s: Kubernetes sends SIGTERM,
then SIGKILL after `terminationGracePeriodSeconds`, 30 s by default, so the grace plus the flush and the manifest
fit inside it); those still running then are abandoned (they run again on resume). The shard's results are
flushed, its manifest is written with `state: cancelled`, one line says "N of M done; re-run the same command
to resume", and the process exits 128 + the signal: 130 for SIGINT, 143 for SIGTERM (what a shell reports for
a process the signal killed, and what the Job's podFailurePolicy sees). A second signal cuts the grace short.

The pieces are independent of how shards are laid out over processes: `Stop` records the request (from signal
handlers, or a caller), the shard runner polls it and awaits it, and the `--workers` parent forwards it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from evaluator.errors import EvaluatorError

DEFAULT_GRACE_S = 20.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """A request to stop: the first signal asks for a clean stop, a second one to abandon what is in flight."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None
        self.hurry = False
        self._listeners: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process the signal ended (130 SIGINT, 143 SIGTERM)."""
        return 128 + (self.signum or signal.SIGTERM)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum or signal.SIGTERM).name

    def request(self, signum: int) -> None:
        """Safe from a signal handler: records the request and tells every listener."""
        if self.signum is None:
            self.signum = signum
        else:
            self.hurry = True
        for listener in list(self._listeners):
            listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Calls `listener` on every request (from the signal handler: keep it short); returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None


@contextlib.contextmanager
def stop_on_signals(stop: Stop) -> Iterator[Stop]:
    """Routes SIGINT and SIGTERM to `stop` for the duration of the block (main thread only; elsewhere, and where
    the handlers cannot be set, the block runs with the process's handlers as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, lambda received, _frame: stop.request(received))
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resume_line(done: int, total: int) -> str:
    """The one line a stopped run prints."""
    return f"{done} of {total} done; re-run the same command to resume"


class Cancelled(EvaluatorError):
    """The run stopped on a signal after writing what it had: not a failure of the run, an outcome of it. The
    message is the resume line; the exit code 128 + the signal."""

    def __init__(self, stop: Stop, done: int, total: int, **counts: int) -> None:
        super().__init__(resume_line(done, total))
        self.exit_code = stop.exit_code
        self.signal_name = stop.signal_name
        self.done = done
        self.total = total
        self.counts = counts  # passed, failed, errored of what was done
