"""Every use of dlt that is not its public API, in one place, each with the dlt behaviour it relies on.

dlt's public API is the top-level `dlt` module, `dlt.sources`, the destination factories in
`dlt.destinations`, the `dlt.common.configuration` config specs and the exception classes. What
this module imports from deeper can change in any dlt release; `tests/test_dlt_internals.py` has a
test per entry that fails when the behaviour relied on changes, and `TESTED_DLT` (the range in
`pyproject.toml`) is the set of dlt versions the whole suite passed on. Outside it, `check_dlt()`
says so in one line and the crash repairs of `recovery.py`, which depend on the load-package
layout below, refuse to run (`repairs_vouched_for()`).

What dlt's public API offers is used instead where it suffices (measured in `benchmarks/RESULTS.md`,
"dlt internals"): package ids come from `Pipeline.list_extracted_load_packages()`,
`list_normalized_load_packages()` and `list_completed_load_packages()`. There is no public API to
move a job between the folders of a package, to read or clear the outcome a load worker recorded
("pending transitions"), or to restore a package's schema update: the repairs use `PackageStorage`.
`Pipeline.abort_packages()` (dlt 1.30) is not a replacement: it discards the package, but a load
job that committed before the kill stays committed, so the next run appends beside it.
"""

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.configuration.inject import with_config
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.runtime import signals as dlt_signals
from dlt.common.schema.utils import get_write_disposition
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.common.storages.file_storage import FileStorage
from dlt.common.storages.load_package import PackageStorage, ParsedLoadJobFileName
from dlt.common.storages.load_storage import LoadStorage
from dlt.common.storages.normalize_storage import NormalizeStorage
from dlt.common.versioned_state import json_decode_state
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.load.exceptions import LoadClientJobException
from packaging.specifiers import SpecifierSet
from packaging.version import Version

__all__ = [
    # the source's config-injected helper outside a source (`reachable_accounts`): exported by
    # `dlt.common.configuration` but documented only through the source/resource decorators
    "with_config",
    # dlt's default naming convention: the source names its Arrow columns as dlt would
    "NamingConvention",
    # a table's write disposition resolved through its parent chain (nested tables inherit it)
    "get_write_disposition",
    # raised by the public `dlt.current.load_package_state()` outside an extract; not exported
    "CurrentLoadPackageStateNotAvailable",
    # the DuckDB credentials class: the factory takes an instance to carry `global_config`
    "DuckDbCredentials",
    # load packages and their jobs: normalize/extracted/<id>, load/new/<id>,
    # load/normalized/<id>, load/loaded/<id>; inside a package new_jobs/, started_jobs/,
    # completed_jobs/, failed_jobs/, .pending_transitions/ and schema_updates.json, renamed to
    # applied_schema_updates.json once the destination's schema was updated
    "PackageStorage",
    "ParsedLoadJobFileName",
    # dlt's own SIGINT/SIGTERM flag: set by its handlers while its normalize/load steps run, where
    # it swallows the signal to drain its job pool (`pipelines/signals.py` still sees the stop)
    "dlt_signals",
    # a load job that failed on its content (a bad row, a type the destination refuses), as
    # opposed to a destination that is down: `pipelines/pending.py` sets only those packages aside
    "LoadClientJobException",
]

log = logging.getLogger(__name__)

TESTED_DLT = SpecifierSet(">=1.31.0,<1.32")
"""dlt versions the suite passed on; keep equal to the dlt pin in `pyproject.toml` (tested)."""

NORMALIZED_FOLDER = LoadStorage.NORMALIZED_FOLDER
LOADED_FOLDER = LoadStorage.LOADED_FOLDER
NEW_PACKAGES_FOLDER = LoadStorage.NEW_PACKAGES_FOLDER
"""`load/new/<id>`: normalize's scratch copy, renamed to `load/normalized/<id>` when complete."""
EXTRACTED_FOLDER = NormalizeStorage.EXTRACTED_FOLDER

ATOMIC_TEMP_NAME = re.compile(r"[0-9a-f]{16}")
"""`FileStorage.save_atomic` writes `<storage root>/<uniq_id(8)>` (16 hex digits) and renames it
into place; a kill in between leaves that file in the root of `load/normalized`."""

FOLLOWUP_FORMATS = ("sql", "reference")
"""Job formats dlt creates itself while loading (merge/replace SQL, staging references)."""


def normalized_packages(normalized_dir: str) -> PackageStorage:
    """The packages under `load/normalized`, with the job-moving API the repairs need."""
    return PackageStorage(FileStorage(normalized_dir), "normalized")


@dataclass(frozen=True)
class PackageTarget:
    """Where a pending load package was extracted to go."""

    load_id: str
    dataset_name: str
    destination_type: str | None
    """dlt's destination type, e.g. `dlt.destinations.duckdb`."""
    location: str | None = None
    """The digest `run_guard.destination_location` recorded in the package's state when the
    source extracted it (the DuckDB file, the database); None in packages of older versions."""


def pending_package_targets(pipeline: dlt.Pipeline, location_key: str = "") -> list[PackageTarget]:
    """The dataset and destination of each pending package (extracted or normalized).

    dlt 1.31 snapshots the pipeline's state file into every package it extracts
    (`.restore/state.json`, `Pipeline._save_restore_snapshot`), after `dlt.pipeline()` saved the
    run's dataset and destination in it; `abort_packages` restores the state from it. A load
    loads a pending package into the pipeline's current dataset, whatever that snapshot says.
    Packages without a snapshot are left out. `location_key`: the key of the package's own state
    (`load_package_state()["state"]`, public while extracting) where the source recorded the
    destination's location."""
    folders = (
        (os.path.join("normalize", EXTRACTED_FOLDER), pipeline.list_extracted_load_packages()),
        (os.path.join("load", NORMALIZED_FOLDER), pipeline.list_normalized_load_packages()),
    )
    targets = []
    for folder, load_ids in folders:
        packages = PackageStorage(
            FileStorage(os.path.join(pipeline.working_dir, folder)), "extracted"
        )
        for load_id in load_ids:
            if not packages.can_restore_pipeline_state(load_id):
                continue
            state_blob, _ = packages.load_pipeline_state(load_id)
            if state_blob is None:
                continue
            state = json_decode_state(state_blob)
            if state.get("dataset_name"):
                package_state = packages.get_load_package_state(load_id)
                targets.append(
                    PackageTarget(
                        load_id,
                        state["dataset_name"],
                        state.get("destination_type"),
                        _text_or_none(dict(package_state).get(location_key)),
                    )
                )
    return targets


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def state_versions(pipeline: dlt.Pipeline, client: Any) -> tuple[int, int | None]:
    """(the pipeline folder's state version, the latest version stored in the destination for
    this pipeline, None when none is) through an open `pipeline.sql_client()`.

    dlt 1.31 bumps `_state_version` in the local state whenever the state (without `_local`)
    changes at an extract, and stores that state, version included, in the destination's
    `_dlt_pipeline_state` table with the load package that carries it
    (`Pipeline._bump_version_and_extract_state`); after every completed load the two are equal.
    Raises `DatabaseUndefinedRelation` when the destination has no state table."""
    # a new pipeline folder has no schema until its first extract ends: dlt's default one names
    # the state table the same way
    schema = pipeline.default_schema if pipeline.default_schema_name else dlt.Schema("_")
    table = client.make_qualified_table_name(schema.state_table_name)
    rows = client.execute_sql(
        f"SELECT max(version) FROM {table} WHERE pipeline_name = %s", pipeline.pipeline_name
    )
    stored = rows[0][0] if rows else None
    return int(pipeline.state.get("_state_version", 0)), stored


def data_location(pipeline: dlt.Pipeline) -> str | None:
    """Where `pipeline`'s destination keeps its data (the DuckDB file's path, PostgreSQL's
    host:port/database, the bucket URL): `DestinationClientConfiguration.data_location()`,
    dlt 1.31's location check for cross-destination reads, not in its docs. None when the
    destination is not configured yet or cannot tell."""
    try:
        return pipeline.destination_client().config.data_location() or None
    except Exception:  # no destination yet, or one without a location: nothing to compare
        return None


def parse_job_file_name(file_path: str) -> tuple[str, ParsedLoadJobFileName]:
    """A job file's name and its parts (`<table>.<file_id>.<retry>.<format>`)."""
    file_name = FileStorage.get_file_name_from_file_path(file_path)
    return file_name, ParsedLoadJobFileName.parse(file_name)


def active_pipeline() -> dlt.Pipeline | None:
    """The pipeline `dlt.pipeline()` last created or activated, or None: the public
    `dlt.current.pipeline()` would create a default pipeline when none is active."""
    from dlt.common.configuration.container import Container
    from dlt.common.pipeline import PipelineContext

    context = Container()[PipelineContext]
    return context.pipeline() if context.is_active() else None  # type: ignore[return-value]


def installed_dlt() -> Version:
    return Version(dlt.__version__)


def repairs_vouched_for() -> bool:
    """The installed dlt is one the crash repairs were tested with."""
    return installed_dlt() in TESTED_DLT


_warned = False


def check_dlt(say: Callable[[str], Any] = log.warning) -> bool:
    """Says once per process, in one line, when the installed dlt is outside `TESTED_DLT`."""
    global _warned
    if repairs_vouched_for():
        return True
    if not _warned:
        _warned = True
        say(
            f"dlt {dlt.__version__} is outside the range this pipeline was tested with"
            f" ({TESTED_DLT}): runs work, but a run interrupted by a crash is refused instead of"
            " repaired (install a tested dlt to repair it)"
        )
    return False


def create_missing_tables(pipeline: dlt.Pipeline) -> bool:
    """Creates the tables (and columns) that the normalized packages of `pipeline` write and its
    SQL destination lacks; whether it created any.

    dlt's load step creates the tables of the package being loaded, but skips its schema
    migration altogether once the destination holds the schema's version hash (`SqlJobClientBase.
    update_stored_schema`). A pipeline folder whose schema has every table (loaded elsewhere
    before) that runs `--resources past_due` into a new dataset stores that hash there with the
    past-due tables only; every later run that loaded another resource into it then failed on a
    table that does not exist. `force=True` applies the DDL for what is missing (nothing when
    nothing is), without storing the version twice. Only the packages' tables: an empty table of
    a resource not loaded would look loaded to `loaded.holds_history`. A dataset not created yet
    is left to dlt, which migrates it whole."""
    tables = set(pipeline.default_schema.dlt_table_names())
    for load_id in pipeline.list_normalized_load_packages():
        jobs = pipeline.get_load_package_info(load_id).jobs
        tables |= {job.job_file_info.table_name for job in jobs.get("new_jobs", [])}
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase) or not client.is_storage_initialized():
            return False  # the filesystem (files appear with their rows), or a new dataset
        return bool(client.update_stored_schema(only_tables=tables, force=True))


# Where dlt's steps commit, for the tests that kill a run at a precise point
# (`tests/helpers_killer.py`): (module, attribute, what has just happened when it returns).
STEP_COMMITS = {
    "normalize-mid": ("dlt.normalize.normalize", "w_normalize_files", "normalized files written"),
    "normalize-commit": (
        "dlt.common.storages.load_storage",
        "LoadStorage.commit_new_load_package",
        "package renamed to load/normalized, its extracted copy not yet deleted",
    ),
    "load-copy": (
        "dlt.destinations.impl.duckdb.duck",
        "DuckDbCopyJob.run",
        "a COPY/INSERT committed, its outcome not yet recorded",
    ),
    "load-merge": (
        "dlt.destinations.job_client_impl",
        "SqlLoadJob.run",
        "a merge SQL job committed, its outcome not yet recorded",
    ),
    "load-complete": (
        "dlt.destinations.job_client_impl",
        "SqlJobClientBase.complete_load",
        "the _dlt_loads row written, the package not yet archived",
    ),
}
