"""SIGINT and SIGTERM end a run with one line and exit code 130 / 143, at any stage.

Outside dlt's steps the handlers installed here raise `Stopped` in the main thread (where Python
runs signal handlers), so the run unwinds through its `finally` blocks (the run lock, the fetch
pool) like after any error. During normalize and load dlt installs its own handlers
(`dlt.common.runtime.signals.intercepted_signals`): it lets the running load jobs finish, then
raises `SignalReceivedException`, or completes the step and forgets the signal. So that no signal
is ever forgotten, every SIGINT/SIGTERM is also written to a wakeup pipe (`signal.set_wakeup_fd`,
which Python's C-level handler fills whichever Python handler is installed), and the CLI reads it
before choosing the exit code.

Stopping is safe at any point: the pipeline already survives SIGKILL anywhere (the next run
repairs and completes what a killed run left, `sources/docusign_billing/recovery.py`), and a signal leaves less
behind than a kill.
"""

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sources.docusign_billing.dlt_internals import dlt_signals

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """The run was stopped by a signal; a `BaseException` so that no `except Exception` eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


def stop_of(ex: BaseException) -> Stopped | None:
    """The stop an exception stands for: ours, dlt's `SignalReceivedException` (which dlt may
    wrap in `PipelineStepFailed`) or a bare `KeyboardInterrupt`; None for any other error."""
    current: BaseException | None = ex
    while current is not None:
        if isinstance(current, Stopped):
            return current
        signal_code = getattr(current, "signal_code", None)  # dlt's SignalReceivedException
        if isinstance(signal_code, int):
            return Stopped(signal_code)
        if isinstance(current, KeyboardInterrupt):
            return Stopped(signal.SIGINT)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return None


def _not_while_stopping(record: logging.LogRecord) -> bool:
    """Drops dlt's log lines about draining its job pool after a signal: the CLI says it once."""
    return not dlt_signals.was_signal_received()


class SignalWatch:
    """What `stop_on_signals` yields: whether a stop signal arrived, and a way to stop raising."""

    def __init__(self, read_end: int) -> None:
        self._read_end = read_end
        self._seen: list[int] = []
        self.raising = True

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.raising:
            self.raising = False  # once: a second signal must not interrupt the unwinding
            raise Stopped(signum)

    def hold(self) -> None:
        """From now on signals are only recorded (the run is over; its report is being written)."""
        self.raising = False

    def received(self) -> Stopped | None:
        """The first SIGINT/SIGTERM received in the block, whoever handled it."""
        try:
            self._seen.extend(os.read(self._read_end, 64))
        except BlockingIOError:
            pass
        stops = [signum for signum in self._seen if signum in STOP_SIGNALS]
        return Stopped(stops[0]) if stops else None


@contextmanager
def stop_on_signals() -> Iterator[SignalWatch]:
    """Within the block the first SIGINT/SIGTERM raises `Stopped` in the main thread (dlt's own
    handlers take over during its steps); the yielded watch tells whether one arrived."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    watch = SignalWatch(read_end)
    previous = {signum: signal.signal(signum, watch.handle) for signum in STOP_SIGNALS}
    dlt_logger = logging.getLogger("dlt")
    dlt_logger.addFilter(_not_while_stopping)
    try:
        yield watch
    finally:
        dlt_logger.removeFilter(_not_while_stopping)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_end)
        os.close(write_end)
