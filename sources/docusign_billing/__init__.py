"""DocuSign eSignature billing: past-due invoices, invoices, payments, plans and charges, each
described once (`resources.py`) and loaded by one generic path, with history and per-run
snapshots; the dated lists incrementally."""

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import dlt
from dlt.common.schema.typing import TDeleteInsertStrategyDict, TScd2StrategyDict
from dlt.sources import DltResource

from . import run_guard, settings
from .accounts import AccountTarget, check_selection, discover, normalize_account_ids, plan
from .auth import DocuSignCredentials, make_auth
from .batches import parsed_batches
from .client import HttpSettings, check_setting, validate_base_url
from .dlt_internals import CurrentLoadPackageStateNotAvailable, with_config
from .errors import ConfigError
from .fetch import AccountPages, Fetched, FetchSession, fetch_accounts
from .loaded import holds_history, loaded_item_versions
from .oauth import AccountInfo
from .resources import RESOURCES, Level, Resource
from .shapes import ParsedBatch
from .tables import CLEARS_ITEMS, BatchParser, column_name
from .windows import Window, windows

_SCD2: TScd2StrategyDict = {"disposition": "merge", "strategy": "scd2"}
_REPLAYABLE: TDeleteInsertStrategyDict = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}
"""Keyed, through staging: a load replayed after a crash replaces its rows instead of adding them.

`deduplicated`: each key occurs once per package (one row per account and run; an account's
records are deduplicated in its batch), and `recovery.py` restarts a package's staging
from empty after a crash, so dlt skips its dedup pass over staging (a third of the load time at
100k invoices)."""


def history_hints(accounts: Sequence[str]) -> TScd2StrategyDict:
    """SCD2 that retires only records of the accounts this run extracted.

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


def merges_by_deleting(pipeline: dlt.Pipeline | None) -> bool:
    """Whether the destination runs dlt's delete-insert merge, which deletes by the marker rows
    of records without items (`tables.CLEARS_ITEMS`). The filesystem destination (Parquet) has no
    merge: it appends, and a marker would be stored as an item. Without a destination: True."""
    destination = pipeline.destination if pipeline is not None else None
    if destination is None:
        return True
    return "delete-insert" in destination.capabilities().supported_merge_strategies


def select_resources(names: Any) -> list[Resource]:
    """`names` (a list or comma separated; None: all) as descriptions, in the source's order."""
    if names is None or names == "" or names == []:
        names = list(settings.DEFAULT_RESOURCES)
    setting = f"sources.docusign_billing.resources = {names!r}"
    listed = names.split(",") if isinstance(names, str) else names
    if not isinstance(listed, (list, tuple)) or not all(isinstance(n, str) for n in listed):
        raise ConfigError(
            f"{setting} is not a resource name, a list of names or comma separated names"
        )
    wanted = [n.strip() for n in listed]
    if not any(wanted):  # `--resources ","`: never a silent run that loads nothing
        raise ConfigError(f"{setting} names no resource; choose from {', '.join(RESOURCES)}")
    unknown = [n for n in wanted if n and n not in RESOURCES]
    if unknown:
        raise ConfigError(
            f"unknown resource(s) {', '.join(unknown)}; choose from {', '.join(RESOURCES)}"
        )
    return [r for name, r in RESOURCES.items() if name in wanted]


def _start_of_history(history_start: Any, today: date) -> date:
    if history_start in (None, ""):
        try:
            return today.replace(year=today.year - settings.HISTORY_YEARS)
        except ValueError:  # 29 February
            return today.replace(year=today.year - settings.HISTORY_YEARS, day=28)
    try:
        return date.fromisoformat(str(history_start).strip()[:10])
    except ValueError:
        raise ConfigError(
            f"history_start {history_start!r} is not a date like 2023-01-31"
        ) from None


def _table(level: Level) -> str:
    if level.table is None:
        raise ValueError(f"{level.label}: not stored")  # a description's mistake
    return level.table


def _transformers(resource: Resource, batches: DltResource) -> list[DltResource]:
    """The dlt transformers of one resource's tables, their write dispositions from its history."""
    records, items, body = resource.records, resource.items, resource.body
    key = column_name(records.key or "")

    def records_hints(batch: ParsedBatch) -> Any:
        if resource.history == "scd2" and batch.completed_accounts is not None:
            hints = dlt.mark.make_hints(write_disposition=history_hints(batch.completed_accounts))
            return dlt.mark.with_hints(batch.records, hints)
        return batch.records

    record_hints: dict[str, Any] = {  # type: ignore[assignment]  # mypy joins the values to object
        "scd2": {"write_disposition": _SCD2},
        "merge": {"write_disposition": _REPLAYABLE, "primary_key": ("account_id", key)},
        "per_run": {
            "write_disposition": _REPLAYABLE,
            "primary_key": ("account_id", key, "snapshot_at"),
        },
    }[resource.history]

    @dlt.transformer(name=_table(records), **record_hints)
    def record_table(batch: ParsedBatch) -> Iterator[object]:
        yield records_hints(batch)

    record_table.__doc__ = records.meaning
    result = [batches | record_table]
    if items is not None:
        # items of record versions new to the destination: appended, no staging, for SCD2 (a
        # version's items never change; `_dlt_load_id` lets `recovery.py` remove a crashed
        # load's rows); for merge, a changed record's items replace its old ones through the
        # merge key, and a record without items deletes them by its marker row (`CLEARS_ITEMS`)
        item_hints: dict[str, Any] = (
            {"write_disposition": "append", "primary_key": "_dlt_id"}
            if resource.history == "scd2"
            else {
                "write_disposition": _REPLAYABLE,
                "primary_key": "_dlt_id",
                "merge_key": ("account_id", key),
                "columns": {CLEARS_ITEMS: {"data_type": "bool", "hard_delete": True}},
            }
        )

        @dlt.transformer(name=_table(items), **item_hints)
        def item_table(batch: ParsedBatch) -> Iterator[object]:
            yield batch.items  # also when empty: the table exists from the first run on

        item_table.__doc__ = items.meaning
        result.append(batches | item_table)
    if body.table is not None:

        @dlt.transformer(  # type: ignore[call-overload]  # dlt 1.31 types the strategy dict out
            name=_table(body),
            write_disposition=_REPLAYABLE,
            primary_key=("account_id", "snapshot_at"),
        )
        def summary_table(batch: ParsedBatch) -> Iterator[object]:
            yield batch.summary

        summary_table.__doc__ = body.meaning
        result.append(batches | summary_table)
    return result


@dlt.source(name="docusign_billing", max_table_nesting=0)
def docusign_billing(
    account_ids: Any = None,  # Any: dlt cannot resolve Union[str, List[str]]
    credentials: DocuSignCredentials = dlt.secrets.value,
    base_url: str | None = None,
    accounts: str = "all",
    resources: Any = None,
    history_start: str | None = None,
    window_days: int = settings.WINDOW_DAYS,
    lookback_days: int = settings.LOOKBACK_DAYS,
    max_workers: int = settings.MAX_WORKERS,
    request_timeout: float = settings.REQUEST_TIMEOUT,
    max_attempts: int = settings.MAX_ATTEMPTS,
    backoff_factor: float = settings.BACKOFF_FACTOR,
    max_retry_delay: float = settings.MAX_RETRY_DELAY,
) -> Sequence[DltResource]:
    """Billing data of `account_ids`, or of the `accounts` ("all"/"default") OAuth discovers.

    One call per account and resource (per window and page for the dated lists), typed once for
    all its tables. A failing account is recorded in `account_errors` (naming the resource) and
    leaves that resource's history and incremental state untouched; the other accounts load.
    Create the dlt pipeline first and this source after it: the source repairs what an
    interrupted run left in that pipeline's folder before `pipeline.run` resumes it (README,
    "Use from Python").

    Args:
        account_ids: DocuSign account GUIDs: a list, or one string of comma/space separated ids
            or a JSON list. None: the accounts the OAuth credentials reach (see `accounts`).
        credentials: How to authenticate (`auth` = "jwt", "refresh_token", "token" or
            "legacy" and that method's fields); from `sources.docusign_billing.credentials`.
        base_url: REST base for every account, e.g. "https://demo.docusign.net/restapi".
            None: each OAuth account on its own host, legacy auth on the demo host.
        accounts: Without `account_ids`: "all" the accounts the user can reach, or the
            user's "default" account only (OAuth auth methods).
        resources: Names from `resources.RESOURCES` (a list or comma separated); None: all.
        history_start: First day a first run back-fills (ISO date); None: three years back.
        window_days: Days per `from_date`/`to_date` window (DocuSign accepts 365).
        lookback_days: Later runs start this many days before the last window's end.
        max_workers: Requests at once, for all resources together.
        request_timeout: Seconds before a hung request is retried.
        max_attempts: Tries per request on 429, 5xx, timeouts and connection errors.
        backoff_factor: Base of the exponential wait between tries, in seconds.
        max_retry_delay: Cap of any single wait, `Retry-After` and rate-limit resets included.

    Returns:
        The dlt resources of every table of the selected resources and `account_errors`
        (transformers of one fetch per account and resource).

    Raises:
        ConfigError: Invalid account ids, credentials, base URL, resources or windows.
        RunInProgressError: Another run holds the active pipeline's folder.
        UnrepairedPackageError: The active pipeline holds an interrupted run's package that the
            installed dlt version cannot be trusted to resume.
    """
    ids = normalize_account_ids(account_ids)
    check_selection(ids, accounts, credentials)
    selected = select_resources(resources)
    if int(window_days) < 1 or int(lookback_days) < 0:
        raise ConfigError("window_days must be at least 1 and lookback_days at least 0")
    base_url = validate_base_url(base_url) if base_url else None
    auth = make_auth(credentials)
    check_setting("max_workers", max_workers, minimum=1)
    session = FetchSession(
        auth,
        HttpSettings(request_timeout, max_attempts, backoff_factor, max_retry_delay),
        max_workers,
    )
    prepared = run_guard.prepare()  # before `pipeline.run` resumes what a killed run left
    targets_of_run: list[list[AccountTarget]] = []

    def targets() -> list[AccountTarget]:
        if not targets_of_run:  # discovered once for all resources
            targets_of_run.append(plan(ids, accounts, base_url, credentials, auth))
        return targets_of_run[0]

    def batches_of(resource: Resource) -> DltResource:
        @dlt.resource(name=f"{resource.name}_batches", selected=False)
        def account_batches() -> Iterator[ParsedBatch | None]:
            """Fetches and types each account; the last batch lists the accounts of the run. None
            while no account has answered: dlt then takes the other resources' batches (all
            resources are fetched at once, sharing the run's request slots)."""
            snapshot_at, load_id = current_package()
            pipeline = dlt.current.pipeline() if load_id else None
            if pipeline is not None:
                run_guard.check_extract(pipeline, prepared)
                run_guard.record_location(pipeline)
            items = resource.items
            known = (
                loaded_item_versions(pipeline, items.table) if items and items.table else None
            )  # before any API call
            fetched: Iterator[Fetched | None]
            if resource.windowed:
                fetched = _incremental(
                    resource,
                    snapshot_at.date(),
                    holds_history(pipeline, _table(resource.records)),
                    load_id,
                )
            else:
                fetched = fetch_accounts(targets(), session, resource)

            clears_items = resource.history == "merge" and merges_by_deleting(pipeline)

            def new_parser() -> BatchParser:
                return BatchParser(snapshot_at, load_id, known, resource, clears_items)

            yield from parsed_batches(fetched, new_parser)

        return account_batches

    def _incremental(
        resource: Resource, today: date, destination_is_current: bool, load_id: str | None
    ) -> Iterator[Fetched | None]:
        """The windows each account still needs; its state advances as its pages arrive (dlt
        commits the state with the load package: a failed run or account keeps its old one).
        A destination without the resource's table, or behind the local state, gets the back-fill
        whatever the state says (`loaded.holds_history`)."""
        state = dlt.current.source_state()
        reached_per_resource = state.setdefault("windows", {})
        if not destination_is_current:
            reached_per_resource[resource.name] = {}
            # a back-fill that reaches the same windows again leaves the state unchanged, and dlt
            # stores only a changed state: this makes it change, so the destination stores the
            # state of this load and is current again for the next run
            state["back_filled_by"] = load_id
        reached: dict[str, str] = reached_per_resource.setdefault(resource.name, {})
        start = _start_of_history(history_start, today)

        def windows_of(account_id: str) -> list[Window]:
            last = reached.get(account_id)
            return windows(
                date.fromisoformat(last) if last else None,
                today,
                start,
                int(window_days),
                int(lookback_days),
            )

        for account in fetch_accounts(targets(), session, resource, windows_of):
            if isinstance(account, AccountPages) and account.reached is not None:
                reached[account.account_id] = account.reached.isoformat()
            yield account

    result: list[DltResource] = []
    for resource in selected:
        batches = batches_of(resource)
        result += [*_transformers(resource, batches), batches | _errors_of(resource)]
    return result


def _errors_of(resource: Resource) -> DltResource:
    """`account_errors` rows of one resource (every resource writes to the one table)."""

    @dlt.transformer(  # type: ignore[call-overload]  # dlt 1.31 types the strategy dict out
        name=settings.ERRORS_TABLE if resource.name == "past_due" else f"{resource.name}_errors",
        table_name=settings.ERRORS_TABLE,
        write_disposition=_REPLAYABLE,
        # one row per account, resource and run: the key occurs once per package, as
        # `_REPLAYABLE`'s `deduplicated` declares (an account may fail in several resources)
        primary_key=("account_id", "resource", "snapshot_at"),
    )
    def account_errors(batch: ParsedBatch) -> Iterator[object]:
        """One row per account and resource whose call failed in a run."""
        if batch.errors.num_rows:
            yield batch.errors

    return account_errors


@with_config(sections=("sources", "docusign_billing"))
def reachable_accounts(credentials: DocuSignCredentials = dlt.secrets.value) -> list[AccountInfo]:
    """What the configured OAuth credentials can reach, without loading anything."""
    check_selection([], "all", credentials)
    return discover(credentials, make_auth(credentials))
