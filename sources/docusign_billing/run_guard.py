"""The README's Guarantees when a user's own dlt pipeline runs the source, not only `docusign-billing run`.

`pipeline.run(docusign_billing(...))` resumes what an interrupted run left before it extracts
anything: dlt normalizes and loads pending packages first (and then returns without extracting).
Two of those leftovers dlt cannot resume correctly (`recovery.py`), so they must be repaired
before `pipeline.run` starts, and the only code of this project that runs before it is the source
function itself. Hence:

1. `prepare(pipeline)` runs in the source function, on the pipeline active when the source is
   created (`dlt.pipeline(...)` activates the pipeline it returns): it repairs that pipeline's
   folder under its run lock, or raises (a run of the CLI holds the lock; a repair this dlt
   version cannot be trusted with; a pending package extracted for another dataset or
   destination, which dlt would load into this run's and so append its items a second time).
2. `check_extract(pipeline, prepared)` runs when the source's first resource is extracted. It
   refuses to extract when the source was created before the pipeline that runs it (its folder
   was never checked), or when that pipeline still holds packages of an earlier run (a plain
   `pipeline.extract()` without loading them first: the source would send again the items those
   packages hold).
"""

import hashlib
import os

import dlt

from .dlt_internals import (
    NamingConvention,
    active_pipeline,
    check_dlt,
    data_location,
    pending_package_targets,
)
from .errors import ConfigError, DocuSignBillingError
from .recovery import recover
from .run_lock import held_here, run_lock


class PipelineNotPreparedError(DocuSignBillingError):
    """The source would extract into a pipeline whose folder it could not check first."""


def prepare(pipeline: dlt.Pipeline | None = None) -> str | None:
    """Repairs the active pipeline's folder; returns the folder checked (None without a pipeline)."""
    pipeline = pipeline or active_pipeline()
    if pipeline is None:
        return None
    check_dlt()
    check_pending_target(pipeline)
    if not held_here(pipeline):  # the holder (`load()`) repairs it itself
        with run_lock(pipeline):
            recover(pipeline)
    return pipeline.working_dir


LOCATION_KEY = "docusign_billing_location"
"""Where the source records, in each load package's state, the location it was extracted for."""


def destination_location(pipeline: dlt.Pipeline) -> str | None:
    """A digest of where `pipeline` loads (`dlt_internals.data_location`; a file's path with
    `..` and symlinks resolved), None when its destination cannot say. A digest, so that no
    location, which may name a host, is written into the package."""
    location = data_location(pipeline)
    if location is None:
        return None
    if os.path.isabs(location):  # a DuckDB file
        location = os.path.realpath(location)
    return hashlib.sha256(location.encode()).hexdigest()[:20]


def record_location(pipeline: dlt.Pipeline) -> None:
    """Notes in the package being extracted where it is meant to load (`check_pending_target`);
    once per package, whichever resource extracts first."""
    package_state = dlt.current.load_package_state()["state"]
    if LOCATION_KEY in package_state:
        return
    location = destination_location(pipeline)
    if location is not None:
        package_state[LOCATION_KEY] = location  # type: ignore[literal-required]


def check_pending_target(pipeline: dlt.Pipeline) -> None:
    """Raises `ConfigError` when a pending package was extracted for another dataset,
    destination type or location (DuckDB file, database) than `pipeline` has now: loaded here,
    its items (sent because that destination did not hold them) would be appended beside the
    ones this one holds."""
    if not pipeline.dataset_name:  # a user's pipeline given its destination only in `run()`
        return
    naming = NamingConvention()
    dataset = naming.normalize_identifier(pipeline.dataset_name)
    destination = pipeline.destination.destination_type if pipeline.destination else None
    location = None
    for target in pending_package_targets(pipeline, LOCATION_KEY):
        same_type = None in (target.destination_type, destination) or (
            target.destination_type == destination
        )
        if naming.normalize_identifier(target.dataset_name) == dataset and same_type:
            if target.location is None:
                continue
            location = location or destination_location(pipeline)
            if location in (None, target.location):
                continue
            kind = str(destination).rsplit(".", 1)[-1]  # dlt.destinations.duckdb: duckdb
            where = f"dataset {target.dataset_name!r} in another {kind} location"
            this_run = (
                f"this run's (dataset {pipeline.dataset_name!r} in {_location_name(pipeline)})"
            )
        else:
            where = f"dataset {target.dataset_name!r} ({target.destination_type})"
            this_run = f"dataset {pipeline.dataset_name!r} ({destination}) of this run"
        raise ConfigError(
            f"pipeline {pipeline.pipeline_name} holds a package ({target.load_id}) an earlier run"
            f" left pending for {where}, not {this_run}: finish it with a run into that dataset"
            " and destination, or discard it"
            f" (dlt -y pipeline --pipelines-dir {pipeline.pipelines_dir} {pipeline.pipeline_name}"
            " abort-packages); nothing was loaded"
        )


def _location_name(pipeline: dlt.Pipeline) -> str:
    """This run's DuckDB file by name (a path the user chose); any other location by type."""
    destination = pipeline.destination.destination_type if pipeline.destination else ""
    return str(data_location(pipeline)) if destination.endswith("duckdb") else "its database"


def check_extract(pipeline: dlt.Pipeline, prepared: str | None) -> None:
    """Raises `PipelineNotPreparedError` unless extracting into `pipeline` keeps the Guarantees."""
    if prepared != pipeline.working_dir:
        raise PipelineNotPreparedError(
            f"docusign_billing() was created while pipeline {pipeline.pipeline_name} was not the"
            " active pipeline: create the source after dlt.pipeline(...) (or"
            " pipeline.activate()), so it can repair what an interrupted run left before dlt"
            " resumes it; nothing was extracted"
        )
    if pipeline.has_pending_data:
        raise PipelineNotPreparedError(
            f"pipeline {pipeline.pipeline_name} holds load packages of an earlier run: load them"
            " first (pipeline.run() with a new docusign_billing() source, or docusign-billing run),"
            " otherwise their invoice items would be sent again; nothing was extracted"
        )
