"""Benchmark 4: growth, runs 1..20 of a daily schedule over the same accounts and DuckDB file.

Between runs the sandbox's state drifts the way billing does: a few invoices get paid, a few
balances change, now and then an account is added. History therefore grows a little every run
and the time per run must not grow with it (SCD2 must not rescan or rewrite everything). Runs
are in one process, so per-run figures hold the pipeline's work without interpreter start-up.
A run takes well under a second, so one slow run on a shared machine would decide a comparison
of two runs: the whole schedule runs `SCHEDULES` times over identical data, each in a fresh
folder, and every figure is the median of a run's times across the schedules.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from benchmarks import common

RUNS, ACCOUNTS, INVOICES = 20, 100, (10, 40)
SCHEDULES = 5
TARGET_RATIO = 1.3


def drift(sandbox: object, day: int, rng: random.Random) -> None:
    """One day of change: pay 5 invoices, re-price 10 balances, add an account every 5th day."""
    accounts = sandbox.account_ids  # type: ignore[attr-defined]
    for action in ["pay"] * 5 + ["balance"] * 10:
        account_id = rng.choice(accounts)
        invoices = sandbox.response(account_id)["billingInvoices"]  # type: ignore[attr-defined]
        if not invoices:
            continue
        invoice_id = rng.choice(invoices)["invoiceId"]
        if action == "pay":
            sandbox.pay_invoice(account_id, invoice_id)  # type: ignore[attr-defined]
        else:
            sandbox.set_balance(account_id, invoice_id, f"{rng.randrange(100, 99_999) / 100:.2f}")  # type: ignore[attr-defined]
    if day % 5 == 0:
        sandbox.add_account(invoices=rng.randrange(*INVOICES))  # type: ignore[attr-defined]


def schedule(runs: int, accounts: int) -> list[list[float]]:
    """One schedule in a fresh folder: per run its accounts, invoice versions, current invoices,
    extract, normalize + load and total seconds."""
    import duckdb

    from sources.docusign_billing import settings
    from sources.docusign_billing.sandbox import Sandbox

    rng = random.Random(4)
    rows: list[list[float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp,
        Sandbox(accounts=accounts, invoices_per_account=INVOICES, seed=23) as sandbox,
    ):
        directory = Path(tmp)
        common.isolate(directory)
        for day in range(1, runs + 1):
            stages = common.Stages()
            seconds = common.run_pipeline(
                directory,
                stages,
                **common.token_source_args(sandbox.base_url, sandbox.account_ids),
                resources="past_due",
            )
            with duckdb.connect(str(directory / "bench.duckdb"), read_only=True) as db:
                versions, current = db.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE _dlt_valid_to IS NULL) FROM billing.{settings.INVOICES_TABLE}"
                ).fetchall()[0]
            extract = stages.seconds().get("extracting", float("nan"))
            rows.append(
                [len(sandbox.account_ids), versions, current, extract, seconds - extract, seconds]
            )
            drift(sandbox, day, rng)
    return rows


def main(runs: int = RUNS, accounts: int = ACCOUNTS, schedules: int = SCHEDULES) -> bool:
    results = [schedule(runs, accounts) for _ in range(schedules)]
    rows: list[list[object]] = []
    for day, per_schedule in enumerate(zip(*results), start=1):
        counts = per_schedule[0][:3]  # the same data in every schedule
        rows.append(
            [day, *counts, *(statistics.median(r[i] for r in per_schedule) for i in (3, 4, 5))]
        )
    base = rows[min(1, len(rows) - 1)]
    for row in rows:
        row += [row[6] / base[6], row[5] / base[5]]  # type: ignore[operator]
    common.print_table(
        f"4. growth: {runs} daily runs, {accounts} accounts to start; medians of {schedules} schedules",
        [
            "run",
            "accounts",
            "invoice versions",
            "current invoices",
            "extract (HTTP + parse) s",
            "normalize + load s",
            "total s",
            "total / run 2",
            "normalize + load / run 2",
        ],
        rows,
    )
    ratio, history_ratio = rows[-1][-2], rows[-1][-1]
    ok = ratio <= TARGET_RATIO  # type: ignore[operator]
    print(
        f"run {runs} / run 2 = {ratio:.2f} (normalize + load alone: {history_ratio:.2f}); target <= {TARGET_RATIO}:"
        f" {common.verdict(ok)}"
    )
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--schedules", type=int, default=SCHEDULES)
    main(**vars(parser.parse_args()))
