"""The sandbox's views of an account's ledger: the five billing endpoints' bodies.

Windows (`billing_invoices`, `billing_payments`): `from_date` / `to_date` accept an ISO date
(`2025-01-31`) or date-time (`2025-01-31T12:00:00Z`, any offset; no offset means UTC). A date as
`to_date` includes that whole day. Either may be left out: `to_date` defaults to today, `from_date`
to `to_date` minus 365 days, as DocuSign documents. A window longer than `max_window_days`
(from the instants as given, so `2024-01-01`..`2025-01-01` is 366 days) or a date that cannot be
read is DocuSign's HTTP 400 `INVALID_REQUEST_PARAMETER`. Invoices are in a window by their issue
date (which the body does not carry, as in DocuSign's schema), payments by `paymentDate`.

Paging: at most `page_size` records per answer; `nextUri` / `previousUri` are relative to the
REST root (like `invoiceUri`) and carry the window plus a `start_position`, or are null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from .data import format_amount
from .ledger import PLANS, AccountLedger, month_of, month_start

LIST_FIELDS = {"billing_invoices": "billingInvoices", "billing_payments": "billingPayments"}
LOGGED_PARAMETERS = frozenset(
    {
        "from_date",
        "to_date",
        "start_position",
        "include_charges",
        "include_credit_card_information",
        "include_downgrade_information",
        "include_metadata",
        "include_successor_plans",
        "include_tax_exempt_id",
    }
)
"""Query parameters the request log keeps (anything else could carry a secret)."""


class BadRequest(Exception):
    """A request DocuSign answers with 400 INVALID_REQUEST_PARAMETER."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # inclusive

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end


def _instant(text: str, name: str, end_of_day: bool) -> tuple[datetime, datetime]:
    """(the instant as given, the instant the filter uses); a date as `to_date` is its whole day."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            at = datetime.combine(day, time(), UTC)
            return at, (at + timedelta(days=1, microseconds=-1)) if end_of_day else at
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"The {name} value {text!r} is not a valid date.") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment, moment


def window(query: dict[str, str], today: date, max_days: int) -> Window:
    """The window a list request asks for, or `BadRequest`."""
    if "to_date" in query:
        to_given, to_filter = _instant(query["to_date"], "to_date", end_of_day=True)
    else:
        to_given = datetime.combine(today, time(), UTC)
        to_filter = to_given + timedelta(days=1, microseconds=-1)
    if "from_date" in query:
        from_given, _ = _instant(query["from_date"], "from_date", end_of_day=False)
    else:
        from_given = to_given - timedelta(days=365)
    if from_given > to_given:
        raise BadRequest("The from_date must be earlier than the to_date.")
    if to_given - from_given > timedelta(days=max_days):
        raise BadRequest(f"The date range may not exceed {max_days} days.")
    return Window(from_given, to_filter)


def list_page(
    resource: str,
    ledger: AccountLedger,
    query: dict[str, str],
    today: date,
    max_days: int,
    page_size: int,
) -> dict[str, Any]:
    """One page of `billing_invoices` or `billing_payments` (raises `BadRequest`)."""
    span = window(query, today, max_days)
    if resource == "billing_invoices":
        records = [
            {
                **i.body,
                "balance": i.body["balance"] if i.collection else format_amount(i.balance(today)),
            }
            for i in ledger.all_invoices(today)
            if span.holds(datetime.combine(i.issued, time(), UTC))
        ]
    else:
        records = [p.body() for p in ledger.payments(today) if span.holds(p.paid_at)]
    try:
        start = int(query.get("start_position", "0"))
    except ValueError:
        raise BadRequest("The start_position value is not a number.") from None
    page = records[start : start + page_size]

    def uri(position: int) -> str:
        kept = {k: v for k, v in query.items() if k in ("from_date", "to_date")}
        parameters = urlencode({**kept, "start_position": position})
        return f"/v2.1/accounts/{ledger.account_id}/{resource}?{parameters}"

    return {
        LIST_FIELDS[resource]: page,
        "nextUri": uri(start + page_size) if start + page_size < len(records) else None,
        "previousUri": uri(max(0, start - page_size)) if start > 0 else None,
    }


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "").lower() == "true"


def plan_body(
    ledger: AccountLedger, query: dict[str, str], today: date, leak_payment_details: bool
) -> dict[str, Any]:
    """`billing_plan`: the plan in effect today. Card, bank and tax-exempt data come only with
    their `include_*` flag set to "true", or always when `leak_payment_details` is on."""
    period = ledger.plan_in(month_of(today))
    name, classification, _, price, included = PLANS[period.plan_index]
    renewal = period.start
    while renewal <= today:
        renewal = month_start(month_of(renewal) + 12)
    plan: dict[str, Any] = {
        "planId": period.plan_id,
        "planName": name,
        "planClassification": classification,
        "paymentCycle": "Monthly",
        "paymentMethod": ledger.payment_method,
        "currencyCode": ledger.currency,
        "includedSeats": str(period.seats),
        "perSeatPrice": f"{price:.4f}",
        "enableSupport": "true" if classification != "business" else "false",
        "supportPlanFee": "$0.00",
        "supportIncidentFee": "$0.00",
        "otherDiscountPercent": "0.00",
        "planStartDate": f"{period.start}T00:00:00Z",
        "renewalDate": f"{renewal}T00:00:00Z",
        "isDowngrade": "false",
        "seatDiscounts": [
            {"beginSeatCount": "0", "endSeatCount": str(period.seats), "discountPercent": "0.00"},
            {
                "beginSeatCount": str(period.seats + 1),
                "endSeatCount": "0",
                "discountPercent": "5.00",
            },
        ],
        "planFeatureSets": [
            {
                "featureSetId": f"fs-{period.plan_index}",
                "name": f"{classification} envelopes",
                "isActive": "true",
                "isEnabled": "true",
                "envelopeFee": "1.50",
                "fixedFee": "0.00",
                "seatFee": f"{price:.2f}",
                "currencyFeatureSetPrices": [],
            }
        ][: 1 if included > 100 else 0],
    }
    if _flag(query, "include_metadata"):
        plan.update(canUpgrade="true", renewalStatus="auto")
    body: dict[str, Any] = {
        "billingPlan": plan,
        "paymentMethod": ledger.payment_method,
        "billingAddress": {
            "address1": f"{ledger.index + 100} Example St",
            "city": "Springfield",
            "state": "IL",
            "postalCode": "62701",
            "country": "US",
            "email": f"billing{ledger.index}@example.com",
            "firstName": "Pat",
            "lastName": f"Doe{ledger.index}",
            "phone": "555-0100",
        },
        "billingAddressIsCreditCardAddress": "true",
        "successorPlans": [],
    }
    if leak_payment_details or _flag(query, "include_credit_card_information"):
        body["creditCardInformation"] = {
            "cardNumber": "XXXXXXXXXXXX4242",
            "cardLastDigits": "4242",
            "cardType": "visa",
            "expirationMonth": "12",
            "expirationYear": "2030",
            "nameOnCard": f"Pat Doe{ledger.index}",
            "address": {"address1": f"{ledger.index + 100} Example St", "postalCode": "62701"},
        }
    if leak_payment_details or (
        _flag(query, "include_credit_card_information") and ledger.payment_method == "DirectDebit"
    ):
        body["directDebitProcessorInformation"] = {
            "bankName": "Example Bank",
            "iban": "DE89370400440532013000",
            "bankCheckNumber": "12345678",
            "firstName": "Pat",
            "lastName": f"Doe{ledger.index}",
        }
    if leak_payment_details or _flag(query, "include_tax_exempt_id"):
        body["taxExemptId"] = f"TAX-EXEMPT-{ledger.index:06d}"
        plan["taxExemptId"] = body["taxExemptId"]
    return body


def charges_body(ledger: AccountLedger, query: dict[str, str], today: date) -> dict[str, Any]:
    """`billing_charges`: seats and this month's envelopes, included against used so far."""
    period = ledger.plan_in(month_of(today))
    _, _, _, price, included = PLANS[period.plan_index]
    month = month_of(today)
    first, last = month_start(month), month_start(month + 1) - timedelta(days=1)
    common = {
        "blocked": "false",
        "incrementalQuantity": "0",
        "firstEffectiveDate": f"{first}T00:00:00Z",
        "lastEffectiveDate": f"{last}T00:00:00Z",
        "discounts": [],
    }
    items: list[dict[str, Any]] = [
        {
            **common,
            "chargeName": "seats",
            "chargeType": "recurring",
            "chargeUnitOfMeasure": "seat",
            "includedQuantity": str(period.seats),
            "usedQuantity": str(max(1, period.seats - ledger.index % 3)),
            "allowedQuantity": str(period.seats),
            "unitPrice": f"{price:.2f}",
            "prices": [],
        },
        {
            **common,
            "chargeName": "envelopes",
            "chargeType": "usage",
            "chargeUnitOfMeasure": "envelope",
            "includedQuantity": str(included),
            "usedQuantity": str(ledger.envelopes_used(month, today.day)),
            "allowedQuantity": "unlimited",
            "unitPrice": "1.50",
            "prices": [
                {"beginQuantity": "0", "endQuantity": str(included), "unitPrice": "0.00"},
                {"beginQuantity": str(included + 1), "endQuantity": "0", "unitPrice": "1.50"},
            ],
        },
    ]
    wanted = query.get("include_charges")
    return {"billingChargeItems": [i for i in items if not wanted or i["chargeName"] == wanted]}
