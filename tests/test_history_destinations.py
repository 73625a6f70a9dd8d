"""The incremental windows are kept in dlt's state, with the pipeline folder: a destination that
does not hold a resource's table (a new or deleted DuckDB file, another dataset), or holds it as
of an older state (a file replaced by an older copy), must get the whole back-fill, not only the
windows after the last run's end."""

import os
import shutil
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

import sources.docusign_billing as source_module
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import Runner
from tests.helpers_reliability import windows_asked

WINDOWED = ["billing_invoices", "billing_payments"]
ALL = ["past_due", *WINDOWED, "billing_plan", "billing_charges"]


@pytest.fixture
def billing():
    with Sandbox(accounts=2, seed=31) as api:
        yield api


def _counts(duckdb_file: str, dataset: str = "billing") -> tuple[int, int]:
    with duckdb.connect(duckdb_file, read_only=True) as connection:
        invoices, payments = (
            connection.execute(f"SELECT count(*) FROM {dataset}.{table}").fetchall()[0][0]
            for table in WINDOWED
        )
        return invoices, payments


def test_a_destination_without_the_tables_gets_the_whole_back_fill(billing, tmp_path):
    """Removed to see it fail: the `holds_history` check in `_incremental` (the new and the
    recreated file then get only the look-back window: a few invoices instead of three years).
    """
    runner = Runner(billing, tmp_path)
    runner.run(resources=WINDOWED)
    backfill = windows_asked(billing, "billing_invoices", billing.account_ids[0])
    assert len(backfill) > 1  # three years in 365-day windows
    full = _counts(runner.duckdb_file)
    assert full[0] > 10 and full[1] > 10

    # the same pipeline folder into a new DuckDB file
    first_file = runner.duckdb_file
    runner.duckdb_file = str(tmp_path / "other.duckdb")
    billing.requests.clear()
    runner.run(resources=WINDOWED)
    assert windows_asked(billing, "billing_invoices", billing.account_ids[0]) == backfill
    assert _counts(runner.duckdb_file) == full

    # the first file deleted, then loaded again
    os.remove(first_file)
    runner.duckdb_file = first_file
    runner.run(resources=WINDOWED)
    assert _counts(first_file) == full

    # a run into a file that holds the tables fetches only the look-back again
    billing.requests.clear()
    runner.run(resources=WINDOWED)
    assert len(windows_asked(billing, "billing_invoices", billing.account_ids[0])) == 1
    assert _counts(first_file) == full

    # a new pipeline folder (another machine, a lost ~/.dlt or CI cache) on the loaded file: it
    # runs, nothing twice (it failed at extract, every time, with exit 1: "Schema `None` ... could
    # not be found": `holds_history` asked the folder's schema, which a new folder does not have)
    runner.pipelines_dir = str(tmp_path / "new-folder")
    runner.run(resources=WINDOWED)
    assert _counts(first_file) == full


def test_a_file_replaced_by_an_older_copy_gets_what_it_missed(tmp_path, monkeypatch):
    """A DuckDB file restored from a backup taken before the last run: the local windows have
    passed what it holds. Removed to see it fail: the stored-state version check in
    `loaded.holds_history` (the restored file then gets only the look-back window and misses
    every invoice and payment of the 60 days between the backup and the last run)."""
    moved_on = 60
    with Sandbox(accounts=2, seed=31, today=datetime.now(UTC).date() - timedelta(moved_on)) as api:
        runner = Runner(api, tmp_path)
        real = source_module.current_package

        def before_the_move() -> tuple[datetime, str | None]:
            at, load_id = real()
            return at - timedelta(days=moved_on), load_id

        with monkeypatch.context() as patch:
            patch.setattr(source_module, "current_package", before_the_move)
            runner.run(resources=WINDOWED)  # the back-fill, 60 days ago
        backup = tmp_path / "backup.duckdb"
        shutil.copyfile(runner.duckdb_file, backup)
        api.advance(moved_on)
        runner.run(resources=WINDOWED, lookback_days=5)  # today: the 60 days since
        complete = _counts(runner.duckdb_file)
        assert complete > _counts(str(backup))  # the 60 days brought invoices and payments

        shutil.copyfile(backup, runner.duckdb_file)
        api.requests.clear()
        runner.run(resources=WINDOWED, lookback_days=5)
        assert len(windows_asked(api, "billing_invoices", api.account_ids[0])) > 1  # back-fill
        assert _counts(runner.duckdb_file) == complete

        api.requests.clear()  # and the destination is current again: the look-back only
        runner.run(resources=WINDOWED, lookback_days=5)
        assert len(windows_asked(api, "billing_invoices", api.account_ids[0])) == 1


def test_a_pipeline_that_stops_storing_its_state_is_not_back_filled_every_day(
    billing, tmp_path, monkeypatch
):
    """A user's own pipeline with `restore_from_destination = false` after runs that stored
    their state: dlt stores none any more, so the stored version stays behind the local one for
    ever. Removed to see it fail: the `restore_from_destination` check in `loaded.holds_history`
    (every daily run then back-filled three years of invoices and payments)."""
    runner = Runner(billing, tmp_path)
    real = source_module.current_package
    day = [0]

    def on_day() -> tuple[datetime, str | None]:
        at, load_id = real()
        return at + timedelta(days=day[0]), load_id

    monkeypatch.setattr(source_module, "current_package", on_day)
    runner.run(resources=WINDOWED)  # the CLI's load: the state is stored with it
    monkeypatch.setenv("RESTORE_FROM_DESTINATION", "false")
    for day[0] in (1, 2):  # the windows move on each day: a state dlt no longer stores
        billing.requests.clear()
        runner.run_plain(resources=WINDOWED)
        assert len(windows_asked(billing, "billing_invoices", billing.account_ids[0])) == 1


def test_a_dataset_first_loaded_with_one_resource_takes_the_others_later(billing, tmp_path):
    """Every resource into one file, then `past_due` alone into a new file with the same
    pipeline folder (its schema knows every table), then every resource into the new file: dlt
    created only the past-due tables and stored the schema's version hash there, so it never
    migrated again and every later run failed (exit 1, "Table with name billing_plan__seat_discounts
    does not exist"), its package stuck. Removed to see it fail: `create_missing_tables` in
    `load()` (`dlt_internals`)."""
    runner = Runner(billing, tmp_path)
    runner.run(resources=ALL)
    full = _counts(runner.duckdb_file)
    runner.duckdb_file = str(tmp_path / "second.duckdb")
    runner.run(resources=["past_due"])
    runner.run(resources=ALL)
    assert _counts(runner.duckdb_file) == full
    views = runner.rows("SELECT table_name FROM information_schema.views ORDER BY 1")
    assert ("invoice_payments",) in views and ("collections_monthly",) in views
