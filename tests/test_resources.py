"""The resource descriptions and the one generic path that types, hashes and names every resource."""

import hashlib
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from sources.docusign_billing.bodies import AccountResponse, read_known
from sources.docusign_billing.client import RawBody
from sources.docusign_billing.errors import ResponseError
from sources.docusign_billing.resources import RESOURCES
from sources.docusign_billing.sandbox.data import account_id_for, generate_response
from sources.docusign_billing.tables import BatchParser

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _pinned_bodies():
    """Past-due bodies with every value form, from their own generator (not the sandbox's, which
    may change): the input of the pinned version hashes."""
    rng = random.Random(20261201)
    amounts = ["1234.50", "$1,234.5", "-12.00", "-$3.10", "", "0.123456789", " 42 ", "1,000,000"]
    dates = [
        "2024-05-01",
        "2024-05-01T10:20:30.1234567Z",
        "2024-05-01T10:20:30+02:00",
        "",
        "2024-02-29 23:59",
    ]
    bools = ["true", "false", "True", " FALSE ", ""]
    bodies = []
    for n in range(6):
        invoices = []
        for i in range(n + 1):
            items = [
                {
                    "invoiceItemId": f"it-{n}-{i}-{j}",
                    "chargeName": rng.choice(["seats", "envelopes", ""]),
                    "chargeAmount": rng.choice(amounts),
                    "quantity": rng.choice(["1", "2.5", ""]),
                    "unitPrice": rng.choice(amounts),
                }
                for j in range(rng.randrange(0, 4))
            ]
            invoices.append(
                {
                    "invoiceId": f"inv-{n}-{i}",
                    "invoiceNumber": f"N-{i}",
                    "invoiceUri": f"/v2.1/accounts/a{n}/billing_invoices/inv-{n}-{i}",
                    "amount": rng.choice(amounts),
                    "taxableAmount": rng.choice(amounts),
                    "nonTaxableAmount": rng.choice(amounts),
                    "balance": rng.choice(amounts),
                    "dueDate": rng.choice(dates),
                    "pdfAvailable": rng.choice(bools),
                    "invoiceItems": items,
                }
            )
        bodies.append(
            {
                "pastDueBalance": rng.choice(amounts),
                "accountBalance": rng.choice(amounts),
                "currencyCode": rng.choice(["USD", "EUR"]),
                "paymentAllowed": rng.choice(bools),
                "billingInvoices": invoices,
            }
        )
    return bodies


@pytest.mark.parametrize("received_as_bytes", [False, True], ids=["records", "arrow"])
def test_past_due_version_hashes_are_those_of_earlier_releases(received_as_bytes):
    """Existing users' history keys on these hashes: a change would make a spurious new version of
    every invoice. Values computed by the release before the resource descriptions (cc2426f).

    Removed to see it fail: the `\\x1f` between a record's values in `tables._hash_text` (`|`)."""
    parser = BatchParser(NOW, "1.5", pa.array([], pa.string()))
    bodies = _pinned_bodies()
    for n, body in enumerate(bodies):
        raw = RawBody(json.dumps(body).encode(), "application/json")
        parser.add(
            AccountResponse(f"acc-{n}", raw=raw)
            if received_as_bytes
            else AccountResponse(f"acc-{n}", body)
        )
    batch = parser.build([f"acc-{n}" for n in range(len(bodies))])
    assert batch.items is not None
    ids = batch.invoices.column("_dlt_id").to_pylist() + batch.items.column("_dlt_id").to_pylist()
    assert len(ids) == 59
    assert ids[:2] == ["d02e2c746d6d1412758ae91e1f0af05f", "0629cb8a9cb7d33bb5d3c3a6befba859"]
    assert (
        hashlib.sha256("\n".join(ids).encode()).hexdigest()
        == "9c89bbff0a5a34ab9001e41b4cde62acae1ca1b14454bc49bb28b8f2734c4b2d"
    )


def test_past_due_hash_of_styled_values_and_new_fields_is_pinned():
    parser = BatchParser(NOW)
    invoice = {
        "invoiceId": "inv-1",
        "amount": "$1,234.5",
        "dueDate": "2024-01-01",
        "pdfAvailable": "TRUE",
        "newField": {"a": 1},
        "invoiceItems": [{"invoiceItemId": "1", "quantity": "2", "chargeName": "seats"}],
    }
    parser.add(AccountResponse("acc-1", {"billingInvoices": [invoice, {"invoiceId": "inv-2"}]}))
    assert parser.build(["acc-1"]).invoices.column("_dlt_id").to_pylist() == [
        "f03548492dd2a2764c0212e4e057fa94",
        "78cf156dae23ac6fb5efc515c0355037",
    ]


def _build(resource, *bodies, account_id="acc-1"):
    parser = BatchParser(NOW, "1.5", None, RESOURCES[resource])
    for body in bodies:
        parser.add(AccountResponse(account_id, body))
    return parser.build([account_id])


PLAN_BODY: dict[str, Any] = {
    "billingPlan": {
        "planId": "plan-1",
        "planName": "Business Pro",
        "includedSeats": "10",
        "perSeatPrice": "480.0000",
        "supportPlanFee": "$0.00",
        "enableSupport": "true",
        "planStartDate": "2024-06-01T00:00:00Z",
        "taxExemptId": "TAX-123",
        "seatDiscounts": [{"beginSeatCount": "0", "endSeatCount": "9", "discountPercent": "5.5"}],
        "planFeatureSets": [{"featureSetId": "fs", "seatFee": "1.00", "billingEmail": "x@y.z"}],
        "newPlanField": "kept as text",
    },
    "billingAddress": {"address1": "100 Example St", "email": "billing@example.com"},
    "creditCardInformation": {"cardNumber": "XXXX1111", "nameOnCard": "Pat Doe"},
    "directDebitProcessorInformation": {"iban": "DE00"},
    "taxExemptId": "TAX-123",
    "paymentMethod": "CreditCard",
}


def test_plan_is_one_typed_row_with_seat_discounts_and_no_sensitive_field():
    batch = _build("billing_plan", PLAN_BODY)
    (plan,) = batch.records.to_pylist()
    assert plan["account_id"] == "acc-1" and plan["plan_id"] == "plan-1"
    assert plan["included_seats"] == 10 and plan["per_seat_price"] == Decimal("480")
    assert plan["support_plan_fee"] == Decimal("0") and plan["enable_support"] is True
    assert plan["new_plan_field"] == "kept as text"
    assert json.loads(plan["plan_feature_sets"]) == [{"featureSetId": "fs", "seatFee": "1.00"}]
    (discount,) = batch.items.to_pylist()
    assert discount["begin_seat_count"] == 0 and discount["discount_percent"] == Decimal("5.5")
    assert discount["_dlt_parent_id"] == plan["_dlt_id"] and discount["plan_id"] == "plan-1"
    everything = json.dumps([batch.records.to_pylist(), batch.items.to_pylist()], default=str)
    for secret in ("TAX-123", "Example St", "billing@", "XXXX1111", "Pat Doe", "DE00", "x@y.z"):
        assert secret not in everything
    assert batch.summary is None


def test_plan_errors_name_account_plan_field_and_value():
    body = {"billingPlan": {**PLAN_BODY["billingPlan"], "includedSeats": "ten"}}
    with pytest.raises(
        ResponseError,
        match=r"account acc-1, billing_plan, plan plan-1, field includedSeats: cannot read 'ten'",
    ):
        _build("billing_plan", body)
    body = {"billingPlan": {"planId": "p", "seatDiscounts": [{"discountPercent": "x"}]}}
    with pytest.raises(ResponseError, match=r"plan p, seat discount #0, field discountPercent"):
        _build("billing_plan", body)


def test_charges_are_one_row_per_account_charge_and_run():
    body = {
        "billingChargeItems": [
            {
                "chargeName": "seats",
                "includedQuantity": "10",
                "usedQuantity": "8",
                "blocked": "false",
                "prices": [],
            },
            {"chargeName": "envelopes", "includedQuantity": "100", "usedQuantity": "1,234"},
        ]
    }
    rows = _build("billing_charges", body).records.to_pylist()
    assert [(r["charge_name"], r["used_quantity"], r["snapshot_at"]) for r in rows] == [
        ("seats", Decimal(8), NOW),
        ("envelopes", Decimal(1234), NOW),
    ]
    assert rows[0]["prices"] == "[]" and rows[0]["blocked"] is False


def test_payments_and_invoices_of_several_pages_are_one_account():
    page = {
        "billingPayments": [
            {"paymentId": "p1", "amount": "$1,432.10", "paymentDate": "2025-02-20"}
        ],
        "nextUri": "/x",
    }
    last = {"billingPayments": [{"paymentId": "p2", "amount": "-5"}], "nextUri": None}
    batch = _build("billing_payments", page, last)
    assert [(r["payment_id"], r["amount"]) for r in batch.records.to_pylist()] == [
        ("p1", Decimal("1432.10")),
        ("p2", Decimal(-5)),
    ]
    assert "next_uri" not in batch.records.column_names and batch.items is None
    with pytest.raises(
        ResponseError, match=r"account acc-1, billing_payments, payment p1, field amount"
    ):
        _build("billing_payments", {"billingPayments": [{"paymentId": "p1", "amount": "1.2.3"}]})


@pytest.mark.parametrize("resource", ["past_due", "billing_invoices"])
def test_arrow_and_record_paths_agree_for_every_list_resource(resource):
    bodies = [generate_response(5, n, account_id_for(5, n), 3) for n in range(4)]
    if resource != "past_due":
        bodies = [{"billingInvoices": b["billingInvoices"], "nextUri": None} for b in bodies]
    tables = []
    for as_bytes in (True, False):
        parser = BatchParser(NOW, "1", None, RESOURCES[resource])
        for n, body in enumerate(bodies):
            raw = RawBody(json.dumps(body).encode(), "application/json")
            parser.add(
                AccountResponse(f"a{n}", raw=raw) if as_bytes else AccountResponse(f"a{n}", body)
            )
        if as_bytes:
            assert read_known(parser.responses, RESOURCES[resource]) is not None
        tables.append(parser.build())
    fast, reference = tables
    assert fast.items is not None and reference.items is not None
    assert fast.records.equals(reference.records) and fast.items.equals(reference.items)
