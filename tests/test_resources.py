"""The resource descriptions and the one generic path that types, hashes and names every resource."""

import hashlib
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from sources.docusign_billing.bodies import AccountResponse
from sources.docusign_billing.client import RawBody
from sources.docusign_billing.sandbox.data import account_id_for, generate_response
from sources.docusign_billing.tables import BatchParser

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("received_as_bytes", [False, True], ids=["records", "arrow"])
def test_past_due_version_hashes_are_those_of_earlier_releases(received_as_bytes):
    """Existing users' history keys on these hashes: a change would make a spurious new version of
    every invoice. Values computed by the release before the resource descriptions (cc2426f)."""
    bodies = [generate_response(5, n, account_id_for(5, n), n * 7 % 23) for n in range(12)]
    parser = BatchParser(NOW, "1.5", pa.array([], pa.string()))
    for n, body in enumerate(bodies):
        raw = RawBody(json.dumps(body).encode(), "application/json")
        parser.add(
            AccountResponse(f"acc-{n}", raw=raw)
            if received_as_bytes
            else AccountResponse(f"acc-{n}", body)
        )
    batch = parser.build([f"acc-{n}" for n in range(12)])
    ids = batch.invoices.column("_dlt_id").to_pylist() + batch.items.column("_dlt_id").to_pylist()
    assert len(ids) == 655
    assert ids[:2] == ["fabdf686caa8d4e7bceaddd0ac2d2fd6", "724ea97cc9d80aedcfcbb68b8c80b577"]
    assert (
        hashlib.sha256("\n".join(ids).encode()).hexdigest()
        == "9762947725883f1d732142a07aa9614e18e90930d1687907ad2dc2dabf4df2e9"
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
