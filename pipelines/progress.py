"""What the CLI tells the operator on stderr while it runs.

Events always (`emit`, `say`: text lines or JSON objects, `pipelines/events.py`); in the text
format on a terminal also one line that counts accounts fetched / total and the failures so far,
redrawn in place, so a run over thousands of accounts is not silent. The source reports that
count as log records of `sources.docusign_billing.fetch` carrying a `progress` attribute
(`FetchProgress`); when stderr is not a terminal (a scheduler's log) they are not shown.
"""

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.events import Events
from sources.docusign_billing.fetch import PROGRESS_LOGGER, FetchProgress

PREFIX = "docusign-billing: "
REDRAW_SECONDS = 0.2
"""At most five redraws a second: a terminal line, not a log."""


class _CountLine(logging.Handler):
    """Draws the latest counts over the previous ones: one resource's as `accounts 3/5`, several
    resources (fetched at once) summed as `accounts 7/15 (3 resources)`, so the line never jumps
    between the resources' counts."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.open = False
        self._drawn_at = 0.0
        self._latest: dict[str, FetchProgress] = {}

    def emit(self, record: logging.LogRecord) -> None:
        count: FetchProgress | None = getattr(record, "progress", None)
        if count is None:
            return
        self._latest[count.resource] = count
        done = sum(c.done for c in self._latest.values())
        total = sum(c.total for c in self._latest.values())
        failed = sum(c.failed for c in self._latest.values())
        now = time.monotonic()
        if now - self._drawn_at < REDRAW_SECONDS and count.done < count.total:
            return
        self._drawn_at = now
        resources = f" ({len(self._latest)} resources)" if len(self._latest) > 1 else ""
        failures = f", {failed} failed" if failed else ""
        sys.stderr.write(f"\r{PREFIX}accounts {done}/{total}{resources}{failures}\x1b[K")
        sys.stderr.flush()
        self.open = True

    def end_line(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            self.open = False


_line: _CountLine | None = None
events = Events()
"""Text or JSON, set by `shown()`."""


def emit(event: str, text: str | None = None, **fields: object) -> None:
    """One event (after the account count line, if one is drawn)."""
    if _line is not None:
        _line.end_line()
    events.emit(event, text, **fields)


def say(message: str) -> None:
    """A step of the run: a `progress` event."""
    emit("progress", message, message=message)


@contextmanager
def shown(log_format: str = "text") -> Iterator[None]:
    """Within the block events have `log_format`; in text format on a terminal the account count
    is drawn too."""
    global _line, events
    events = Events(log_format)
    if events.json or not sys.stderr.isatty():
        yield
        return
    logger = logging.getLogger(PROGRESS_LOGGER)
    _line, level = _CountLine(), logger.level
    logger.addHandler(_line)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(_line)
        logger.setLevel(level)
        _line.end_line()
        _line = None
