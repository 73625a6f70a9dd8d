"""Reporting views: what is past due, how old, and whether it is getting better.

Each view is written once, in DuckDB's SQL, and generated for the destination's dialect by sqlglot
(the dialect dlt names in the destination's capabilities), so DuckDB, PostgreSQL and the other SQL
warehouses run the same definition. Every age is measured at a run's `snapshot_at`, never at
`now()`: a report of the same data is the same report tomorrow.

`refresh_views` creates or replaces the views in the dataset after every successful load, each
one whose tables are loaded (a run of `--resources past_due` has no `billing_payments`).
`view_query` gives the same definitions as one stand-alone query (the tables as CTEs), for the
state at an earlier run (`as_of`) and for destinations that cannot hold views (filesystem).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
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


def _utc_month(column: str) -> str:
    """The first day of the calendar month (UTC) of `column`."""
    return f"CAST(date_trunc('month', {_utc_day(column)}) AS DATE)"


def _days_between(start: str, end: str) -> str:
    """Calendar days in UTC from `start` to `end`, whatever the session's time zone."""
    return f"DATE_DIFF('day', {_utc_day(start)}, {_utc_day(end)})"


def _last_snapshot_per(period: str, of_snapshot: str) -> str:
    """Each account's last snapshot of each `period` (a column holding `of_snapshot`)."""
    return f"""(
    SELECT
        *,
        {of_snapshot} AS {period},
        row_number() OVER (
            PARTITION BY account_id, {of_snapshot} ORDER BY snapshot_at DESC
        ) AS newest
    FROM {settings.SNAPSHOTS_TABLE}
) AS runs
WHERE newest = 1"""


BILLING_INVOICES = "billing_invoices"
BILLING_PAYMENTS = "billing_payments"
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
FROM {_last_snapshot_per("day", _utc_day("snapshot_at"))}
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
    View(
        "invoice_payments",
        "Which payments settled each invoice, how much is paid, and when was it settled?",
        f"""
WITH candidates AS (
    SELECT
        p.*,
        i.invoice_id,
        row_number() OVER (
            PARTITION BY p.account_id, p.payment_id
            ORDER BY length(i.invoice_number) DESC, i.invoice_id
        ) AS best
    FROM {BILLING_PAYMENTS} AS p
    JOIN {BILLING_INVOICES} AS i
        ON i.account_id = p.account_id
        AND length(i.invoice_number) > 0
        AND strpos(p.description, i.invoice_number) > 0
),
matched AS (SELECT * FROM candidates WHERE best = 1)
SELECT
    i.account_id,
    i.invoice_id,
    i.invoice_number,
    i.amount,
    i.balance,
    i.due_date,
    m.payment_id,
    m.payment_number,
    m.payment_date,
    m.amount AS payment_amount,
    m.description AS payment_description,
    coalesce(sum(m.amount) OVER invoice, 0) AS paid_amount,
    CASE WHEN i.balance = 0 THEN max(m.payment_date) OVER invoice END AS settled_at
FROM {BILLING_INVOICES} AS i
LEFT JOIN matched AS m ON m.account_id = i.account_id AND m.invoice_id = i.invoice_id
WINDOW invoice AS (PARTITION BY i.account_id, i.invoice_id)
""",
    ),
    View(
        "collections_monthly",
        "Per account and month: how much was invoiced, how much paid, how much past due at its end?",
        f"""
WITH invoiced AS (
    SELECT account_id, {_utc_month("due_date")} AS month, sum(amount) AS invoiced
    FROM {BILLING_INVOICES} GROUP BY account_id, {_utc_month("due_date")}
),
paid AS (
    SELECT account_id, {_utc_month("payment_date")} AS month, sum(amount) AS paid
    FROM {BILLING_PAYMENTS} GROUP BY account_id, {_utc_month("payment_date")}
),
month_end AS (
    SELECT account_id, month, past_due_balance
    FROM {_last_snapshot_per("month", _utc_month("snapshot_at"))}
),
months AS (
    SELECT account_id, month FROM invoiced
    UNION SELECT account_id, month FROM paid
    UNION SELECT account_id, month FROM month_end
)
SELECT
    m.account_id,
    m.month,
    coalesce(i.invoiced, 0) AS invoiced,
    coalesce(p.paid, 0) AS paid,
    e.past_due_balance AS past_due_at_month_end
FROM months AS m
LEFT JOIN invoiced AS i ON i.account_id = m.account_id AND i.month = m.month
LEFT JOIN paid AS p ON p.account_id = m.account_id AND p.month = m.month
LEFT JOIN month_end AS e ON e.account_id = m.account_id AND e.month = m.month
""",
    ),
)
VIEW_NAMES = tuple(view.name for view in VIEWS)


def _view(name: str) -> View:
    return next(view for view in VIEWS if view.name == name)


def _parse(sql: str) -> exp.Expr:
    parsed = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    assert parsed is not None
    return parsed


def _relations_read(name: str) -> tuple[str, ...]:
    """The tables and views the view's definition names (its own CTEs aside)."""
    return _relations_in(_view(name).sql)


@cache  # each definition is parsed once per process
def _relations_in(sql: str) -> tuple[str, ...]:
    select = _parse(sql)
    ctes = {cte.alias for cte in select.find_all(exp.CTE)}
    return tuple(sorted({table.name for table in select.find_all(exp.Table)} - ctes))


def views_read(name: str) -> list[str]:
    """The views `name` builds on, directly or not, in `VIEWS` order, then `name` itself."""
    needed = {name}
    for view in reversed(VIEWS):
        if view.name in needed:
            needed.update(r for r in _relations_read(view.name) if r in VIEW_NAMES)
    return [view for view in VIEW_NAMES if view in needed]


def tables_read(name: str) -> list[str]:
    """The tables the view reads, also through the views it builds on."""
    return sorted({t for v in views_read(name) for t in _relations_read(v) if t not in VIEW_NAMES})


PAST_DUE_TABLES = (settings.INVOICES_TABLE, settings.SNAPSHOTS_TABLE)
"""The tables of the `past_due` resource: the views over them only are the report's core."""


def base_tables() -> tuple[str, ...]:
    """Every table the views read; a view exists once its own tables (`tables_read`) are loaded.

    A function, not a constant: it parses every definition, which a run needs only when the
    views' statements are not cached (`refresh_views`)."""
    return tuple(sorted({table for name in VIEW_NAMES for table in tables_read(name)}))


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
    given) and the views it builds on as CTEs named like them. The billing tables keep only the
    latest state (merge): `as_of` does not rewind them. `history_from_runs`: the invoices'
    history is rebuilt from each run's rows, and the merged tables keep each record's latest row (the filesystem destination, `pipelines/filesystem.py`).
    """
    snapshots_filter = (
        f" WHERE snapshot_at <= CAST('{as_of.isoformat()}' AS TIMESTAMPTZ)" if as_of else ""
    )
    invoices = (
        HISTORY_FROM_RUNS if history_from_runs else f"SELECT * FROM __{settings.INVOICES_TABLE}"
    )
    tables = {
        settings.INVOICES_TABLE: invoices,
        settings.SNAPSHOTS_TABLE: f"SELECT * FROM __{settings.SNAPSHOTS_TABLE}{snapshots_filter}",
    }
    if history_from_runs:  # merged tables are appended per run there: each record's latest row
        tables |= {table: _latest_row(table, key) for table, key in MERGED_KEYS.items()}
    ctes = [
        f"{table} AS ({tables.get(table, f'SELECT * FROM __{table}')})"
        for table in tables_read(name)
    ]
    ctes += [f"{view} AS ({_view(view).sql})" for view in views_read(name)]
    return _with_tables(f"WITH {', '.join(ctes)} SELECT * FROM {name}", qualified_names, dialect)


MERGED_KEYS = {BILLING_INVOICES: "invoice_id", BILLING_PAYMENTS: "payment_id"}
"""The merged (latest-state) tables the views read, with each record's key within its account."""


def _latest_row(table: str, key: str) -> str:
    """The latest run's row of each record of a table the filesystem appends to."""
    return f"""SELECT * EXCLUDE (newest) FROM (
        SELECT *, row_number() OVER (
            PARTITION BY account_id, {key} ORDER BY _dlt_load_id DESC
        ) AS newest
        FROM __{table}
    ) AS runs WHERE newest = 1"""


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
    if not is_filesystem(pipeline):
        return client.make_qualified_table_name(settings.INVOICES_TABLE)
    names = qualified_names(client, base_tables())
    return f"({_with_tables(HISTORY_FROM_RUNS, names, SOURCE_DIALECT)}) AS invoices"


def qualified_names(client: SqlClientBase[Any], names: tuple[str, ...]) -> dict[str, str]:
    """Bare name -> the destination's qualified, quoted name of it in the dataset."""
    return {name: client.make_qualified_table_name(name) for name in names}


def refresh_views(pipeline: dlt.Pipeline, tables_changed: bool = False) -> None:
    """Creates or replaces every view in the pipeline's dataset; idempotent, cheap (DDL only).

    Called after every successful load, so a view follows the tables' columns (`past_due_current`
    carries every invoice column, also those a run added). Skips each view whose tables are not
    loaded (yet), and does nothing on destinations without views (filesystem: `view_query`).
    The DDL is generated once (`_Refreshed`) and runs again only when it or the schema of the
    tables changed since the last refresh, or a view is missing in the dataset.

    Args:
        pipeline: The pipeline whose dataset holds the views.
        tables_changed: The load changed tables in the destination (dlt's applied schema
            update, e.g. a new destination or dataset): the DDL runs whatever was recorded.
    """
    if is_filesystem(pipeline):
        return  # files read through an in-memory DuckDB: nothing to keep views in
    loaded = tuple(sorted(pipeline.default_schema.data_table_names()))
    dialect = pipeline.destination.capabilities().sqlglot_dialect
    schema_hash = pipeline.default_schema.version_hash
    with pipeline.sql_client() as client:
        names = qualified_names(client, loaded + VIEW_NAMES)
        key = _statements_key(names, dialect)
        last = _Refreshed.read(pipeline)
        if last is None or last.key != key:
            creatable = [name for name in VIEW_NAMES if set(tables_read(name)) <= set(loaded)]
            last = _Refreshed(key, "", {name: view_ddl(name, names, dialect) for name in creatable})
        elif (
            not tables_changed
            and last.schema_hash == schema_hash
            and _views_exist(client, last.statements)
        ):
            return  # nothing changed since the last refresh
        _create(pipeline, client, names, last.statements)
        _Refreshed(key, schema_hash, last.statements).write(pipeline)


def _create(
    pipeline: dlt.Pipeline, client: SqlClientBase[Any], names: dict[str, str], ddl: dict[str, str]
) -> None:
    try:
        for statement in ddl.values():
            client.execute_sql(statement)
    except DatabaseException:
        # PostgreSQL replaces a view only if its columns stay (new ones may come last): when an
        # upgrade of this project changes a view's columns, the views are dropped and created
        try:
            for name in reversed(ddl):
                client.execute_sql(f"DROP VIEW IF EXISTS {names[name]}")
            for statement in ddl.values():
                client.execute_sql(statement)
        except DatabaseException as ex:
            reason = (str(ex).strip().splitlines() or [type(ex).__name__])[0]
            raise ViewsError(
                "the run's data is loaded, but the reporting views could not be created"
                f" in {pipeline.destination.destination_name}: {reason}"
            ) from ex


@dataclass(frozen=True)
class _Refreshed:
    """The last refresh, kept in the pipeline's local state (never sent to the destination)."""

    key: str
    """`_statements_key` of the DDL."""
    schema_hash: str
    """The dlt schema's `version_hash` when the DDL ran: it changes with the tables' columns."""
    statements: dict[str, str]
    """View name -> its `CREATE OR REPLACE VIEW`, for the views whose tables were loaded."""

    STATE_KEY = "docusign_billing_views"

    @classmethod
    def read(cls, pipeline: dlt.Pipeline) -> _Refreshed | None:
        try:
            return cls(**pipeline.get_local_state_val(cls.STATE_KEY))
        except (KeyError, TypeError):
            return None  # never refreshed, or by a version of this project that kept other fields

    def write(self, pipeline: dlt.Pipeline) -> None:
        pipeline.set_local_state_val(
            self.STATE_KEY,
            {"key": self.key, "schema_hash": self.schema_hash, "statements": self.statements},
        )


def _statements_key(names: dict[str, str], dialect: str | None) -> str:
    """What the views' DDL depends on: the definitions, the dialect, sqlglot's version, the
    qualified names of the views and of the loaded tables (which also says which views exist)."""
    described = [
        [(v.name, v.sql) for v in VIEWS],
        dialect,
        sqlglot.__version__,
        sorted(names.items()),
    ]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def _views_exist(client: SqlClientBase[Any], ddl: dict[str, str]) -> bool:
    """Whether every view of `ddl` is in the dataset (the destination may have been replaced,
    or a view dropped, since the last refresh). Any doubt answers no: the views are created."""
    try:
        rows = client.execute_sql(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %s AND table_type = 'VIEW'",
            client.dataset_name,
        )
    except DatabaseException:
        return False
    return set(ddl) <= {row[0] for row in rows or []}
