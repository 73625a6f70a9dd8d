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

The sandbox serves from a child process (`SandboxProcess`), as DocuSign serves from elsewhere: in
the measured process its 16 handler threads, ledger views and JSON encoding would compete with the
pipeline for the GIL, and the pipeline's garbage collections would scan the sandbox's ledgers
(about 1.3 s of collector pauses per 1,000-account back-fill, measured with `gc.callbacks`).
`--in-process` runs it in the measured process instead, as the first measurement did.
"""

from __future__ import annotations

import inspect
import multiprocessing
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


def limit(sandbox: Any, latency: float) -> None:
    """The benchmark's conditions: `latency` per request, DocuSign's per-account limits."""
    sandbox.latency = latency
    sandbox.limit_accounts()


def new_run(sandbox: Any) -> None:
    """Forget the last run's requests (the throttled count is told apart by the caller)."""
    sandbox.requests.clear()
    sandbox.max_in_flight = 0


def served(sandbox: Any) -> dict[str, Any]:
    """What the sandbox served since `new_run`, by its own counters and request log."""
    per_resource = Counter((r["account_id"], r["resource"]) for r in sandbox.requests)
    arrivals = [r["at"] for r in sandbox.requests]
    return {
        "requests": len(arrivals),
        "arrivals": (min(arrivals), max(arrivals)) if arrivals else (0.0, 0.0),
        "in_flight": sandbox.max_in_flight,
        "resources": len({resource for _, resource in per_resource}),
        "max_per_account_resource": max(per_resource.values(), default=0),
        "throttled": sandbox.throttled,
    }


def set_today(sandbox: Any, day: date) -> None:
    sandbox.today = day


class SandboxProcess:
    """A sandbox serving from a child process; `call(function, *args)` runs one of this module's
    functions on it there (`limit`, `new_run`, `served`, `set_today`, `expected_rows`)."""

    def __init__(self, **sandbox_args: Any) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of this process's threads
        self._pipe, child_end = context.Pipe()
        self._child = context.Process(
            target=_serve_sandbox, args=(child_end, sandbox_args), daemon=True
        )

    def __enter__(self) -> SandboxProcess:
        self._child.start()
        self.base_url, self.account_ids = self._pipe.recv()
        return self

    def call(self, function: Any, *args: Any) -> Any:
        self._pipe.send((function.__name__, args))
        answer = self._pipe.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def __exit__(self, *exc_info: object) -> None:
        self._pipe.send(None)
        self._child.join(timeout=30)


class SandboxHere:
    """The same calls on a sandbox in this process (`--in-process`)."""

    def __init__(self, **sandbox_args: Any) -> None:
        from sources.docusign_billing.sandbox import Sandbox

        self._sandbox = Sandbox(**sandbox_args)

    def __enter__(self) -> SandboxHere:
        self._sandbox.start()
        self.base_url, self.account_ids = self._sandbox.base_url, self._sandbox.account_ids
        return self

    def call(self, function: Any, *args: Any) -> Any:
        return function(self._sandbox, *args)

    def __exit__(self, *exc_info: object) -> None:
        self._sandbox.stop()


def _serve_sandbox(pipe: Any, sandbox_args: dict[str, Any]) -> None:
    """The child process: serves until the parent sends None, answering each call on the pipe."""
    from sources.docusign_billing.sandbox import Sandbox

    calls = {f.__name__: f for f in (limit, new_run, served, set_today, expected_rows)}
    with Sandbox(**sandbox_args) as sandbox:
        pipe.send((sandbox.base_url, sandbox.account_ids))
        while (message := pipe.recv()) is not None:
            name, args = message
            try:
                pipe.send(calls[name](sandbox, *args))
            except Exception as ex:
                pipe.send(ex)


def measure(
    accounts: int, latency: float, workers: int, in_process: bool = False
) -> list[dict[str, Any]]:
    """The back-fill and the daily run over one sandbox whose clock moves on by a day between."""
    today = datetime.now(UTC).date()
    history_start = today.replace(year=today.year - HISTORY_YEARS)  # the source's clock
    figures = []
    server = SandboxHere if in_process else SandboxProcess
    with (
        tempfile.TemporaryDirectory(prefix="bench-history-") as tmp,
        server(
            accounts=accounts, invoices_per_account=(1, 3), seed=43, today=today - timedelta(1)
        ) as sandbox,
    ):
        common.isolate(Path(tmp))
        sandbox.call(limit, latency)
        args = common.token_source_args(sandbox.base_url, sandbox.account_ids)
        throttled_before = 0
        for runs, label in enumerate(("back-fill (first run)", "daily (next day)"), start=1):
            sandbox.call(new_run)
            stages = common.Stages()
            load_before = os.getloadavg()[0]
            seconds = common.run_pipeline(Path(tmp), stages, **args)
            load_average = (load_before + os.getloadavg()[0]) / 2
            answered = sandbox.call(served)
            common.check_counts(
                Path(tmp) / "bench.duckdb", sandbox.call(expected_rows, history_start, runs)
            )
            steps = stages.seconds()
            first, last = answered["arrivals"]
            figures.append(
                {
                    **answered,
                    "run": label,
                    "seconds": seconds,
                    "fetch": steps.get("extracting", float("nan")),
                    "after_fetch": steps.get("normalizing", 0.0) + steps.get("loading", 0.0),
                    "requests_span": last - first + latency,
                    "throttled": answered["throttled"] - throttled_before,
                    "floor": answered["requests"] * latency / workers,
                    "load_average": load_average,
                }
            )
            throttled_before = answered["throttled"]
            sandbox.call(set_today, today)
    return figures


def main(accounts: int = ACCOUNTS, latency: float = LATENCY, in_process: bool = False) -> bool:
    workers, origin = worker_count()
    if not has_billing_resources():
        print(
            "5. billing history: the source has no `resources` argument yet (issue #10 part B):"
            " nothing to measure"
        )
        return False
    figures = measure(accounts, latency, workers, in_process)
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
        f" latency, {workers} workers ({origin}), DocuSign's per-account limits, sandbox"
        f" {'in this process' if in_process else 'in a child process'}",
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
    common.run_from_command_line(
        main, __doc__, accounts=ACCOUNTS, latency=LATENCY, in_process=False
    )
