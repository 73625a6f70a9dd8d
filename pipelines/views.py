"""Reporting views: what is past due, how old, and whether it is getting better.

Each view is written once, in DuckDB's SQL, and generated for the destination's dialect by sqlglot
(the dialect dlt names in the destination's capabilities), so DuckDB, PostgreSQL and the other SQL
warehouses run the same definition. Every age is measured at a run's `snapshot_at`, never at
`now()`: a report of the same data is the same report tomorrow.

`refresh_views` creates or replaces the views in the dataset after every successful load.
`view_query` gives the same definitions as one stand-alone query (the tables as CTEs), for the
state at an earlier run (`as_of`) and for destinations that cannot hold views (filesystem).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt
import sqlglot
from dlt.destinations.exceptions import DatabaseException
from dlt.destinations.sql_client import SqlClientBase
from sqlglot import exp

from pipelines.filesystem import HISTORY_FROM_RUNS, is_filesystem
from sources.docusign_billing import settings
from sources.docusign_billing.errors import DocuSignBillingError


class ViewsError(DocuSignBillingError):
    """The views could not be created (after a load that succeeded)."""


SOURCE_DIALECT = "duckdb"
"""The dialect the definitions below are written in."""

AGING_BUCKETS = ("1-30", "31-60", "61-90", "91+")
"""Days past due; an invoice DocuSign lists as past due on its due date (0 days) counts in 1-30."""


def _utc_day(column: str) -> str:
    return f"CAST({column} AT TIME ZONE 'UTC' AS DATE)"


def _days_between(start: str, end: str) -> str:
    """Calendar days in UTC from `start` to `end`, whatever the session's time zone."""
    return f"DATE_DIFF('day', {_utc_day(start)}, {_utc_day(end)})"


_DAYS_PAST_DUE = _days_between("i.due_date", "s.snapshot_at")
_LATEST_RUN_PER_ACCOUNT = f"""latest AS (
    SELECT account_id, max(snapshot_at) AS snapshot_at
    FROM {settings.SNAPSHOTS_TABLE} GROUP BY account_id
)"""
"""Each account's latest run: accounts a run did not extract keep the state of their last run."""


@dataclass(frozen=True)
class View:
    """A view of the dataset, defined in `SOURCE_DIALECT` over the tables and earlier views."""

    name: str
    answers: str
    """The question it answers (README and data dictionary)."""
    sql: str


VIEWS: tuple[View, ...] = (
    View(
        "past_due_current",
        "Which invoices are past due now, by how many days, in which aging bucket?",
        f"""
WITH {_LATEST_RUN_PER_ACCOUNT}
SELECT
    s.account_name,
    s.currency_code,
    s.snapshot_at,
    {_DAYS_PAST_DUE} AS days_past_due,
    CASE
        WHEN {_DAYS_PAST_DUE} <= 30 THEN '1-30'
        WHEN {_DAYS_PAST_DUE} <= 60 THEN '31-60'
        WHEN {_DAYS_PAST_DUE} <= 90 THEN '61-90'
        ELSE '91+'
    END AS aging_bucket,
    i.*
FROM latest AS l
JOIN {settings.SNAPSHOTS_TABLE} AS s
    ON s.account_id = l.account_id AND s.snapshot_at = l.snapshot_at
JOIN {settings.INVOICES_TABLE} AS i
    ON i.account_id = l.account_id
    AND i._dlt_valid_from <= l.snapshot_at
    AND (i._dlt_valid_to IS NULL OR i._dlt_valid_to > l.snapshot_at)
""",
    ),
    View(
        "past_due_aging",
        "How much is past due per account and currency, and how old is it?",
        """
SELECT
    account_id,
    account_name,
    currency_code,
    snapshot_at,
"""
        + "".join(
            f"""    count(*) FILTER (WHERE aging_bucket = '{bucket}') AS invoices_{suffix},
    coalesce(sum(balance) FILTER (WHERE aging_bucket = '{bucket}'), 0) AS balance_{suffix},
"""
            for bucket, suffix in zip(AGING_BUCKETS, ("1_30", "31_60", "61_90", "91_plus"))
        )
        + """    count(*) AS invoices_total,
    coalesce(sum(balance), 0) AS balance_total
FROM past_due_current
GROUP BY account_id, account_name, currency_code, snapshot_at
""",
    ),
    View(
        "past_due_daily",
        "Is the past-due balance getting better? One row per account and day with a run.",
        f"""
SELECT account_id, account_name, currency_code, day, snapshot_at, past_due_balance, invoice_count
FROM (
    SELECT
        *,
        {_utc_day("snapshot_at")} AS day,
        row_number() OVER (
            PARTITION BY account_id, {_utc_day("snapshot_at")} ORDER BY snapshot_at DESC
        ) AS newest
    FROM {settings.SNAPSHOTS_TABLE}
) AS runs
WHERE newest = 1
""",
    ),
    View(
        "invoice_resolution",
        "When did each invoice become past due, when did it leave the list, and owing what?",
        f"""
WITH {_LATEST_RUN_PER_ACCOUNT},
versions AS (
    SELECT
        i.account_id,
        i.invoice_id,
        i.invoice_number,
        i.due_date,
        i.balance,
        CASE WHEN i._dlt_valid_to <= l.snapshot_at THEN i._dlt_valid_to END AS valid_to,
        min(i._dlt_valid_from) OVER (PARTITION BY i.account_id, i.invoice_id) AS first_seen,
        row_number() OVER (
            PARTITION BY i.account_id, i.invoice_id ORDER BY i._dlt_valid_from DESC
        ) AS newest
    FROM {settings.INVOICES_TABLE} AS i
    JOIN latest AS l ON l.account_id = i.account_id
    WHERE i._dlt_valid_from <= l.snapshot_at
)
SELECT
    v.account_id,
    s.account_name,
    s.currency_code,
    v.invoice_id,
    v.invoice_number,
    v.due_date,
    CASE WHEN v.valid_to IS NULL THEN 'past due' ELSE 'resolved' END AS status,
    v.first_seen AS first_seen_past_due_at,
    (
        SELECT max(r.snapshot_at) FROM {settings.SNAPSHOTS_TABLE} AS r
        WHERE r.account_id = v.account_id AND (v.valid_to IS NULL OR r.snapshot_at < v.valid_to)
    ) AS last_seen_past_due_at,
    v.valid_to AS resolved_at,
    {_days_between("v.first_seen", "v.valid_to")} AS days_until_resolved,
    CASE WHEN v.valid_to IS NOT NULL THEN v.balance END AS balance_at_resolution,
    v.balance AS last_balance
FROM versions AS v
JOIN latest AS l ON l.account_id = v.account_id
JOIN {settings.SNAPSHOTS_TABLE} AS s
    ON s.account_id = l.account_id AND s.snapshot_at = l.snapshot_at
WHERE v.newest = 1
""",
    ),
)
VIEW_NAMES = tuple(view.name for view in VIEWS)
BASE_TABLES = (settings.INVOICES_TABLE, settings.SNAPSHOTS_TABLE)
"""The tables the views read; no view exists before both are loaded."""


def _view(name: str) -> View:
    return next(view for view in VIEWS if view.name == name)


def _parse(sql: str) -> exp.Expr:
    parsed = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    assert parsed is not None
    return parsed


def _generate(expression: exp.Expr, dialect: str | None) -> str:
    return expression.sql(dialect=dialect or SOURCE_DIALECT, pretty=True)


def view_ddl(name: str, qualified_names: dict[str, str], dialect: str | None) -> str:
    """`CREATE OR REPLACE VIEW` of one view, its tables and views named by `qualified_names`
    (bare name -> qualified name in the destination's quoting)."""
    select = _parse(_view(name).sql)
    ctes = {cte.alias for cte in select.find_all(exp.CTE)}
    for table in list(select.find_all(exp.Table)):
        if not table.db and table.name in qualified_names and table.name not in ctes:
            _replace_table(table, qualified_names[table.name], dialect)
    view = exp.to_table(qualified_names[name], dialect=dialect)
    return _generate(exp.Create(this=view, kind="VIEW", expression=select, replace=True), dialect)


def _replace_table(table: exp.Table, qualified_name: str, dialect: str | None) -> None:
    """Puts the qualified table in place of `table`, keeping its alias."""
    replacement = exp.to_table(qualified_name, dialect=dialect)
    replacement.set("alias", table.args.get("alias"))
    table.replace(replacement)


def view_query(
    name: str,
    qualified_names: dict[str, str],
    dialect: str | None,
    as_of: datetime | None = None,
    history_from_runs: bool = False,
) -> str:
    """One stand-alone query giving the view's rows: the tables (snapshots up to `as_of`, when
    given) and the views it builds on as CTEs named like them. `history_from_runs`: the invoices'
    history is rebuilt from each run's rows (the filesystem destination, `pipelines/filesystem.py`).
    """
    snapshots_filter = (
        f" WHERE snapshot_at <= CAST('{as_of.isoformat()}' AS TIMESTAMPTZ)" if as_of else ""
    )
    invoices = (
        HISTORY_FROM_RUNS if history_from_runs else f"SELECT * FROM __{settings.INVOICES_TABLE}"
    )
    ctes = [
        f"{settings.INVOICES_TABLE} AS ({invoices})",
        f"{settings.SNAPSHOTS_TABLE} AS"
        f" (SELECT * FROM __{settings.SNAPSHOTS_TABLE}{snapshots_filter})",
    ]
    for view in VIEWS:
        ctes.append(f"{view.name} AS ({view.sql})")
        if view.name == name:
            break
    return _with_tables(f"WITH {', '.join(ctes)} SELECT * FROM {name}", qualified_names, dialect)


def _with_tables(sql: str, qualified_names: dict[str, str], dialect: str | None) -> str:
    """`sql` for `dialect`, its `__<table>` placeholders replaced by the qualified tables."""
    query = _parse(sql)
    for table in list(query.find_all(exp.Table)):
        if table.name.startswith("__") and table.name[2:] in qualified_names:
            _replace_table(table, qualified_names[table.name[2:]], dialect)
    return _generate(query, dialect)


def invoices_relation(pipeline: dlt.Pipeline, client: SqlClientBase[Any]) -> str:
    """The invoices' SCD2 history to select from: the table, or on the filesystem destination
    the history rebuilt from the runs' rows (`pipelines/filesystem.py`)."""
    names = qualified_names(client, BASE_TABLES)
    if not is_filesystem(pipeline):
        return names[settings.INVOICES_TABLE]
    return f"({_with_tables(HISTORY_FROM_RUNS, names, SOURCE_DIALECT)}) AS invoices"


def qualified_names(client: SqlClientBase[Any], names: tuple[str, ...]) -> dict[str, str]:
    """Bare name -> the destination's qualified, quoted name of it in the dataset."""
    return {name: client.make_qualified_table_name(name) for name in names}


def refresh_views(pipeline: dlt.Pipeline) -> None:
    """Creates or replaces every view in the pipeline's dataset; idempotent, cheap (DDL only).

    Called after every successful load, so a view follows the tables' columns (`past_due_current`
    carries every invoice column, also those a run added). Does nothing before the views' tables
    exist, or on destinations without views (filesystem: `view_query` serves them).
    """
    if is_filesystem(pipeline):
        return  # files read through an in-memory DuckDB: nothing to keep views in
    if not set(BASE_TABLES) <= set(pipeline.default_schema.data_table_names()):
        return
    dialect = pipeline.destination.capabilities().sqlglot_dialect
    with pipeline.sql_client() as client:
        names = qualified_names(client, BASE_TABLES + VIEW_NAMES)
        statements = [view_ddl(view.name, names, dialect) for view in VIEWS]
        try:
            for statement in statements:
                client.execute_sql(statement)
        except DatabaseException:
            # PostgreSQL replaces a view only if its columns stay (new ones may come last): when an
            # upgrade of this project changes a view's columns, the views are dropped and created
            try:
                for name in reversed(VIEW_NAMES):
                    client.execute_sql(f"DROP VIEW IF EXISTS {names[name]}")
                for statement in statements:
                    client.execute_sql(statement)
            except DatabaseException as ex:
                reason = (str(ex).strip().splitlines() or [type(ex).__name__])[0]
                raise ViewsError(
                    "the run's data is loaded, but the reporting views could not be created"
                    f" in {pipeline.destination.destination_name}: {reason}"
                ) from ex
