"""Puts a pipeline folder left behind by a killed run (SIGKILL, OOM, power cut) back into a state
from which dlt finishes the interrupted work exactly once.

`recover(pipeline)` runs at the start of `load()`, while the run lock is held and before any dlt
step. It repairs two states that dlt 1.31 cannot resume from correctly on its own; everything
else an interrupted run leaves behind dlt already resumes (pending packages are normalized and
loaded first, jobs with a recorded outcome are not re-run).

1. Normalize killed between the package rename and the delete of its extracted copy
   (`dlt/normalize/normalize.py`, `Normalize.spool_files`: `LoadStorage.commit_new_load_package`
   renames `load/new/<id>` to `load/normalized/<id>`, then
   `extracted_packages.delete_package(<id>)` removes `normalize/extracted/<id>`; dlt logs
   "Committing storage, do not kill this process" right before). A kill in between leaves the
   package twice: the next normalize re-normalizes the extracted copy and its rename onto the
   existing `load/normalized/<id>` fails with `[Errno 39] Directory not empty`, in every later run.
   The normalized package is complete (the rename is one atomic `os.rename` of the whole tree and
   normalize never modifies extracted files), so the extracted copy is stale: it is removed, with
   any `load/new/<id>` scratch copy a failed re-normalization left (dlt itself deletes that folder
   before every normalization of `<id>`). The same holds once the package was loaded
   (`load/loaded/<id>`): normalizing the extracted copy again would load its data twice.

2. Load killed after a load job's COPY/INSERT committed but before dlt recorded the job's outcome
   (`dlt/load/load.py`; the worker writes the "pending transition" marker only after
   `RunnableLoadJob.run()` returns, `dlt/common/destination/client.py` `run_managed`/`_release`).
   The next run finds the job in `started_jobs/` without a marker and runs it again
   (`Load.resume_started_jobs`). For a table loaded through the staging dataset (merge) that
   appends the staging rows a second time, because the staging tables are truncated only by
   `Load.initialize_package` → `init_client`, which runs once per package: it is gated on
   `LoadStorage.begin_schema_update`, which returns None once `commit_schema_update` replaced
   `schema_updates.json` by `applied_schema_updates.json`. The merge SQL then reads every row twice
   (dlt's SCD2 merge does not deduplicate staging: invoice versions and their items doubled).

   The repair restarts the package's staging work from a clean slate, with the files dlt itself
   reads: every job of a table that is not `append` (merge loads through staging; replace is
   truncated by the same `init_client`) goes back to `new_jobs/` from `started_jobs/` and
   `completed_jobs/`; their follow-up jobs (the merge `.sql` / staging `.reference` jobs dlt
   creates when a table chain completes) are deleted so dlt creates them again when the chain
   completes again; `schema_updates.json` is restored from `applied_schema_updates.json` and the
   latter removed, so `initialize_package` runs again and truncates the staging tables of all
   those tables before their jobs run.

   Why that is safe: nothing of a staging table reaches the dataset except through its merge SQL,
   and each of this project's merges gives the same result when re-run from a complete, clean
   staging table, whether or not it already ran: SCD2 inserts only versions not already active
   and retires only active rows missing from staging; delete-insert deletes by primary key
   before inserting. The package keeps its load id and creation time, so the SCD2 boundary and
   `snapshot_at` are the same as in the interrupted attempt. The schema update re-runs against a
   dataset that already stores the schema's version hash: no DDL, no second `_dlt_version` row.
   Append tables whose rows carry `_dlt_load_id` (the invoice items: appended without staging)
   are restarted with them, after their rows of the package were deleted from the destination
   (`remove_rows`, before any job moves, so a kill in between only repeats an idempotent delete).
   Other `append` jobs are left where they are (dlt resumes them as it always does); dlt's own
   `_dlt_pipeline_state` row is one of them, and a replayed state row is harmless because dlt
   restores state with `ORDER BY load_id DESC LIMIT 1` over identical rows. `_dlt_loads` is not
   written before every job of the package completed, so a package repaired here gets exactly one
   `_dlt_loads` row.

   Only packages that can hold a replayed copy are touched: a started, non-follow-up job of a
   non-append table without a recorded outcome. A package whose jobs all recorded their outcome,
   or whose only unrecorded job is a merge `.sql` (re-running it on the unchanged staging table is
   idempotent), is left to dlt. The repair itself is restartable: it writes
   `schema_updates.json` first and removes `applied_schema_updates.json` last, and a package that
   holds both files (which dlt never leaves: it deletes the one before writing the other) is
   treated as a repair to finish.

   Not repaired: a package created with a `refresh` mode (tables to drop or truncate in its
   state): re-running its initialization would drop or truncate the destination tables again
   while its completed append jobs would not be re-run; it is left to dlt with a warning.
"""

import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .dlt_internals import (
    ATOMIC_TEMP_NAME,
    EXTRACTED_FOLDER,
    FOLLOWUP_FORMATS,
    NEW_PACKAGES_FOLDER,
    NORMALIZED_FOLDER,
    PackageStorage,
    get_write_disposition,
    normalized_packages,
    parse_job_file_name,
    repairs_vouched_for,
)
from .errors import DocuSignBillingError

log = logging.getLogger(__name__)


@dataclass
class Recovery:
    """What `recover` repaired, for the run's log."""

    stale_extracted: list[str] = field(default_factory=list)
    """Load ids whose stale extracted copy (and `load/new` leftover) was removed."""
    restarted_loads: list[str] = field(default_factory=list)
    """Load ids whose staging loads restart from a clean staging dataset."""

    def messages(self) -> list[str]:
        lines = []
        if self.stale_extracted:
            lines.append(
                "removed the stale extracted copy of already normalized package(s) "
                + ", ".join(self.stale_extracted)
            )
        if self.restarted_loads:
            lines.append(
                "an interrupted load is restarted from a clean staging dataset: package(s) "
                + ", ".join(self.restarted_loads)
            )
        return lines


RemoveRows = Callable[[str, set[str]], None]
"""Deletes a load id's rows from the named destination tables."""


class UnrepairedPackageError(DocuSignBillingError):
    """A package left by an interrupted run needs a repair that cannot be made here."""


def recover(pipeline: dlt.Pipeline) -> Recovery:
    """Repairs what a killed run left in `pipeline.working_dir`; call it holding the run lock.

    Raises `UnrepairedPackageError` when a repair is needed but the installed dlt is outside the
    tested range: the package layout the repair edits may have changed, so nothing is touched.
    """
    done = Recovery()
    stale = stale_extracted(pipeline)
    normalized_dir = os.path.join(pipeline.working_dir, "load", NORMALIZED_FOLDER)
    interrupted = interrupted_loads(normalized_dir) if os.path.isdir(normalized_dir) else []
    if (stale or interrupted) and not repairs_vouched_for():
        raise UnrepairedPackageError(
            f"pipeline {pipeline.pipeline_name} holds load package(s)"
            f" {', '.join(sorted(set(stale + interrupted)))} of an interrupted run that this dlt"
            f" version ({dlt.__version__}) cannot be trusted to resume without loading data twice;"
            " run once with the dlt version pinned in pyproject.toml, or discard the package(s)"
            f" with `dlt pipeline {pipeline.pipeline_name} drop-pending-packages` (the next run"
            " extracts their data again)"
        )
    if stale:
        done.stale_extracted = remove_stale_extracted(
            os.path.join(pipeline.working_dir, "normalize"),
            os.path.join(pipeline.working_dir, "load"),
            stale,
        )
    if os.path.isdir(normalized_dir):
        remove_atomic_write_leftovers(normalized_dir)
        done.restarted_loads = restart_interrupted_loads(
            normalized_dir, partial(remove_rows, pipeline)
        )
    for message in done.messages():
        log.info(message)
    return done


def stale_extracted(pipeline: dlt.Pipeline) -> list[str]:
    """Extracted packages that were normalized (or loaded) already: the copies dlt left behind."""
    moved_on = {
        *pipeline.list_normalized_load_packages(),
        *pipeline.list_completed_load_packages(),
    }
    return sorted(set(pipeline.list_extracted_load_packages()) & moved_on)


def remove_stale_extracted(normalize_dir: str, load_dir: str, load_ids: Sequence[str]) -> list[str]:
    """Deletes `normalize/extracted/<id>` (and `load/new/<id>`) of each stale package."""
    for load_id in load_ids:
        # scratch copy first: dlt rebuilds it from the extracted copy, never the other way round
        shutil.rmtree(os.path.join(load_dir, NEW_PACKAGES_FOLDER, load_id), ignore_errors=True)
        shutil.rmtree(os.path.join(normalize_dir, EXTRACTED_FOLDER, load_id))
    return list(load_ids)


def remove_atomic_write_leftovers(storage_dir: str) -> None:
    """Deletes the temp files of `FileStorage.save_atomic` that a kill left in a storage root.

    dlt writes a package's job markers by writing `<root>/<uniq_id(8)>` and renaming it into the
    package; a kill in between leaves that file. Only dlt writes there, and only under the run lock.
    """
    for name in os.listdir(storage_dir):
        path = os.path.join(storage_dir, name)
        if ATOMIC_TEMP_NAME.fullmatch(name) and os.path.isfile(path):
            os.remove(path)


def remove_rows(pipeline: dlt.Pipeline, load_id: str, tables: set[str]) -> None:
    """Deletes what a package's interrupted append jobs may have committed already."""
    with pipeline.sql_client() as client:
        for table in sorted(tables):
            try:
                client.execute_sql(
                    f"DELETE FROM {client.make_qualified_table_name(table)} WHERE _dlt_load_id = %s",
                    load_id,
                )
            except DatabaseUndefinedRelation:
                pass  # never created: nothing of it committed


def restart_interrupted_loads(normalized_dir: str, remove_appended_rows: RemoveRows) -> list[str]:
    """Restarts the staging work of every normalized package that may hold a replayed copy."""
    packages = normalized_packages(normalized_dir)
    restarted = []
    for load_id in _interrupted(packages):
        staged, appended = _restartable_tables(packages.load_schema(load_id), packages, load_id)
        restartable = staged | appended
        state = packages.get_load_package_state(load_id)
        if state.get("dropped_tables") or state.get("truncated_tables"):
            log.warning(
                "load package %s was interrupted after a load job may have committed, but it"
                " drops or truncates tables (refresh): left to dlt, which may load that job twice",
                load_id,
            )
            continue
        if appended:
            remove_appended_rows(load_id, appended)
        restart_staging_work(packages, load_id, restartable)
        restarted.append(load_id)
    return restarted


def interrupted_loads(normalized_dir: str) -> list[str]:
    """Normalized packages with a load job that may have committed without dlt knowing."""
    return list(_interrupted(normalized_packages(normalized_dir)))


def _interrupted(packages: PackageStorage) -> Iterator[str]:
    for load_id in packages.list_packages():
        if packages.has_abort_flag(load_id):
            continue  # `abort_packages()` was asked for it: dlt completes it as aborted
        staged, appended = _restartable_tables(packages.load_schema(load_id), packages, load_id)
        if _needs_restart(packages, load_id, staged | appended):
            yield load_id


def restart_staging_work(packages: PackageStorage, load_id: str, tables: set[str]) -> None:
    """Makes dlt truncate the staging tables of `tables` and run all their jobs again.

    Order matters for a kill during this function: the package is marked for re-initialization
    first and the applied-update marker goes last, so a package holding both files is a repair
    in progress (see `_needs_restart`) and the next run finishes it.
    """
    storage = packages.storage
    package = packages.get_package_path(load_id)
    applied_path = os.path.join(package, PackageStorage.APPLIED_SCHEMA_UPDATES_FILE_NAME)
    update_path = os.path.join(package, PackageStorage.SCHEMA_UPDATES_FILE_NAME)
    if not storage.has_file(update_path):
        # what dlt applied is what initialization must expect again (SQL clients only compare
        # schema version hashes, which the dataset already stores: no DDL runs twice). `save`
        # writes a temporary file and renames it: a kill never leaves half a JSON document
        storage.save(
            update_path, storage.load(applied_path) if storage.has_file(applied_path) else "{}"
        )
    for state in (
        PackageStorage.STARTED_JOBS_FOLDER,
        PackageStorage.COMPLETED_JOBS_FOLDER,
        PackageStorage.NEW_JOBS_FOLDER,
    ):
        for file_path in storage.list_folder_files(
            packages.get_job_state_folder_path(load_id, state)
        ):
            file_name, job = parse_job_file_name(file_path)
            if job.table_name not in tables:
                continue
            if job.file_format in FOLLOWUP_FORMATS:
                storage.delete(file_path)  # dlt creates it again when the table chain completes
            elif state != PackageStorage.NEW_JOBS_FOLDER:
                storage.atomic_rename(
                    file_path,
                    packages.get_job_file_path(load_id, PackageStorage.NEW_JOBS_FOLDER, file_name),
                )
            # an outcome recorded for the old attempt must not finalize the new one
            packages.clear_pending_transition(load_id, file_name)
    storage.delete(applied_path)


def remove_appended_rows(pipeline: dlt.Pipeline, load_id: str) -> None:
    """Deletes the rows a normalized package's append jobs may have committed, by `_dlt_load_id`
    (before the package is discarded: its data is extracted again by a later run)."""
    packages = normalized_packages(os.path.join(pipeline.working_dir, "load", NORMALIZED_FOLDER))
    appended = _restartable_tables(packages.load_schema(load_id), packages, load_id)[1]
    if appended:
        remove_rows(pipeline, load_id, appended)


def _restartable_tables(
    schema: dlt.Schema, packages: PackageStorage, load_id: str
) -> tuple[set[str], set[str]]:
    """Tables of the package's jobs that dlt stages or truncates in `initialize_package`, and the
    append tables whose rows of the package can be found again by `_dlt_load_id`."""
    names = {
        job.table_name
        for _, job in packages.list_all_jobs_with_states(load_id)
        if job.table_name in schema.tables
    }
    staged = {name for name in names if get_write_disposition(schema.tables, name) != "append"}
    appended = {
        name
        for name in names - staged - set(schema.dlt_table_names())
        if "_dlt_load_id" in schema.tables[name].get("columns", {})
    }
    return staged, appended


def _needs_restart(packages: PackageStorage, load_id: str, tables: set[str]) -> bool:
    package = packages.get_package_path(load_id)
    if packages.storage.has_file(
        os.path.join(package, PackageStorage.APPLIED_SCHEMA_UPDATES_FILE_NAME)
    ) and packages.storage.has_file(os.path.join(package, PackageStorage.SCHEMA_UPDATES_FILE_NAME)):
        return True  # a repair that was itself interrupted
    for file_path in packages.list_started_jobs(load_id):
        file_name, job = parse_job_file_name(file_path)
        if job.table_name not in tables or job.file_format == "sql":
            continue
        outcome: Sequence[str | None] | None = packages.load_pending_transition(load_id, file_name)
        if outcome is None or outcome[0] not in ("completed", "failed"):
            return True  # its copy may have committed: resuming it would stage the rows twice
    return False
