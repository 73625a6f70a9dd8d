"""Benchmark 4: growth, runs 1..20 of a daily schedule over the same accounts and DuckDB file.

Between runs the sandbox's state drifts the way billing does: a few invoices get paid, a few
balances change, now and then an account is added. History therefore grows a little every run
and the time per run must not grow with it (SCD2 must not rescan or rewrite everything). Runs
are in one process, so per-run figures hold the pipeline's work without interpreter start-up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path
from typing import List

from benchmarks import common

RUNS, ACCOUNTS, INVOICES = 20, 100, (10, 40)
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


def main(runs: int = RUNS, accounts: int = ACCOUNTS) -> bool:
    import duckdb

    from sources.docusign_billing import settings
    from sources.docusign_billing.sandbox import Sandbox

    rng = random.Random(4)
    rows: List[List[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp, Sandbox(
        accounts=accounts, invoices_per_account=INVOICES, seed=23
    ) as sandbox:
        directory = Path(tmp)
        common.isolate(directory)
        for day in range(1, runs + 1):
            stages = common.Stages()
            seconds = common.run_pipeline(directory, stages, **common.token_source_args(sandbox.base_url, sandbox.account_ids))
            steps = stages.seconds()
            with duckdb.connect(str(directory / "bench.duckdb"), read_only=True) as db:
                versions, current = db.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE _dlt_valid_to IS NULL) FROM billing.{settings.INVOICES_TABLE}"
                ).fetchall()[0]
            extract = steps.get("extracting", float("nan"))
            rows.append([day, len(sandbox.account_ids), versions, current, extract, seconds - extract, seconds])
            drift(sandbox, day, rng)
    base_total, base_history = rows[min(1, len(rows) - 1)][6], rows[min(1, len(rows) - 1)][5]
    for row in rows:
        row += [row[6] / base_total, row[5] / base_history]
    common.print_table(
        f"4. growth: {runs} daily runs, {accounts} accounts to start",
        ["run", "accounts", "invoice versions", "current invoices", "extract (HTTP + parse) s",
         "normalize + load s", "total s", "total / run 2", "normalize + load / run 2"],
        rows,
    )
    ratio, history_ratio = rows[-1][-2], rows[-1][-1]
    # one run against one run is at the mercy of a shared machine: the verdict compares medians
    # of three runs at each end (runs 2-4 and the last three)
    totals = [row[6] for row in rows]
    robust = statistics.median(totals[-3:]) / statistics.median(totals[1:4] or totals)
    ok = robust <= TARGET_RATIO
    print(f"run {runs} / run 2 = {ratio:.2f} (normalize + load alone: {history_ratio:.2f}); median of the last 3"
          f" / median of runs 2-4 = {robust:.2f}; target <= {TARGET_RATIO}: {common.verdict(ok)}")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    main(**vars(parser.parse_args()))
