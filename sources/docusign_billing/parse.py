"""Every string-to-type rule of the API in one place.

DocuSign sends every value as a string. A rule returns the typed value (`None` for empty or
missing) or raises `ValueError` with the reason; the caller names account, record and field.
"""

import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Callable, Dict, Optional

import pyarrow as pa

from . import settings

Rule = Callable[[Any], Any]

_AMOUNT = re.compile(
    r"^(?P<sign>[-+]?)\s*\$?\s*(?P<sign2>-?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<frac>\.\d+)?$"
)
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?)?$",
    re.IGNORECASE,
)
_MAX_INT_DIGITS = settings.DECIMAL_PRECISION - settings.DECIMAL_SCALE
_QUANTUM = Decimal(1).scaleb(-settings.DECIMAL_SCALE)
_EXACT = Context(prec=settings.DECIMAL_PRECISION)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_decimal(value: Any) -> Optional[Decimal]:
    """`1234.56`, `1,234.56`, `$1,234.56`, `-12.00`, `-$1.00`; empty means NULL. Never a float."""
    if _blank(value):
        return None
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, str):
        match = _AMOUNT.match(value.strip())
        if not match or not (match["int"] or match["frac"]) or (match["sign"] and match["sign2"]):
            raise ValueError("not an amount like 1,234.56")
        digits = (match["int"] or "0").replace(",", "") + (match["frac"] or "")
        negative = "-" in (match["sign"] + match["sign2"])
        number = Decimal(("-" if negative else "") + digits)
    else:
        raise ValueError(f"expected a string amount, got {type(value).__name__}")
    try:
        exact = number.quantize(_QUANTUM, context=_EXACT)
    except InvalidOperation:
        raise ValueError("too many digits") from None
    if exact != number:
        raise ValueError(f"more than {settings.DECIMAL_SCALE} decimal places")
    if exact.adjusted() >= _MAX_INT_DIGITS:
        raise ValueError(f"more than {_MAX_INT_DIGITS} integer digits")
    return number


def parse_timestamp(value: Any) -> Optional[datetime]:
    """ISO-8601 with or without fraction (up to 7+ digits), `Z` or offset, or a plain date.

    The result is UTC; a value without offset is taken as UTC (DocuSign's own convention).
    Digits below a microsecond are dropped: no destination stores them.
    """
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string date, got {type(value).__name__}")
    match = _TIMESTAMP.match(value.strip())
    if not match:
        raise ValueError("not an ISO-8601 date or timestamp")
    day = date.fromisoformat(match["date"])  # raises for 2024-02-31
    micros = int((match["f"] or "0")[:6].ljust(6, "0"))
    moment = datetime(
        day.year, day.month, day.day,
        int(match["h"] or 0), int(match["m"] or 0), int(match["s"] or 0), micros,
        tzinfo=_offset(match["tz"]),
    )
    return moment.astimezone(timezone.utc)


def _offset(text: Optional[str]) -> timezone:
    if not text or text.upper() == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_bool(value: Any) -> Optional[bool]:
    """`true`/`false` in any case; empty means NULL."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("not true or false")


def parse_text(value: Any) -> Optional[str]:
    """Identifiers and names: kept verbatim; a number is accepted as its text."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


def parse_extra(value: Any) -> Optional[str]:
    """A field this version does not know yet: lands as a text column, JSON for structures."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)  # a JSON number, exactly as sent
    return json.dumps(value, default=str, sort_keys=True)


ARROW_TYPES: Dict[Rule, pa.DataType] = {
    parse_decimal: pa.decimal128(settings.DECIMAL_PRECISION, settings.DECIMAL_SCALE),
    parse_timestamp: pa.timestamp("us", tz="UTC"),
    parse_bool: pa.bool_(),
    parse_text: pa.string(),
    parse_extra: pa.string(),
}

ACCOUNT_FIELDS: Dict[str, Rule] = {
    "currencyCode": parse_text,
    "pastDueBalance": parse_decimal,
    "accountBalance": parse_decimal,
    "paymentAllowed": parse_bool,
}
INVOICE_FIELDS: Dict[str, Rule] = {
    "invoiceId": parse_text,
    "invoiceNumber": parse_text,
    "invoiceUri": parse_text,
    "amount": parse_decimal,
    "taxableAmount": parse_decimal,
    "nonTaxableAmount": parse_decimal,
    "balance": parse_decimal,
    "dueDate": parse_timestamp,
    "pdfAvailable": parse_bool,
}
ITEM_FIELDS: Dict[str, Rule] = {
    "invoiceItemId": parse_text,
    "chargeName": parse_text,
    "chargeAmount": parse_decimal,
    "quantity": parse_decimal,
    "unitPrice": parse_decimal,
}
INVOICES_KEY = "billingInvoices"
ITEMS_KEY = "invoiceItems"
