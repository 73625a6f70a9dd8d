"""`tables.py` without a pipeline: the Arrow tables a batch builds (names, types and nullability,
which become dlt's column hints and the destination's DDL), the item rows' dlt columns and the
filters on them, the error lines, and a batch's byte size. Milliseconds each:
`scripts/mutation.sh tables` runs them per mutant with test_parse.py and test_resources.py.

Expected values are written out, not computed with the code under test.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from sources.docusign_billing.bodies import AccountResponse, read_known
from sources.docusign_billing.client import RawBody
from sources.docusign_billing.errors import ApiError, ResponseError
from sources.docusign_billing.resources import PAST_DUE, RESOURCES
from sources.docusign_billing.tables import BatchParser

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TEXT, MONEY, UTC_TS = "string", "decimal128(38, 9)", "timestamp[us, tz=UTC]"
KEY, VALUE = False, True  # nullable

PAST_DUE_INVOICES = [
    ("account_id", TEXT, KEY),
    ("invoice_id", TEXT, KEY),
    ("invoice_number", TEXT, VALUE),
    ("invoice_uri", TEXT, VALUE),
    ("amount", MONEY, VALUE),
    ("taxable_amount", MONEY, VALUE),
    ("non_taxable_amount", MONEY, VALUE),
    ("balance", MONEY, VALUE),
    ("due_date", UTC_TS, VALUE),
    ("pdf_available", "bool", VALUE),
    ("_dlt_id", TEXT, KEY),
]
PAST_DUE_ITEMS = [
    ("account_id", TEXT, KEY),
    ("invoice_id", TEXT, KEY),
    ("invoice_item_id", TEXT, VALUE),
    ("charge_name", TEXT, VALUE),
    ("charge_amount", MONEY, VALUE),
    ("quantity", MONEY, VALUE),
    ("unit_price", MONEY, VALUE),
    ("_dlt_id", TEXT, KEY),
    ("_dlt_parent_id", TEXT, KEY),
    ("_dlt_root_id", TEXT, KEY),
    ("_dlt_list_idx", "int64", KEY),
    ("_dlt_load_id", TEXT, VALUE),
]
PAST_DUE_SNAPSHOTS = [
    ("account_id", TEXT, KEY),
    ("account_name", TEXT, VALUE),
    ("snapshot_at", UTC_TS, KEY),
    ("currency_code", TEXT, VALUE),
    ("past_due_balance", MONEY, VALUE),
    ("account_balance", MONEY, VALUE),
    ("payment_allowed", "bool", VALUE),
    ("invoice_count", "int64", KEY),
]
ACCOUNT_ERRORS = [
    ("account_id", TEXT, KEY),
    ("account_name", TEXT, VALUE),
    ("snapshot_at", UTC_TS, KEY),
    ("http_status", "int64", VALUE),
    ("error_code", TEXT, VALUE),
    ("message", TEXT, KEY),
    ("resource", TEXT, KEY),  # part of the table's key
]
CHARGES = [
    ("account_id", TEXT, KEY),
    ("charge_name", TEXT, KEY),
    ("snapshot_at", UTC_TS, KEY),
    ("charge_type", TEXT, VALUE),
    ("charge_unit_of_measure", TEXT, VALUE),
    ("included_quantity", MONEY, VALUE),
    ("used_quantity", MONEY, VALUE),
    ("allowed_quantity", TEXT, VALUE),
    ("incremental_quantity", TEXT, VALUE),
    ("unit_price", MONEY, VALUE),
    ("blocked", "bool", VALUE),
    ("first_effective_date", UTC_TS, VALUE),
    ("last_effective_date", UTC_TS, VALUE),
    ("discounts", TEXT, VALUE),
    ("prices", TEXT, VALUE),
    ("_dlt_id", TEXT, KEY),
]


def _columns(table: pa.Table | None) -> list[tuple[str, str, bool]]:
    assert table is not None
    return [(f.name, str(f.type), f.nullable) for f in table.schema]


def _response(account_id: str, body: dict, as_bytes: bool) -> AccountResponse:
    if as_bytes:  # read by Arrow where it can (bodies.py), as the pipeline does
        return AccountResponse(
            account_id, raw=RawBody(json.dumps(body).encode(), "application/json")
        )
    return AccountResponse(account_id, body)


def _build(bodies: dict[str, dict], as_bytes=False, resource=PAST_DUE, load_id="1.5", loaded=None):
    parser = BatchParser(NOW, load_id, loaded, resource)
    for account_id, body in bodies.items():
        parser.add(_response(account_id, body, as_bytes))
    return parser.build(list(bodies))


def _item(item_id: str | None, price: str = "5.00") -> dict:
    item = {"chargeName": "Seats", "chargeAmount": price, "quantity": "1", "unitPrice": price}
    return item if item_id is None else {"invoiceItemId": item_id, **item}


def _invoice(invoice_id: str, *items: dict, **fields) -> dict:
    return {"invoiceId": invoice_id, "balance": "10.00", "invoiceItems": list(items), **fields}


_DLT_LINKAGE = ("_dlt_id", "_dlt_parent_id", "_dlt_root_id", "_dlt_list_idx", "_dlt_load_id")
"""The columns that link an item row to its record version and run, as dlt names them."""


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
@pytest.mark.parametrize("with_invoices", [True, False], ids=["invoices", "none"])
def test_every_table_has_its_pinned_columns_types_and_nullability(as_bytes, with_invoices):
    """dlt takes each column's hints from these fields (a key column NOT NULL, `_dlt_load_id`
    nullable); a batch without a single invoice has the same columns, not Arrow's null type.

    Removed to see it fail: the declared type of any leading or dlt column (`pa.array(..., None)`
    infers `null` for an empty batch), or its `nullable` flag."""
    invoices = [_invoice("inv-1", _item("it-1"))] if with_invoices else []
    batch = _build({"acc-1": {"billingInvoices": invoices}}, as_bytes)
    assert _columns(batch.records) == PAST_DUE_INVOICES
    assert _columns(batch.items) == PAST_DUE_ITEMS
    assert _columns(batch.summary) == PAST_DUE_SNAPSHOTS
    assert _columns(batch.errors) == ACCOUNT_ERRORS
    assert batch.records.num_rows == batch.items.num_rows == int(with_invoices)
    assert batch.resource == "past_due" and batch.completed_accounts == ["acc-1"]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
def test_a_resource_without_items_on_both_paths(as_bytes):
    """Charges: one row per account, charge and run, no item table; the same on both paths
    (the Arrow one reads these bodies: no JSON structure in them).

    Removed to see it fail: the no-items branch of `_flatten_arrow` (`item_starts` of its
    records), the `snapshot_at` column of a per-run resource."""
    body = {
        "billingChargeItems": [
            {"chargeName": "seats", "unitPrice": "1.50", "blocked": "false"},
            {"chargeName": "envelopes", "unitPrice": "0.10"},
        ]
    }
    charges = RESOURCES["billing_charges"]
    bodies: dict[str, dict] = {"a1": body, "a2": {"billingChargeItems": []}}
    responses = [_response(a, b, as_bytes=True) for a, b in bodies.items()]
    assert read_known(responses, charges) is not None  # the Arrow path takes them
    batch = _build(bodies, as_bytes, charges)
    assert batch.items is None and batch.summary is None
    assert _columns(batch.records) == CHARGES
    rows = batch.records.select(
        ["account_id", "charge_name", "snapshot_at", "unit_price", "blocked"]
    )
    assert rows.to_pylist() == [
        {
            "account_id": "a1",
            "charge_name": "seats",
            "snapshot_at": NOW,
            "unit_price": Decimal("1.5"),
            "blocked": False,
        },
        {
            "account_id": "a1",
            "charge_name": "envelopes",
            "snapshot_at": NOW,
            "unit_price": Decimal("0.1"),
            "blocked": None,
        },
    ]
    other = _build(bodies, not as_bytes, charges)
    assert other.records.equals(batch.records)
    with_prices = {"billingChargeItems": [{"chargeName": "seats", "prices": [{"tier": 1}]}]}
    assert _build({"a1": with_prices}, as_bytes, charges).records["prices"].to_pylist() == [
        '[{"tier": 1}]'
    ]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
def test_item_rows_carry_their_version_position_and_the_load_id(as_bytes):
    """Each item: `_dlt_id` = the invoice version and its place, parent and root = the invoice
    version, `_dlt_list_idx` its place, `_dlt_load_id` the run's load id; an invoice repeated
    identically is one row with its items once; items of versions already loaded are left out.

    Removed to see it fail: `_dlt_load_id`'s value; the identical-repeat filter on items; the
    loaded-versions filter, or either alone when both apply."""
    first = _invoice("inv-1", _item("a"), _item("b", "7.00"))
    second = _invoice("inv-2", _item("c"))
    loaded = _build({"acc-1": {"billingInvoices": [first]}})
    (loaded_version,) = loaded.records.column("_dlt_id").to_pylist()
    batch = _build(
        {"acc-1": {"billingInvoices": [first, second, second]}},
        as_bytes,
        load_id="2.5",
        loaded=pa.array([loaded_version]),
    )
    versions = dict(
        zip(batch.records["invoice_id"].to_pylist(), batch.records["_dlt_id"].to_pylist())
    )
    assert list(versions) == ["inv-1", "inv-2"] and versions["inv-1"] == loaded_version
    items = batch.items.select(["invoice_item_id", *_DLT_LINKAGE])
    version = versions["inv-2"]
    assert items.to_pylist() == [
        {
            "invoice_item_id": "c",
            "_dlt_id": f"{version}-0",
            "_dlt_parent_id": version,
            "_dlt_root_id": version,
            "_dlt_list_idx": 0,
            "_dlt_load_id": "2.5",
        }
    ]
    everything = _build({"acc-1": {"billingInvoices": [first, second]}}, as_bytes, load_id="3.5")
    assert everything.items["_dlt_list_idx"].to_pylist() == [0, 1, 0]
    assert everything.items["_dlt_id"].to_pylist() == [
        f"{loaded_version}-0",
        f"{loaded_version}-1",
        f"{version}-0",
    ]
    assert set(everything.items["_dlt_load_id"].to_pylist()) == {"3.5"}


def test_values_typed_one_by_one_keep_their_rules_type():
    """A column that leaves the fast path (a JSON number as an amount, an all-null column) is
    typed value by value into the same Arrow type, not the one Arrow would infer.

    Removed to see it fail: `type=ARROW_TYPES[rule]` of the per-value path (decimal128(3, 2) and
    null)."""
    batch = _build(
        {"acc-1": {"billingInvoices": [_invoice("inv-1", balance=Decimal("1.25"), dueDate=None)]}}
    )
    assert _columns(batch.records) == PAST_DUE_INVOICES
    assert batch.records["balance"].to_pylist() == [Decimal("1.25")]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
def test_error_lines_name_what_they_must(as_bytes):
    """On both paths (a bad value read by Arrow is named from its Arrow columns).

    Removed to see it fail: the 80-character cut of a shown value (`<=` for `<` too); the
    type named in a wrong list's error; an item without id named by its place; the duplicate
    line's wording."""
    long = "9" * 100
    with pytest.raises(ResponseError) as error:
        _build({"acc-1": {"billingInvoices": [_invoice("inv-1", balance=long)]}}, as_bytes)
    shown = repr(long)[:80] + "..."
    assert str(error.value).startswith(
        f"account acc-1, billing_invoices_past_due, invoice inv-1, field balance: cannot read {shown}: "
    )
    exactly = "8" * 78  # its repr is 80 characters: shown whole
    with pytest.raises(ResponseError, match=f"cannot read '{exactly}': "):
        _build({"acc-1": {"billingInvoices": [_invoice("inv-1", balance=exactly)]}}, as_bytes)
    with pytest.raises(ResponseError) as error:
        _build({"acc-1": {"billingInvoices": "inv-1"}}, as_bytes)
    assert str(error.value) == "account acc-1: billingInvoices must be a list of objects, got str"
    with pytest.raises(ResponseError) as error:
        _build(
            {"acc-1": {"billingInvoices": [_invoice("inv-1", _item("a"), _item(None, "x"))]}},
            as_bytes,
        )
    assert str(error.value).startswith(
        "account acc-1, billing_invoices_past_due, invoice inv-1, item #1, field chargeAmount: cannot read 'x'"
    )
    with pytest.raises(ResponseError) as error:
        _build(
            {"acc-1": {"billingInvoices": [_invoice("inv-1"), _invoice("inv-1", balance="1")]}},
            as_bytes,
        )
    assert (
        str(error.value)
        == "account acc-1, billing_invoices_past_due, invoice inv-1: invoiceId appears twice with different content"
    )
    with pytest.raises(ResponseError) as error:
        _build({"acc-1": {"billingInvoices": [_invoice("inv-1", invoiceItems="it-1")]}}, as_bytes)
    assert str(error.value) == (
        "account acc-1, billing_invoices_past_due, invoice inv-1: invoiceItems must be a list of objects, got str"
    )
    plan = RESOURCES["billing_plan"]
    with pytest.raises(ResponseError) as error:
        _build({"acc-1": {plan.records.list_field: [{}]}}, resource=plan)
    assert (
        str(error.value) == f"account acc-1: {plan.records.list_field} must be an object, got list"
    )


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
def test_an_invoice_without_id_is_an_error_on_both_paths(as_bytes):
    """Removed to see it fail: the null-id check of `_flatten_arrow` (`and` for `or`)."""
    with pytest.raises(ResponseError) as error:
        _build({"acc-1": {"billingInvoices": [_invoice("inv-1"), {"balance": "1.00"}]}}, as_bytes)
    assert (
        str(error.value)
        == "account acc-1, billing_invoices_past_due, invoice #1: invoiceId is missing"
    )


def test_text_that_is_not_unicode_is_an_error_naming_account_and_endpoint():
    """A body whose bytes `text.is_clean` could not vouch for (`text_checked` False) has every
    string checked. Removed to see it fail: the `check_text` call of `build`."""
    parser = BatchParser(NOW, "1.5")
    parser.add(
        AccountResponse("acc-1", {"billingInvoices": [_invoice("inv-\ud800")]}, text_checked=False)
    )
    with pytest.raises(ResponseError) as error:
        parser.build()
    assert str(error.value).startswith(f"account acc-1, {PAST_DUE.endpoint}")
    checked = BatchParser(NOW, "1.5")
    checked.add(
        AccountResponse("acc-1", {"billingInvoices": [_invoice("inv-1")]}, text_checked=False)
    )
    assert checked.build().records["invoice_id"].to_pylist() == ["inv-1"]


def test_a_body_that_is_not_json_is_an_error_naming_account_and_endpoint():
    """Removed to see it fail: the place handed to `json_body` in `build` (`build` 12: the line
    then names the account only, not the endpoint)."""
    parser = BatchParser(NOW, "1.5")
    parser.add(AccountResponse("acc-1", raw=RawBody(b'{"billingInvoices": [', "application/json")))
    with pytest.raises(ResponseError) as error:
        parser.build()
    assert str(error.value).startswith(
        f"account acc-1, {PAST_DUE.endpoint}: the response is not valid JSON"
    ), error.value


def test_a_batch_counts_the_bytes_it_received():
    """What fills a batch (`settings.BATCH_BYTES`). Removed to see it fail: `+=` in `add`."""
    parser = BatchParser(NOW, "1.5")
    assert parser.size == 0
    parser.add(_response("a1", {"billingInvoices": []}, as_bytes=True))
    parser.add(_response("a2", {"pastDueBalance": "1.00"}, as_bytes=True))
    parser.add(AccountResponse("a3", {"billingInvoices": []}))  # decoded already: no bytes
    assert parser.size == len(b'{"billingInvoices": []}') + len(b'{"pastDueBalance": "1.00"}')


def test_a_failed_account_is_one_row_of_account_errors():
    """Removed to see it fail: any value of `add_failure`'s row."""
    parser = BatchParser(NOW, "1.5")
    parser.add_failure(
        "acc-2", "Acme", ApiError("account acc-2: DocuSign answered HTTP 404", "acc-2", 404, "X")
    )
    parser.add_failure("acc-3", None, ApiError("account acc-3: not reached", "acc-3"))
    batch = parser.build(["acc-1"])
    assert batch.errors.to_pylist() == [
        {
            "account_id": "acc-2",
            "account_name": "Acme",
            "snapshot_at": NOW,
            "http_status": 404,
            "error_code": "X",
            "message": "account acc-2: DocuSign answered HTTP 404",
            "resource": "past_due",
        },
        {
            "account_id": "acc-3",
            "account_name": None,
            "snapshot_at": NOW,
            "http_status": None,
            "error_code": None,
            "message": "account acc-3: not reached",
            "resource": "past_due",
        },
    ]
    assert batch.records.num_rows == 0 and batch.completed_accounts == ["acc-1"]


def test_the_plan_keeps_no_sensitive_new_field_at_any_level():
    """The plan is `private`: a new field named like card, bank or personal details is dropped,
    and such keys inside a new JSON field too; the new fields after it are kept.

    Removed to see it fail: `parse_private_extra` for a private resource's new fields; `break`
    for the `continue` past a sensitive field; `private` for the items' columns."""
    plan = RESOURCES["billing_plan"]
    discount = {"bankCode": "x", "note": {"fax": "1", "b": 2}}
    body = {
        "billingPlan": {
            "planId": "p1",
            "bankAccount": "DE89",
            "zetaNote": {"a": 1, "cardNumber": "4111"},
            "seatDiscounts": [discount],
        }
    }
    batch = _build({"acc-1": body}, resource=plan)
    assert "bank_account" not in batch.records.column_names
    assert batch.records["zeta_note"].to_pylist() == ['{"a": 1}']
    assert "bank_code" not in batch.items.column_names  # the items of a private resource too
    assert batch.items["note"].to_pylist() == ['{"b": 2}']


def test_a_new_field_named_like_a_column_of_ours_gets_the_api_suffix():
    """Removed to see it fail: `_RESERVED` among the names a new field may not take
    (`&` for `|`: the API's `invoiceCount` would replace the counted `invoice_count`)."""
    body = {"invoiceCount": "7", "billingInvoices": [_invoice("inv-1")]}
    summary = _build({"acc-1": body}).summary
    assert summary["invoice_count"].to_pylist() == [1]
    assert summary["invoice_count_api"].to_pylist() == ["7"]


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
def test_an_invoice_without_items_sends_one_marker_row_that_clears_its_items(as_bytes):
    """`clears_items` (a merge resource on a delete-insert destination): one `_clears_items` TRUE
    row per invoice without items, repeated invoices once, in the items' columns with its keys
    and version; item rows carry NULL there. Removed to see it fail: any value of the marker row,
    the no-items test, the repeat filter, the case of no marker at all."""
    invoices = RESOURCES["billing_invoices"]
    empty, full = {"invoiceId": "inv-1", "balance": "1.00"}, _invoice("inv-2", _item("a"))
    body = {"billingInvoices": [empty, full, empty]}
    parser = BatchParser(NOW, "2.5", None, invoices, clears_items=True)
    parser.add(_response("acc-1", body, as_bytes))
    batch = parser.build(["acc-1"])
    versions = dict(
        zip(batch.records["invoice_id"].to_pylist(), batch.records["_dlt_id"].to_pylist())
    )
    assert batch.items is not None
    assert batch.items.column_names[-1] == "_clears_items"
    rows = batch.items.select(
        ["account_id", "invoice_id", "invoice_item_id", *_DLT_LINKAGE, "_clears_items"]
    ).to_pylist()
    cleared = versions["inv-1"]
    assert rows == [
        {
            "account_id": "acc-1",
            "invoice_id": "inv-2",
            "invoice_item_id": "a",
            "_dlt_id": f"{versions['inv-2']}-0",
            "_dlt_parent_id": versions["inv-2"],
            "_dlt_root_id": versions["inv-2"],
            "_dlt_list_idx": 0,
            "_dlt_load_id": "2.5",
            "_clears_items": None,
        },
        {
            "account_id": "acc-1",
            "invoice_id": "inv-1",
            "invoice_item_id": None,
            "_dlt_id": f"{cleared}-cleared",
            "_dlt_parent_id": cleared,
            "_dlt_root_id": cleared,
            "_dlt_list_idx": 0,
            "_dlt_load_id": "2.5",
            "_clears_items": True,
        },
    ]
    assert batch.items.schema.field("_clears_items").nullable
    parser = BatchParser(NOW, "2.5", None, invoices, clears_items=True)
    parser.add(_response("acc-1", {"billingInvoices": [full]}, as_bytes))
    everything_has_items = parser.build(["acc-1"]).items
    assert everything_has_items is not None and everything_has_items.num_rows == 1
    plain = _build({"acc-1": body}, as_bytes, invoices)
    assert (
        plain.items is not None
        and plain.items.num_rows == 1
        and "_clears_items" in plain.items.column_names
    )
