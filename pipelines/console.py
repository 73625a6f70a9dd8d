"""The `docusign-billing` console script: stop signals are handled from its first moment.

Importing the CLI (dlt, pyarrow, DuckDB, ...) takes about a second, and `pipelines/signals.py`
installs its handlers only once the command starts. A SIGINT or SIGTERM before that would print a
KeyboardInterrupt traceback, or kill the process without a word. So this module, which imports
only the standard library, installs handlers first that end the process with the CLI's own line
("stopped by SIGTERM: ...", as text or as a JSON `error` event) and exit code 130 / 143. Nothing
has been read or written yet, so ending at once (`os._exit`) is safe.
"""

import json
import os
import signal
import sys
from datetime import UTC, datetime
from types import FrameType


def stopped_message(signal_name: str) -> str:
    """The one line of a run stopped by a signal (without the `docusign-billing: ` prefix)."""
    return f"stopped by {signal_name}: the next run completes what this run left"


def _json_log_format(argv: list[str]) -> bool:
    """Whether the command line asks for `--log-format json` (read before argparse exists)."""
    pairs = zip(argv, argv[1:] + [""])
    return "--log-format=json" in argv or ("--log-format", "json") in pairs


def _stop_while_starting(signum: int, frame: FrameType | None) -> None:
    code = 128 + signum
    message = stopped_message(signal.Signals(signum).name)
    if _json_log_format(sys.argv):
        event = {"ts": datetime.now(UTC).isoformat(), "event": "error", "exit_code": code}
        line = json.dumps({**event, "message": message})
    else:
        line = f"docusign-billing: {message}"
    os.write(sys.stderr.fileno(), f"{line}\n".encode())
    os._exit(code)


def main() -> int:
    """Runs the command line's command (`pipelines.cli.main`) once stop signals are handled."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_while_starting)
    from pipelines import cli  # the slow import, now covered

    return cli.main()
