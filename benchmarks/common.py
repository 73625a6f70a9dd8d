"""Shared helpers: isolated dlt state, timing, peak RSS, child processes and result tables.

Only the project's own dependencies are used, so the harness runs from a clean clone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).absolute().parents[1]  # not resolve(): a symlinked copy measures its own tree
RESULT_PREFIX = "BENCHMARK-RESULT "
"""Marks the one stdout line a child process reports its figures on."""


def isolate(directory: Path) -> dict[str, str]:
    """Point dlt at `directory` and drop the caller's DocuSign/dlt settings.

    Returns the environment (also applied to this process) so child processes can reuse it.
    Telemetry is off and logs are quiet: neither must cost time inside a measurement.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name in list(os.environ):
        if name.startswith(
            ("SOURCES__", "DESTINATION__", "NORMALIZE__", "LOAD__", "EXTRACT__", "DATA_WRITER__")
        ):
            del os.environ[name]
    os.environ.update(
        DLT_DATA_DIR=str(directory / "dlt"),
        RUNTIME__DLTHUB_TELEMETRY="false",
        RUNTIME__LOG_LEVEL="WARNING",
    )
    return dict(os.environ)


def token_source_args(base_url: str, account_ids: Sequence[str]) -> dict[str, Any]:
    """Source arguments for the sandbox's public bearer token: default settings otherwise."""
    from sources.docusign_billing.auth import DocuSignCredentials
    from sources.docusign_billing.sandbox import ACCESS_TOKEN

    return {
        "account_ids": list(account_ids),
        "base_url": base_url,
        "credentials": DocuSignCredentials(auth="token", access_token=ACCESS_TOKEN),
    }


class Stages:
    """`load()`'s progress callback: when each step (extracting, normalizing, loading) began.

    With `track_rss`, also each step's own peak RSS (the peak is reset as a step begins).
    """

    def __init__(self, track_rss: bool = False) -> None:
        self.track_rss = track_rss
        self.marks: list[
            tuple[str, float, float]
        ] = []  # step, began at, peak RSS of the step before

    def __call__(self, message: str) -> None:
        self.marks.append(
            (message.split()[0], time.perf_counter(), peak_rss_mb() if self.track_rss else 0.0)
        )
        if self.track_rss:
            reset_peak_rss()

    def seconds(self) -> dict[str, float]:
        return {a[0]: b[1] - a[1] for a, b in zip(self.marks, self.marks[1:])}

    def peak_rss(self) -> dict[str, float]:
        return {a[0]: b[2] for a, b in zip(self.marks, self.marks[1:])}


def run_pipeline(directory: Path, stages: Stages | None = None, **source_args: Any) -> float:
    """One `load()` exactly as the CLI does it, into `directory`; returns wall seconds."""
    from pipelines.docusign_billing_pipeline import load, make_pipeline

    stages = stages if stages is not None else Stages()
    directory.mkdir(parents=True, exist_ok=True)  # a DuckDB file in a missing folder is refused
    pipeline = make_pipeline(
        pipelines_dir=str(directory / "pipelines"), duckdb_file=str(directory / "bench.duckdb")
    )
    if stages.track_rss:
        reset_peak_rss()
    started = time.perf_counter()
    load(pipeline, progress=stages, **source_args)
    stages("done")
    return time.perf_counter() - started


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux `clear_refs` 5) so the next peak belongs to one phase only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process since start or the last reset, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wall_times(command: Sequence[str], runs: int, **popen: Any) -> list[float]:
    """Wall times of `runs` executions of `command` (each must exit 0)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, **popen)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}"
            )
    return times


def report(figures: dict[str, Any]) -> None:
    """Child side: hand the figures to the parent on one marked stdout line."""
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def run_child(
    module: str, args: Sequence[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run `python -m module args` in a fresh process (own peak RSS) and return its figures."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{module} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A fixed-width table that reads well in a terminal and pastes into Markdown."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print(f"\n## {title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(
            "| "
            + " | ".join(
                c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)
            )
            + " |"
        )
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def machine() -> dict[str, str]:
    """What the figures were measured on, for RESULTS.md."""
    import dlt
    import duckdb
    import pyarrow

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _lines("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem_kb = next(
        (int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal:")),
        0,
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "dlt": dlt.__version__,
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
    }


def _lines(path: str) -> Iterator[str]:
    try:
        return iter(Path(path).read_text().splitlines())
    except OSError:
        return iter(())


def check_counts(duckdb_file: Path, expected: dict[str, int]) -> None:
    """Raises unless each count holds exactly: keys are tables of the `billing` dataset, optionally
    with a condition (`past_due_invoices WHERE _dlt_valid_to IS NULL`); a table that was never
    created holds 0 rows. A benchmark must not time a lossy load."""
    import duckdb

    with duckdb.connect(str(duckdb_file), read_only=True) as db:
        existing = {
            name
            for (name,) in db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'billing'"
            ).fetchall()
        }
        counts = {
            key: (db.execute(f"SELECT count(*) FROM billing.{key}").fetchone() or (0,))[0]
            if key.split()[0] in existing
            else 0
            for key in expected
        }
    if counts != expected:
        raise AssertionError(f"row counts {counts}, expected {expected}")


def run_from_command_line(main: Callable[..., object], doc: str, **defaults: Any) -> None:
    """Runs a benchmark's `main` with `--name value` options for its keyword arguments (typed by
    their defaults; a `False` default is a flag)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in defaults.items():
        option = "--" + name.replace("_", "-")
        if default is False:
            parser.add_argument(option, action="store_true")
        else:
            parser.add_argument(option, type=type(default), default=default)
    main(**vars(parser.parse_args()))
