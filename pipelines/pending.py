"""Packages an earlier run left pending: loaded before the extract, or set aside when they fail.

A package is left pending when its run was killed, or when its load failed (dlt keeps a package
whose job failed with an error it classifies as transient, e.g. every DuckDB "Invalid Input"
error, and retries it first in every later run). A package whose content fails again at the start
of a run (a load job of it fails, or its normalization) is not retried forever: it is aborted
(dlt's `Pipeline.abort_packages`, which also restores the pipeline's local state to before it)
and the rows its append jobs may have committed are deleted by their `_dlt_load_id`, so the run
goes on and loads fresh data. A destination that cannot be opened or reached is no reason: the
package is fine and waits for the next run.

Nothing is lost by that: aborting restores the incremental windows the package had advanced
(they are dlt state), every run reads each account's whole past-due list from the API, and items
are sent for every invoice version whose items the destination does not hold. The set-aside
run's `past_due_snapshots` point is missing from the time series, like that of any run that
failed; a merge of it that had committed stays (an SCD2 invoice version, retired by the next run
when the API no longer sends it).
"""

from collections.abc import Callable

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.failures import causes, explain
from sources.docusign_billing.dlt_internals import LoadClientJobException, create_missing_tables
from sources.docusign_billing.recovery import remove_appended_rows

Progress = Callable[[str], None]


def load_pending(pipeline: dlt.Pipeline, progress: Progress) -> None:
    """Normalizes and loads what an earlier run left pending; sets it aside if that fails."""
    if not pipeline.has_pending_data:
        return
    progress("loading what an interrupted run left pending")
    try:
        pipeline.normalize()
        create_missing_tables(pipeline)
        pipeline.load()
    except Exception as ex:
        if not caused_by_content(ex):
            raise  # the destination is unavailable (locked, unreachable): the package is fine
        _, reason = explain(ex)
        load_ids = set_aside(pipeline)
        progress(
            f"the package(s) {', '.join(load_ids) or '?'} left by an earlier run failed to load"
            f" again ({reason}); set aside, this run loads fresh data from the API"
        )


def caused_by_content(ex: Exception) -> bool:
    """Whether a failure came from a package's content: a load job failed on it, or its
    normalization did; not a destination that could not be opened or reached."""
    return any(
        isinstance(cause, LoadClientJobException)
        or (isinstance(cause, PipelineStepFailed) and cause.step == "normalize")
        for cause in causes(ex)
    )


def set_aside(pipeline: dlt.Pipeline) -> list[str]:
    """Aborts every pending package and deletes the rows their append jobs may have committed."""
    load_ids = list(pipeline.list_normalized_load_packages())
    for load_id in load_ids:
        remove_appended_rows(pipeline, load_id)
    pipeline.abort_packages()
    return load_ids
