"""Every resource of the source, described once: the one generic path (`tables.py`, `bodies.py`,
`fetch.py`, `__init__.py`) builds each resource's requests, typed tables, error messages, version
hashes and dlt hints from these descriptions, and `docs/data-dictionary.md` is generated from them.

Adding a field is one `Field` line; adding an endpoint is one `Resource`.
"""

from dataclasses import dataclass
from typing import Literal

from . import settings
from .parse import (
    Rule,
    parse_bool,
    parse_decimal,
    parse_extra,
    parse_integer,
    parse_private_extra,
    parse_text,
    parse_timestamp,
)

History = Literal["scd2", "merge", "per_run"]
"""How a resource's records are kept:
- `scd2`: SCD2 history per account (a changed record is a new version; records missing from an
  account's response are retired); items are appended for versions new to the destination.
- `merge`: one row per key, replaced when it changes; a changed record replaces its items.
- `per_run`: one row per account, record and run (`snapshot_at`): a time series."""


@dataclass(frozen=True)
class Field:
    """One API field: its JSON name, the rule that types it, and what it means."""

    api: str
    rule: Rule
    meaning: str


@dataclass(frozen=True)
class Level:
    """One kind of record in a response: where it sits, its fields, and the table it lands in.

    Fields not described here land as text columns (schema drift), unless the level has no table
    or the resource is `private` and the name sensitive (`parse.is_sensitive`)."""

    table: str | None
    """Destination table; None: the fields are read (e.g. paging links) but not stored."""
    label: str
    """What one record is called in error messages ("invoice", "item")."""
    fields: tuple[Field, ...]
    list_field: str = ""
    """The JSON field of the parent that holds these records ("" for the response body)."""
    key: str | None = None
    """The API field that identifies a record among its parent's: required of records (it is
    their key column); items are named by it in errors when present, else by position."""
    single: bool = False
    """The API sends one object under `list_field`, not a list."""
    meaning: str = ""

    @property
    def rules(self) -> dict[str, Rule]:
        return {f.api: f.rule for f in self.fields}


@dataclass(frozen=True)
class Resource:
    """One endpoint: how to call it, what its response holds, how its tables keep history."""

    name: str
    """What `--resources` selects."""
    path: str
    body: Level
    """The response body's own fields; a summary table (one row per account and run) when it
    has a `table`."""
    records: Level
    items: Level | None
    history: History
    params: tuple[tuple[str, str], ...] = ()
    windowed: bool = False
    """Called in `from_date`/`to_date` windows, incrementally (`windows.py`); pages by `nextUri`."""
    count_column: str | None = None
    """Summary column counting the distinct records of the account."""
    private: bool = False
    """The response may hold card, bank, tax-exemption or personal details: fields named like
    them (`parse.is_sensitive`) are dropped at every level, also inside JSON text columns."""

    @property
    def tables(self) -> list[Level]:
        return [level for level in (self.records, self.items, self.body) if level and level.table]

    @property
    def endpoint(self) -> str:
        """The endpoint's own name (`billing_invoices_past_due`), as errors name the resource."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def record_lists(self) -> dict[str, tuple[str, str | None]]:
        """The JSON fields holding lists of records, each with its label and identifying field
        (how `text.check_text` names a record)."""
        levels = [self.records, *([self.items] if self.items else [])]
        return {level.list_field: (level.label, level.key) for level in levels if level.list_field}


_PAGING = (
    Field("nextUri", parse_text, "link to the next page"),
    Field("previousUri", parse_text, "link to the previous page"),
)
_INVOICE_FIELDS = (
    Field("invoiceId", parse_text, "DocuSign's invoice id"),
    Field("invoiceNumber", parse_text, "invoice number shown to customers"),
    Field("invoiceUri", parse_text, "API path of the invoice"),
    Field("amount", parse_decimal, "invoice total"),
    Field("taxableAmount", parse_decimal, "part of the total subject to tax"),
    Field("nonTaxableAmount", parse_decimal, "part of the total not subject to tax"),
    Field("balance", parse_decimal, "amount still owed"),
    Field("dueDate", parse_timestamp, "payment due date (UTC)"),
    Field("pdfAvailable", parse_bool, "whether a PDF of the invoice can be fetched"),
)
_ITEM_FIELDS = (
    Field("invoiceItemId", parse_text, "id of the line"),
    Field("chargeName", parse_text, "kind of charge (seats, envelopes, ...)"),
    Field("chargeAmount", parse_decimal, "amount of the line"),
    Field("quantity", parse_decimal, "units billed"),
    Field("unitPrice", parse_decimal, "price per unit"),
)
_ITEMS_MEANING = "line items of an invoice version"

PAST_DUE = Resource(
    name="past_due",
    path=settings.PAST_DUE_PATH,
    body=Level(
        settings.SNAPSHOTS_TABLE,
        "account",
        (
            Field("currencyCode", parse_text, "ISO 4217 currency of the balances"),
            Field("pastDueBalance", parse_decimal, "total amount overdue"),
            Field("accountBalance", parse_decimal, "the account's balance"),
            Field("paymentAllowed", parse_bool, "whether the overdue amount can be paid by API"),
        ),
        meaning="what each account had past due at each run",
    ),
    records=Level(
        settings.INVOICES_TABLE,
        "invoice",
        _INVOICE_FIELDS,
        list_field="billingInvoices",
        key="invoiceId",
        meaning="past-due invoices, SCD2 history: a version per change",
    ),
    items=Level(
        settings.ITEMS_TABLE,
        "item",
        _ITEM_FIELDS,
        list_field="invoiceItems",
        key="invoiceItemId",
        meaning=_ITEMS_MEANING,
    ),
    history="scd2",
    count_column="invoice_count",
)

INVOICES = Resource(
    name="billing_invoices",
    path="/v2.1/accounts/{account_id}/billing_invoices",
    body=Level(None, "account", _PAGING),
    records=Level(
        "billing_invoices",
        "invoice",
        _INVOICE_FIELDS,
        list_field="billingInvoices",
        key="invoiceId",
        meaning="every invoice, its latest state",
    ),
    items=Level(
        "billing_invoices__invoice_items",
        "item",
        (
            *_ITEM_FIELDS,
            Field("taxAmount", parse_decimal, "tax on the line"),
            Field("taxExemptAmount", parse_decimal, "tax-exempt part of the line"),
        ),
        list_field="invoiceItems",
        key="invoiceItemId",
        meaning="line items of an invoice's latest state",
    ),
    history="merge",
    windowed=True,
)

PAYMENTS = Resource(
    name="billing_payments",
    path="/v2.1/accounts/{account_id}/billing_payments",
    body=Level(None, "account", _PAGING),
    records=Level(
        "billing_payments",
        "payment",
        (
            Field("paymentId", parse_text, "DocuSign's payment id"),
            Field("paymentNumber", parse_text, "payment reference number"),
            Field("paymentDate", parse_timestamp, "when the payment was made (UTC)"),
            Field("amount", parse_decimal, "amount paid"),
            Field("description", parse_text, "free-text description"),
        ),
        list_field="billingPayments",
        key="paymentId",
        meaning="every payment",
    ),
    items=None,
    history="merge",
    windowed=True,
)

PLAN = Resource(
    name="billing_plan",
    path="/v2.1/accounts/{account_id}/billing_plan",
    params=(
        ("include_credit_card_information", "false"),
        ("include_downgrade_information", "false"),
        ("include_metadata", "true"),
        ("include_successor_plans", "false"),
        ("include_tax_exempt_id", "false"),
    ),
    # the body holds card, bank and address details: only `billingPlan` is read, nothing else
    body=Level(None, "account", ()),
    records=Level(
        "billing_plan",
        "plan",
        (
            Field("planId", parse_text, "DocuSign's plan id"),
            Field("planName", parse_text, "plan name"),
            Field("planClassification", parse_text, "business, corporate, enterprise, free, ..."),
            Field("paymentCycle", parse_text, "Monthly or Annually"),
            Field("paymentMethod", parse_text, "CreditCard, PurchaseOrder, ... (the kind only)"),
            Field("currencyCode", parse_text, "ISO 4217 currency of the plan"),
            Field("includedSeats", parse_integer, "seats included"),
            Field("perSeatPrice", parse_decimal, "price per seat"),
            Field("otherDiscountPercent", parse_decimal, "extra discount in percent"),
            Field("supportPlanFee", parse_decimal, "support plan fee"),
            Field("supportIncidentFee", parse_decimal, "fee per support incident"),
            Field("enableSupport", parse_bool, "whether support is part of the plan"),
            Field("isDowngrade", parse_bool, "whether downgraded from a premium plan"),
            Field("canUpgrade", parse_bool, "whether the plan can be upgraded by API"),
            Field("planStartDate", parse_timestamp, "when the account started on this plan"),
            Field("renewalDate", parse_timestamp, "next renewal"),
            Field("renewalStatus", parse_text, "auto, queued_for_close, queued_for_downgrade"),
            Field("planFeatureSets", parse_private_extra, "feature sets and their fees (JSON)"),
        ),
        list_field="billingPlan",
        key="planId",
        single=True,
        meaning="each account's plan, SCD2 history: a version per plan change",
    ),
    items=Level(
        "billing_plan__seat_discounts",
        "seat discount",
        (
            Field("beginSeatCount", parse_integer, "first seat count of the band"),
            Field("endSeatCount", parse_integer, "last seat count of the band"),
            Field("discountPercent", parse_decimal, "discount in percent"),
        ),
        list_field="seatDiscounts",
        meaning="volume discounts by seat band of a plan version",
    ),
    history="scd2",
    private=True,
)

CHARGES = Resource(
    name="billing_charges",
    path="/v2.1/accounts/{account_id}/billing_charges",
    body=Level(None, "account", ()),
    records=Level(
        "billing_charges",
        "charge",
        (
            Field("chargeName", parse_text, "kind of charge (seats, envelopes, ...)"),
            Field("chargeType", parse_text, "recurring, usage, ..."),
            Field("chargeUnitOfMeasure", parse_text, "unit the charge counts"),
            Field("includedQuantity", parse_decimal, "units included in the plan"),
            Field("usedQuantity", parse_decimal, "units used so far"),
            Field("allowedQuantity", parse_text, "most units allowed (a number or unlimited)"),
            Field("incrementalQuantity", parse_text, "reserved by DocuSign"),
            Field("unitPrice", parse_decimal, "base unit price"),
            Field("blocked", parse_bool, "whether the charge is blocked for the account"),
            Field("firstEffectiveDate", parse_timestamp, "start of the charge's validity"),
            Field("lastEffectiveDate", parse_timestamp, "end of the charge's validity"),
            Field("discounts", parse_extra, "quantity discounts (JSON)"),
            Field("prices", parse_extra, "tiered prices (JSON)"),
        ),
        list_field="billingChargeItems",
        key="chargeName",
        meaning="each account's charges and usage at each run",
    ),
    items=None,
    history="per_run",
)

RESOURCES: dict[str, Resource] = {r.name: r for r in (PAST_DUE, INVOICES, PAYMENTS, PLAN, CHARGES)}
