"""The real pipeline over real HTTP into a real DuckDB file: types, values and history."""

from decimal import Decimal

import duckdb
import pytest

from pipelines.docusign_billing_pipeline import make_pipeline
from sources.docusign_billing import settings
from sources.docusign_billing.parse import parse_decimal

INVOICES = "billing.past_due_invoices"
ITEMS = "billing.past_due_invoices__invoice_items"
SNAPSHOTS = "billing.past_due_snapshots"


def _types(runner, table):
    return dict(
        runner.rows(
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = 'billing' AND table_name = '{table}'"
        )
    )


def _active(runner, account_id=None):
    where = f" AND account_id = '{account_id}'" if account_id else ""
    return runner.rows(
        f"SELECT account_id, invoice_id, balance FROM {INVOICES} WHERE _dlt_valid_to IS NULL{where} ORDER BY 1, 2"
    )


def test_column_types(runner):
    runner.run()
    money = "DECIMAL(38,9)"
    utc = "TIMESTAMP WITH TIME ZONE"
    invoices = _types(runner, "past_due_invoices")
    assert {
        k: invoices[k] for k in ("amount", "taxable_amount", "non_taxable_amount", "balance")
    } == dict.fromkeys(("amount", "taxable_amount", "non_taxable_amount", "balance"), money)
    assert (
        invoices["due_date"] == utc
        and invoices["_dlt_valid_from"] == utc
        and invoices["_dlt_valid_to"] == utc
    )
    assert invoices["pdf_available"] == "BOOLEAN"
    assert (
        invoices["invoice_number"] == invoices["invoice_uri"] == invoices["invoice_id"] == "VARCHAR"
    )
    items = _types(runner, "past_due_invoices__invoice_items")
    assert items["charge_amount"] == items["unit_price"] == items["quantity"] == money
    assert items["account_id"] == items["invoice_id"] == items["_dlt_parent_id"] == "VARCHAR"
    snapshots = _types(runner, "past_due_snapshots")
    assert snapshots["snapshot_at"] == utc
    assert snapshots["past_due_balance"] == snapshots["account_balance"] == money
    assert snapshots["payment_allowed"] == "BOOLEAN" and snapshots["invoice_count"] == "BIGINT"
    assert snapshots["currency_code"] == "VARCHAR"


def test_values_equal_the_api_exactly(runner, sandbox):
    runner.run()
    expected_invoices, expected_items = {}, {}
    for account_id in sandbox.account_ids:
        for invoice in sandbox.response(account_id)["billingInvoices"]:
            key = (account_id, invoice["invoiceId"])
            expected_invoices[key] = parse_decimal(invoice["balance"])
            for item in invoice["invoiceItems"]:
                expected_items[key + (item["invoiceItemId"],)] = parse_decimal(item["chargeAmount"])
    loaded = {(a, i): b for a, i, b in _active(runner)}
    assert loaded == expected_invoices and all(isinstance(v, Decimal) for v in loaded.values())
    items = dict(
        ((a, i, n), c)
        for a, i, n, c in runner.rows(
            f"SELECT account_id, invoice_id, invoice_item_id, charge_amount FROM {ITEMS}"
        )
    )
    assert items == expected_items


def test_items_join_their_invoice_by_plain_keys_and_linkage(runner):
    runner.run()
    orphans = runner.rows(
        f"SELECT count(*) FROM {ITEMS} t LEFT JOIN {INVOICES} i"
        " ON i.account_id = t.account_id AND i.invoice_id = t.invoice_id AND i._dlt_id = t._dlt_parent_id"
        " WHERE i._dlt_id IS NULL"
    )
    assert orphans == [(0,)]
    assert runner.rows(f"SELECT count(*) FROM {ITEMS}")[0][0] > 0


def test_snapshots_one_row_per_account_and_run(runner, sandbox):
    runner.run()
    runner.run()
    rows = runner.rows(
        f"SELECT snapshot_at, count(*), count(DISTINCT account_id) FROM {SNAPSHOTS} GROUP BY 1 ORDER BY 1"
    )
    assert len(rows) == 2
    assert all(count == distinct == len(sandbox.account_ids) for _, count, distinct in rows)
    account = sandbox.account_ids[0]
    body = sandbox.response(account)
    assert runner.rows(
        f"SELECT past_due_balance, invoice_count, currency_code FROM {SNAPSHOTS} WHERE account_id = '{account}' LIMIT 1"
    ) == [
        (parse_decimal(body["pastDueBalance"]), len(body["billingInvoices"]), body["currencyCode"])
    ]


def test_snapshot_time_is_the_history_boundary(runner):
    runner.run()
    assert runner.rows(f"SELECT DISTINCT _dlt_valid_from FROM {INVOICES}") == runner.rows(
        f"SELECT DISTINCT snapshot_at FROM {SNAPSHOTS}"
    )


def test_unchanged_rerun_adds_nothing_but_a_snapshot(runner):
    runner.run()
    before = runner.snapshot()
    runner.run()
    after = runner.snapshot()
    assert after["past_due_invoices"] == before["past_due_invoices"]
    assert after["past_due_invoices__invoice_items"] == before["past_due_invoices__invoice_items"]
    assert len(after["past_due_snapshots"]) == 2 * len(before["past_due_snapshots"])


def test_paid_invoice_is_retired(runner, sandbox):
    runner.run()
    account = sandbox.account_ids[0]
    paid = sandbox.response(account)["billingInvoices"][0]["invoiceId"]
    sandbox.pay_invoice(account, paid)
    runner.run()
    retired = runner.rows(
        f"SELECT _dlt_valid_to IS NOT NULL FROM {INVOICES} WHERE invoice_id = '{paid}'"
    )
    assert retired == [(True,)]
    assert paid not in {i for _, i, _ in _active(runner, account)}
    assert len(_active(runner, account)) == len(sandbox.response(account)["billingInvoices"])


def test_balance_change_is_a_new_version_with_its_items(runner, sandbox):
    runner.run()
    account = sandbox.account_ids[1]
    invoice = sandbox.response(account)["billingInvoices"][0]
    sandbox.set_balance(account, invoice["invoiceId"], "1.23")
    runner.run()
    versions = runner.rows(
        f"SELECT balance, _dlt_valid_to IS NULL, _dlt_id FROM {INVOICES}"
        f" WHERE account_id = '{account}' AND invoice_id = '{invoice['invoiceId']}' ORDER BY _dlt_valid_from"
    )
    assert [(b, active) for b, active, _ in versions] == [
        (parse_decimal(invoice["balance"]), False),
        (Decimal("1.23"), True),
    ]
    for _, _, version in versions:
        items = runner.rows(f"SELECT count(*) FROM {ITEMS} WHERE _dlt_parent_id = '{version}'")[0][
            0
        ]
        assert items == len(invoice["invoiceItems"])


def test_account_not_in_the_run_is_untouched(runner, sandbox):
    runner.run()
    first, second = sandbox.account_ids[:2]
    untouched = _active(runner, first)
    for invoice in sandbox.response(first)["billingInvoices"]:
        sandbox.pay_invoice(first, invoice["invoiceId"])
    runner.run(account_ids=[second])
    assert _active(runner, first) == untouched
    runner.run(account_ids=[first])
    assert _active(runner, first) == []
    assert runner.rows(
        f"SELECT count(*) FROM {INVOICES} WHERE account_id = '{first}' AND _dlt_valid_to IS NULL"
    ) == [(0,)]


def test_account_with_no_invoices_left_retires_them_all(runner, sandbox):
    runner.run()
    account = sandbox.account_ids[2]
    for invoice in sandbox.response(account)["billingInvoices"]:
        sandbox.pay_invoice(account, invoice["invoiceId"])
    runner.run()
    assert _active(runner, account) == []
    assert all(_active(runner, other) for other in sandbox.account_ids[:2])


def test_parse_error_loads_nothing_of_the_run(runner, sandbox):
    runner.run()
    before = runner.snapshot()
    account = sandbox.account_ids[1]
    body = sandbox.response(account)
    body["billingInvoices"][0]["dueDate"] = "31/02/2024"
    sandbox.set_response(account, body)
    with pytest.raises(Exception) as error:
        runner.run()
    from pipelines.cli import explain

    _, message = explain(error.value)
    for part in (account, body["billingInvoices"][0]["invoiceId"], "dueDate", "31/02/2024"):
        assert part in message
    assert runner.snapshot() == before
    sandbox.reset()
    runner.run()
    assert len(runner.snapshot()["past_due_snapshots"]) == 2 * len(before["past_due_snapshots"])


def test_new_api_fields_land_as_new_columns(runner, sandbox):
    runner.run()
    account = sandbox.account_ids[0]
    body = sandbox.response(account)
    body["billingGroup"] = "EMEA"
    body["billingInvoices"][0]["purchaseOrder"] = "PO-77"
    body["billingInvoices"][0]["invoiceItems"][0]["taxCode"] = "VAT20"
    sandbox.set_response(account, body)
    runner.run()
    assert runner.rows(
        f"SELECT billing_group FROM {SNAPSHOTS} WHERE billing_group IS NOT NULL"
    ) == [("EMEA",)]
    assert runner.rows(
        f"SELECT purchase_order FROM {INVOICES} WHERE purchase_order IS NOT NULL"
    ) == [("PO-77",)]
    assert runner.rows(f"SELECT tax_code FROM {ITEMS} WHERE tax_code IS NOT NULL") == [("VAT20",)]


def test_reruns_store_no_new_schema_version(runner, sandbox):
    runner.run()
    runner.run()
    runner.run(account_ids=list(reversed(sandbox.account_ids)))
    assert runner.rows("SELECT count(*) FROM billing._dlt_version") == [(1,)]
    assert runner.rows("SELECT count(*) FROM billing._dlt_loads") == [(3,)]


def _rendered(memory_limit):
    """DuckDB's own rendering of a memory limit, e.g. 128MB -> '122.0 MiB'."""
    with duckdb.connect() as connection:
        connection.execute(f"SET memory_limit = '{memory_limit}'")
        return connection.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]


def test_duckdb_gets_the_product_settings_under_the_users(tmp_path, monkeypatch):
    """A bounded buffer and no insertion-order buffering by default; the user's
    `[destination.duckdb.credentials] global_config` overrides them key by key."""

    def seen():
        pipeline = make_pipeline(
            pipelines_dir=str(tmp_path / "pipelines"), duckdb_file=str(tmp_path / "x.duckdb")
        )
        with pipeline.sql_client() as client:
            sql = "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
            return tuple((client.execute_sql(sql) or [()])[0])

    assert seen() == (_rendered(settings.DUCKDB_GLOBAL_CONFIG["memory_limit"]), False)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "1GB"}')
    assert seen() == (_rendered("1GB"), False)


def test_runs_append_only_the_items_of_versions_new_to_the_destination(runner, sandbox):
    """Item rows depend only on their invoice version: an unchanged rerun sends none, a changed
    invoice sends its items once, and a version that comes back finds its items still there."""
    runner.run()
    account = sandbox.account_ids[1]
    invoice = next(i for i in sandbox.response(account)["billingInvoices"] if i["invoiceItems"])
    runner.run()
    sandbox.set_balance(account, invoice["invoiceId"], "1.23")
    runner.run()
    per_load = [
        n
        for (n,) in runner.rows(
            f"SELECT count(*) FROM {ITEMS} GROUP BY _dlt_load_id ORDER BY _dlt_load_id"
        )
    ]
    assert per_load[1:] == [len(invoice["invoiceItems"])]  # nothing from the unchanged rerun
    sandbox.set_balance(account, invoice["invoiceId"], invoice["balance"])
    runner.run()
    assert runner.rows(f"SELECT count(*), count(DISTINCT _dlt_id) FROM {ITEMS}") == [
        (sum(per_load), sum(per_load))
    ]
    back = runner.rows(
        f"SELECT _dlt_id FROM {INVOICES} WHERE invoice_id = '{invoice['invoiceId']}' AND _dlt_valid_to IS NULL"
    )
    first = f"SELECT _dlt_id FROM {INVOICES} WHERE invoice_id = '{invoice['invoiceId']}' ORDER BY _dlt_valid_from LIMIT 1"
    assert back == runner.rows(first)  # the first version, active again
    items_of_active = runner.rows(
        f"SELECT count(*) FROM {ITEMS} WHERE _dlt_parent_id = '{back[0][0]}'"
    )
    assert items_of_active == [(len(invoice["invoiceItems"]),)]
