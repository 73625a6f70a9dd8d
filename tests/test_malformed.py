"""Malformed responses: one clear error naming account (invoice, item, field, value) and nothing loaded.

All cases share one loaded dataset (module fixture, for speed): each case serves the bad body for
one account (the others stay good) and checks the error and that the tables are exactly as
before; the last test then checks that a good run after all those failures loads normally.
Documented tolerances load.
"""

import copy
import json

import pytest

from pipelines.cli import EXIT_FAILED, explain
from tests.helpers_reliability import INVOICES, ITEMS, SNAPSHOTS, assert_consistent, loaded_runner

ACCOUNT = 1  # index of the account that goes bad


def _first_invoice(body):
    return body["billingInvoices"][0]


def _with(change):
    def make(body):
        body = copy.deepcopy(body)
        change(body)
        return body

    return make


def _set_invoice(field, value):
    return _with(lambda b: _first_invoice(b).__setitem__(field, value))


def _set_item(field, value):
    return _with(lambda b: _first_invoice(b)["invoiceItems"][0].__setitem__(field, value))


def _duplicate_differing(body):
    twin = copy.deepcopy(_first_invoice(body))
    twin["balance"] = "0.01"
    body["billingInvoices"].append(twin)


def _item_name_as(text, encoding="utf-8"):
    """The body as bytes with the first item's `chargeName` = `text` in `encoding` (raw bytes:
    json.dumps would escape them)."""

    def make(body):
        body = copy.deepcopy(body)
        _first_invoice(body)["invoiceItems"][0]["chargeName"] = "@@NAME@@"
        return json.dumps(body).encode().replace(b"@@NAME@@", text.encode(encoding))

    return make


# (id, body -> served body (or raw text), content type, parts the message must contain)
CASES = [
    (
        # an empty object would otherwise retire every current invoice of the account
        "empty-object",
        lambda b: " { }\n",
        "application/json",
        ["billing_invoices_past_due: an empty JSON object", "retire every current invoice"],
    ),
    (
        "truncated-json",
        lambda b: json.dumps(b)[: len(json.dumps(b)) // 2],
        "application/json",
        ["not valid JSON", "application/json"],
    ),
    (
        "html-error-page-with-200",
        lambda b: "<html><body><h1>Service Unavailable</h1>Please try later</body></html>",
        "text/html",
        ["not valid JSON", "text/html"],
    ),
    ("empty-body", lambda b: "", "application/json", ["not valid JSON"]),
    (
        "array-instead-of-object",
        lambda b: [b],
        "application/json",
        ["expected a JSON object, got list"],
    ),
    (
        "billingInvoices-as-object",
        _with(lambda b: b.__setitem__("billingInvoices", _first_invoice(b))),
        "application/json",
        ["billingInvoices must be a list of objects, got dict"],
    ),
    (
        "invoice-not-an-object",
        _with(lambda b: b["billingInvoices"].append("INV-1")),
        "application/json",
        ["billingInvoices must be a list of objects"],
    ),
    (
        "invoiceItems-as-string",
        _set_invoice("invoiceItems", "none"),
        "application/json",
        ["invoiceItems must be a list of objects, got str", "{invoice}"],
    ),
    (
        "duplicate-invoice-differing",
        _with(_duplicate_differing),
        "application/json",
        ["{invoice}", "invoiceId appears twice with different content"],
    ),
    (
        "missing-invoice-id",
        _with(lambda b: _first_invoice(b).pop("invoiceId")),
        "application/json",
        ["invoice #0", "invoiceId is missing"],
    ),
    (
        "amount-12,34.5.6",
        _set_invoice("amount", "12,34.5.6"),
        "application/json",
        ["{invoice}", "field amount", "'12,34.5.6'", "not an amount"],
    ),
    (
        "item-amount-12,34.5.6",
        _set_item("chargeAmount", "12,34.5.6"),
        "application/json",
        ["{invoice}", "item {item}", "field chargeAmount", "'12,34.5.6'"],
    ),
    (
        "date-31/02/2024",
        _set_invoice("dueDate", "31/02/2024"),
        "application/json",
        ["{invoice}", "field dueDate", "'31/02/2024'", "not an ISO-8601"],
    ),
    (
        "date-2024-02-31",
        _set_invoice("dueDate", "2024-02-31"),
        "application/json",
        ["{invoice}", "field dueDate", "'2024-02-31'", "day is out of range"],
    ),
    (
        "boolean-yes",
        _set_invoice("pdfAvailable", "yes"),
        "application/json",
        ["{invoice}", "field pdfAvailable", "'yes'"],
    ),
    (  # latin-1 bytes in a body that declares no charset (JSON: UTF-8)
        "latin-1-byte-in-utf-8",
        _item_name_as("Gebühr", "latin-1"),
        "application/json",
        [
            "billing_invoices_past_due",
            "{invoice}",
            "item {item}",
            "field chargeName",
            "Geb\\xfchr",
            "byte 0xFC is not valid",
        ],
    ),
    (
        "lone-surrogate-escape",
        _item_name_as("\\ud800 fee"),
        "application/json",
        ["billing_invoices_past_due", "{invoice}", "item {item}", "field chargeName", "U+D800"],
    ),
    (
        # DuckDB would store it, PostgreSQL refuses it inside its loader: refused for every destination
        "nul-character",
        _item_name_as("fee\\u0000"),
        "application/json",
        ["billing_invoices_past_due", "{invoice}", "item {item}", "field chargeName", "NUL"],
    ),
    (
        "lone-surrogate-in-a-new-field",
        _with(lambda b: b.__setitem__("note", "x\udfff")),
        "application/json",
        ["billing_invoices_past_due", "field note", "U+DFFF"],
    ),
    (
        "top-level-amount",
        _with(lambda b: b.__setitem__("pastDueBalance", "1.2.3")),
        "application/json",
        ["field pastDueBalance", "'1.2.3'"],
    ),
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    with loaded_runner(tmp_path_factory.mktemp("malformed")) as runner:
        yield runner, runner.snapshot()


@pytest.mark.parametrize(
    "make, content_type, parts", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_response_is_a_clear_error_and_loads_nothing(loaded, make, content_type, parts):
    """Removed to see it fail: the `ResponseError` of `tables._typed` (an unreadable amount or
    date then loads as NULL: no error)."""
    runner, before = loaded
    sandbox = runner.sandbox
    sandbox.reset()
    account = sandbox.account_ids[ACCOUNT]
    body = sandbox.response(account)
    invoice = _first_invoice(body)
    sandbox.set_response(account, make(body), content_type=content_type)
    with pytest.raises(Exception) as error:
        runner.run()
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert message.startswith(f"account {account}"), message
    for part in parts:
        part = part.format(
            invoice=f"invoice {invoice['invoiceId']}",
            item=invoice["invoiceItems"][0]["invoiceItemId"],
        )
        assert part in message, message
    assert "\n" not in message
    assert runner.snapshot() == before  # nothing of the run, not even the good accounts' rows
    sandbox.reset()


def test_text_is_decoded_by_the_declared_charset(runner, sandbox):
    """Removed to see it fail: the declared charset in `text.as_utf8` (UTF-8 assumed: the latin-1
    bytes are refused)."""
    account = sandbox.account_ids[ACCOUNT]
    body = sandbox.response(account)
    item_id = _first_invoice(body)["invoiceItems"][0]["invoiceItemId"]
    latin1 = _item_name_as("Gebühr für Umschläge", "latin-1")(body)
    sandbox.set_response(account, latin1, content_type="application/json; charset=ISO-8859-1")
    runner.run()
    assert runner.rows(f"SELECT charge_name FROM {ITEMS} WHERE invoice_item_id = '{item_id}'") == [
        ("Gebühr für Umschläge",)
    ]
    assert_consistent(runner)


def test_good_run_after_all_those_failures_loads_normally(loaded):
    runner, before = loaded
    runner.sandbox.reset()
    runner.run()
    assert_consistent(runner)
    after = runner.snapshot()
    assert (
        after["past_due_invoices"] == before["past_due_invoices"]
    )  # unchanged data: no new versions
    assert len(after["past_due_snapshots"]) == 2 * len(before["past_due_snapshots"])


def test_null_and_missing_invoice_items_are_tolerated_as_no_items(runner, sandbox):
    """Removed to see it fail: the `fill_null` of the item lists' lengths in
    `BatchParser._flatten_arrow` (these clean bodies take the Arrow path; the record path's own
    tolerance, `_records` answering [] for null, is `test_parse.py::test_item_list_missing_null_or_empty`'s)."""
    account = sandbox.account_ids[ACCOUNT]
    body = sandbox.response(account)
    body["billingInvoices"][0]["invoiceItems"] = None
    body["billingInvoices"][1].pop("invoiceItems")
    sandbox.set_response(account, body)
    runner.run()
    assert_consistent(runner)
    for invoice in body["billingInvoices"][:2]:
        assert runner.rows(
            f"SELECT count(*) FROM {INVOICES} WHERE invoice_id = '{invoice['invoiceId']}'"
        ) == [(1,)]
        assert runner.rows(
            f"SELECT count(*) FROM {ITEMS} WHERE invoice_id = '{invoice['invoiceId']}'"
        ) == [(0,)]
    expected_items = sum(
        len(i.get("invoiceItems") or [])
        for a in sandbox.account_ids
        for i in (body if a == account else sandbox.response(a))["billingInvoices"]
    )
    assert runner.rows(f"SELECT count(*) FROM {ITEMS}") == [(expected_items,)]


def test_null_billing_invoices_is_an_account_with_nothing_past_due(runner, sandbox):
    """Removed to see it fail: the count 0 of an account without records in
    `BatchParser._flatten_arrow` (`counts[row]`: the batch fails)."""
    runner.run()
    account = sandbox.account_ids[ACCOUNT]
    sandbox.set_response(
        account, {**sandbox.response(account), "billingInvoices": None, "pastDueBalance": "0.00"}
    )
    runner.run()
    assert runner.rows(
        f"SELECT count(*) FROM {INVOICES} WHERE account_id = '{account}' AND _dlt_valid_to IS NULL"
    ) == [(0,)]
    assert runner.rows(
        f"SELECT invoice_count FROM {SNAPSHOTS} WHERE account_id = '{account}' ORDER BY snapshot_at DESC LIMIT 1"
    ) == [(0,)]
    assert_consistent(runner)


def test_identical_duplicate_invoice_is_kept_once(runner, sandbox):
    """Removed to see it fail: `_first_of_each_record` keeping every row (the repeat is stored twice)."""
    account = sandbox.account_ids[ACCOUNT]
    body = sandbox.response(account)
    body["billingInvoices"].append(copy.deepcopy(body["billingInvoices"][0]))
    sandbox.set_response(account, body)
    runner.run()
    duplicated = body["billingInvoices"][0]
    assert runner.rows(
        f"SELECT count(*) FROM {INVOICES} WHERE invoice_id = '{duplicated['invoiceId']}'"
    ) == [(1,)]
    assert runner.rows(
        f"SELECT count(*) FROM {ITEMS} WHERE invoice_id = '{duplicated['invoiceId']}'"
    ) == [(len(duplicated["invoiceItems"]),)]
    assert runner.rows(f"SELECT invoice_count FROM {SNAPSHOTS} WHERE account_id = '{account}'") == [
        (len(body["billingInvoices"]) - 1,)
    ]
    assert_consistent(runner)
