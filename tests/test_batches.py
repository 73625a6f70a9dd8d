"""Runs larger than one batch: batches typed in worker threads load exactly like one batch."""

import json
import threading
import time
from datetime import UTC, datetime

import pytest

from sources.docusign_billing import settings
from sources.docusign_billing.batches import parsed_batches
from sources.docusign_billing.bodies import AccountResponse
from sources.docusign_billing.client import RawBody
from sources.docusign_billing.errors import ResponseError
from sources.docusign_billing.sandbox import Sandbox
from sources.docusign_billing.sandbox.data import account_id_for, generate_response
from sources.docusign_billing.tables import BatchParser
from tests.conftest import Runner
from tests.helpers_reliability import TABLES, content, current_invoices

SMALL_BATCH = 3_000
"""Response bytes per batch in these tests (a few accounts): every run spans many batches."""


@pytest.fixture
def many():
    with Sandbox(accounts=12, invoices_per_account=(0, 6), seed=23) as api:
        yield api


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(settings, "BATCH_BYTES", SMALL_BATCH)


def _builds(monkeypatch):
    """Records the thread of every `BatchParser.build` call."""
    threads = []
    build = BatchParser.build

    def recorded(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(BatchParser, "build", recorded)
    return threads


def test_many_batches_load_and_keep_history_like_one(many, tmp_path, monkeypatch):
    (tmp_path / "one").mkdir(), (tmp_path / "split").mkdir()
    one, split = Runner(many, tmp_path / "one"), Runner(many, tmp_path / "split")
    first, last = many.account_ids[0], many.account_ids[-1]
    one.run()
    monkeypatch.setattr(settings, "BATCH_BYTES", SMALL_BATCH)
    threads = _builds(monkeypatch)
    split.run()
    assert (
        sum(name.startswith("docusign-parse") for name in threads) >= 3
    )  # typed in worker threads
    many.pay_invoice(first, many.response(first)["billingInvoices"][0]["invoiceId"])
    many.set_balance(last, many.response(last)["billingInvoices"][-1]["invoiceId"], "1.23")
    monkeypatch.setattr(settings, "BATCH_BYTES", 5_000_000)
    one.run()
    monkeypatch.setattr(settings, "BATCH_BYTES", SMALL_BATCH)
    split.run()
    for table in TABLES:
        assert content(split, table) == content(one, table)
    assert current_invoices(split) == current_invoices(one)
    assert split.rows(
        "SELECT count(*) FROM billing.past_due_invoices WHERE _dlt_valid_to IS NOT NULL"
    ) == [(2,)]


def test_bad_value_in_a_middle_batch_loads_nothing_of_the_run(many, tmp_path, small_batches):
    runner = Runner(many, tmp_path)
    runner.run()
    before = runner.snapshot()
    account = next(a for a in many.account_ids[4:] if many.response(a)["billingInvoices"])
    body = many.response(account)
    body["billingInvoices"][-1]["balance"] = "12,34.5.6"
    many.set_response(account, body)
    with pytest.raises(Exception) as error:
        runner.run()
    from pipelines.cli import explain

    _, message = explain(error.value)
    for part in (account, body["billingInvoices"][-1]["invoiceId"], "balance", "12,34.5.6"):
        assert part in message
    assert runner.snapshot() == before


def _responses(accounts):
    for n in range(accounts):
        account_id = account_id_for(5, n)
        body = json.dumps(
            generate_response(5, n, account_id, invoices=3, items_per_invoice=2)
        ).encode()
        yield AccountResponse(account_id, raw=RawBody(body, "application/json"))


def test_batches_come_out_in_the_order_they_filled(small_batches):
    """The first batch is typed slowest; it still comes first, and the last names every account."""
    now = datetime.now(UTC)
    slow = {"next": True}

    class SlowFirst(BatchParser):
        def build(self, completed_accounts=None):
            if slow.pop("next", False):
                time.sleep(0.3)
            return super().build(completed_accounts)

    filled = parsed_batches(_responses(10), lambda: SlowFirst(now, "1"))
    batches = [b for b in filled if b is not None]  # None: nothing answered yet (none here)
    accounts = [a for batch in batches for a in batch.snapshots.column("account_id").to_pylist()]
    assert accounts == [account_id_for(5, n) for n in range(10)]
    assert batches[-1].completed_accounts == accounts
    assert [b.completed_accounts for b in batches[:-1]] == [None] * (len(batches) - 1)


def test_a_failing_batch_stops_the_batches_after_it(small_batches):
    """The error of an earlier batch surfaces, never a later batch ahead of it."""
    now = datetime.now(UTC)
    built = []

    class FailSecond(BatchParser):
        def build(self, completed_accounts=None):
            built.append(self)
            if len(built) == 2:
                raise ResponseError("account X, invoice Y, field balance: cannot read '1,2.3'")
            return super().build(completed_accounts)

    filled = parsed_batches(_responses(10), lambda: FailSecond(now, "1"))
    batches = (b for b in filled if b is not None)
    assert next(batches).snapshots.num_rows > 0
    with pytest.raises(ResponseError, match="field balance"):
        next(batches)
