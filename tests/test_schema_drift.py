"""Schema drift: the contract in README.md (Guarantees), checked against the real DuckDB schema.

Known fields are typed by parse.py (a value that cannot be read stops the run, nothing loads);
unknown fields land as new text columns without a manual step (so their type never conflicts);
a field that disappears is NULL in new rows and keeps its value in old ones.
"""

import copy
from decimal import Decimal

import pytest

from pipelines.cli import EXIT_FAILED, explain
from tests.helpers_reliability import INVOICES, ITEMS, SNAPSHOTS, assert_consistent, columns


def _types(runner, table):
    return dict(
        runner.rows(
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = 'billing' AND table_name = '{table}'"
        )
    )


def test_new_fields_of_any_json_type_land_as_text_columns(runner, sandbox):
    """Removed to see it fail: the `_api` suffix of a new field colliding with a known column
    (`_Columns.typed`: "n/a" then lands in the DECIMAL `balance`)."""
    runner.run()
    account = sandbox.account_ids[0]
    body = sandbox.response(account)
    invoice = body["billingInvoices"][0]
    body["billingContact"] = {"name": "Ops", "emails": ["ops@example.com"]}  # object at the top
    invoice["discountRate"] = 0.15  # a JSON number: read as an exact Decimal, lands as its text
    invoice["isDisputed"] = True
    invoice["Balance"] = "n/a"  # collides with the known column `balance` once snake_cased
    invoice["invoiceItems"][0]["taxLines"] = [{"rate": "20%"}]
    sandbox.set_response(account, body)
    runner.run()
    invoices, items, snapshots = (
        _types(runner, t)
        for t in ("past_due_invoices", "past_due_invoices__invoice_items", "past_due_snapshots")
    )
    assert snapshots["billing_contact"] == "VARCHAR"
    assert (
        invoices["discount_rate"] == invoices["is_disputed"] == invoices["balance_api"] == "VARCHAR"
    )
    assert invoices["balance"] == "DECIMAL(38,9)"  # the known column is untouched by the collision
    assert items["tax_lines"] == "VARCHAR"
    assert runner.rows(
        f"SELECT billing_contact FROM {SNAPSHOTS} WHERE billing_contact IS NOT NULL"
    ) == [('{"emails": ["ops@example.com"], "name": "Ops"}',)]
    assert runner.rows(
        f"SELECT discount_rate, is_disputed, balance_api, balance FROM {INVOICES} WHERE discount_rate IS NOT NULL"
    ) == [
        (
            "0.15",
            "true",
            "n/a",
            runner.rows(
                f"SELECT balance FROM {INVOICES} WHERE invoice_id = '{invoice['invoiceId']}' ORDER BY _dlt_valid_from LIMIT 1"
            )[0][0],
        )
    ]
    assert runner.rows(f"SELECT tax_lines FROM {ITEMS} WHERE tax_lines IS NOT NULL") == [
        ('[{"rate": "20%"}]',)
    ]
    # rows of the first run (before the fields existed) read NULL there; the extended invoice is a new version
    assert runner.rows(
        f"SELECT count(*) FROM {INVOICES} WHERE discount_rate IS NULL AND _dlt_valid_to IS NOT NULL"
    ) == [(1,)]
    # the same unknown field later changes its JSON type: still text, never a type conflict
    invoice["discountRate"] = {"value": "15%"}
    body["billingContact"] = "ops@example.com"
    sandbox.set_response(account, body)
    runner.run()
    assert runner.rows(
        f"SELECT discount_rate FROM {INVOICES} WHERE _dlt_valid_to IS NULL AND discount_rate IS NOT NULL"
    ) == [('{"value": "15%"}',)]
    assert _types(runner, "past_due_invoices")["discount_rate"] == "VARCHAR"
    assert_consistent(runner)


def test_disappearing_fields_are_null_in_new_rows_and_kept_in_old_ones(runner, sandbox):
    """Removed to see it fail: SCD2 history of the invoices (`_SCD2` as delete-insert: the old
    version is replaced, not retired)."""
    runner.run()
    account = sandbox.account_ids[0]
    body = sandbox.response(account)
    invoice = body["billingInvoices"][0]
    old = runner.rows(
        f"SELECT invoice_uri, pdf_available FROM {INVOICES} WHERE invoice_id = '{invoice['invoiceId']}'"
    )
    del (
        invoice["invoiceUri"],
        invoice["pdfAvailable"],
        invoice["invoiceItems"][0]["unitPrice"],
        body["accountBalance"],
    )
    sandbox.set_response(account, body)
    runner.run()
    versions = runner.rows(
        f"SELECT invoice_uri, pdf_available, _dlt_valid_to IS NULL FROM {INVOICES}"
        f" WHERE invoice_id = '{invoice['invoiceId']}' ORDER BY _dlt_valid_from"
    )
    assert versions == [(*old[0], False), (None, None, True)]
    assert runner.rows(
        f"SELECT t.unit_price FROM {ITEMS} t JOIN {INVOICES} i ON t._dlt_parent_id = i._dlt_id"
        f" WHERE i.invoice_id = '{invoice['invoiceId']}' AND i._dlt_valid_to IS NULL AND t._dlt_list_idx = 0"
    ) == [(None,)]
    assert runner.rows(
        f"SELECT account_balance IS NULL FROM {SNAPSHOTS} WHERE account_id = '{account}' ORDER BY snapshot_at"
    ) == [(False,), (True,)]
    assert "invoice_uri" in columns(runner, "past_due_invoices")  # the column stays
    assert_consistent(runner)


def test_a_json_number_where_an_amount_string_belongs_is_read_exactly(runner, sandbox):
    """Tolerance: DocuSign sends strings, but a JSON number is read as an exact decimal (never a float).

    Removed to see it fail: `parse_float=Decimal` in `shapes.py` (the float is then refused)."""
    account = sandbox.account_ids[0]
    body = sandbox.response(account)
    body["billingInvoices"][0]["balance"] = 1234.567890123
    sandbox.set_response(
        account, body
    )  # json.dumps writes 1234.567890123; the client reads it as Decimal
    runner.run()
    assert runner.rows(
        f"SELECT balance FROM {INVOICES} WHERE invoice_id = '{body['billingInvoices'][0]['invoiceId']}'"
    ) == [(Decimal("1234.567890123"),)]


TYPE_CHANGES = [
    pytest.param(
        "balance",
        {"amount": "1.00", "currency": "USD"},
        "expected a string amount, got dict",
        id="balance-object",
    ),
    pytest.param(
        "balance", "1.234,56", "not an amount like 1,234.56", id="balance-european-format"
    ),
    pytest.param(
        "balance", "USD 12.00", "not an amount like 1,234.56", id="balance-currency-prefix"
    ),
    pytest.param("dueDate", 1719705600, "expected a string date, got int", id="due-date-epoch"),
    pytest.param("pdfAvailable", 1, "not true or false", id="boolean-as-number"),
    pytest.param("invoiceNumber", ["INV-1"], "expected text, got list", id="text-as-list"),
]


@pytest.mark.parametrize("field, value, reason", TYPE_CHANGES)
def test_known_field_changing_type_stops_the_run_with_a_clear_error(
    runner, sandbox, field, value, reason
):
    """Removed to see it fail: the `ResponseError` of `tables._typed` (the value loads as NULL)."""
    runner.run()
    before = runner.snapshot()
    account = sandbox.account_ids[2]
    body = copy.deepcopy(sandbox.response(account))
    invoice = body["billingInvoices"][-1]
    invoice[field] = value
    sandbox.set_response(account, body)
    with pytest.raises(Exception) as error:
        runner.run()
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert message.startswith(
        f"account {account}, billing_invoices_past_due, invoice {invoice['invoiceId']}, field {field}: cannot read "
    )
    assert repr(value)[:20] in message and message.endswith(reason)
    assert runner.snapshot() == before


def test_unknown_numeric_field_is_stored_as_its_number_text():
    from sources.docusign_billing.parse import parse_extra

    assert parse_extra(Decimal("0.15")) == "0.15"
    assert parse_extra(7) == "7"
