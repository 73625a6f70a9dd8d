"""The report's PNG charts (matplotlib, Agg: no display needed) and its self-contained HTML page.

One panel per currency everywhere: amounts in different currencies never share an axis. Each
panel shows the accounts with the largest past-due balance and sums the rest into one "other
accounts" series, so a chart stays readable with a thousand accounts.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pipelines import views

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.report import ReportData

TOP_ACCOUNTS = 8
"""Accounts drawn one by one per currency; the others are summed."""
HTML_ROWS = 200
"""Rows of each table on the page; the CSVs hold all of them."""
BUCKET_COLOURS = ("#9ecae1", "#fdae6b", "#f16913", "#a50f15")
"""1-30 to 91+: light to dark, older debt darker."""
LINE_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
)  # fmt: skip


@dataclass
class Chart:
    """One PNG chart and what it shows."""

    file_name: str
    title: str
    png: bytes


def _label(frame: pd.DataFrame) -> pd.Series:
    """An account's name, or its id shortened when OAuth gave no name."""
    return frame["account_name"].where(
        frame["account_name"].notna(), frame["account_id"].str.slice(0, 8) + "…"
    )


def _top_accounts(totals: pd.Series) -> list[str]:
    return list(totals.sort_values(ascending=False).index[:TOP_ACCOUNTS])


def _money_axis(axis: Any, currency: str) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axis.set_ylabel(f"past due ({currency})")
    axis.grid(axis="y", color="#dddddd", linewidth=0.8)
    axis.set_axisbelow(True)
    for side in ("top", "right"):
        axis.spines[side].set_visible(False)


def _png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _figure(panels: int, height: float, share_x: bool = False) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        panels, 1, figsize=(10, height * panels), squeeze=False, sharex=share_x
    )
    return figure, [row[0] for row in axes]


def _day_axis(axis: Any, first: Any, last: Any) -> None:
    """Whole days on the time axis, at most about ten labels, a day of margin on each side."""
    import matplotlib.dates as mdates
    import pandas as pd

    span = max(1, (last - first).days)
    axis.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-span // 10))))
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    axis.set_xlim(first - pd.Timedelta(days=1), last + pd.Timedelta(days=1))


def balance_over_time(daily: pd.DataFrame) -> Chart:
    """Past-due balance per account and day (the day's last run), a panel per currency."""
    import pandas as pd

    frame = daily.assign(
        label=_label(daily),
        balance=daily["past_due_balance"].map(lambda v: float(v or 0)),
        day=pd.to_datetime(daily["day"]),
    )
    currencies = sorted(frame["currency_code"].fillna("?").unique())
    figure, axes = _figure(len(currencies), 3.2, share_x=True)
    for axis, currency in zip(axes, currencies):
        rows = frame[frame["currency_code"].fillna("?") == currency]
        latest = rows.sort_values("day").groupby("label")["balance"].last()
        top = _top_accounts(latest)
        series = {label: rows[rows["label"] == label] for label in top}
        rest = rows[~rows["label"].isin(top)]
        if not rest.empty:
            others = rest.groupby("day", as_index=False)["balance"].sum()
            series[f"{rest['label'].nunique()} other accounts"] = others
        for (label, points), colour in zip(series.items(), LINE_COLOURS):
            points = points.sort_values("day")
            axis.plot(points["day"], points["balance"], marker="o", label=label, color=colour)
        axis.set_ylim(bottom=0, top=max(1.0, rows["balance"].max()) * 1.15)
        axis.set_title(f"Past-due balance over time, {currency}", loc="left", fontsize=11)
        _money_axis(axis, currency)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=9)
    _day_axis(axes[-1], frame["day"].min(), frame["day"].max())
    if frame["day"].nunique() == 1:
        axes[0].annotate(
            "one day of runs so far: each day with a run adds a point",
            xy=(0, 1.12), xycoords="axes fraction", fontsize=9, color="#666666",
        )  # fmt: skip
    figure.autofmt_xdate()
    return Chart("past_due_over_time.png", "Past-due balance over time", _png(figure))


def aging_bars(aging: pd.DataFrame) -> Chart:
    """Balance per aging bucket, stacked, a bar per account (and one for the rest) per currency."""
    frame = aging.assign(label=_label(aging))
    currencies = sorted(frame["currency_code"].fillna("?").unique()) or ["?"]
    figure, axes = _figure(len(currencies), 3.2)
    columns = [f"balance_{suffix}" for suffix in ("1_30", "31_60", "61_90", "91_plus")]
    for axis, currency in zip(axes, currencies):
        rows = frame[frame["currency_code"].fillna("?") == currency].set_index("label")
        amounts = rows[columns].map(lambda v: float(v or 0))
        top = _top_accounts(amounts.sum(axis=1))
        shown = amounts.loc[top]
        rest = amounts.drop(index=top)
        if not rest.empty:
            shown.loc[f"{len(rest)} other accounts"] = rest.sum()
        positions = list(range(len(shown)))
        bottom = [0.0] * len(shown)
        for column, bucket, colour in zip(columns, views.AGING_BUCKETS, BUCKET_COLOURS):
            values = list(shown[column])
            axis.bar(positions, values, 0.6, bottom=bottom, color=colour, label=f"{bucket} days")
            bottom = [b + v for b, v in zip(bottom, values)]
        for position, total in zip(positions, bottom):
            axis.annotate(f"{total:,.0f}", (position, total), xytext=(0, 3),
                          textcoords="offset points", ha="center", fontsize=9)  # fmt: skip
        axis.set_xticks(positions, list(shown.index))
        margin = max(0.6, (4 - len(shown)) / 2)  # a lone bar stays a bar, not a wall
        axis.set_xlim(-margin, len(shown) - 1 + margin)
        axis.set_ylim(top=max(1.0, max(bottom)) * 1.15)
        axis.set_title(f"Past-due balance by days past due, {currency}", loc="left", fontsize=11)
        _money_axis(axis, currency)
        axis.tick_params(axis="x", labelsize=9)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=9)
    figure.tight_layout()
    return Chart("aging_by_currency.png", "Aging buckets per currency", _png(figure))


def draw_charts(frames: dict[str, pd.DataFrame]) -> list[Chart]:
    """The report's charts, drawn from the views' rows."""
    return [balance_over_time(frames["past_due_daily"]), aging_bars(frames["past_due_aging"])]


# the page ---------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: left;
         white-space: nowrap; }
th { background: #f4f4f4; } td.num, th.num { text-align: right; }
tr.total td { font-weight: 600; border-top: 2px solid #bbb; }
.scroll { overflow-x: auto; } img { max-width: 100%; } .note { color: #666; font-size: 0.9em; }
"""


def _cell(value: Any) -> tuple[str, bool]:
    """Text of a cell and whether it is a figure (right-aligned)."""
    if value is None or value != value:  # NULL or NaN
        return "", False
    if isinstance(value, Decimal):
        return f"{value:,.2f}", True
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int | float):
        return f"{value:,}", True
    if isinstance(value, datetime):  # to the minute; midnight (due dates are days): the day
        midnight = (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0)
        return value.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M"), False
    if isinstance(value, date):
        return value.isoformat(), False
    return str(value), False


def _html_table(
    header: list[str],
    rows: list[list[Any]],
    numeric: list[bool] | None = None,
    total_rows: frozenset[int] = frozenset(),
) -> str:
    """A table; a column is right-aligned when `numeric` says so, or else when it holds figures."""
    if numeric is None:
        numeric = [any(_cell(row[i])[1] for row in rows) for i in range(len(header))]
    head = "".join(
        f'<th class="num">{html.escape(h)}</th>' if n else f"<th>{html.escape(h)}</th>"
        for h, n in zip(header, numeric)
    )
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{html.escape(text)}</td>' if n else f"<td>{html.escape(text)}</td>"
            for (text, _), n in zip(map(_cell, row), numeric)
        )
        css = ' class="total"' if index in total_rows else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _view_section(title: str, frame: pd.DataFrame, columns: dict[str, str], csv: str) -> str:
    """A view's rows under `columns` (column -> header); columns empty in every row are left out
    (account names when OAuth gave none)."""
    kept = {c: h for c, h in columns.items() if c in frame.columns and frame[c].notna().any()}
    shown = frame[list(kept)]
    note = f"{len(frame)} rows, all of them in <code>{csv}</code>"
    if len(frame) > HTML_ROWS:
        note = f"the first {HTML_ROWS} of {len(frame)} rows; all of them in <code>{csv}</code>"
    rows = shown.head(HTML_ROWS).values.tolist()
    return f"<h2>{html.escape(title)}</h2><p class='note'>{note}</p>" + _html_table(
        list(kept.values()), rows
    )


def html_page(data: ReportData, aging: list[list[str]], charts: list[Chart]) -> str:
    """One page with everything inline (CSS, images as data URIs): opens with no server."""
    when = data.latest_snapshot_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    asked = f", as of {html.escape(data.as_of.isoformat())}" if data.as_of else ""
    header, rows = aging[0], aging[1:]
    totals = frozenset(i for i, row in enumerate(rows) if row[0].startswith("TOTAL "))
    # already formatted text: the account and currency columns, then figures
    aging_html = _html_table(header, rows, [False, False] + [True] * (len(header) - 2), totals)
    images = "".join(
        f"<h2>{html.escape(chart.title)}</h2><img alt='{html.escape(chart.title)}' "
        f"src='data:image/png;base64,{base64.b64encode(chart.png).decode()}'>"
        for chart in charts
    )
    frames = data.frames
    sections = [
        _view_section(
            "Past-due invoices (past_due_current)",
            frames["past_due_current"].sort_values(["currency_code", "days_past_due"], ascending=[True, False]),
            {"account_name": "account", "account_id": "account id", "currency_code": "currency", "invoice_number": "invoice", "due_date": "due", "days_past_due": "days past due", "aging_bucket": "bucket", "balance": "balance"},
            "past_due_current.csv",
        ),
        _view_section(
            "Past-due balance per day (past_due_daily)",
            frames["past_due_daily"].sort_values(["day", "account_id"], ascending=[False, True]),
            {"day": "day", "account_name": "account", "account_id": "account id", "currency_code": "currency", "past_due_balance": "past due", "invoice_count": "invoices"},
            "past_due_daily.csv",
        ),
        _view_section(
            "Invoice resolution (invoice_resolution)",
            frames["invoice_resolution"].sort_values(["status", "account_id", "invoice_number"]),
            {"account_name": "account", "account_id": "account id", "currency_code": "currency", "invoice_number": "invoice", "status": "status", "first_seen_past_due_at": "first seen past due", "resolved_at": "resolved", "days_until_resolved": "days to resolve", "last_balance": "balance last seen"},
            "invoice_resolution.csv",
        ),
    ]  # fmt: skip
    # the billing-history views exist only where billing_invoices / billing_payments were loaded
    if "collections_monthly" in frames:
        sections.append(_view_section(
            "Invoiced, paid and past due per month (collections_monthly)",
            frames["collections_monthly"].sort_values(["month", "account_id"], ascending=[False, True]),
            {"month": "month", "account_id": "account id", "invoiced": "invoiced", "paid": "paid", "past_due_at_month_end": "past due at month end"},
            "collections_monthly.csv",
        ))  # fmt: skip
    if "invoice_payments" in frames:
        sections.append(_view_section(
            "Invoices and the payments that settled them (invoice_payments)",
            frames["invoice_payments"].sort_values(["account_id", "due_date", "invoice_number"], ascending=[True, False, True]),
            {"account_id": "account id", "invoice_number": "invoice", "due_date": "due", "amount": "amount", "balance": "balance", "payment_number": "payment", "payment_date": "paid on", "payment_amount": "payment amount", "paid_amount": "paid in all", "settled_at": "settled"},
            "invoice_payments.csv",
        ))  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DocuSign past-due report</title><style>{_CSS}</style></head>
<body>
<h1>DocuSign past-due report</h1>
<p class="meta">At the run of {when}{asked}. Ages are counted in days past the due date at that
run (UTC). Balances are the invoices' outstanding balances in their account's currency.</p>
<h2>Aging per account and currency</h2>
{aging_html if rows else "<p>Nothing past due.</p>"}
{images}
{"".join(sections)}
</body></html>
"""
