"""Two runs at once: one proceeds, the other fails fast with one clear line and exit 1; nothing corrupts.

Same pipeline folder: `sources/docusign_billing/run_lock.py` (flock on `<working_dir>/run.lock`, whole `load()`).
Different pipeline folders, same DuckDB file: DuckDB's own file lock; the loser's package stays
pending in its folder and loads on its next run.
"""

import subprocess
import sys
import time

import pytest

from pipelines.cli import EXIT_FAILED, explain
from pipelines.docusign_billing_pipeline import make_pipeline
from sources.docusign_billing.errors import DocuSignBillingError
from sources.docusign_billing.run_lock import RunInProgressError, lock_path, run_lock
from tests.conftest import Runner
from tests.helpers_reliability import CLI, assert_consistent, with_repo_on_path


def _args(pipelines_dir, duckdb_file):
    return ["run", "--pipelines-dir", str(pipelines_dir), "--duckdb-file", str(duckdb_file)]


def _pipeline(runner):
    return make_pipeline(pipelines_dir=runner.pipelines_dir, duckdb_file=runner.duckdb_file)


def test_run_while_lock_is_held_fails_fast_and_changes_nothing(runner):
    """Removed to see it fail: the `flock` in `run_lock` (the second run then proceeds)."""
    runner.run()
    before = runner.snapshot()
    pipeline = _pipeline(runner)
    with run_lock(pipeline) as path:
        started = time.monotonic()
        with pytest.raises(RunInProgressError) as error:
            runner.run()
        # waiting for the lock would never end (this thread holds it); 10 s leaves a 3x margin
        # over a loaded 2-core machine's start-up of the run
        assert time.monotonic() - started < 10
    assert isinstance(error.value, DocuSignBillingError)
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert message == (
        f"another run of pipeline docusign_billing is in progress (lock {path}); this run did nothing"
    )
    assert path == lock_path(pipeline) and path.startswith(pipeline.working_dir)
    assert runner.snapshot() == before
    runner.run()  # released when the holder is done
    assert len(runner.snapshot()["past_due_snapshots"]) == 2 * len(before["past_due_snapshots"])


def test_two_console_runs_at_once_on_one_pipeline_folder(sandbox, runner, cli_env, tmp_path):
    """The sandbox holds the first run inside its first API call (an event, no clock) until the
    second run has exited; without the run lock (removed `flock` in run_lock.py) the second run
    proceeds and this fails."""
    runner.run()  # the scheduler's case: the pipeline folder exists
    before = runner.snapshot()
    sandbox.answering.clear()  # the winner waits inside its API calls while the loser starts
    env, args = cli_env(sandbox), _args(runner.pipelines_dir, runner.duckdb_file)
    first = subprocess.Popen(
        [CLI, *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            len(sandbox.requests) < len(before["past_due_snapshots"]) + 1
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)  # the first run holds the lock once it calls the API
        second = subprocess.run(
            [CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    finally:
        sandbox.answering.set()
    assert first.poll() is None, "the second run must have failed while the first was still running"
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == EXIT_FAILED
    lines = second.stderr.strip().splitlines()
    assert lines == [
        f"docusign-billing: another run of pipeline docusign_billing is in progress"
        f" (lock {runner.pipelines_dir}/docusign_billing/run.lock); this run did nothing"
    ]
    assert second.stdout == ""
    assert_consistent(runner)
    after = runner.snapshot()
    assert after["past_due_invoices"] == before["past_due_invoices"]
    assert after["past_due_invoices__invoice_items"] == before["past_due_invoices__invoice_items"]
    assert len(after["past_due_snapshots"]) == 2 * len(
        before["past_due_snapshots"]
    )  # exactly one more run


def test_two_pipeline_folders_on_one_duckdb_file(sandbox, runner, cli_env, tmp_path):
    """A run of another folder holds the DuckDB file during its load; ours fails, then catches up."""
    other = Runner(sandbox, tmp_path)
    other.pipelines_dir = str(tmp_path / "other-pipelines")
    env = with_repo_on_path(cli_env(sandbox))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers_killer",
            "load-pause:2.5",
            *_args(other.pipelines_dir, runner.duckdb_file),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    while "paused in load" not in seen and holder.poll() is None:
        seen += holder.stderr.readline()  # type: ignore[union-attr]  # Popen(stderr=PIPE)
    assert "paused in load" in seen, seen
    sandbox.set_balance(
        sandbox.account_ids[0],
        sandbox.response(sandbox.account_ids[0])["billingInvoices"][0]["invoiceId"],
        "7.77",
    )
    requests = len(sandbox.requests)
    with pytest.raises(Exception) as error:
        runner.run()
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert (
        message.startswith("destination error: ")
        and "lock" in message
        and runner.duckdb_file in message
    )
    # the source reads which item versions are loaded before its first API call: it fails at once
    assert len(sandbox.requests) == requests
    assert holder.wait(timeout=60) == 0, holder.stderr.read()  # type: ignore[union-attr]
    # the holder's run is whole; ours left nothing in the dataset
    assert_consistent(runner)
    assert len(runner.rows("SELECT DISTINCT snapshot_at FROM billing.past_due_snapshots")) == 1
    assert runner.rows("SELECT count(*) FROM billing.past_due_invoices WHERE balance = 7.77") == [
        (0,)
    ]
    # our next run loads normally: nothing lost, nothing twice
    runner.run()
    assert_consistent(runner)
    runs = runner.rows(
        "SELECT snapshot_at, count(*) FROM billing.past_due_snapshots GROUP BY 1 ORDER BY 1"
    )
    assert [n for _, n in runs] == [len(sandbox.account_ids)] * 2
    assert runner.rows(
        "SELECT count(*) FROM billing.past_due_invoices WHERE balance = 7.77 AND _dlt_valid_to IS NULL"
    ) == [(1,)]
