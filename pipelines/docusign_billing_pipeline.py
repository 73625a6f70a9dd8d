"""The runnable pipeline: DocuSign past-due invoices into DuckDB (default) or any dlt destination.

Run it as a script (`python pipelines/docusign_billing_pipeline.py`) or through the CLI
(`docusign-billing run`); both use the functions below.
"""

import ctypes
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.pipeline import LoadInfo
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from sources.docusign_billing.dlt_internals import DuckDbCredentials, create_missing_tables  # noqa: E402

if __package__ in (None, ""):  # run as a script from a clone
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.failures import explain  # noqa: E402
from pipelines.filesystem import rows_stamped_with_their_run  # noqa: E402
from pipelines.pending import load_pending  # noqa: E402
from pipelines.views import invoices_relation, refresh_views  # noqa: E402
from sources.docusign_billing import docusign_billing, settings  # noqa: E402
from sources.docusign_billing.errors import ConfigError  # noqa: E402
from sources.docusign_billing.recovery import recover  # noqa: E402
from sources.docusign_billing.run_lock import run_lock  # noqa: E402

Progress = Callable[[str], None]
_STALE_SHOWN = 5


@dataclass
class Summary:
    """What the destination holds for the accounts of the latest run."""

    accounts: int = 0
    invoices: int = 0
    items: int = 0
    past_due: dict[str, Decimal] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    """Each failure of the latest run: an account's message, with the resources it failed in."""
    failed_accounts: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    """Rows of the other resources' tables (`LATEST_ROWS`)."""
    stale: dict[str, int] = field(default_factory=dict)
    """Accounts the latest run did not load (nor fail) that still have current invoices, with
    their count: removed from `account_ids` or not selected, their last state stays current."""
    dataset: str = ""
    """The dataset (schema) name as the destination normalized it."""
    seconds: float = 0.0


def make_pipeline(
    destination: Any = None,
    dataset_name: str = settings.DATASET_NAME,
    pipelines_dir: str | None = None,
    duckdb_file: str = settings.DUCKDB_FILE,
    pipeline_name: str = settings.PIPELINE_NAME,
    read_only: bool = False,
) -> dlt.Pipeline:
    """DuckDB file in the working directory unless another dlt destination (name or factory) is given."""
    if dataset_name.lower() in settings.RESERVED_DATASET_NAMES:
        raise ConfigError(
            f"the dataset name {dataset_name!r} is a system schema of the databases"
            f" ({', '.join(sorted(settings.RESERVED_DATASET_NAMES))} are reserved): choose another"
        )
    if isinstance(destination, str) and not destination.strip():
        raise ConfigError(
            "--destination is empty: give a dlt destination name (duckdb, postgres, ...)"
        )
    if pipelines_dir is not None:
        try:
            os.makedirs(pipelines_dir, exist_ok=True)
        except OSError as ex:
            raise ConfigError(
                f"the pipelines folder {pipelines_dir!r} cannot be created ({ex.strerror or type(ex).__name__})"
            ) from None
    if destination in (None, "duckdb"):
        _check_duckdb_file(duckdb_file)
        if os.path.splitext(os.path.basename(duckdb_file))[0] == dataset_name:
            # DuckDB cannot tell catalog from schema then and dlt's merge SQL fails to bind
            raise ConfigError(
                f"the DuckDB file {duckdb_file!r} must not be named like the dataset {dataset_name!r}"
            )
        target: Any = dlt.destinations.duckdb(duckdb_credentials(duckdb_file, read_only))
    else:
        target = destination
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=target,
        dataset_name=dataset_name,
        pipelines_dir=pipelines_dir,  # type: ignore[arg-type]  # dlt: `str = None`, None = its default
    )


_DUCKDB_MAGIC = (8, b"DUCK")
"""Where a DuckDB database file says what it is: bytes 8-11 of its header."""


def _check_duckdb_file(duckdb_file: str) -> None:
    """A `ConfigError` when `duckdb_file` cannot be a DuckDB database: empty, a folder, in a
    missing folder, or an existing file of another kind (DuckDB would refuse it on every run)."""
    if not duckdb_file.strip() or os.path.isdir(duckdb_file):
        raise ConfigError(f"the DuckDB file {duckdb_file!r} is not a file name")
    folder = os.path.dirname(os.path.abspath(duckdb_file))
    if not os.path.isdir(folder):
        raise ConfigError(f"the folder of the DuckDB file {duckdb_file!r} does not exist")
    if os.path.isfile(duckdb_file):
        offset, magic = _DUCKDB_MAGIC
        with open(duckdb_file, "rb") as file:
            header = file.read(offset + len(magic))
        if header[offset:] != magic:
            raise ConfigError(f"{os.path.abspath(duckdb_file)} is not a DuckDB database file")


def duckdb_credentials(duckdb_file: str, read_only: bool = False) -> DuckDbCredentials:
    """The DuckDB file with `settings.DUCKDB_GLOBAL_CONFIG` under the user's configured settings.

    Left unresolved, so dlt still fills the other credential fields (pragmas, extensions, ...)
    from config; a resolved instance would hide them. `read_only`: opened like a BI tool opens
    it, so that several readers share the file (`report`)."""
    credentials = DuckDbCredentials()
    credentials.database = os.path.abspath(duckdb_file)
    credentials.read_only = read_only
    configured = dlt.config.get("destination.duckdb.credentials.global_config", dict) or {}
    credentials.global_config = {**settings.DUCKDB_GLOBAL_CONFIG, **configured}
    return credentials


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """The records of a batch decoded by `json` (one Arrow cannot read) form no reference cycles,
    so the cyclic collector would only rescan them again and again while they pile up; it resumes
    after. Batches read by Arrow make few Python objects: for them it makes no measurable difference
    (it saved ~0.7 s per 100k invoices when every body was decoded by `json`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def release_freed_memory() -> None:
    """Hands what the extract step freed back to the OS, so the load step does not start from the
    extract's peak (Arrow's allocator and glibc's malloc keep freed pages for reuse otherwise)."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def load(
    pipeline: dlt.Pipeline, progress: Progress = lambda _: None, **source_args: Any
) -> LoadInfo:
    """Extracts, normalizes and loads in explicit steps so a scheduler's log shows where time goes.

    Packages left pending by an interrupted run are normalized and loaded before the extract, so
    the source sees in the destination everything extracted before (it sends only new items);
    one that fails to load again is set aside (`pipelines/pending.py`) instead of blocking the run.
    One run at a time per pipeline folder: a second one raises `RunInProgressError` at once.
    """
    with run_lock(pipeline):
        source = docusign_billing(**source_args)
        started = time.monotonic()
        for message in recover(pipeline).messages():  # what a killed earlier run left behind
            progress(message)
        load_pending(pipeline, progress)
        progress("extracting")
        with cyclic_gc_paused(), rows_stamped_with_their_run(pipeline):  # pipelines/filesystem.py
            pipeline.extract(source)
        release_freed_memory()
        progress(f"normalizing ({time.monotonic() - started:.1f} s)")
        pipeline.normalize()
        progress(
            f"loading into {pipeline.destination.destination_name} ({time.monotonic() - started:.1f} s)"
        )
        created = create_missing_tables(pipeline)  # dlt creates only the package's tables
        info = pipeline.load()
        # the load has committed: what follows may warn, never fail the run
        try:
            # reporting views follow the tables (pipelines/views.py)
            changed = created or any(package.schema_update for package in info.load_packages)
            refresh_views(pipeline, changed)
        except Exception as ex:
            progress(f"loaded; the reporting views could not be refreshed ({explain(ex)[1]})")
        return info


def summarize(pipeline: dlt.Pipeline) -> Summary:
    """Counts from the destination itself: what landed, not what was sent.

    Reads only the tables that exist there (a new destination may lack `account_errors` that an
    older run of the same pipeline folder recorded): the load has committed when this runs, and
    nothing after it may fail the run."""
    summary = Summary()
    tables = set(pipeline.default_schema.data_table_names())
    with pipeline.sql_client() as client:
        summary.dataset = client.dataset_name  # as the destination normalized it

        def rows(sql: str) -> Sequence[Sequence[Any]]:
            try:
                return client.execute_sql(sql) or []  # None only for statements without rows
            except DatabaseUndefinedRelation:
                return []  # the table was never created in this destination

        snapshots = client.make_qualified_table_name(settings.SNAPSHOTS_TABLE)
        errors = client.make_qualified_table_name(settings.ERRORS_TABLE)
        if settings.SNAPSHOTS_TABLE in tables:
            _summarize_past_due(pipeline, client, summary, rows)
            latest_run = f"SELECT max(snapshot_at) FROM {snapshots}"
        else:
            latest_run = f"SELECT max(snapshot_at) FROM {errors}"
        for name, current in LATEST_ROWS.items():
            if name in tables:
                table = client.make_qualified_table_name(name)
                counted = rows(f"SELECT count(*) FROM {table} WHERE {current.format(table=table)}")
                summary.rows[name] = counted[0][0] if counted else 0
        failed = rows(
            "SELECT account_id, message, string_agg(resource, ', ' ORDER BY resource)"
            f" FROM {errors} WHERE snapshot_at = ({latest_run})"
            " GROUP BY account_id, message ORDER BY account_id, message"
        )
        summary.failures = [f"{m} [{r}]" if r else m for _, m, r in failed]
        summary.failed_accounts = len({account for account, _, _ in failed})
        summary.stale = {
            account: count
            for account, count in summary.stale.items()
            if account not in {failed_id for failed_id, _, _ in failed}
        }
    return summary


LATEST_ROWS = {
    "billing_invoices": "TRUE",
    "billing_payments": "TRUE",
    "billing_plan": "_dlt_valid_to IS NULL",
    "billing_charges": "snapshot_at = (SELECT max(snapshot_at) FROM {table})",
}
"""The rows of the new resources' tables the summary counts: every invoice and payment, the
current plans, the latest run's charges."""

Rows = Callable[[str], Sequence[Sequence[Any]]]


def _summarize_past_due(pipeline: dlt.Pipeline, client: Any, summary: Summary, rows: Rows) -> None:
    snapshots = client.make_qualified_table_name(settings.SNAPSHOTS_TABLE)
    invoices = invoices_relation(pipeline, client)  # filesystem: rebuilt from the runs
    items = client.make_qualified_table_name(settings.ITEMS_TABLE)
    latest = (
        f"SELECT * FROM {snapshots} WHERE snapshot_at = (SELECT max(snapshot_at) FROM {snapshots})"
    )
    for currency, accounts, total in rows(
        f"SELECT currency_code, count(*), sum(past_due_balance) FROM ({latest}) s GROUP BY 1 ORDER BY 1"
    ):
        summary.accounts += accounts
        summary.past_due[currency or "?"] = Decimal(total or 0)
    current = (
        f"SELECT _dlt_id FROM {invoices} WHERE _dlt_valid_to IS NULL"
        f" AND account_id IN (SELECT account_id FROM ({latest}) s)"
    )
    summary.invoices = (rows(f"SELECT count(*) FROM ({current}) c") or [(0,)])[0][0]
    summary.items = (
        rows(f"SELECT count(*) FROM {items} WHERE _dlt_parent_id IN ({current})") or [(0,)]
    )[0][0]
    summary.stale = {
        account: count
        for account, count in rows(
            f"SELECT account_id, count(*) FROM {invoices} WHERE _dlt_valid_to IS NULL"
            f" AND account_id NOT IN (SELECT account_id FROM ({latest}) s)"
            " GROUP BY 1 ORDER BY 1"
        )
    }


def recorded_failures(info: LoadInfo) -> bool:
    """Whether a run's load holds failed accounts (a job of the errors table): what the exit code
    says when the summary cannot be read."""
    return any(
        job.job_file_info.table_name == settings.ERRORS_TABLE
        for package in info.load_packages
        for jobs in package.jobs.values()
        for job in jobs
    )


def format_summary(summary: Summary, pipeline: dlt.Pipeline, where: str = "") -> str:
    """The summary as printed; `where` names the DuckDB file (or other location) written."""
    totals = ", ".join(f"{cur} {amount:,.2f}" for cur, amount in summary.past_due.items()) or "none"
    stale = list(summary.stale)
    return "\n".join(
        [
            f"loaded {summary.accounts} accounts into {pipeline.destination.destination_name}"
            f" dataset {summary.dataset or pipeline.dataset_name}{where} in {summary.seconds:.1f} s",
            f"  past-due invoices: {summary.invoices}   invoice items: {summary.items}",
            f"  past-due total: {totals}",
            *(
                ["  " + "   ".join(f"{name}: {count}" for name, count in summary.rows.items())]
                if summary.rows
                else []
            ),
            *(
                [f"  FAILED accounts: {summary.failed_accounts}"]
                + [f"    {m}" for m in summary.failures]
                if summary.failures
                else []
            ),
            *(
                [
                    f"  stale: {len(stale)} accounts not in this run still have current invoices"
                    " (removed from account_ids or not selected): "
                    + ", ".join(stale[:_STALE_SHOWN])
                    + (", ..." if len(stale) > _STALE_SHOWN else "")
                ]
                if stale
                else []
            ),
        ]
    )


if __name__ == "__main__":
    # dlt style: configuration from .dlt/config.toml, .dlt/secrets.toml or the environment; the
    # CLI's `run` turns any failure into one line and an exit code
    from pipelines.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
