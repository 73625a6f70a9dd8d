"""The local DocuSign sandbox: data, auth, state switches and faults over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, timedelta
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


def test_request_log_holds_no_secrets(sandbox: Sandbox) -> None:
    get(sandbox, headers=LEGACY_JSON, params={"token": "q"})
    get(sandbox)
    get(sandbox, headers={"Authorization": "Bearer not-a-real-secret"})
    assert [entry["status"] for entry in sandbox.requests] == [200, 200, 401]
    assert set(sandbox.requests[0]) == {
        *("method", "path", "resource", "query", "status", "account_id", "auth", "at")
    }
    assert sandbox.requests[0]["query"] == {}  # only billing parameters are logged
    dumped = json.dumps(sandbox.requests)
    for secret in (*LEGACY_CREDENTIALS.values(), ACCESS_TOKEN, "not-a-real-secret", "token=q"):
        assert secret not in dumped


# billing history: one ledger behind every endpoint ------------------------------------------------
DAY = date(2026, 6, 15)


def billing(box: Sandbox, account_id: str, resource: str, **params: str) -> requests.Response:
    return requests.get(
        f"{box.base_url}/v2.1/accounts/{account_id}/{resource}",
        headers=TOKEN,
        params=params,
        timeout=5,
    )


def listed(box: Sandbox, account_id: str, resource: str, years: int = 6) -> list[dict[str, Any]]:
    """Every record over `years` one-year windows back from the sandbox's today, pages followed."""
    field = {"billing_invoices": "billingInvoices", "billing_payments": "billingPayments"}[resource]
    records: list[dict[str, Any]] = []
    end = box.today
    for _ in range(years):
        start = end - timedelta(days=365)
        reply = billing(
            box,
            account_id,
            resource,
            from_date=(start + timedelta(days=1)).isoformat(),
            to_date=end.isoformat(),
        )
        while True:
            assert reply.status_code == 200, reply.text
            records += reply.json()[field]
            if not reply.json()["nextUri"]:
                break
            reply = requests.get(box.base_url + reply.json()["nextUri"], headers=TOKEN, timeout=5)
        end = start
    return records


def paid_per_invoice(payments: list[dict[str, Any]]) -> dict[str, Decimal]:
    paid: dict[str, Decimal] = {}
    for payment in payments:
        number = payment["description"].removeprefix("Payment for ")
        paid[number] = paid.get(number, Decimal(0)) + money(payment["amount"])
    return paid


@pytest.fixture(scope="module")
def history() -> Iterator[Sandbox]:
    with Sandbox(accounts=4, seed=21, today=DAY, page_size=7) as box:
        yield box


def test_invoices_payments_and_past_due_are_one_consistent_history(history: Sandbox) -> None:
    for account_id in history.account_ids:
        invoices = listed(history, account_id, "billing_invoices")
        payments = listed(history, account_id, "billing_payments")
        assert len({i["invoiceId"] for i in invoices}) == len(invoices)
        assert len({p["paymentId"] for p in payments}) == len(payments)
        paid = paid_per_invoice(payments)
        monthly = [i for i in invoices if i["invoiceNumber"].count("-") == 2]
        assert len(monthly) >= 40  # monthly since 2021, one per month
        assert len({i["dueDate"][:7] for i in monthly}) == len(monthly)
        for invoice in invoices:
            amount = money(invoice["amount"])
            assert amount == sum(
                (money(x["chargeAmount"]) for x in invoice["invoiceItems"]), Decimal(0)
            )
            assert money(invoice["balance"]) == amount - paid.get(
                invoice["invoiceNumber"], Decimal(0)
            )
        # past due: exactly the invoices with a balance whose due date has passed
        overdue = {
            i["invoiceId"]
            for i in invoices
            if money(i["balance"]) > 0 and i["dueDate"][:10] < DAY.isoformat()
        }
        past_due = get(history, account_id).json()
        assert {i["invoiceId"] for i in past_due["billingInvoices"]} == overdue
        assert past_due == history.response(account_id)
        # every monthly invoice due before the sandbox's first day is settled; some paid late
        assert all(money(i["balance"]) == 0 for i in monthly if i["dueDate"][:10] < DAY.isoformat())
    late = [
        p
        for account_id in history.account_ids
        for i in history.ledger(account_id).all_invoices(DAY)
        for p in i.payments
        if not i.collection and p.paid_at.date() > i.due
    ]
    assert late  # some payments arrive after the due date


def test_past_due_default_view_is_the_collections_body() -> None:
    """Whatever the date, a new sandbox's past-due bodies are `generate_response`'s (demo figures)."""
    for today in (date(2025, 1, 3), date(2026, 12, 1)):
        box = Sandbox(accounts=3, seed=7, today=today)
        for index, account_id in enumerate(box.account_ids):
            body = box.response(account_id)
            assert body == generate_response(7, index, account_id, len(body["billingInvoices"]))


def test_advancing_the_clock_makes_late_invoices_past_due_then_paid() -> None:
    box = Sandbox(accounts=6, seed=5, today=DAY)
    ledger, invoice = next(
        (box.ledger(a), i)
        for a in box.account_ids
        for i in (box.ledger(a).invoice(m) for m in range(66, 70))
        if i.due > DAY and i.payments[-1].paid_at.date() > i.due + timedelta(days=1)
    )
    account_id, last_paid = ledger.account_id, invoice.payments[-1].paid_at.date()
    states = []
    for day in (
        invoice.due,
        invoice.due + timedelta(days=1),
        last_paid,
        last_paid + timedelta(days=1),
    ):
        box.today = day
        past_due = {i["invoiceId"] for i in box.response(account_id)["billingInvoices"]}
        states.append(invoice.invoice_id in past_due)
    assert states == [False, True, False, False]  # due day, overdue, paid that day, after
    box.today = last_paid - timedelta(days=1)
    overdue = next(
        i
        for i in box.response(account_id)["billingInvoices"]
        if i["invoiceId"] == invoice.invoice_id
    )
    assert 0 < money(overdue["balance"]) <= invoice.amount
    box.advance(2)
    assert box.today == last_paid + timedelta(days=1)


def test_pay_invoice_records_a_payment(sandbox: Sandbox) -> None:
    account_id = sandbox.account_ids[0]
    invoice = sandbox.response(account_id)["billingInvoices"][0]
    sandbox.pay_invoice(account_id, invoice["invoiceId"])
    payments = billing(sandbox, account_id, "billing_payments").json()["billingPayments"]
    assert paid_per_invoice(payments)[invoice["invoiceNumber"]] == money(invoice["amount"])
    again = billing(
        sandbox, account_id, "billing_invoices", from_date="2021-01-01", to_date="2021-12-31"
    )
    assert again.status_code == 200


def test_windows_filter_page_and_reject_what_docusign_rejects(history: Sandbox) -> None:
    account_id = history.account_ids[0]
    history.requests.clear()
    whole = billing(
        history, account_id, "billing_invoices", from_date="2025-06-16", to_date="2026-06-15"
    )
    body = whole.json()
    assert len(body["billingInvoices"]) == 7 and body["previousUri"] is None  # page_size 7
    assert body["nextUri"].startswith(
        f"/v2.1/accounts/{account_id}/billing_invoices?"
    )  # as invoiceUri
    second = requests.get(history.base_url + body["nextUri"], headers=TOKEN, timeout=5).json()
    assert second["previousUri"] and len(second["billingInvoices"]) >= 5
    assert {i["invoiceId"] for i in body["billingInvoices"]}.isdisjoint(
        i["invoiceId"] for i in second["billingInvoices"]
    )
    assert [r["query"] for r in history.requests] == [
        {"from_date": "2025-06-16", "to_date": "2026-06-15"},
        {"from_date": "2025-06-16", "to_date": "2026-06-15", "start_position": "7"},
    ]
    # a date-time window is read as instants; a date as to_date holds its whole day
    month = billing(
        history,
        account_id,
        "billing_payments",
        from_date="2026-01-01T00:00:00Z",
        to_date="2026-03-31",
    ).json()["billingPayments"]
    assert month and all("2026-01-01" <= p["paymentDate"][:10] <= "2026-03-31" for p in month)
    for params, message in [
        ({"from_date": "2025-01-01", "to_date": "2026-01-02"}, "365 days"),
        ({"from_date": "2025-01-01T00:00:00Z", "to_date": "2026-01-01T00:00:01Z"}, "365 days"),
        ({"from_date": "01/02/2025"}, "not a valid date"),
        ({"from_date": "2026-01-02", "to_date": "2026-01-01"}, "earlier"),
    ]:
        reply = billing(history, account_id, "billing_invoices", **params)
        assert reply.status_code == 400 and reply.json()["errorCode"] == "INVALID_REQUEST_PARAMETER"
        assert message in reply.json()["message"]
    assert (
        billing(
            history, account_id, "billing_invoices", from_date="2025-01-01", to_date="2026-01-01"
        ).status_code
        == 200
    )  # exactly 365 days
    short = Sandbox(accounts=1, seed=21, today=DAY, max_window_days=31).start()
    try:
        assert (
            billing(short, short.account_ids[0], "billing_payments").status_code == 400
        )  # default: 365 days
        assert (
            billing(
                short, short.account_ids[0], "billing_payments", from_date="2026-05-15"
            ).status_code
            == 200
        )
    finally:
        short.stop()


def test_plan_changes_and_card_data_only_when_asked_or_leaked(history: Sandbox) -> None:
    account_id = history.account_ids[1]
    plans = set()
    for month in range(36):
        history.today = DAY - timedelta(days=30 * month)
        plans.add(billing(history, account_id, "billing_plan").json()["billingPlan"]["planId"])
    history.today = DAY
    assert len(plans) >= 2  # plans change every 8-20 months
    private = {"creditCardInformation", "directDebitProcessorInformation", "taxExemptId"}
    plain = billing(
        history, account_id, "billing_plan", include_credit_card_information="false"
    ).json()
    assert private.isdisjoint(plain) and "taxExemptId" not in plain["billingPlan"]
    asked = billing(
        history,
        account_id,
        "billing_plan",
        include_credit_card_information="true",
        include_tax_exempt_id="true",
    ).json()
    assert {"creditCardInformation", "taxExemptId"} <= set(asked)
    leaky = Sandbox(accounts=1, seed=21, today=DAY, leak_payment_details=True).start()
    try:
        sent = billing(
            leaky, leaky.account_ids[0], "billing_plan", include_credit_card_information="false"
        ).json()
        assert private <= set(sent) and sent["billingAddress"]["email"]
    finally:
        leaky.stop()


def test_charges_count_usage_that_the_next_invoice_bills(history: Sandbox) -> None:
    account_id = history.account_ids[2]
    used = []
    for day in (date(2026, 5, 1), date(2026, 5, 15), date(2026, 5, 31)):
        history.today = day
        items = billing(history, account_id, "billing_charges").json()["billingChargeItems"]
        envelopes = next(i for i in items if i["chargeName"] == "envelopes")
        used.append(int(envelopes["usedQuantity"]))
        included = int(envelopes["includedQuantity"])
    history.today = DAY
    assert used[0] <= used[1] <= used[2] and used[2] > 0
    seats = billing(history, account_id, "billing_charges", include_charges="seats").json()
    assert [i["chargeName"] for i in seats["billingChargeItems"]] == ["seats"]
    june = next(
        i
        for i in listed(history, account_id, "billing_invoices", years=1)
        if i["invoiceNumber"].endswith(f"-{(2026 - 2021) * 12 + 5:03d}")
    )
    overage = next(x for x in june["invoiceItems"] if x["chargeName"] == "envelopes Included")
    assert int(overage["quantity"]) == max(0, used[2] - included)


def test_account_limits_hourly_and_burst_with_headers_on_every_answer(sandbox: Sandbox) -> None:
    first, second = sandbox.account_ids[:2]
    sandbox.limit_accounts(hourly=4, burst=2, burst_seconds=1.0)
    time.sleep(1 - time.time() % 1 + 0.01)  # the start of a burst window
    replies = [get(sandbox, first) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 400]
    assert replies[2].json()["errorCode"] == "BURST_APIINVOCATION_LIMIT_EXCEEDED"
    assert [r.headers["X-BurstLimit-Remaining"] for r in replies] == ["1", "0", "0"]
    assert {r.headers["X-BurstLimit-Limit"] for r in replies} == {"2"}
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["3", "2", "2"]
    assert get(sandbox, second).status_code == 200  # per account
    time.sleep(1.0)
    assert [get(sandbox, first).status_code for _ in range(2)] == [200, 200]
    time.sleep(1.0)
    hourly = get(sandbox, first)
    assert (
        hourly.status_code == 400
        and hourly.json()["errorCode"] == "HOURLY_APIINVOCATION_LIMIT_EXCEEDED"
    )
    assert int(hourly.headers["X-RateLimit-Reset"]) == (int(time.time()) // 3600 + 1) * 3600
    assert sandbox.throttled == 2


def test_throttling_faults_answer_400_with_docusigns_codes(sandbox: Sandbox) -> None:
    sandbox.inject("hourly", ratelimit_reset=60, resource="billing_plan")
    sandbox.inject("burst")
    plan = billing(sandbox, sandbox.account_ids[0], "billing_plan")
    assert (plan.status_code, plan.json()["errorCode"]) == (
        400,
        "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
    )
    assert (
        plan.headers["X-RateLimit-Remaining"] == "0"
        and int(plan.headers["X-RateLimit-Reset"]) > time.time()
    )
    burst = get(sandbox)
    assert (burst.status_code, burst.json()["errorCode"]) == (
        400,
        "BURST_APIINVOCATION_LIMIT_EXCEEDED",
    )
    assert burst.headers["X-BurstLimit-Remaining"] == "0" and get(sandbox).status_code == 200
