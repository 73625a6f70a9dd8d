"""The local DocuSign sandbox: data, auth, state switches and faults over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from sources.docusign_billing.sandbox import (
    ACCESS_TOKEN,
    LEGACY_CREDENTIALS,
    Sandbox,
    generate_response,
)
from sources.docusign_billing.sandbox.data import REFERENCE_DATE, account_id_for

TOKEN = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
LEGACY_JSON = {
    "X-DocuSign-Authentication": json.dumps(
        {
            "Username": LEGACY_CREDENTIALS["username"],
            "Password": LEGACY_CREDENTIALS["password"],
            "IntegratorKey": LEGACY_CREDENTIALS["integrator_key"],
        }
    )
}


def legacy_json(**fields: str) -> dict[str, str]:
    """Legacy header with lower-case keys, to prove keys match case-insensitively."""
    base = {"username": LEGACY_CREDENTIALS["username"], "password": LEGACY_CREDENTIALS["password"]}
    base["integratorkey"] = LEGACY_CREDENTIALS["integrator_key"]
    base.update(fields)
    return {"X-DocuSign-Authentication": json.dumps({k: v for k, v in base.items() if v})}


def money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", "") or "0")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(accounts=3, seed=11) as box:
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> None:
    sandbox.reset()


def url(sandbox: Sandbox, account_id: str) -> str:
    return f"{sandbox.base_url}/v2.1/accounts/{account_id}/billing_invoices_past_due"


def get(
    sandbox: Sandbox,
    account_id: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    target = account_id or sandbox.account_ids[0]
    return requests.get(
        url(sandbox, target), headers=TOKEN if headers is None else headers, timeout=5, **kwargs
    )


# data ------------------------------------------------------------------------------------------
def test_generation_is_deterministic_per_seed() -> None:
    same = [Sandbox(accounts=2, seed=3) for _ in range(2)]
    assert same[0].account_ids == same[1].account_ids
    assert all(same[0].response(a) == same[1].response(a) for a in same[0].account_ids)
    other = Sandbox(accounts=2, seed=4)
    assert set(other.account_ids).isdisjoint(same[0].account_ids)
    assert (
        generate_response(3, 0, "x", 5)
        == generate_response(3, 0, "x", 5)
        != generate_response(4, 0, "x", 5)
    )


def test_invoice_counts_follow_range_and_empty_accounts() -> None:
    box = Sandbox(accounts=6, invoices_per_account=(1, 3))
    assert all(1 <= len(box.response(a)["billingInvoices"]) <= 3 for a in box.account_ids)
    assert generate_response(1, 0, "acc", 0)["billingInvoices"] == []
    assert all(
        len(i["invoiceItems"]) == 2
        for i in generate_response(1, 0, "acc", 4, items_per_invoice=2)["billingInvoices"]
    )


def test_bodies_are_strings_and_arithmetically_consistent() -> None:
    seen_formats: set[str] = set()
    for index in range(40):
        account_id = account_id_for(5, index)
        body = generate_response(5, index, account_id, 8)
        invoices = body["billingInvoices"]
        assert body["currencyCode"] in {"USD", "EUR", "GBP"} and body["paymentAllowed"] in {
            "true",
            "false",
        }
        assert money(body["pastDueBalance"]) == sum(
            (money(i["balance"]) for i in invoices), Decimal(0)
        )
        assert money(body["accountBalance"]) >= money(body["pastDueBalance"])
        ids = [i["invoiceId"] for i in invoices]
        assert len(set(ids)) == len(ids)
        for invoice in invoices:
            assert all(isinstance(v, str) for k, v in invoice.items() if k != "invoiceItems")
            amount = money(invoice["amount"])
            assert amount == sum(
                (money(item["chargeAmount"]) for item in invoice["invoiceItems"]), Decimal(0)
            )
            assert amount == money(invoice["taxableAmount"]) + money(invoice["nonTaxableAmount"])
            assert Decimal(0) <= money(invoice["balance"]) <= amount
            assert invoice["dueDate"][:10] < REFERENCE_DATE.isoformat()
            assert (
                invoice["invoiceUri"]
                == f"/v2.1/accounts/{account_id}/billing_invoices/{invoice['invoiceId']}"
            )
            for item in invoice["invoiceItems"]:
                assert all(isinstance(v, str) for v in item.values())
                assert money(item["chargeAmount"]) == Decimal(item["quantity"]) * money(
                    item["unitPrice"]
                )
            for value in (invoice["amount"], invoice["nonTaxableAmount"]):
                seen_formats.add(
                    "$"
                    if value.startswith("$")
                    else ","
                    if "," in value
                    else "blank"
                    if value == ""
                    else "plain"
                )
            seen_formats.add(
                "Z"
                if invoice["dueDate"].endswith("Z")
                else "offset"
                if "+" in invoice["dueDate"][10:]
                else "date"
            )
    assert {"$", ",", "blank", "plain", "Z", "offset", "date"} <= seen_formats


# auth ------------------------------------------------------------------------------------------
def test_token_legacy_json_and_xml_auth_accepted(sandbox: Sandbox) -> None:
    xml = (
        f"<DocuSignCredentials><Username>{LEGACY_CREDENTIALS['username']}</Username>"
        f"<Password>{LEGACY_CREDENTIALS['password']}</Password>"
        f"<IntegratorKey>{LEGACY_CREDENTIALS['integrator_key']}</IntegratorKey></DocuSignCredentials>"
    )
    account_id = sandbox.account_ids[1]
    for headers in (TOKEN, LEGACY_JSON, legacy_json(), {"X-DocuSign-Authentication": xml}):
        reply = get(sandbox, account_id, headers)
        assert reply.status_code == 200 and reply.json() == sandbox.response(account_id)
    assert [r["auth"] for r in sandbox.requests] == ["token", "legacy", "legacy", "legacy"]
    sandbox.add_token("issued-by-oauth")
    assert get(sandbox, headers={"Authorization": "Bearer issued-by-oauth"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "USER_AUTHENTICATION_FAILED"),
        (legacy_json(password="wrong"), 401, "USER_AUTHENTICATION_FAILED"),
        (legacy_json(username="nobody@example.com"), 401, "USER_AUTHENTICATION_FAILED"),
        (legacy_json(integratorkey="bogus"), 401, "PARTNER_AUTHENTICATION_FAILED"),
        (legacy_json(integratorkey=""), 401, "PARTNER_AUTHENTICATION_FAILED"),
        ({"X-DocuSign-Authentication": "{not json"}, 401, "USER_AUTHENTICATION_FAILED"),
        ({"Authorization": "Bearer expired"}, 401, "AUTHORIZATION_INVALID_TOKEN"),
        ({"Authorization": f"Basic {ACCESS_TOKEN}"}, 401, "AUTHORIZATION_INVALID_TOKEN"),
    ],
)
def test_auth_errors(sandbox: Sandbox, headers: dict[str, str], status: int, code: str) -> None:
    reply = get(sandbox, headers=headers)
    assert (reply.status_code, reply.json()["errorCode"]) == (status, code)
    assert sandbox.requests[-1]["auth"] is None


def test_account_errors_and_unknown_routes(sandbox: Sandbox) -> None:
    stranger = get(sandbox, "00000000-0000-4000-8000-000000000000")
    assert (stranger.status_code, stranger.json()["errorCode"]) == (
        400,
        "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT",
    )
    sandbox.deny_admin(sandbox.account_ids[0])
    denied = get(sandbox)
    assert denied.status_code == 400 and denied.json() == {
        "errorCode": "USER_LACKS_PERMISSIONS",
        "message": "This user lacks sufficient permissions to access this resource.",
    }
    missing = requests.get(
        f"{sandbox.base_url}/v2.1/accounts/{sandbox.account_ids[0]}/envelopes",
        headers=TOKEN,
        timeout=5,
    )
    assert missing.status_code == 404 and "errorCode" in missing.json()
    assert (
        requests.post(url(sandbox, sandbox.account_ids[0]), headers=TOKEN, timeout=5).status_code
        == 404
    )


# state switches --------------------------------------------------------------------------------
def test_pay_invoice_and_set_balance_visible(sandbox: Sandbox) -> None:
    account_id = next(
        a for a in sandbox.account_ids if len(sandbox.response(a)["billingInvoices"]) >= 2
    )
    first, second = sandbox.response(account_id)["billingInvoices"][:2]
    sandbox.pay_invoice(account_id, first["invoiceId"])
    sandbox.set_balance(account_id, second["invoiceId"], "$1,000.50")
    body = get(sandbox, account_id).json()
    assert first["invoiceId"] not in {i["invoiceId"] for i in body["billingInvoices"]}
    assert body["billingInvoices"][0]["balance"] == "$1,000.50"
    assert money(body["pastDueBalance"]) == sum(
        (money(i["balance"]) for i in body["billingInvoices"]), Decimal(0)
    )
    assert money(body["accountBalance"]) >= money(body["pastDueBalance"])
    with pytest.raises(KeyError):
        sandbox.pay_invoice(account_id, first["invoiceId"])


def test_set_response_raw_and_add_account(sandbox: Sandbox) -> None:
    account_id = sandbox.account_ids[0]
    sandbox.set_response(account_id, '{"pastDueBalance": "1.0', status=200)
    with pytest.raises(ValueError):
        get(sandbox, account_id).json()
    sandbox.set_response(account_id, b"<html>maintenance</html>", content_type="text/html")
    html = get(sandbox, account_id)
    assert (html.status_code, html.headers["Content-Type"], html.text) == (
        200,
        "text/html",
        "<html>maintenance</html>",
    )
    sandbox.set_response(account_id, {"errorCode": "X"}, status=418)
    assert get(sandbox, account_id).status_code == 418
    new_id = sandbox.add_account(invoices=0)
    assert get(sandbox, new_id).json()["billingInvoices"] == [] and new_id in sandbox.account_ids
    sandbox.reset()
    assert new_id not in sandbox.account_ids and get(sandbox, account_id).status_code == 200


# faults ----------------------------------------------------------------------------------------
def test_429_fault_headers_and_times(sandbox: Sandbox) -> None:
    sandbox.inject("429", times=2, retry_after=3, ratelimit_reset=60)
    before = time.time()
    replies = [get(sandbox) for _ in range(3)]
    assert [r.status_code for r in replies] == [429, 429, 200]
    throttled = replies[0]
    assert throttled.json()["errorCode"] == "HOURLY_APIINVOCATION_LIMIT_EXCEEDED"
    assert (
        throttled.headers["Retry-After"] == "3"
        and throttled.headers["X-RateLimit-Remaining"] == "0"
    )
    assert before + 59 <= int(throttled.headers["X-RateLimit-Reset"]) <= time.time() + 61
    assert "X-RateLimit-Limit" in throttled.headers and sandbox.throttled == 2
    sandbox.inject("429")
    assert "Retry-After" not in get(sandbox).headers


@pytest.mark.parametrize("status", ["500", "502", "503", "504"])
def test_server_error_faults(sandbox: Sandbox, status: str) -> None:
    sandbox.inject(status)
    reply = get(sandbox)
    assert reply.status_code == int(status)
    if status in ("500", "503"):
        assert reply.json()["errorCode"]
    else:
        assert reply.headers["Content-Type"] == "text/html" and status in reply.text
    assert get(sandbox).status_code == 200


def test_faults_can_target_one_account(sandbox: Sandbox) -> None:
    first, second = sandbox.account_ids[:2]
    sandbox.inject("503", account_id=second)
    assert get(sandbox, first).status_code == 200
    assert get(sandbox, second).status_code == 503
    with pytest.raises(ValueError):
        sandbox.inject("418")


def test_reset_fault_drops_connection(sandbox: Sandbox) -> None:
    sandbox.inject("reset")
    with pytest.raises(requests.ConnectionError):
        get(sandbox)
    assert sandbox.requests[-1]["status"] is None
    assert get(sandbox).status_code == 200


def test_latency_fault_and_attribute(sandbox: Sandbox) -> None:
    sandbox.inject("latency", seconds=0.3)
    started = time.perf_counter()
    assert get(sandbox).status_code == 200
    assert time.perf_counter() - started >= 0.3
    sandbox.latency = 0.2
    started = time.perf_counter()
    assert get(sandbox).status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_hang_times_out_client_and_stop_is_prompt() -> None:
    with Sandbox(accounts=1) as box:
        box.inject("hang", times=2)
        with pytest.raises(requests.Timeout):
            requests.get(url(box, box.account_ids[0]), headers=TOKEN, timeout=0.3)
        started = time.perf_counter()
    assert time.perf_counter() - started < 2


def test_rate_limiter_fixed_window(sandbox: Sandbox) -> None:
    sandbox.rate_limit(2, 0.5)
    time.sleep(0.5 - time.time() % 0.5 + 0.01)  # start at the beginning of a window
    replies = [get(sandbox) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["1", "0", "0"]
    assert replies[0].headers["X-RateLimit-Limit"] == "2"
    assert int(replies[2].headers["X-RateLimit-Reset"]) >= int(time.time())
    assert int(replies[2].headers["Retry-After"]) >= 1 and sandbox.throttled == 1
    time.sleep(0.6)
    assert get(sandbox).status_code == 200


def test_request_log_records_what_a_server_receives(sandbox: Sandbox) -> None:
    """The log holds target (query included), headers and body: what a real server sees, so
    tests can assert where a client sent its secrets (see `tests/helpers_reliability.py`)."""
    get(sandbox, headers=LEGACY_JSON, params={"token": "q"})
    requests.post(
        f"{sandbox.oauth_base_url}/oauth/token", data={"grant_type": "x"}, headers=TOKEN, timeout=5
    )
    assert [entry["status"] for entry in sandbox.requests] == [200, 400]
    legacy, token = sandbox.requests
    assert legacy["target"].endswith("/billing_invoices_past_due?token=q")
    assert (
        legacy["headers"]["X-DocuSign-Authentication"] == LEGACY_JSON["X-DocuSign-Authentication"]
    )
    assert token["headers"]["Authorization"] == TOKEN["Authorization"]
    assert token["body"] == "grant_type=x" and legacy["body"] == ""
