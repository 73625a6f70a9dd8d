"""SIGKILL during extract, normalize and load; the next run must end where an uninterrupted one does.

Every scenario: a first good run (history exists), then the sandbox data changes (an invoice is
paid, another one's balance changes: the interrupted run carries real SCD2 work), then a run that
is killed for real with SIGKILL, then a normal run. The end state is compared with a reference
dataset that saw the same two data versions without any kill:
- invoices (every version, without timestamps) and items are equal;
- snapshots: equal content per run, never two rows for one (account_id, snapshot_at);
- no orphan items, no invoice with two current versions, no pending dlt package left.

Kills during extract come from outside (the real console script, slowed by sandbox latency).
Kills inside normalize and load come from `tests/helpers_killer.py`: the real CLI in a subprocess
with one dlt function patched to SIGKILL its own process at a precise point.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import Runner
from tests.helpers_reliability import CLI, assert_consistent, content, current_invoices, with_repo_on_path

# Known product gaps (see docs/GUARANTEES.md "Known gaps"): strict, so a fix turns them into failures
# that ask for the marker to be removed.
REPLAYED_COPY = (
    "dlt re-runs a load job whose INSERT committed just before the kill (the job was not yet"
    " recorded as done) and does not truncate staging again on resume: the append / staging rows"
    " land twice"
)
STUCK_NORMALIZE = (
    "a kill between dlt's rename of the normalized package and the delete of its extracted copy"
    " leaves both; every later normalize fails with 'Directory not empty'"
)


def _cli_args(tmp_path: Path):
    return ["run", "--pipelines-dir", str(tmp_path / "pipelines"), "--duckdb-file", str(tmp_path / "invoices.duckdb")]


def _change_data(sandbox) -> None:
    """What the interrupted run must load: one invoice paid, one balance changed."""
    first, second = sandbox.account_ids[:2]
    sandbox.pay_invoice(first, sandbox.response(first)["billingInvoices"][0]["invoiceId"])
    sandbox.set_balance(second, sandbox.response(second)["billingInvoices"][0]["invoiceId"], "$1,000.01")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same two data versions loaded without interruption, once for the module.

    Its own sandbox has the `sandbox` fixture's arguments, hence the same (deterministic) data.
    """
    directory = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch, Sandbox(accounts=3, invoices_per_account=(2, 5), seed=11) as api:
        patch.setenv("DLT_DATA_DIR", str(directory / "dlt"))
        patch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        runner = Runner(api, directory)
        runner.run()
        _change_data(api)
        runner.run()
        yield runner


def _pending_packages(tmp_path: Path):
    working = tmp_path / "pipelines" / "docusign_billing"
    folders = [working / "normalize" / "extracted", working / "load" / "new", working / "load" / "normalized"]
    return [str(p) for folder in folders if folder.exists() for p in folder.iterdir()]


def _assert_like_reference(runner: Runner, reference: Runner) -> None:
    assert_consistent(runner)
    for table in ("past_due_invoices", "past_due_invoices__invoice_items"):
        assert content(runner, table) == content(reference, table), table
    assert current_invoices(runner) == current_invoices(reference)
    # every run's snapshot is whole; the killed run may have one of its own if its package
    # survived the kill (it then holds the same data version as the run after it)
    per_run = runner.rows("SELECT snapshot_at, count(*) FROM billing.past_due_snapshots GROUP BY 1")
    assert len(per_run) in (2, 3) and {n for _, n in per_run} == {len(runner.sandbox.account_ids)}
    assert set(content(runner, "past_due_snapshots")) == set(content(reference, "past_due_snapshots"))


def _scenario(sandbox, runner: Runner, reference: Runner, tmp_path: Path, kill) -> None:
    assert sandbox.account_ids == reference.sandbox.account_ids
    runner.run()
    _change_data(sandbox)
    before = runner.snapshot()
    killed = kill()
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if "loading into" not in killed.stderr:
        assert runner.snapshot() == before  # killed before load: nothing of it is visible
    try:
        runner.run()
    except Exception as ex:  # noqa: BLE001 - the failure is the finding, reported with dlt's message
        from pipelines.cli import explain

        raise AssertionError(f"the run after the kill failed: {explain(ex)[1]}") from None
    assert _pending_packages(tmp_path) == []
    _assert_like_reference(runner, reference)
    assert runner.snapshot() != before


def test_sigkill_during_extract_then_rerun_equals_uninterrupted(sandbox, runner, reference, tmp_path, cli_env):
    """The real console script, killed from outside while it waits on the (slow) API."""

    def kill():
        sandbox.latency = 0.3
        seen = len(sandbox.requests)
        process = subprocess.Popen(
            [CLI, *_cli_args(tmp_path)], env=cli_env(sandbox), cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60
        while len(sandbox.requests) < seen + 2 and time.monotonic() < deadline:  # second account in flight
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed during extract"
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
        sandbox.latency = 0.0
        assert "extracting" in stderr and "normalizing" not in stderr
        return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)

    _scenario(sandbox, runner, reference, tmp_path, kill)


KILL_POINTS = [
    pytest.param("normalize-mid", id="normalize-after-writing-files"),
    pytest.param(
        "normalize-commit", id="normalize-between-commit-and-cleanup",
        marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=STUCK_NORMALIZE),
    ),
    pytest.param(
        "load-copy:past_due_snapshots", id="load-after-append-committed",
        marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=REPLAYED_COPY),
    ),
    pytest.param(
        "load-copy:past_due_invoices", id="load-after-invoice-staging-committed",
        marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=REPLAYED_COPY),
    ),
    pytest.param("load-merge", id="load-after-scd2-merge-committed"),
    pytest.param("load-complete", id="load-after-loads-row-written"),
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_inside_dlt_step_then_rerun_equals_uninterrupted(sandbox, runner, reference, tmp_path, cli_env, point):
    def kill():
        result = subprocess.run(
            [sys.executable, "-m", "tests.helpers_killer", point, *_cli_args(tmp_path)],
            env=with_repo_on_path(cli_env(sandbox)), cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        step = point.split("-")[0]
        assert ("loading into duckdb" in result.stderr) == (step == "load"), result.stderr
        return result

    _scenario(sandbox, runner, reference, tmp_path, kill)
