"""SIGKILL of a run of every resource (past-due, invoices and items, payments, plan history, charges)
at each main point of a dlt step; the next run must end where an uninterrupted one does.

One module-scoped history: a first run of every resource but `billing_payments`, then the sandbox
moves on 45 days (new invoices and payments, a plan change, balances) and one invoice of the first
run is corrected to no items: the killed run carries SCD2, merge, replace-items and first
back-fill work. Each test copies the first run's folder, kills a run in a subprocess at its point
(`tests/helpers_killer.py`, the real CLI), checks the kill left the state it targets, runs again,
and compares every table with a reference that loaded the same two data versions without a kill:
no duplicate rows in any table, the plan history intact, charges one row per account, charge and
run, and the windows the next run asks for (the sandbox's request log) show that the incremental
state advanced only with a load that committed.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sources.docusign_billing.resources import RESOURCES
from sources.docusign_billing.sandbox import Sandbox
from sources.docusign_billing.sandbox.ledger import month_of
from tests.conftest import Runner
from tests.helpers_reliability import (
    TIMESTAMPS,
    assert_consistent,
    content,
    unrecorded_jobs,
    windows_asked,
    with_repo_on_path,
)

TODAY = datetime.now(UTC).date()
ALL = ",".join(RESOURCES)
FIRST = [name for name in RESOURCES if name != "billing_payments"]
LOOKBACK = 60
"""Look-back of every run: the 45 days the sandbox moves on and the corrected invoice are in it."""
MOVED_ON = 45
KEYED = {
    "billing_invoices": "account_id, invoice_id",
    "billing_payments": "account_id, payment_id",
    "billing_invoices__invoice_items": "_dlt_id",
    "billing_plan__seat_discounts": "_dlt_id",
    "billing_plan": "_dlt_id",
    "billing_charges": "account_id, charge_name, snapshot_at",
}
"""What identifies a row of each table: never twice (past-due's own checks: `assert_consistent`)."""
COMPARED = [
    "past_due_invoices",
    "past_due_invoices__invoice_items",
    "billing_invoices",
    "billing_invoices__invoice_items",
    "billing_payments",
    "billing_plan",
    "billing_plan__seat_discounts",
]


def _history_start():
    try:
        return TODAY.replace(year=TODAY.year - 3)
    except ValueError:
        return TODAY.replace(year=TODAY.year - 3, day=28)


def _seed() -> tuple[int, str]:
    """A sandbox seed (and invoice) whose two accounts' next 45 days hold a plan change, with an
    invoice of the first account issued inside the look-back, with two items, to correct."""
    for seed in range(1, 500):
        api = Sandbox(accounts=2, seed=seed, today=TODAY - timedelta(days=MOVED_ON))
        ledgers = [api.ledger(a) for a in api.account_ids]
        later = month_of(TODAY)
        changes = [
            ledger.plan_in(month_of(api.today)).plan_id != ledger.plan_in(later).plan_id
            for ledger in ledgers
        ]
        recent = [
            i
            for i in ledgers[0].all_invoices(api.today)
            if i.issued > TODAY - timedelta(days=LOOKBACK) and len(i.body["invoiceItems"]) == 2
        ]
        if any(changes) and recent:
            return seed, recent[0].invoice_id
    raise AssertionError("no sandbox seed has a plan change in the next 45 days")


@dataclass
class History:
    api: Sandbox
    first_run: Path
    """The folder (pipelines and DuckDB file) after the first run, before the sandbox moved on."""
    reference: Runner
    emptied: str


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    seed, emptied = _seed()
    root = tmp_path_factory.mktemp("history")
    with (
        pytest.MonkeyPatch.context() as patch,
        Sandbox(accounts=2, seed=seed, today=TODAY - timedelta(days=MOVED_ON)) as api,
    ):
        patch.setenv("DLT_DATA_DIR", str(root / "dlt"))
        patch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        (root / "first").mkdir()
        Runner(api, root / "first").run(resources=FIRST, lookback_days=LOOKBACK)
        api.advance(MOVED_ON)
        api.set_invoice_items(api.account_ids[0], emptied, keep=0)
        shutil.copytree(root / "first", root / "reference")
        reference = Runner(api, root / "reference")
        reference.run(resources=ALL, lookback_days=LOOKBACK)
        yield History(api, root / "first", reference, emptied)


def _working(runner: Runner) -> Path:
    return Path(runner.pipelines_dir) / "docusign_billing"


def _pending(runner: Runner) -> list[str]:
    working = _working(runner)
    folders = ("normalize/extracted", "load/new", "load/normalized")
    return [
        p.name for f in folders if (working / f).exists() for p in (working / f).iterdir()
    ]  # packages, and any temp file of dlt's atomic writes (the next run's recovery removes it)


def _assert_kill_hit_its_window(runner: Runner, point: str, stderr: str) -> None:
    """The state each kill point exists to produce. Checked to fail: with `helpers_killer`
    killing before the patched dlt function instead of after it, the normalize-commit, load-copy,
    load-merge and load-complete checks fail."""
    working = _working(runner)
    step, _, table = point.partition(":")
    assert ("loading into duckdb" in stderr) == step.startswith("load"), stderr
    if step == "extract":
        assert "extracting" in stderr and "normalizing" not in stderr, stderr
    elif step == "normalize-commit":
        extracted = {p.name for p in (working / "normalize" / "extracted").iterdir()}
        assert extracted & {p.name for p in (working / "load" / "normalized").iterdir()}
    elif step == "load-copy":
        unrecorded = unrecorded_jobs(working, table)
        assert unrecorded, "the kill did not land between the committed COPY and dlt recording it"
    else:
        pending = ", ".join(f"'{name}'" for name in _pending(runner))
        loads = runner.rows(f"SELECT count(*) FROM billing._dlt_loads WHERE load_id IN ({pending})")
        assert loads == [(1 if step == "load-complete" else 0,)]
        retired = runner.rows(
            "SELECT count(*) FROM billing.billing_plan WHERE _dlt_valid_to IS NOT NULL"
        )
        assert retired == [(1,)], "the kill came before the plan's SCD2 merge committed"


def _assert_like_reference(runner: Runner, history: History, runs: int) -> None:
    reference, api = history.reference, history.api
    assert_consistent(runner)
    for table in COMPARED:
        assert content(runner, table) == content(reference, table), table
    for table, key in KEYED.items():
        assert (
            runner.rows(f"SELECT {key} FROM billing.{table} GROUP BY ALL HAVING count(*) > 1") == []
        )
    assert (
        runner.rows(
            "SELECT account_id FROM billing.billing_plan WHERE _dlt_valid_to IS NULL"
            " GROUP BY 1 HAVING count(*) > 1"
        )
        == []
    )
    assert runner.rows(
        "SELECT count(*) FROM billing.billing_invoices__invoice_items"
        f" WHERE invoice_id = '{history.emptied}'"
    ) == [(0,)]
    # charges: every run that committed holds every account's two charges, once
    charges = 2 * len(api.account_ids)
    assert (
        runner.rows("SELECT count(*) FROM billing.billing_charges GROUP BY snapshot_at")
        == [(charges,)] * runs
    )
    per_run = (*TIMESTAMPS, "_dlt_id")  # a charge's `_dlt_id` hashes its run's `snapshot_at` too
    assert set(content(runner, "billing_charges", per_run)) == set(
        content(reference, "billing_charges", per_run)
    )


POINTS = [
    # killed after the first API answer: nothing extracted, nothing of the run's state committed
    pytest.param("extract", id="extract"),
    # the package renamed to normalized, its extracted copy not yet deleted (recovery.py)
    pytest.param("normalize-commit", id="normalize-between-commit-and-cleanup"),
    # a merge table's staging COPY committed unrecorded: items and their no-items markers
    pytest.param("load-copy:billing_invoices__invoice_items", id="load-after-items-staging"),
    # an append table's COPY committed unrecorded: seat discounts are repaired by `_dlt_load_id`
    pytest.param("load-copy:billing_plan__seat_discounts", id="load-after-discounts-append"),
    # the plan's SCD2 merge committed, unrecorded
    pytest.param("load-merge:billing_plan", id="load-after-plan-scd2-merge"),
    # every job done and `_dlt_loads` written, the package (and its state) not yet archived
    pytest.param("load-complete", id="load-after-loads-row-written"),
]


@pytest.mark.parametrize("point", POINTS)
def test_killed_run_of_every_resource_is_completed_by_the_next(history, point, tmp_path, cli_env):
    """Removed to see it fail: `recovery.recover` returning at once (normalize-commit leaves its
    package pending, the load-copy points double the staged items or the appended seat
    discounts); the window state not recorded as an account's pages arrive (`_incremental` in
    `__init__.py`): every point's next run asks for a back-fill again."""
    api = history.api
    shutil.copytree(history.first_run, tmp_path / "run")
    runner = Runner(api, tmp_path / "run")
    killed = subprocess.run(
        [sys.executable, "-m", "tests.helpers_killer", point, "run"]
        + ["--pipelines-dir", runner.pipelines_dir, "--duckdb-file", runner.duckdb_file],
        env=with_repo_on_path(
            cli_env(
                api,
                SOURCES__DOCUSIGN_BILLING__RESOURCES=ALL,
                SOURCES__DOCUSIGN_BILLING__LOOKBACK_DAYS=str(LOOKBACK),
            )
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _assert_kill_hit_its_window(runner, point, killed.stderr)

    api.requests.clear()
    runner.run(resources=ALL, lookback_days=LOOKBACK)
    assert _pending(runner) == []
    _assert_like_reference(runner, history, runs=2 if point == "extract" else 3)
    # the next run's windows: the killed run's back-fill of payments counts only once its
    # package committed (completed by this run before it extracted)
    lookback = [((TODAY - timedelta(days=LOOKBACK)).isoformat(), TODAY.isoformat())]
    for account in api.account_ids:
        assert windows_asked(api, "billing_invoices", account) == lookback
        payments = windows_asked(api, "billing_payments", account)
        if point == "extract":
            assert payments[0][0] == _history_start().isoformat() and len(payments) > 1
        else:
            assert payments == lookback
