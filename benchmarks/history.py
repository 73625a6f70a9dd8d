"""Benchmark 5: every billing resource over 1,000 accounts at 100 ms per call, with DocuSign's limits.

Two runs of the real pipeline over real HTTP, default settings, into one DuckDB file: the
three-year back-fill (first run), then the daily incremental run one day later. The sandbox
answers with DocuSign's per-account limits (3,000/hour, 200 per 30 s: `limit_accounts()`
defaults, headers on every answer, HTTP 400 when spent), and its own counters and request log
give the figures, so they cannot flatter the client:

- floor = requests served x latency / workers (the time the requests take at full concurrency);
  targets: wall <= 1.2 x floor, no throttled answer (400 or 429);
- daily run: at most one request per account and resource (nothing needs paging at the default
  page size), i.e. the windows already fetched are not fetched again beyond the look-back.

After each run every table's rows are checked against the sandbox's own ledger (`expected_rows`):
nothing lost or duplicated is timed.
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.fanout import worker_count

ACCOUNTS, LATENCY = 1_000, 0.1
TARGET_RATIO = 1.2
HISTORY_YEARS = 3
"""The source's default back-fill (`settings.HISTORY_YEARS`), counted from the day it runs (the
real date; the sandbox's clock is a day behind for the back-fill)."""


def has_billing_resources() -> bool:
    """Whether the source takes `resources` (the billing endpoints beside past-due)."""
    from sources.docusign_billing import docusign_billing

    function: Any = getattr(docusign_billing, "__wrapped__", docusign_billing)
    return "resources" in inspect.signature(function).parameters


def expected_rows(sandbox: Any, history_start: date, runs: int) -> dict[str, int]:
    """Each table's rows after `runs` runs, from the sandbox's ledger as of its `today` (the last
    run's day): every invoice and payment since `history_start`, the current past-due invoices and
    plans with their items, a snapshot and the charges per account and run, no failure."""
    from sources.docusign_billing import settings
    from sources.docusign_billing.sandbox.billing import charges_body

    today = sandbox.today
    since = datetime.combine(history_start, datetime.min.time(), UTC)
    invoices = past_due = past_due_items = payments = invoice_items = charges = 0
    for account_id in sandbox.account_ids:
        ledger = sandbox.ledger(account_id)
        issued = [i for i in ledger.all_invoices(today) if history_start <= i.issued <= today]
        invoices += len(issued)
        invoice_items += sum(len(i.body["invoiceItems"]) for i in issued)
        payments += sum(since <= p.paid_at for p in ledger.payments(today))
        overdue = sandbox.response(account_id)["billingInvoices"]
        past_due += len(overdue)
        past_due_items += sum(len(i["invoiceItems"]) for i in overdue)
        charges += runs * len(charges_body(ledger, {}, today)["billingChargeItems"])
    accounts = len(sandbox.account_ids)
    current = "WHERE _dlt_valid_to IS NULL"

    def of_current(parent: str) -> str:
        return f"WHERE _dlt_parent_id IN (SELECT _dlt_id FROM billing.{parent} {current})"

    return {
        f"{settings.INVOICES_TABLE} {current}": past_due,
        f"{settings.ITEMS_TABLE} {of_current(settings.INVOICES_TABLE)}": past_due_items,
        settings.SNAPSHOTS_TABLE: runs * accounts,
        settings.ERRORS_TABLE: 0,
        "billing_invoices": invoices,
        "billing_invoices__invoice_items": invoice_items,
        "billing_payments": payments,
        f"billing_plan {current}": accounts,
        f"billing_plan__seat_discounts {of_current('billing_plan')}": SEAT_BANDS * accounts,
        "billing_charges": charges,
    }


SEAT_BANDS = 2
"""Seat discount bands of every sandbox plan (`sandbox.billing.plan_body`)."""


def measure(accounts: int, latency: float, workers: int) -> list[dict[str, Any]]:
    """The back-fill and the daily run over one sandbox whose clock moves on by a day between."""
    from sources.docusign_billing.sandbox import Sandbox

    today = datetime.now(UTC).date()
    figures = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-history-") as tmp,
        Sandbox(
            accounts=accounts, invoices_per_account=(1, 3), seed=43, today=today - timedelta(1)
        ) as sandbox,
    ):
        common.isolate(Path(tmp))
        sandbox.latency = latency
        sandbox.limit_accounts()
        args = common.token_source_args(sandbox.base_url, sandbox.account_ids)
        history_start = today.replace(year=today.year - HISTORY_YEARS)  # the source's clock
        for runs, label in enumerate(("back-fill (first run)", "daily (next day)"), start=1):
            sandbox.requests.clear()
            sandbox.max_in_flight = 0
            throttled_before = sandbox.throttled
            stages = common.Stages()
            load_before = os.getloadavg()[0]
            seconds = common.run_pipeline(Path(tmp), stages, **args)
            per_resource = Counter((r["account_id"], r["resource"]) for r in sandbox.requests)
            served = len(sandbox.requests)
            arrivals = [r["at"] for r in sandbox.requests]
            common.check_counts(
                Path(tmp) / "bench.duckdb", expected_rows(sandbox, history_start, runs)
            )
            steps = stages.seconds()
            figures.append(
                {
                    "run": label,
                    "seconds": seconds,
                    "fetch": steps.get("extracting", float("nan")),
                    "after_fetch": steps.get("normalizing", 0.0) + steps.get("loading", 0.0),
                    "requests_span": max(arrivals) - min(arrivals) + latency if arrivals else 0.0,
                    "requests": served,
                    "in_flight": sandbox.max_in_flight,
                    "resources": len({r for _, r in per_resource}),
                    "max_per_account_resource": max(per_resource.values(), default=0),
                    "throttled": sandbox.throttled - throttled_before,
                    "floor": served * latency / workers,
                    "load_average": (load_before + os.getloadavg()[0]) / 2,
                }
            )
            sandbox.today = today
    return figures


def main(accounts: int = ACCOUNTS, latency: float = LATENCY) -> bool:
    workers, origin = worker_count()
    if not has_billing_resources():
        print(
            "5. billing history: the source has no `resources` argument yet (issue #10 part B):"
            " nothing to measure"
        )
        return False
    figures = measure(accounts, latency, workers)
    rows = [
        [
            f["run"],
            f["seconds"],
            f["fetch"],
            f["requests_span"],
            f["after_fetch"],
            f["requests"],
            f["in_flight"],
            f["max_per_account_resource"],
            f["throttled"],
            f["floor"],
            f["seconds"] / f["floor"],
            f["load_average"],
        ]
        for f in figures
    ]
    common.print_table(
        f"5. billing history: {accounts:,} accounts, every resource, {latency * 1000:.0f} ms"
        f" latency, {workers} workers ({origin}), DocuSign's per-account limits",
        [
            "run",
            "wall s",
            "extract s",
            "first request to last answer s",
            "normalize + load s",
            "requests",
            "most in flight",
            "max requests per account+resource",
            "throttled (400/429)",
            "floor requests*lat/workers s",
            "ratio wall/floor",
            "load average",
        ],
        rows,
    )
    backfill, daily = figures
    daily_ok = (
        daily["seconds"] <= TARGET_RATIO * daily["floor"]
        and daily["throttled"] == 0
        and daily["max_per_account_resource"] <= 1
    )
    backfill_ok = backfill["seconds"] <= TARGET_RATIO * backfill["floor"]
    print(
        f"daily run: {daily['seconds'] / daily['floor']:.2f}x the floor (target <= {TARGET_RATIO}),"
        f" {daily['throttled']} throttled (target 0), at most"
        f" {daily['max_per_account_resource']} request per account and resource (target 1):"
        f" {common.verdict(daily_ok)}"
    )
    print(
        f"back-fill: {backfill['seconds'] / backfill['floor']:.2f}x the floor (target <="
        f" {TARGET_RATIO}), {backfill['throttled']} throttled: {common.verdict(backfill_ok)}"
    )
    return daily_ok and backfill_ok


if __name__ == "__main__":
    common.run_from_command_line(main, __doc__, accounts=ACCOUNTS, latency=LATENCY)
