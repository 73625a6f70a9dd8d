"""SIGINT / SIGTERM in the console script's first second, while Python still imports dlt & co.

The real console script, signalled as soon as its process has a SIGTERM handler (read from
/proc: an event, not a delay), i.e. before the CLI's own handlers exist; and a few delays after
Python started, when the signal lands during the import or the command: one line and 130 / 143
either way.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("docusign-billing"))
STOPPED = "docusign-billing: stopped by {}: the next run completes what this run left"


def _caught_signals(pid: int) -> int:
    """The process's mask of signals with a handler (`SigCgt` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigCgt in /proc/{pid}/status")


def _start_and_signal(args: list[str], signum: int, env: dict, cwd: Path, delay: float, after):
    """Starts the console script, waits until it handles signal `after`, then `delay`, and sends
    it `signum`."""
    process = subprocess.Popen(
        [CLI, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    handled_bit = 1 << (after - 1)
    while process.poll() is None and not _caught_signals(process.pid) & handled_bit:
        time.sleep(0.001)
    time.sleep(delay)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("command", ["run", "report"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_importing_is_one_json_event(sandbox, cli_env, tmp_path, command, signum):
    """Signalled at once: the CLI has not started (no `run_start` event), yet the one line of a
    stopped run is there, as JSON like every event of `--log-format json`."""
    code, stdout, stderr = _start_and_signal(
        [command, "--log-format", "json"],
        signum,
        cli_env(sandbox),
        tmp_path,
        0,
        after=signal.SIGTERM,
    )
    events = [json.loads(line) for line in stderr.splitlines()]
    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr
    assert [(e["event"], e["exit_code"]) for e in events] == [("error", 128 + signum)], stderr
    assert events[0]["message"] == STOPPED.format(name).removeprefix("docusign-billing: ")
    assert stdout == ""


@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_the_first_second_is_one_line(sandbox, cli_env, tmp_path, signum, delay):
    """Counted from Python's start (its own SIGINT handler, a few ms before the console script's
    handlers): whether the signal lands in the import or in the command, one line and its exit
    code (each request takes 2 s, so the run is still going after 1 s)."""
    sandbox.latency = 2.0
    env = cli_env(sandbox)
    code, _, stderr = _start_and_signal(["run"], signum, env, tmp_path, delay, after=signal.SIGINT)
    assert code == 128 + signum, stderr
    assert stderr.splitlines()[-1] == STOPPED.format(signal.Signals(signum).name), stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if not line.startswith("docusign-billing: ")] == []
