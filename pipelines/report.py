"""`docusign-billing report`: the aging table in the terminal, and CSVs, charts and an HTML page.

Every figure comes from the reporting views' definitions (`pipelines/views.py`), run as queries
over the destination's tables through dlt's SQL client: the same numbers as the views in a
database, also for an earlier run (`as_of`) and for Parquet files (the filesystem destination,
read by dlt through an in-memory DuckDB). pandas and matplotlib are imported here only, so that
`docusign-billing run` does not pay for them at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from pipelines import views
from pipelines.filesystem import is_filesystem
from sources.docusign_billing.errors import ConfigError, DocuSignBillingError

if TYPE_CHECKING:
    import pandas as pd

AGING_COLUMNS = ("balance_1_30", "balance_31_60", "balance_61_90", "balance_91_plus")
"""The aging view's balance per bucket, in the order of `views.AGING_BUCKETS`."""


class NoDataError(DocuSignBillingError):
    """The destination holds nothing to report (yet, or at the requested time)."""


@dataclass
class ReportData:
    """Every view's rows as DataFrames (exact Decimals for money), as of one moment."""

    frames: dict[str, pd.DataFrame]
    as_of: datetime | None
    """The `--as-of` asked for; None for the latest run."""

    @property
    def latest_snapshot_at(self) -> datetime:
        return max(self.frames["past_due_daily"]["snapshot_at"])


def parse_as_of(text: str | None) -> datetime | None:
    """`--as-of`: ISO 8601, a date or a time; without an offset it is UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--as-of {text!r} is not an ISO 8601 time (e.g. 2024-06-30 or 2024-06-30T18:00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_views(pipeline: dlt.Pipeline, as_of: datetime | None = None) -> ReportData:
    """Runs every view's definition on the destination; `NoDataError` when there is nothing."""
    import pandas as pd

    where = f" at or before {as_of.isoformat()}" if as_of else ""
    nothing = f"no past-due data in {_describe(pipeline)}{where} (load some with `run` or `demo`)"
    credentials = pipeline.destination_client().config.credentials
    database = getattr(credentials, "database", None)
    if pipeline.destination.destination_name == "duckdb" and not os.path.exists(str(database)):
        raise NoDataError(nothing)  # a DuckDB client would create the file
    dialect = pipeline.destination.capabilities().sqlglot_dialect
    frames: dict[str, pd.DataFrame] = {}
    with pipeline.sql_client() as client:
        names = views.qualified_names(client, views.base_tables())
        for name in views.VIEW_NAMES:
            billing = not set(views.tables_read(name)) <= set(views.PAST_DUE_TABLES)
            try:
                with client.execute_query(
                    views.view_query(name, names, dialect, as_of, is_filesystem(pipeline))
                ) as cursor:
                    columns = [column[0] for column in cursor.description]
                    frames[name] = pd.DataFrame(cursor.fetchall(), columns=columns, dtype=object)
            except DatabaseUndefinedRelation:
                if not billing:
                    raise NoDataError(nothing) from None
                # a billing-history view without its tables (not loaded): no such view
    if frames["past_due_daily"].empty:
        raise NoDataError(nothing)
    return ReportData(frames, as_of)


def _describe(pipeline: dlt.Pipeline) -> str:
    return f"{pipeline.destination.destination_name} dataset {pipeline.dataset_name}"


def _money(value: Any) -> str:
    return f"{Decimal(value or 0):,.2f}"


def aging_rows(data: ReportData) -> list[list[str]]:
    """The terminal's and the page's aging table: a row per account and currency, then a total
    row per currency; the header first."""
    aging = data.frames["past_due_aging"].sort_values(["currency_code", "account_id"])
    header = ["account", "currency", *views.AGING_BUCKETS, "total", "invoices"]
    rows = [header]
    for currency, group in aging.groupby("currency_code", sort=True):
        for _, row in group.iterrows():
            rows.append(
                [
                    row["account_name"] or row["account_id"],
                    str(currency),
                    *(_money(row[column]) for column in AGING_COLUMNS),
                    _money(row["balance_total"]),
                    str(row["invoices_total"]),
                ]
            )
        rows.append(
            [
                f"TOTAL {currency}",
                str(currency),
                *(_money(sum(group[column], Decimal(0))) for column in AGING_COLUMNS),
                _money(sum(group["balance_total"], Decimal(0))),
                str(sum(group["invoices_total"])),
            ]
        )
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Text columns left-aligned, figures right-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            value.ljust(width) if column < 2 else value.rjust(width)
            for column, (value, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def terminal_report(data: ReportData) -> str:
    """What `report` prints: when, the aging table and its totals."""
    when = data.latest_snapshot_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    asked = f" (as of {data.as_of.isoformat()})" if data.as_of else ""
    title = f"Past-due aging at the run of {when}{asked}, balances by days past due"
    if data.frames["past_due_aging"].empty:
        return f"{title}\nnothing past due"
    return f"{title}\n\n{format_table(aging_rows(data))}"


def csv_value(value: Any) -> str:
    """A CSV cell: exact money without the storage scale's trailing zeros (150.500000000 ->
    150.5), ISO 8601 times, empty for NULL."""
    if value is None or value != value:  # NULL, or NaN
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_outputs(data: ReportData, out: Path) -> list[Path]:
    """A CSV per view, the PNG charts and `report.html` into `out`; returns the files written."""
    from pipelines import report_charts

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in data.frames.items():
        path = out / f"{name}.csv"
        frame.map(csv_value).to_csv(path, index=False)
        written.append(path)
    charts = report_charts.draw_charts(data.frames)
    for chart in charts:
        path = out / chart.file_name
        path.write_bytes(chart.png)
        written.append(path)
    page = out / "report.html"
    page.write_text(report_charts.html_page(data, aging_rows(data), charts), encoding="utf-8")
    written.append(page)
    return written
