"""Deterministic synthetic bodies for DocuSign's `billing_invoices_past_due` endpoint.

Values copy the quirks of real responses (thousands separators, "$" prefixes, blank amounts,
three date layouts, "True" next to "true", fractional quantities, credits) so that the
pipeline's parsers are exercised, while every body stays arithmetically consistent.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

REFERENCE_DATE = date(2024, 6, 30)
"""Due dates lie before this fixed day rather than `today`, so output never depends on the clock."""

CHARGE_NAMES = (
    "Envelope Pack",
    "eSignature Business Pro Seat",
    "eSignature Standard Seat",
    "SMS Delivery",
    "ID Verification",
    "API Plan Overage",
    "Bulk Send Add-on",
    "Envelope Overage",
)
CURRENCIES = ("USD", "EUR", "GBP")
_OFFSETS = ("+02:00", "-05:00", "+00:00", "+05:30")
_CENT = Decimal("0.01")
_ZERO = Decimal(0)
_HALF = Decimal("0.5")


def format_amount(value: Decimal, style: str = "plain") -> str:
    """Render `value` as "1234.56" (plain), "1,234.56" (comma) or "$1,234.56" (dollar)."""
    text = f"{abs(value):,.2f}" if style != "plain" else f"{abs(value):.2f}"
    sign = "-" if value < 0 else ""
    return f"{sign}${text}" if style == "dollar" else f"{sign}{text}"


def parse_amount(text: str) -> Decimal:
    """Inverse of `format_amount`; DocuSign's blank amounts read as zero."""
    cleaned = text.replace("$", "").replace(",", "")
    return Decimal(cleaned) if cleaned else _ZERO


def account_id_for(seed: int, index: int) -> str:
    """Stable account GUID, so tests and benchmarks can address accounts without a server."""
    rng = random.Random(f"account:{seed}:{index}")
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _style(rng: random.Random) -> str:
    r = rng.random()
    return "plain" if r < 0.7 else "comma" if r < 0.85 else "dollar"


def _due_date(rng: random.Random) -> str:
    day = (REFERENCE_DATE - timedelta(days=rng.randrange(1, 730))).isoformat()
    r = rng.random()
    if r < 0.75:
        return f"{day}T00:00:00.0000000Z"
    if r < 0.9:
        offset = _OFFSETS[rng.randrange(len(_OFFSETS))]
        return f"{day}T{rng.randrange(24):02d}:{rng.randrange(0, 60, 15):02d}:00{offset}"
    return day


def _item(rng: random.Random, item_id: int, running: Decimal) -> tuple[dict[str, str], Decimal]:
    """One invoice line; credits never exceed what the invoice has charged so far."""
    name = CHARGE_NAMES[rng.randrange(len(CHARGE_NAMES))]
    r = rng.random()
    if r < 0.05 and running > 0:
        quantity, unit = Decimal(1), -min(Decimal(rng.randrange(100, 5000)) / 100, running)
        name = f"Credit: {name}"
    elif r < 0.15:
        quantity, unit = (
            Decimal(rng.randrange(1, 10)) + _HALF,
            Decimal(2 * rng.randrange(50, 5000)) / 100,
        )
    elif r < 0.17:
        quantity, unit = Decimal(rng.randrange(1, 5)), _ZERO
    else:
        quantity, unit = Decimal(rng.randrange(1, 21)), Decimal(rng.randrange(100, 50000)) / 100
    charge = quantity * unit
    item = {
        "chargeAmount": format_amount(charge, _style(rng)),
        "chargeName": name,
        "invoiceItemId": str(item_id),
        "quantity": str(quantity),
        "unitPrice": format_amount(unit),
    }
    return item, charge


def _invoice(
    rng: random.Random, account_id: str, number: int, first_item_id: int, items: int
) -> tuple[dict[str, Any], Decimal]:
    lines: list[dict[str, str]] = []
    amount = _ZERO
    for offset in range(items):
        line, charge = _item(rng, first_item_id + offset, amount)
        lines.append(line)
        amount += charge
    r = rng.random()
    non_taxable = (
        _ZERO if r < 0.5 else (amount * rng.randrange(1, 40) / 100).quantize(_CENT, ROUND_DOWN)
    )
    r = rng.random()
    # past due means a balance is left: a tenth are half paid (no draw, so the sequence is kept)
    balance = (
        amount
        if r < 0.7
        else (amount / 2).quantize(_CENT, ROUND_DOWN)
        if r < 0.8
        else (amount * rng.randrange(1, 100) / 100).quantize(_CENT, ROUND_DOWN)
    )
    invoice_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    r = rng.random()
    invoice = {
        "amount": format_amount(amount, _style(rng)),
        "taxableAmount": format_amount(amount - non_taxable, _style(rng)),
        "nonTaxableAmount": ""
        if non_taxable == 0 and rng.random() < 0.3
        else format_amount(non_taxable, _style(rng)),
        "balance": format_amount(balance, _style(rng)),
        "dueDate": _due_date(rng),
        "invoiceId": invoice_id,
        "invoiceNumber": f"INV-{number:06d}",
        "pdfAvailable": "true" if r < 0.7 else "false" if r < 0.9 else "True",
        "invoiceUri": f"/v2.1/accounts/{account_id}/billing_invoices/{invoice_id}",
        "invoiceItems": lines,
    }
    return invoice, balance


def generate_response(
    seed: int,
    account_index: int,
    account_id: str,
    invoices: int,
    items_per_invoice: int | None = None,
) -> dict[str, Any]:
    """Build one account's past-due body; pure, so equal arguments give equal bodies.

    `items_per_invoice=None` draws 1-8 lines per invoice.
    """
    rng = random.Random(f"{seed}:{account_index}")
    currency = CURRENCIES[rng.randrange(len(CURRENCIES))]
    payment_allowed = "true" if rng.random() < 0.8 else "false"
    number = rng.randrange(1000, 900_000)
    item_id = rng.randrange(10**8, 9 * 10**8)
    bills: list[dict[str, Any]] = []
    past_due = _ZERO
    for index in range(invoices):
        items = rng.randrange(1, 9) if items_per_invoice is None else items_per_invoice
        invoice, balance = _invoice(rng, account_id, number + index, item_id, items)
        item_id += items
        bills.append(invoice)
        past_due += balance
    headroom = _ZERO if rng.random() < 0.3 else Decimal(rng.randrange(0, 500_000)) / 100
    return {
        "pastDueBalance": format_amount(past_due, _style(rng)),
        "paymentAllowed": payment_allowed,
        "accountBalance": format_amount(past_due + headroom, _style(rng)),
        "currencyCode": currency,
        "billingInvoices": bills,
    }
