"""`docusign-billing` with a real SIGKILL at a chosen point of a dlt step (used by test_interrupted).

Run as `python -m tests.helpers_killer KILL_POINT docusign-billing-args...`. The process patches
one dlt function so that, at the named point, it kills itself with SIGKILL (no cleanup, no
finally blocks, no atexit: like a power cut or the OOM killer), then runs the real CLI `main()`.
`SIGINT@KILL_POINT` / `SIGTERM@KILL_POINT` send that signal instead and carry on (what Ctrl-C or
a scheduler stopping the job does), at the same points and also:
  extract           after the first account's response arrived
  summary           when the summary starts (the load has committed)
`summary-fails` (no signal, no kill) makes the summary raise a destination error after the load.
With `--plain PIPELINES_DIR DUCKDB_FILE` instead of the CLI's arguments it runs a user's own
pipeline, `dlt.pipeline(...).run(docusign_billing())` (the source configured from the environment),
and prints the CLI's "loading into duckdb" line when dlt's load step starts.

Kill points:
  normalize-mid     after the worker wrote the normalized files, before dlt commits the package
  normalize-commit  right after dlt moved the package to "normalized", before it deletes the
                    extracted copy (the window dlt's own log calls "do not kill this process")
  load-copy:TABLE   after the INSERT of TABLE's file committed in DuckDB (the table itself for
                    append, its staging table for merge), before dlt records the job as done
  load-merge[:TABLE] after the merge SQL of TABLE (default past_due_invoices) committed in
                    DuckDB, before dlt records the job
  load-complete     after the `_dlt_loads` row was written, before the package is archived
  load-pause:SECS   no kill: sleeps SECS inside the load (DuckDB file open) after printing
                    "paused in load" on stderr, so another process can collide with it
"""

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_SIGNAL = signal.SIGKILL
_sent: list[int] = []


def _die() -> None:
    if _sent:
        return  # a stop signal is sent once (a second one is dlt's "force stop")
    sys.stdout.flush()
    sys.stderr.flush()
    _sent.append(_SIGNAL)
    os.kill(os.getpid(), _SIGNAL)


def _after(owner: Any, name: str, when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Patch `owner.name` to run normally, then SIGKILL the process if `when(*args)` holds."""
    original = getattr(owner, name)

    def patched(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            _die()
        return result

    setattr(owner, name, patched)


def _target(point: str) -> tuple[Any, str]:
    """The class or module and attribute of a kill point (`dlt_internals.STEP_COMMITS`)."""
    import importlib

    from sources.docusign_billing.dlt_internals import STEP_COMMITS

    module, attribute, _ = STEP_COMMITS[point]
    owner: Any = importlib.import_module(module)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def arm(point: str) -> None:
    global _SIGNAL
    if "@" in point:
        name, point = point.split("@", 1)
        _SIGNAL = signal.Signals[name]
    step, _, argument = point.partition(":")
    if step == "extract":
        from sources.docusign_billing.client import DocuSignClient

        _after(DocuSignClient, "get")
    elif step == "summary":
        import pipelines.docusign_billing_pipeline as run_module  # the CLI imports it per command

        summarize = run_module.summarize

        def signalled(pipeline: Any) -> Any:
            _die()
            return summarize(pipeline)

        run_module.summarize = signalled
    elif step == "summary-fails":
        from dlt.destinations.exceptions import DatabaseTransientException

        import pipelines.docusign_billing_pipeline as run_module

        def failing(pipeline: Any) -> Any:
            raise DatabaseTransientException(RuntimeError("the destination went away"))

        run_module.summarize = failing
    elif step in ("normalize-mid", "normalize-commit", "load-complete"):
        _after(*_target(step))
    elif step == "load-copy":
        _after(*_target(step), lambda job: job.load_table_name == argument)
    elif step == "load-merge":
        from dlt.destinations.sql_jobs import SqlMergeFollowupJob  # noqa: F401 (runs SqlLoadJob.run)

        table = argument or "past_due_invoices"
        _after(*_target(step), lambda job: job.file_name().startswith(f"{table}."))
    elif step == "load-pause":
        import time

        owner, name = _target("load-copy")
        original = getattr(owner, name)

        def paused(job: Any) -> None:
            original(job)
            if job.load_table_name == "past_due_snapshots":
                print("docusign-billing: paused in load", file=sys.stderr, flush=True)
                time.sleep(float(argument))

        setattr(owner, name, paused)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def plain_run(pipelines_dir: str, duckdb_file: str) -> None:
    import dlt
    from dlt.pipeline.pipeline import Pipeline

    from sources.docusign_billing import docusign_billing

    original = Pipeline.load

    def load(self: Any, *args: Any, **kwargs: Any) -> Any:
        print("docusign-billing: loading into duckdb", file=sys.stderr, flush=True)
        return original(self, *args, **kwargs)

    Pipeline.load = load  # type: ignore[method-assign]
    pipeline = dlt.pipeline(
        pipeline_name="docusign_billing",
        destination=dlt.destinations.duckdb(duckdb_file),
        dataset_name="billing",
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(docusign_billing())


if __name__ == "__main__":
    arm(sys.argv[1])
    if sys.argv[2] == "--plain":
        plain_run(sys.argv[3], sys.argv[4])
        sys.exit(0)
    from pipelines.cli import main

    sys.exit(main(sys.argv[2:]))
