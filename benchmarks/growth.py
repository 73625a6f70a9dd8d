"""Benchmark 4: growth, runs 1..20 of a daily schedule over the same accounts and DuckDB file.

Between runs the sandbox's state drifts the way billing does: a few invoices get paid, a few
balances change, now and then an account is added. That alone grows history by ~12 % over 20
runs, too little for a run time proportional to history to miss the target. So after each run
the history is also aged (`age_history`, outside the timing): every current invoice version is
copied `AGED_COPIES` times as retired versions with their items, as if years of runs had passed.
By run 20 the history holds ~70x the versions of run 2, so a run that rescans or rewrites the
whole history shows it: `--rescan` runs a deliberately rescanning variant (every item row read
back each run instead of the distinct versions) to show that the benchmark detects one.

Runs are in one process, so per-run figures hold the pipeline's work without interpreter
start-up. A run takes well under a second, so one slow run on a shared machine would decide a
comparison of two runs: the whole schedule runs `SCHEDULES` times over identical data, each in a
fresh folder, and every figure is the median of a run's times across the schedules. After each
run every table's rows are checked against the sandbox (current versions and their items, one
snapshot per account and run, no account errors).
"""

from __future__ import annotations

import random
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import common

RUNS, ACCOUNTS, INVOICES = 20, 100, (10, 40)
SCHEDULES = 5
TARGET_RATIO = 1.3
AGED_COPIES = 4
"""Retired copies of every current invoice version (with its items) added to history per run."""


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


def age_history(duckdb_file: Path, day: int) -> None:
    """Adds `AGED_COPIES` retired copies of every current invoice version and its items, dated
    before the first run: history the SCD2 merge must leave alone and a run must not rescan."""
    import duckdb

    from sources.docusign_billing import settings

    invoices, items = (f"billing.{settings.INVOICES_TABLE}", f"billing.{settings.ITEMS_TABLE}")
    copy = f"'aged-{day}-' || copy.n || '-' ||"
    with duckdb.connect(str(duckdb_file)) as db:
        db.execute(
            f"INSERT INTO {invoices} SELECT i.* REPLACE ({copy} i._dlt_id AS _dlt_id,"
            " TIMESTAMPTZ '2000-01-01 00:00:00+00' AS _dlt_valid_from,"
            " TIMESTAMPTZ '2000-01-02 00:00:00+00' AS _dlt_valid_to)"
            f" FROM {invoices} i, range({AGED_COPIES}) copy(n) WHERE i._dlt_valid_to IS NULL"
        )
        db.execute(
            f"INSERT INTO {items} SELECT t.* REPLACE ({copy} t._dlt_id AS _dlt_id,"
            f" {copy} t._dlt_parent_id AS _dlt_parent_id, {copy} t._dlt_root_id AS _dlt_root_id)"
            f" FROM {items} t JOIN {invoices} i ON i._dlt_id = t._dlt_parent_id,"
            f" range({AGED_COPIES}) copy(n) WHERE i._dlt_valid_to IS NULL"
        )


@contextmanager
def rescanning() -> Iterator[None]:
    """The deliberately rescanning variant: the loaded item versions are found by reading every
    item row back (all columns) instead of the distinct versions, so a run costs O(history)."""
    from unittest import mock

    import pyarrow as pa
    import pyarrow.compute as pc

    from sources.docusign_billing import settings

    def every_item_read(pipeline):
        if pipeline is None:
            return None
        chunks = []
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(settings.ITEMS_TABLE)
            try:
                with client.execute_query(f"SELECT * FROM {table}") as cursor:
                    chunks = list(cursor.iter_arrow(100_000))
            except Exception:  # noqa: BLE001 - nothing loaded yet
                pass
        parents = [chunk["_dlt_parent_id"] for chunk in chunks]
        return (
            pc.unique(pa.chunked_array(parents, pa.string()))
            if parents
            else pa.array([], pa.string())
        )

    with mock.patch("sources.docusign_billing.loaded_item_versions", every_item_read):
        yield


def schedule(runs: int, accounts: int, rescan: bool = False) -> list[list[float]]:
    """One schedule in a fresh folder: per run its accounts, invoice versions, current invoices,
    extract, normalize + load and total seconds."""
    import duckdb

    from sources.docusign_billing import settings
    from sources.docusign_billing.sandbox import Sandbox

    rng = random.Random(4)
    rows: list[list[float]] = []
    snapshots = 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp,
        Sandbox(accounts=accounts, invoices_per_account=INVOICES, seed=23) as sandbox,
        rescanning() if rescan else _nothing(),
    ):
        directory = Path(tmp)
        duckdb_file = directory / "bench.duckdb"
        common.isolate(directory)
        for day in range(1, runs + 1):
            stages = common.Stages()
            seconds = common.run_pipeline(
                directory,
                stages,
                **common.token_source_args(sandbox.base_url, sandbox.account_ids),
                resources="past_due",
            )
            snapshots += len(sandbox.account_ids)
            _check_counts(duckdb_file, sandbox, snapshots)
            with duckdb.connect(str(duckdb_file), read_only=True) as db:
                versions, current = db.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE _dlt_valid_to IS NULL) FROM billing.{settings.INVOICES_TABLE}"
                ).fetchall()[0]
            extract = stages.seconds().get("extracting", float("nan"))
            rows.append(
                [len(sandbox.account_ids), versions, current, extract, seconds - extract, seconds]
            )
            age_history(duckdb_file, day)
            drift(sandbox, day, rng)
    return rows


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _check_counts(duckdb_file: Path, sandbox: object, snapshots: int) -> None:
    from sources.docusign_billing import settings

    invoices = [
        invoice
        for account_id in sandbox.account_ids  # type: ignore[attr-defined]
        for invoice in sandbox.response(account_id)["billingInvoices"]  # type: ignore[attr-defined]
    ]
    current = f"{settings.INVOICES_TABLE} WHERE _dlt_valid_to IS NULL"
    common.check_counts(
        duckdb_file,
        {
            current: len(invoices),
            f"{settings.ITEMS_TABLE} WHERE _dlt_parent_id IN"
            f" (SELECT _dlt_id FROM billing.{current})": sum(
                len(i["invoiceItems"]) for i in invoices
            ),
            settings.SNAPSHOTS_TABLE: snapshots,
            settings.ERRORS_TABLE: 0,
        },
    )


def main(
    runs: int = RUNS, accounts: int = ACCOUNTS, schedules: int = SCHEDULES, rescan: bool = False
) -> bool:
    results = [schedule(runs, accounts, rescan) for _ in range(schedules)]
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
        f"4. growth{' (RESCANNING VARIANT)' if rescan else ''}: {runs} daily runs, {accounts}"
        f" accounts to start, history aged x{AGED_COPIES} per run; medians of {schedules} schedules",
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
    common.run_from_command_line(
        main, __doc__, runs=RUNS, accounts=ACCOUNTS, schedules=SCHEDULES, rescan=False
    )  # --rescan: the deliberately rescanning variant (must miss)
