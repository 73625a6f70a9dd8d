"""DocuSign eSignature billing: past-due invoices with SCD2 history, their items, per-run snapshots."""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.common.schema.typing import TDeleteInsertStrategyDict, TScd2StrategyDict
from dlt.sources import DltResource

from . import run_guard, settings
from .accounts import check_selection, discover, normalize_account_ids, plan
from .auth import DocuSignCredentials, make_auth
from .batches import parsed_batches
from .client import HttpSettings, check_setting, validate_base_url
from .dlt_internals import CurrentLoadPackageStateNotAvailable, with_config
from .fetch import fetch_accounts
from .loaded import loaded_item_versions
from .oauth import AccountInfo
from .tables import BatchParser, ParsedBatch

_SCD2: TScd2StrategyDict = {"disposition": "merge", "strategy": "scd2"}
_REPLAYABLE: TDeleteInsertStrategyDict = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}
"""Keyed, through staging: a load replayed after a crash replaces its rows instead of adding them.

`deduplicated`: each key occurs once per package (one row per account and run), and
`sources/docusign_billing/recovery.py` restarts a package's staging from empty after a crash, so dlt skips its
dedup pass over staging (a third of the load time at 100k invoices)."""


def history_hints(accounts: Sequence[str]) -> TScd2StrategyDict:
    """SCD2 that retires only invoices of the accounts this run extracted.

    A `destination_scope` rather than a `merge_key`: an account whose last invoice was paid
    sends no rows, and a merge key would then never retire its invoices. Sorted, so the same
    accounts keep the same schema and dlt stores no new schema version per run.
    """
    scope = "account_id IN ({})".format(", ".join(f"'{a}'" for a in sorted(accounts)) or "NULL")
    return {**_SCD2, "destination_scope": scope}


def current_package() -> tuple[datetime, str | None]:
    """When the run started and its load id (now and None when iterated without a pipeline).

    The start is the load package's creation time, dlt's SCD2 boundary, so `snapshot_at` equals
    the `_dlt_valid_from`/`_dlt_valid_to` of the same run."""
    try:
        package = dlt.current.load_package_state()
    except CurrentLoadPackageStateNotAvailable:
        return datetime.now(UTC), None
    return package["state"]["created_at"].astimezone(UTC), package["load_id"]


@dlt.source(name="docusign_billing", max_table_nesting=0)
def docusign_billing(
    account_ids: Any = None,  # Any: dlt cannot resolve Union[str, List[str]]
    credentials: DocuSignCredentials = dlt.secrets.value,
    base_url: str | None = None,
    accounts: str = "all",
    max_workers: int = settings.MAX_WORKERS,
    request_timeout: float = settings.REQUEST_TIMEOUT,
    max_attempts: int = settings.MAX_ATTEMPTS,
    backoff_factor: float = settings.BACKOFF_FACTOR,
    max_retry_delay: float = settings.MAX_RETRY_DELAY,
) -> Sequence[DltResource]:
    """Past-due invoices of `account_ids`, or of the `accounts` ("all"/"default") OAuth discovers.

    One API call per account, parsed once for all tables. A failing account is recorded in
    `account_errors` and leaves its history untouched; the other accounts load.
    """
    ids = normalize_account_ids(account_ids)
    check_selection(ids, accounts, credentials)
    base_url = validate_base_url(base_url) if base_url else None
    auth = make_auth(credentials)
    http = HttpSettings(request_timeout, max_attempts, backoff_factor, max_retry_delay)
    check_setting("max_workers", max_workers, minimum=1)
    prepared = run_guard.prepare()  # before `pipeline.run` resumes what a killed run left

    @dlt.resource(selected=False)
    def account_batches() -> Iterator[ParsedBatch]:
        """Fetches and types each account; the last batch lists the accounts of the run."""
        snapshot_at, load_id = current_package()
        pipeline = dlt.current.pipeline() if load_id else None
        if pipeline is not None:
            run_guard.check_extract(pipeline, prepared)
        known = loaded_item_versions(pipeline)  # before any API call
        targets = plan(ids, accounts, base_url, credentials, auth)

        def new_parser() -> BatchParser:
            return BatchParser(snapshot_at, load_id, known)

        yield from parsed_batches(fetch_accounts(targets, auth, http, max_workers), new_parser)

    # The ignores on the transformers with a strategy dict: dlt 1.31 types @dlt.transformer's
    # write_disposition as a disposition name only (@dlt.resource's takes the strategy dicts too);
    # both hand it to the same table hints at run time
    @dlt.transformer(name=settings.INVOICES_TABLE, write_disposition=_SCD2)  # type: ignore[call-overload]
    def past_due_invoices(batch: ParsedBatch) -> Iterator[object]:
        """One row per invoice version; `_dlt_valid_to` NULL means past due as of the latest run."""
        if batch.completed_accounts is None:
            yield batch.invoices
        else:
            hints = dlt.mark.make_hints(write_disposition=history_hints(batch.completed_accounts))
            yield dlt.mark.with_hints(batch.invoices, hints)

    @dlt.transformer(name=settings.ITEMS_TABLE, write_disposition="append", primary_key="_dlt_id")
    def invoice_items(batch: ParsedBatch) -> Iterator[object]:
        """Items of invoice versions new to the destination, linked like dlt's nested tables and by
        plain keys. Appended, no staging: a version's items never change; `_dlt_load_id` lets
        `sources/docusign_billing/recovery.py` remove a crashed load's rows before they are loaded again."""
        yield batch.items  # also when empty: the table exists from the first run on

    @dlt.transformer(  # type: ignore[call-overload]
        name=settings.SNAPSHOTS_TABLE,
        write_disposition=_REPLAYABLE,
        primary_key=("account_id", "snapshot_at"),
    )
    def past_due_snapshots(batch: ParsedBatch) -> Iterator[object]:
        """One row per account and run: the time series of what was past due when."""
        yield batch.snapshots

    @dlt.transformer(  # type: ignore[call-overload]
        name=settings.ERRORS_TABLE,
        write_disposition=_REPLAYABLE,
        primary_key=("account_id", "snapshot_at"),
    )
    def account_errors(batch: ParsedBatch) -> Iterator[object]:
        """One row per account whose call failed in a run."""
        if batch.errors.num_rows:
            yield batch.errors

    return (
        account_batches | past_due_invoices,
        account_batches | invoice_items,
        account_batches | past_due_snapshots,
        account_batches | account_errors,
    )


@with_config(sections=("sources", "docusign_billing"))
def reachable_accounts(credentials: DocuSignCredentials = dlt.secrets.value) -> list[AccountInfo]:
    """What the configured OAuth credentials can reach, without loading anything."""
    check_selection([], "all", credentials)
    return discover(credentials, make_auth(credentials))
