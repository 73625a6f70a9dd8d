"""One account's billing history: the single source every sandbox endpoint is a view of.

An account has a plan timeline (the plan changes every 8-20 months), invoices issued monthly on a
fixed day from its start month until `today`, payments that settle them (most on time, some late,
some in two parts), and envelope usage per month. The past-due endpoint's invoices ("collections",
made by `data.generate_response`) are in the ledger too: old invoices that stay unpaid until a test
pays them. Everything is a pure function of (seed, account index, month), so moving `today` only
reveals more of the same history.

Every invoice due before the day the ledger was built (`settled_before`) is settled by then: the
past-due endpoint starts as exactly the collections list whatever the real date, and invoices due
later follow their own schedule (late and partial payments appear as `today` advances).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from .data import format_amount, parse_amount

EPOCH = date(2021, 1, 1)
"""Month 0 of every timeline; accounts start within the following year."""
NET_DAYS = 15
"""Days from issue to due date."""
MAX_LATE_DAYS = 14
"""A late (or second partial) payment arrives at most this many days after the due date, so a
daily run with a 30-day look-back sees it (issue + 15 + 14 < issue + 30)."""
ENVELOPE_OVERAGE_PRICE = Decimal("1.50")
_CENT = Decimal("0.01")
_ZERO = Decimal(0)
PLANS = (
    # name, classification, included seats, monthly price per seat, envelopes included per month
    ("eSignature Standard - Monthly", "business", 5, Decimal("25.00"), 100),
    ("eSignature Business Pro - Monthly", "business", 10, Decimal("40.00"), 250),
    ("eSignature Enhanced - Monthly", "corporate", 25, Decimal("35.00"), 800),
    ("eSignature Enterprise - Monthly", "enterprise", 60, Decimal("30.00"), 2500),
)


def month_start(index: int) -> date:
    """The first day of timeline month `index` (0 = `EPOCH`)."""
    return date(EPOCH.year + index // 12, index % 12 + 1, 1)


def month_of(day: date) -> int:
    return (day.year - EPOCH.year) * 12 + day.month - 1


def _days_in_month(index: int) -> int:
    return (month_start(index + 1) - month_start(index)).days


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(
        day, time(rng.randrange(8, 20), rng.randrange(60), rng.randrange(60)), UTC
    )


@dataclass
class Payment:
    payment_id: str
    payment_number: str
    paid_at: datetime
    amount: Decimal
    invoice_number: str

    def body(self) -> dict[str, str]:
        """The `billing_payments` list element."""
        return {
            "paymentId": self.payment_id,
            "paymentNumber": self.payment_number,
            "paymentDate": self.paid_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "amount": format_amount(self.amount),
            "description": f"Payment for {self.invoice_number}",
        }


@dataclass
class Invoice:
    """An invoice and its payments; `body` is served as is except for its `balance`."""

    body: dict[str, Any]
    issued: date
    due: date
    amount: Decimal
    payments: list[Payment] = field(default_factory=list)
    collection: bool = False
    """A past-due endpoint invoice: its balance is the collections body's (changed by tests)."""

    @property
    def invoice_id(self) -> str:
        return str(self.body["invoiceId"])

    def paid(self, today: date) -> Decimal:
        return sum((p.amount for p in self.payments if p.paid_at.date() <= today), _ZERO)

    def balance(self, today: date) -> Decimal:
        """What is still owed; a collection's balance is its body's (tests change it)."""
        if self.collection:
            return parse_amount(self.body["balance"])
        return self.amount - self.paid(today)


@dataclass(frozen=True)
class PlanPeriod:
    start: date
    plan_index: int
    seats: int
    plan_id: str


class AccountLedger:
    """The history of one account; each month's invoice is made the first time it is looked at."""

    def __init__(
        self,
        seed: int,
        index: int,
        account_id: str,
        collections: dict[str, Any],
        settled_before: date,
    ) -> None:
        self.seed, self.index, self.account_id = seed, index, account_id
        self.settled_before = settled_before
        rng = random.Random(f"ledger:{seed}:{index}")
        self.currency = str(collections.get("currencyCode") or "USD")
        self.first_month = rng.randrange(12)
        self.issue_day = rng.randrange(1, 29)
        self.payment_method = "CreditCard" if rng.random() < 0.8 else "DirectDebit"
        self.periods: list[PlanPeriod] = []
        self._next_change = self.first_month  # the month the next plan period starts
        self._invoices: dict[int, Invoice] = {}  # by timeline month, made when first needed
        self._collections = [self._collection(body) for body in collections["billingInvoices"]]
        self._manual = 0

    # timeline -----------------------------------------------------------------------------------
    @property
    def start(self) -> date:
        return month_start(self.first_month)

    def plan_in(self, month: int) -> PlanPeriod:
        """The plan in effect in timeline `month` (the first plan before the account started)."""
        while not self.periods or self._next_change <= month:
            rng = random.Random(f"plan:{self.seed}:{self.index}:{self._next_change}")
            previous = self.periods[-1].plan_index if self.periods else None
            choices = [i for i in range(len(PLANS)) if i != previous]
            plan_index = choices[rng.randrange(len(choices))]
            seats = max(1, PLANS[plan_index][2] + rng.randrange(-2, 6))
            start = month_start(self._next_change)
            self.periods.append(PlanPeriod(start, plan_index, seats, _uuid(rng)))
            self._next_change += rng.randrange(8, 21)
        current = [p for p in self.periods if p.start <= month_start(month)]
        return current[-1] if current else self.periods[0]

    def envelopes_used(self, month: int, day: int | None = None) -> int:
        """Envelopes sent in `month`, or by the end of its `day` (usage accrues evenly)."""
        rng = random.Random(f"usage:{self.seed}:{self.index}:{month}")
        total = int(PLANS[self.plan_in(month).plan_index][4] * rng.uniform(0.4, 1.5))
        days = _days_in_month(month)
        return total if day is None else total * min(day, days) // days

    def invoice(self, month: int) -> Invoice:
        """The invoice issued in timeline `month` (the same whatever `today` is)."""
        if month not in self._invoices:
            self._invoices[month] = self._month(month)
        return self._invoices[month]

    def _month(self, month: int) -> Invoice:
        rng = random.Random(f"month:{self.seed}:{self.index}:{month}")
        period = self.plan_in(month)
        _, _, _, price, included = PLANS[period.plan_index]
        issued = month_start(month) + timedelta(days=self.issue_day - 1)
        lines = [("seats", Decimal(period.seats), price)]
        if month > self.first_month:
            over = max(0, self.envelopes_used(month - 1) - included)
            lines.append(("envelopes Included", Decimal(over), ENVELOPE_OVERAGE_PRICE))
        items = [
            {
                "invoiceItemId": str(item),
                "chargeName": charge,
                "quantity": str(quantity),
                "unitPrice": format_amount(unit),
                "chargeAmount": format_amount(quantity * unit),
                "taxAmount": "0.00",
                "taxExemptAmount": "0.00",
            }
            for item, (charge, quantity, unit) in enumerate(lines, start=1)
        ]
        amount = sum((quantity * unit for _, quantity, unit in lines), _ZERO)
        invoice_id = _uuid(rng)
        due = issued + timedelta(days=NET_DAYS)
        invoice = Invoice(
            {
                "invoiceId": invoice_id,
                "invoiceNumber": f"INV-{self.index + 1:05d}-{month:03d}",
                "invoiceUri": f"/v2.1/accounts/{self.account_id}/billing_invoices/{invoice_id}",
                "amount": format_amount(amount),
                "taxableAmount": format_amount(amount),
                "nonTaxableAmount": "0.00",
                "dueDate": f"{due}T00:00:00Z",
                "pdfAvailable": "true",
                "invoiceItems": items,
            },
            issued,
            due,
            amount,
        )
        invoice.payments = self._schedule(invoice, rng)
        return invoice

    def _schedule(self, invoice: Invoice, rng: random.Random) -> list[Payment]:
        """Payments in full on time (75 %), in full late (15 %), or in two parts, the second late."""
        r = rng.random()
        late = invoice.due + timedelta(days=rng.randrange(1, MAX_LATE_DAYS + 1))
        early = invoice.issued + timedelta(days=rng.randrange(1, NET_DAYS))
        if invoice.due < self.settled_before <= late:
            late = max(early, self.settled_before - timedelta(days=1))
        number = invoice.body["invoiceNumber"]
        if r < 0.75:
            parts = [(early, invoice.amount)]
        elif r < 0.9:
            parts = [(late, invoice.amount)]
        else:
            first = (invoice.amount * rng.randrange(30, 71) / 100).quantize(_CENT, ROUND_DOWN)
            parts = [(early, first), (late, invoice.amount - first)]
        return [
            Payment(_uuid(rng), f"PAY-{number[4:]}-{n}", _at(day, rng), amount, number)
            for n, (day, amount) in enumerate(parts, start=1)
        ]

    # collections (the past-due endpoint's invoices) ---------------------------------------------
    def _collection(self, body: dict[str, Any]) -> Invoice:
        due = date.fromisoformat(str(body["dueDate"])[:10])
        amount, balance = parse_amount(body["amount"]), parse_amount(body["balance"])
        invoice = Invoice(body, due - timedelta(days=NET_DAYS), due, amount, collection=True)
        if balance < amount:  # partly paid, a few days after issue
            rng = random.Random(f"collection:{self.seed}:{body['invoiceId']}")
            paid_at = _at(invoice.issued + timedelta(days=rng.randrange(1, NET_DAYS)), rng)
            invoice.payments.append(
                Payment(
                    _uuid(rng),
                    f"PAY-C{body['invoiceNumber'][4:]}",
                    paid_at,
                    amount - balance,
                    body["invoiceNumber"],
                )
            )
        return invoice

    def collection(self, invoice_id: str) -> Invoice:
        for invoice in self._collections:
            if invoice.invoice_id == invoice_id:
                return invoice
        raise KeyError(invoice_id)

    def record_payment(self, invoice: Invoice, amount: Decimal, today: date) -> None:
        """A payment made through the test API (`pay_invoice`, a lowered `set_balance`)."""
        self._manual += 1
        rng = random.Random(f"manual:{self.seed}:{self.index}:{self._manual}")
        number = invoice.body["invoiceNumber"]
        invoice.payments.append(
            Payment(_uuid(rng), f"PAY-M{self._manual:04d}", _at(today, rng), amount, number)
        )

    # views --------------------------------------------------------------------------------------
    def _monthly(self, today: date, first: int) -> list[Invoice]:
        months = range(max(first, self.first_month), month_of(today) + 1)
        return [i for i in map(self.invoice, months) if i.issued <= today]

    def all_invoices(self, today: date) -> list[Invoice]:
        """Invoices issued by `today`, oldest first."""
        issued = [i for i in self._collections if i.issued <= today]
        issued += self._monthly(today, self.first_month)
        return sorted(issued, key=lambda i: (i.issued, i.body["invoiceNumber"]))

    def past_due(self, today: date) -> list[Invoice]:
        """Invoices with a balance whose due date has passed: collections first, in their order.

        Monthly invoices due before `settled_before` are paid by then, so from that day on only
        the months since are looked at (the default past-due view generates no months at all).
        """
        first = self.first_month
        if today >= self.settled_before:
            first = month_of(self.settled_before - timedelta(days=NET_DAYS))
        candidates = self._collections + self._monthly(today, first)
        return [i for i in candidates if i.due < today and i.balance(today) > 0]

    def payments(self, today: date) -> list[Payment]:
        paid = [
            p for i in self.all_invoices(today) for p in i.payments if p.paid_at.date() <= today
        ]
        return sorted(paid, key=lambda p: (p.paid_at, p.payment_number))
