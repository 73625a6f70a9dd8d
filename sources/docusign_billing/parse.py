"""Every string-to-type rule of the API in one place.

DocuSign sends every value as a string. A rule returns the typed value (`None` for empty or
missing) or raises `ValueError` with the reason; the caller names account, record and field.

Each typed rule also has a column form (`COLUMN_RULES`) that converts a whole Arrow column at
C speed. It accepts only a strict subset of the rule's grammar and raises `ValueError` for
anything else; the caller then applies the per-value rule, which has the last word on what is
valid and names the offending value.
"""

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import settings

Rule = Callable[[Any], Any]

AMOUNT_PATTERN = r"^(?:[-+]?\$?|\$-)(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)$"
"""A sign and/or a dollar sign, digits with or without thousands commas, a fraction."""
_AMOUNT = re.compile(AMOUNT_PATTERN)
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?)?$",
    re.IGNORECASE,
)
_INTEGER = re.compile(r"^[-+]?\d{1,19}$")
_MAX_INT_DIGITS = settings.DECIMAL_PRECISION - settings.DECIMAL_SCALE
_QUANTUM = Decimal(1).scaleb(-settings.DECIMAL_SCALE)
_EXACT = Context(prec=settings.DECIMAL_PRECISION)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_decimal(value: Any) -> Decimal | None:
    """`1234.56`, `1,234.56`, `$1,234.56`, `-12.00`, `-$1.00`; empty means NULL. Never a float."""
    if _blank(value):
        return None
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not _AMOUNT.match(text):
            raise ValueError("not an amount like 1,234.56")
        number = Decimal(text.replace("$", "").replace(",", ""))
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


def parse_timestamp(value: Any) -> datetime | None:
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
        day.year,
        day.month,
        day.day,
        int(match["h"] or 0),
        int(match["m"] or 0),
        int(match["s"] or 0),
        micros,
        tzinfo=_offset(match["tz"]),
    )
    return moment.astimezone(UTC)


def _offset(text: str | None) -> timezone:
    if not text or text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_bool(value: Any) -> bool | None:
    """`true`/`false` in any case; empty means NULL."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("not true or false")


def parse_integer(value: Any) -> int | None:
    """Counts like `10`, `-1`; empty means NULL."""
    if _blank(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        number = int(value.strip())
        if abs(number) < 2**63:
            return number
        raise ValueError("out of range")
    raise ValueError("not a whole number")


def parse_text(value: Any) -> str | None:
    """Identifiers and names: kept verbatim; a number is accepted as its text."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


def parse_extra(value: Any) -> str | None:
    """A field this version does not know yet: lands as a text column, JSON for structures."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)  # a JSON number, exactly as sent
    return json.dumps(value, default=str, sort_keys=True)


def parse_private_extra(value: Any) -> str | None:
    """`parse_extra` for a resource that holds card, bank or personal details (the plan): JSON
    structures without their sensitive fields (`is_sensitive`), at any depth."""
    return parse_extra(_without_sensitive(value))


def _without_sensitive(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_sensitive(v) for k, v in value.items() if not is_sensitive(str(k))}
    if isinstance(value, list):
        return [_without_sensitive(v) for v in value]
    return value


ARROW_TYPES: dict[Rule, pa.DataType] = {
    parse_decimal: pa.decimal128(settings.DECIMAL_PRECISION, settings.DECIMAL_SCALE),
    parse_timestamp: pa.timestamp("us", tz="UTC"),
    parse_bool: pa.bool_(),
    parse_integer: pa.int64(),
    parse_text: pa.string(),
    parse_extra: pa.string(),
    parse_private_extra: pa.string(),
}

SENSITIVE_FIELD = re.compile(
    r"credit|card|bank|debit|iban|tax_?exempt|address|email|phone|fax|first_?name|last_?name"
    r"|postal|zip|payment_?processor|billing_?agreement|cv_?number|expiration",
    re.IGNORECASE,
)
"""Card, bank, tax-exemption and personal details: in a resource that may hold them (the plan), a
field whose name matches is never stored, at any level (nested JSON included), whatever the API
sends."""


def is_sensitive(api_field: str) -> bool:
    """Whether a field holds card, bank, tax-exemption or personal details (never stored)."""
    return SENSITIVE_FIELD.search(api_field) is not None


# Column forms --------------------------------------------------------------------------------
# not pa.scalar(None): no Python value is converted while this module is imported, so the CLI can
# keep pyarrow from importing pandas first (pipelines/arrow_without_pandas.py)
_NULL_TEXT = pa.nulls(1, pa.string())[0]
_STRICT_TIMESTAMP = (
    r"^\d{4}-\d{2}-\d{2}(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?$"
)
_HAS_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _trimmed(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The text without surrounding blanks, and where it is empty (NULL stays NULL)."""
    text = pc.utf8_trim_whitespace(column)
    return text, pc.equal(text, "")


def _require_all(condition: pa.Array) -> None:
    if not pc.all(condition).as_py():  # NULLs are skipped: they stay NULL
        raise ValueError("a value outside the fast path")


def decimal_column(column: pa.Array) -> pa.Array:
    text, blank = _trimmed(column)
    _require_all(pc.or_(blank, pc.match_substring_regex(text, AMOUNT_PATTERN)))
    digits = pc.replace_substring_regex(text, r"[$,+]", "")
    # Arrow's cast wraps around instead of failing past the precision: bound the digits first
    # (by positions, not regex rewrites: the text is ASCII once it matched the pattern)
    length, point = pc.binary_length(digits), pc.find_substring(digits, ".")
    has_point = pc.greater_equal(point, 0)
    integer_digits = pc.subtract(
        pc.if_else(has_point, point, length), pc.cast(pc.starts_with(digits, "-"), pa.int32())
    )
    if (pc.max(integer_digits).as_py() or 0) > _MAX_INT_DIGITS:
        raise ValueError("too many integer digits")
    if (
        pc.max(pc.if_else(has_point, pc.subtract(length, pc.add(point, 1)), 0)).as_py() or 0
    ) > settings.DECIMAL_SCALE:
        raise ValueError("too many decimal places")
    return pc.cast(pc.if_else(blank, _NULL_TEXT, digits), ARROW_TYPES[parse_decimal])


def timestamp_column(column: pa.Array) -> pa.Array:
    text, blank = _trimmed(column)
    text = pc.utf8_upper(text)
    _require_all(pc.or_(blank, pc.match_substring_regex(text, _STRICT_TIMESTAMP)))
    with_time = pc.if_else(
        pc.equal(pc.utf8_length(text), 10), pc.binary_join_element_wise(text, "T00:00", ""), text
    )
    zoned = pc.if_else(
        pc.match_substring_regex(with_time, _HAS_OFFSET),
        with_time,
        pc.binary_join_element_wise(with_time, "Z", ""),
    )
    nanos = pc.cast(pc.if_else(blank, _NULL_TEXT, zoned), pa.timestamp("ns", tz="UTC"))
    if (pc.min(nanos.cast(pa.int64())).as_py() or 0) < 0:
        raise ValueError("before 1970: sub-microsecond truncation would differ")
    return pc.cast(
        nanos, ARROW_TYPES[parse_timestamp], safe=False
    )  # drops digits below a microsecond


def bool_column(column: pa.Array) -> pa.Array:
    text, blank = _trimmed(column)
    lower = pc.utf8_lower(text)
    _require_all(pc.or_(pc.is_null(lower), pc.is_in(lower, pa.array(["true", "false", ""]))))
    return pc.if_else(blank, pa.scalar(None, pa.bool_()), pc.equal(lower, "true"))


def integer_column(column: pa.Array) -> pa.Array:
    text, blank = _trimmed(column)
    _require_all(pc.or_(blank, pc.match_substring_regex(text, r"^[-+]?\d{1,18}$")))
    return pc.cast(pc.if_else(blank, _NULL_TEXT, text), pa.int64())


def text_column(column: pa.Array) -> pa.Array:
    return column


COLUMN_RULES: dict[Rule, Callable[[pa.Array], pa.Array]] = {
    parse_decimal: decimal_column,
    parse_timestamp: timestamp_column,
    parse_bool: bool_column,
    parse_integer: integer_column,
    parse_text: text_column,
}
"""Column forms of the rules, for columns that arrive as Arrow strings."""
