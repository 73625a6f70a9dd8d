"""Property-based: random responses within the documented grammar, served over HTTP and loaded for real.

Expected values are computed by the generator from the numbers it formats (never by parse.py):
row counts match the input, every decimal, timestamp and boolean equals the input exactly, every
item joins its invoice, and a second identical run changes nothing but adds one snapshot per account.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Runner
from tests.helpers_reliability import INVOICES, ITEMS, SNAPSHOTS, assert_consistent

MONEY = ("amount", "taxableAmount", "nonTaxableAmount", "balance")


@st.composite
def amounts(draw):
    """(text, exact value): `1234.56`, `1,234.56`, `$1,234.56`, `-12.00`, `-$12.00`, empty."""
    if draw(st.integers(0, 9)) == 0:
        return "", None
    places = draw(st.integers(0, 9))
    value = Decimal(draw(st.integers(-(10**12), 10**12))).scaleb(-places)
    magnitude = abs(value)
    style = draw(st.sampled_from(["plain", "comma", "dollar"]))
    text = f"{magnitude:,f}" if style != "plain" else f"{magnitude:f}"
    sign = "-" if value < 0 else ""
    return (f"{sign}${text}" if style == "dollar" else f"{sign}{text}"), value


@st.composite
def timestamps(draw):
    """(text, exact UTC value): ISO with 0-7 fraction digits, `Z`/offset/none, or a plain date."""
    day = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)))
    if draw(st.booleans()):
        return day.isoformat(), datetime(day.year, day.month, day.day, tzinfo=UTC)
    moment = datetime(
        day.year,
        day.month,
        day.day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    digits = draw(st.integers(0, 7))
    fraction = "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
    )
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    zone = draw(st.sampled_from(["Z", "", "+02:00", "-05:30", "+00:00"]))
    offset = (
        timedelta(0)
        if zone in ("Z", "")
        else (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    )
    text = moment.isoformat() + (f".{fraction}" if fraction else "") + zone
    return text, (moment.replace(microsecond=micros) - offset).replace(tzinfo=UTC)


@st.composite
def booleans(draw):
    if draw(st.integers(0, 9)) == 0:
        return "", None
    value = draw(st.booleans())
    text = "".join(c.upper() if draw(st.booleans()) else c for c in str(value).lower())
    return text, value


@st.composite
def account_bodies(draw, account_id):
    invoices, expected_invoices, expected_items = [], {}, {}
    ids = draw(st.lists(st.uuids(), min_size=0, max_size=4, unique=True))
    for number, invoice_id in enumerate(map(str, ids)):
        raw: dict[str, Any] = {"invoiceId": invoice_id, "invoiceNumber": f"INV-{number:04d}"}
        expected = {}
        for field in MONEY:
            raw[field], expected[field] = draw(amounts())
        raw["dueDate"], expected["dueDate"] = draw(timestamps())
        raw["pdfAvailable"], expected["pdfAvailable"] = draw(booleans())
        raw["invoiceItems"] = []
        for position in range(draw(st.integers(0, 4))):
            item = {
                "invoiceItemId": f"{number}-{position}",
                # any text the text rule accepts: encodable as UTF-8 (no lone surrogate)
                # and no NUL (PostgreSQL cannot store it)
                "chargeName": draw(
                    st.text(
                        st.characters(codec="utf-8", exclude_characters="\x00"),
                        max_size=12,
                    )
                ),
            }
            values = {}
            for field in ("chargeAmount", "quantity", "unitPrice"):
                item[field], values[field] = draw(amounts())
            raw["invoiceItems"].append(item)
            expected_items[(account_id, invoice_id, item["invoiceItemId"])] = (
                values["chargeAmount"],
                values["quantity"],
                values["unitPrice"],
                item["chargeName"],
            )
        invoices.append(raw)
        expected_invoices[(account_id, invoice_id)] = tuple(
            expected[f] for f in (*MONEY, "dueDate", "pdfAvailable")
        )
    body = {
        "billingInvoices": invoices,
        "currencyCode": draw(st.sampled_from(["USD", "EUR", "GBP"])),
    }
    (body["pastDueBalance"], past_due), (body["paymentAllowed"], allowed) = (
        draw(amounts()),
        draw(booleans()),
    )
    return body, expected_invoices, expected_items, (past_due, allowed, len(invoices))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_valid_responses_load_exactly_and_idempotently(sandbox, tmp_path_factory, data):
    """Removed to see it fail: content-only version hashes (`_versions` hashing `snapshot_at` too:
    the identical second run makes new versions; found after ~5 min of examples on 2 cores)."""
    runner = Runner(sandbox, tmp_path_factory.mktemp("example"))
    invoices, items, snapshots = {}, {}, {}
    for account_id in sandbox.account_ids:
        body, account_invoices, account_items, snapshot = data.draw(account_bodies(account_id))
        sandbox.set_response(account_id, body)
        invoices.update(account_invoices)
        items.update(account_items)
        snapshots[account_id] = snapshot

    runner.run()
    loaded_invoices = runner.rows(
        f"SELECT account_id, invoice_id, amount, taxable_amount, non_taxable_amount, balance, due_date, pdf_available"
        f" FROM {INVOICES}"
    )
    assert len(loaded_invoices) == len(invoices)
    assert {(a, i): tuple(rest) for a, i, *rest in loaded_invoices} == invoices
    loaded_items = runner.rows(
        f"SELECT account_id, invoice_id, invoice_item_id, charge_amount, quantity, unit_price, charge_name FROM {ITEMS}"
    )
    assert len(loaded_items) == len(items)
    assert {(a, i, n): tuple(rest) for a, i, n, *rest in loaded_items} == items
    loaded_snapshots = runner.rows(
        f"SELECT account_id, past_due_balance, payment_allowed, invoice_count FROM {SNAPSHOTS}"
    )
    assert {a: tuple(rest) for a, *rest in loaded_snapshots} == snapshots
    assert_consistent(runner)

    first = runner.snapshot()
    runner.run()
    second = runner.snapshot()
    assert second["past_due_invoices"] == first["past_due_invoices"]
    assert second["past_due_invoices__invoice_items"] == first["past_due_invoices__invoice_items"]
    assert len(second["past_due_snapshots"]) == len(first["past_due_snapshots"]) + len(
        sandbox.account_ids
    )
