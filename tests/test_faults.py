"""Transient API faults at scale: storms across many accounts, mixes, and every class run to exhaustion.

(Single faults retried once each, Retry-After / X-RateLimit-Reset timing and exhausted 503 are in
tests/test_http.py.) Every test checks the tables: loaded exactly like the API says after retries,
or exactly as before the run when retries run out.
"""

import threading
import time

import pytest

from pipelines.cli import EXIT_FAILED, EXIT_PARTIAL, explain
from sources.docusign_billing import settings
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import Runner
from tests.helpers_reliability import (
    CLI,
    INVOICES,
    ITEMS,
    SNAPSHOTS,
    assert_consistent,
    cli,
    exact_amount,
)

STORM = {"max_attempts": 8, "backoff_factor": 0.02, "max_retry_delay": 0.5, "request_timeout": 0.5}


def _expected(sandbox):
    """What the tables must hold for the API's current data: balances, item amounts, snapshots."""
    invoices, items, snapshots = {}, {}, {}
    for account_id in sandbox.account_ids:
        body = sandbox.response(account_id)
        snapshots[account_id] = (
            exact_amount(body["pastDueBalance"]),
            len(body["billingInvoices"]),
        )
        for invoice in body["billingInvoices"]:
            invoices[(account_id, invoice["invoiceId"])] = exact_amount(invoice["balance"])
            for item in invoice["invoiceItems"]:
                items[(account_id, invoice["invoiceId"], item["invoiceItemId"])] = exact_amount(
                    item["chargeAmount"]
                )
    return invoices, items, snapshots


def _assert_loaded_exactly(runner, sandbox, runs=1):
    invoices, items, snapshots = _expected(sandbox)
    assert (
        dict(
            ((a, i), b)
            for a, i, b in runner.rows(
                f"SELECT account_id, invoice_id, balance FROM {INVOICES} WHERE _dlt_valid_to IS NULL"
            )
        )
        == invoices
    )
    assert (
        dict(
            ((a, i, n), c)
            for a, i, n, c in runner.rows(
                f"SELECT account_id, invoice_id, invoice_item_id, charge_amount FROM {ITEMS}"
            )
        )
        == items
    )
    latest = runner.rows(
        f"SELECT account_id, past_due_balance, invoice_count FROM {SNAPSHOTS}"
        f" WHERE snapshot_at = (SELECT max(snapshot_at) FROM {SNAPSHOTS})"
    )
    assert {a: (b, n) for a, b, n in latest} == snapshots
    assert runner.rows(f"SELECT count(DISTINCT snapshot_at) FROM {SNAPSHOTS}") == [(runs,)]
    assert_consistent(runner)


def _console_run(runner, cli_env, tmp_path, **settings):
    """`docusign-billing run` on the runner's folders, with source settings as environment variables."""
    env = {f"SOURCES__DOCUSIGN_BILLING__{name}": str(value) for name, value in settings.items()}
    return cli(
        *("run", "--pipelines-dir", runner.pipelines_dir, "--duckdb-file", runner.duckdb_file),
        env=cli_env(runner.sandbox, **env),
        cwd=tmp_path,
    )


def _statuses(sandbox, account_id):
    return [r["status"] for r in sandbox.requests if r["account_id"] == account_id]


def test_rate_limit_storm_across_many_accounts(runner, sandbox):
    """A real fixed-window limiter (3 requests per 0.5 s, with Retry-After and X-RateLimit-*) over
    12 accounts fetched by 4 workers: paced by the gate, loaded exactly.

    Removed to see it fail: `RateLimitGate.acquire` returning True at once (no pacing): 11 of
    the 12 accounts then meet a 429 (three runs), against 0-1 with the gate.
    """
    for _ in range(9):
        sandbox.add_account(invoices=1)
    sandbox.rate_limit(max_requests=3, per_seconds=0.5)
    runner.run(**STORM, max_workers=4)
    # the first 4 requests leave before any answer tells the gate the window (one may be a 429);
    # after that the gate holds the workers until the window frees: at most a stray 429 or two
    assert sandbox.throttled <= 3, sandbox.throttled
    assert all(_statuses(sandbox, a)[-1] == 200 for a in sandbox.account_ids)
    assert {s for r in sandbox.requests for s in [r["status"]]} <= {200, 429}
    _assert_loaded_exactly(runner, sandbox)


def _finishes_within(seconds: float, run) -> None:
    """Runs `run` in a thread and fails if it has not finished after `seconds` (instead of
    hanging for as long as an uncapped wait would)."""
    done, errors = threading.Event(), []

    def target():
        try:
            run()
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    assert done.wait(seconds), f"the run did not finish within {seconds} s: a wait was not capped"
    if errors:
        raise errors[0]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="bare-429"),
        pytest.param({"retry_after": 3600}, id="retry-after-an-hour"),
        pytest.param({"ratelimit_reset": 3600}, id="x-ratelimit-reset-an-hour-away"),
    ],
)
def test_429_storm_on_every_account(runner, sandbox, headers):
    """Three 429s in a row for each account, the headers asking to wait an hour: every wait is
    capped by `max_retry_delay` (0.1 s), header-driven ones included, so the run takes seconds.

    Removed to see it fail: `request_max_retry_delay` in `DocuSignClient` (dlt's own 300 s cap
    then applies: the header variants do not finish within 30 s; run ~2 s with the cap).
    """
    # every account's first request is in flight before a 429 tells the gate the hourly window is
    # spent (from then on the gate leaves accounts not yet started for a later run, by design)
    sandbox.latency = 0.3
    for account_id in sandbox.account_ids:
        sandbox.inject("429", times=3, account_id=account_id, **headers)
    _finishes_within(30, lambda: runner.run(**{**STORM, "max_retry_delay": 0.1}))
    for account_id in sandbox.account_ids:
        assert _statuses(sandbox, account_id) == [429, 429, 429, 200]
    _assert_loaded_exactly(runner, sandbox)


def test_mixed_faults_across_accounts(runner, sandbox):
    """Each account meets a different sequence of faults; all are retried and the load is exact.

    Removed to see it fail: retries (`request_max_attempts=1` in `DocuSignClient`)."""
    runner.run()
    first, second, third = sandbox.account_ids
    sandbox.set_balance(
        second, sandbox.response(second)["billingInvoices"][0]["invoiceId"], "$12,345.67"
    )
    sandbox.inject("502", account_id=first)
    sandbox.inject("reset", account_id=first)
    sandbox.inject("429", account_id=first, retry_after=1)
    sandbox.inject("hang", account_id=second, seconds=3)
    sandbox.inject("500", account_id=second)
    sandbox.inject("504", account_id=third)
    sandbox.inject("503", account_id=third)
    sandbox.inject("reset", account_id=third)
    runner.run(**{**STORM, "max_retry_delay": 0.2})
    assert _statuses(sandbox, first)[-4:] == [502, None, 429, 200]
    assert _statuses(sandbox, second)[-3:] == [
        None,
        500,
        200,
    ]  # the hang is abandoned by the timeout
    assert _statuses(sandbox, third)[-4:] == [504, 503, None, 200]
    _assert_loaded_exactly(runner, sandbox, runs=2)


EXHAUSTED = [
    pytest.param("429", {"retry_after": 30}, "HTTP 429", id="429"),
    pytest.param("500", {}, "HTTP 500", id="500"),
    pytest.param("502", {}, "HTTP 502", id="502"),
    pytest.param("reset", {}, "could not be reached", id="reset"),
    pytest.param("hang", {"seconds": 5}, "could not be reached", id="hang"),
]


@pytest.mark.parametrize("fault, options, expected", EXHAUSTED)
def test_retries_run_out_on_every_account_fails_the_run_and_changes_nothing(
    runner, sandbox, fault, options, expected
):
    """Removed to see it fail: `request_max_attempts` following `max_attempts` (one try more:
    the faults run out first and the run succeeds)."""
    runner.run()
    before = runner.snapshot()
    account = sandbox.account_ids[1]
    sandbox.set_balance(
        account, sandbox.response(account)["billingInvoices"][0]["invoiceId"], "1.00"
    )
    sandbox.inject(fault, times=3 * len(sandbox.account_ids), **options)
    started = time.monotonic()
    with pytest.raises(Exception) as error:
        runner.run(max_attempts=3, backoff_factor=0.02, max_retry_delay=0.2, request_timeout=0.4)
    assert time.monotonic() - started < 8
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert message.startswith("account ") and expected in message, message
    assert any(a in message for a in sandbox.account_ids) and "\n" not in message
    assert len([r for r in sandbox.requests if r["status"] != 200]) == 3 * len(
        sandbox.account_ids
    )  # max_attempts each
    assert runner.snapshot() == before
    runner.run()  # the fault is gone: the next run loads everything, including the new balance
    _assert_loaded_exactly(runner, sandbox, runs=2)


@pytest.mark.parametrize("fault, options, expected", [EXHAUSTED[0], EXHAUSTED[-1]])
def test_retries_run_out_on_one_account_keeps_its_history_and_loads_the_others(
    runner, sandbox, fault, options, expected, cli_env, tmp_path
):
    """The failing run is the console script: exit code 3, the account named.

    Removed to see it fail: `_load_and_report` returning `EXIT_OK` when accounts failed.
    """
    runner.run()
    flaky, other = sandbox.account_ids[1], sandbox.account_ids[2]
    history = runner.rows(f"SELECT * FROM {INVOICES} WHERE account_id = '{flaky}' ORDER BY ALL")
    sandbox.set_balance(flaky, sandbox.response(flaky)["billingInvoices"][0]["invoiceId"], "1.00")
    sandbox.set_balance(other, sandbox.response(other)["billingInvoices"][0]["invoiceId"], "2.00")
    sandbox.inject(fault, times=3, account_id=flaky, **options)
    result = _console_run(
        runner,
        cli_env,
        tmp_path,
        MAX_ATTEMPTS=3,
        BACKOFF_FACTOR=0.02,
        MAX_RETRY_DELAY=0.2,
        REQUEST_TIMEOUT=0.4,
    )
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert f"account {flaky}" in result.stdout and "partial failure" in result.stderr
    assert (
        runner.rows(f"SELECT * FROM {INVOICES} WHERE account_id = '{flaky}' ORDER BY ALL")
        == history
    )
    assert runner.rows(
        f"SELECT count(*) FROM {INVOICES} WHERE account_id = '{other}' AND balance = 2"
    ) == [(1,)]
    errors = runner.rows("SELECT account_id, message FROM billing.account_errors")
    assert len(errors) == 1 and errors[0][0] == flaky and expected in errors[0][1]
    assert_consistent(runner)
    runner.run()
    _assert_loaded_exactly(runner, sandbox, runs=3)


def test_console_script_exits_1_and_changes_nothing_when_retries_run_out(
    runner, sandbox, cli_env, tmp_path
):
    runner.run()
    before = runner.snapshot()
    sandbox.inject("502", times=20)
    result = _console_run(runner, cli_env, tmp_path, MAX_ATTEMPTS=2, MAX_RETRY_DELAY=0.1)
    assert result.returncode == EXIT_FAILED, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    # accounts are fetched concurrently: any of them may be the one reported
    assert any(
        last.startswith(f"docusign-billing: account {a}: DocuSign answered HTTP 502")
        for a in sandbox.account_ids
    ), last
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert runner.snapshot() == before
    assert CLI.endswith("docusign-billing")


@pytest.mark.parametrize(
    "fault, options",
    [
        pytest.param("hourly", {"ratelimit_reset": 1}, id="hourly-400"),
        pytest.param("burst", {}, id="burst-400"),
    ],
)
def test_throttled_by_400_on_every_account_then_loaded_exactly(
    runner, sandbox, fault, options, monkeypatch
):
    """DocuSign's throttling answer is HTTP 400 with an errorCode: retried like a 429, never an
    account error; the hourly one waits for X-RateLimit-Reset, the burst one for its window
    (shortened from DocuSign's 30 s to 1 s here).

    Removed to see it fail: `retry_condition=_retry_throttled` in `DocuSignClient` (the 400 is
    then an account error)."""
    monkeypatch.setattr(settings, "BURST_WINDOW", 1.0)
    for account_id in sandbox.account_ids:
        sandbox.inject(fault, times=2, account_id=account_id, **options)
    started = time.monotonic()
    runner.run(**{**STORM, "max_retry_delay": 1.0})
    assert time.monotonic() - started >= 0.9  # waited for the reset or window, not the backoff
    for account_id in sandbox.account_ids:
        assert _statuses(sandbox, account_id) == [400, 400, 200]
    assert runner.table("account_errors") == []
    _assert_loaded_exactly(runner, sandbox)


def test_throttle_waits_are_capped(tmp_path):
    """An hourly reset an hour away is waited for at most `max_retry_delay` per retry, and so is
    the burst window (30 s by default).

    Removed to see it fail: `request_max_retry_delay` in `DocuSignClient` (not done within 10 s;
    the waits then run for dlt's 300 s cap)."""
    with Sandbox(accounts=1, invoices_per_account=2, seed=11) as api:
        api.inject("hourly", times=2, ratelimit_reset=3600)
        api.inject("burst", times=2)
        runner = Runner(api, tmp_path)
        _finishes_within(10, lambda: runner.run(**{**STORM, "max_retry_delay": 0.2}))
        assert _statuses(api, api.account_ids[0]) == [400, 400, 400, 400, 200]
        _assert_loaded_exactly(runner, api)
