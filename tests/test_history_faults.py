"""Faults on the billing resources' endpoints, over real HTTP against the sandbox: 5xx, timeouts and
DocuSign's HTTP 400 throttling on a `nextUri` page mid-way, a failing plan call, a burst answer
that is waited out, and malformed JSON on a page.

A failing account and resource is one `account_errors` row naming the resource; every other
account and resource loads; that account's window state for that resource stays where it was, so
the next run asks for its windows again (the sandbox's request log), and then loads it whole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dlt
import pytest

from pipelines.cli import EXIT_FAILED, explain
from sources.docusign_billing import settings
from sources.docusign_billing.resources import RESOURCES
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import Runner
from tests.helpers_reliability import windows_asked

TODAY = datetime.now(UTC).date()
HISTORY_START = TODAY - timedelta(days=400)
"""Two windows per account, each of several pages at `PAGE_SIZE`."""
PAGE_SIZE = 4
ALL = list(RESOURCES)
LOOKBACK = [((TODAY - timedelta(days=settings.LOOKBACK_DAYS)).isoformat(), TODAY.isoformat())]


def _run(runner: Runner, **args) -> None:
    runner.run(resources=ALL, history_start=HISTORY_START.isoformat(), **args)


def _expected(api: Sandbox) -> dict[str, set[tuple]]:
    """What the API holds since `HISTORY_START`, per table, read from the sandbox's ledgers."""
    invoices, payments = set(), set()
    for account in api.account_ids:
        ledger = api.ledger(account)
        invoices |= {
            (account, i.invoice_id)
            for i in ledger.all_invoices(api.today)
            if HISTORY_START <= i.issued
        }
        payments |= {
            (account, p.payment_id, p.amount)
            for p in ledger.payments(api.today)
            if HISTORY_START <= p.paid_at.date()
        }
    return {"invoices": invoices, "payments": payments}


def _loaded(runner: Runner) -> dict[str, set[tuple]]:
    return {
        "invoices": set(runner.rows("SELECT account_id, invoice_id FROM billing.billing_invoices")),
        "payments": set(
            runner.rows("SELECT account_id, payment_id, amount FROM billing.billing_payments")
        ),
    }


def _of(rows: set[tuple], accounts: set[str]) -> set[tuple]:
    return {row for row in rows if row[0] in accounts}


def test_failures_on_pages_mid_way_are_recorded_per_resource_and_fetched_again(
    tmp_path, monkeypatch
):
    """Removed to see it fail: the window state left alone for a failed account (`reached` set
    on its `AccountFailure` too in `__init__._incremental`): the failed accounts' next run asks
    only for the look-back window, and their history before it is never loaded. DocuSign's 400
    throttling codes retried as throttling (`client._retry_throttled` returning False): the burst
    page fails its account."""
    monkeypatch.setattr(settings, "BURST_WINDOW", 1.0)
    with Sandbox(accounts=4, seed=21, page_size=PAGE_SIZE) as api:
        runner = Runner(api, tmp_path)
        a0, a1, a2, a3 = api.account_ids
        page = {"next_page": True}  # a page after the first, the chain half read
        api.inject("500", times=2, account_id=a0, resource="billing_invoices", **page)
        api.inject("hang", times=2, account_id=a1, resource="billing_payments", seconds=6, **page)
        api.inject("hourly", times=2, account_id=a2, resource="billing_invoices", **page)
        api.inject("503", times=2, account_id=a1, resource="billing_plan")
        api.inject("burst", times=1, account_id=a3, resource="billing_payments", **page)
        _run(runner, max_attempts=2, request_timeout=1.0)

        errors = runner.rows(
            "SELECT account_id, resource, http_status, error_code FROM billing.account_errors"
        )
        assert sorted(e[:3] for e in errors) == sorted(
            [
                (a0, "billing_invoices", 500),
                (a1, "billing_payments", None),  # timed out
                (a1, "billing_plan", 503),
                (a2, "billing_invoices", 400),
            ]
        )
        assert (a2, "billing_invoices", 400, "HOURLY_APIINVOCATION_LIMIT_EXCEEDED") in errors
        # a1 failed in two resources in one run: its rows differ by key, as the staging dedup
        # that `deduplicated` skips would otherwise need them to
        schema = dlt.attach(settings.PIPELINE_NAME, pipelines_dir=runner.pipelines_dir)
        error_columns = schema.default_schema.get_table_columns(settings.ERRORS_TABLE)
        assert [c for c, hints in error_columns.items() if hints.get("primary_key")] == [
            "account_id",
            "snapshot_at",
            "resource",
        ]
        expected, loaded = _expected(api), _loaded(runner)
        assert loaded["invoices"] == _of(expected["invoices"], {a1, a3})
        assert loaded["payments"] == _of(expected["payments"], {a0, a2, a3})
        assert {a for (a,) in runner.rows("SELECT account_id FROM billing.billing_plan")} == {
            a0,
            a2,
            a3,
        }
        assert runner.rows("SELECT count(DISTINCT account_id) FROM billing.billing_charges") == [
            (4,)
        ]
        assert runner.rows("SELECT count(*) FROM billing.past_due_snapshots") == [(4,)]
        burst = [
            r["status"]
            for r in api.requests
            if r["account_id"] == a3 and r["resource"] == "billing_payments"
        ]
        assert 400 in burst and burst.count(200) == len(burst) - 1  # waited out, retried once

        api.requests.clear()
        _run(runner)
        first_window = HISTORY_START.isoformat()
        for account, resource in (
            (a0, "billing_invoices"),
            (a2, "billing_invoices"),
            (a1, "billing_payments"),
        ):
            windows = windows_asked(api, resource, account)
            assert windows[0][0] == first_window and len(windows) == 2, (account, resource)
        for account, resource in (
            (a1, "billing_invoices"),
            (a3, "billing_invoices"),
            (a0, "billing_payments"),
            (a2, "billing_payments"),
            (a3, "billing_payments"),
        ):
            assert windows_asked(api, resource, account) == LOOKBACK, (account, resource)
        assert _loaded(runner) == _expected(api)
        assert runner.rows(
            "SELECT count(*) = count(DISTINCT (account_id, invoice_id)) FROM billing.billing_invoices"
        ) == [(True,)]
        assert len(runner.rows("SELECT * FROM billing.account_errors")) == 4  # the first run's
        assert runner.rows(
            "SELECT account_id FROM billing.billing_plan WHERE _dlt_valid_to IS NULL ORDER BY 1"
        ) == sorted((a,) for a in api.account_ids)


def test_malformed_json_on_a_page_stops_the_run_and_the_next_fetches_the_same_windows(
    tmp_path,
):
    """A page that is not JSON is no transient fault: the run stops naming account and resource,
    nothing of it loads, and the next run fetches the same windows again. Removed to see it fail:
    the endpoint in the error (`json_body(where)` in `tables.BatchParser.build`): the message
    named the account only."""
    with Sandbox(accounts=2, seed=22, page_size=PAGE_SIZE) as api:
        runner = Runner(api, tmp_path)
        account = api.account_ids[1]
        api.inject("malformed", account_id=account, resource="billing_payments", next_page=True)
        with pytest.raises(Exception) as failed:
            _run(runner)
        code, message = explain(failed.value)
        assert code == EXIT_FAILED and "\n" not in message
        assert message.startswith(f"account {account}") and "billing_payments" in message, message
        assert "not valid JSON" in message, message
        for table in ("billing_payments", "billing_invoices", "billing_plan", "past_due_snapshots"):
            assert runner.table(table) == [], table  # nothing of the run, no account's rows
        first = {a: windows_asked(api, "billing_payments", a) for a in api.account_ids}

        api.requests.clear()
        _run(runner)
        for account_id in api.account_ids:
            assert windows_asked(api, "billing_payments", account_id) == first[account_id]
            assert first[account_id][0][0] == HISTORY_START.isoformat()
        assert _loaded(runner) == _expected(api)
        assert all(isinstance(amount, Decimal) for _, _, amount in _loaded(runner)["payments"])
