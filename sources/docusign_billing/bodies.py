"""Response bodies, decoded once: straight to Arrow when they hold nothing unexpected.

A body whose fields are all known and all strings (what DocuSign sends) is read by Arrow's JSON
reader into one row of typed-as-text columns, at C speed and without holding the GIL, so the
fetching threads decode in parallel with the parser. Anything else (a number, a new field, a
malformed body) is decoded by `json` with numbers as `Decimal`, where the per-value rules and the
error messages that name account, record, field and value take over.
"""

import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Dict, Optional

import pyarrow as pa
import pyarrow.json as pa_json

from .client import RawBody
from .errors import ResponseError
from .parse import ACCOUNT_FIELDS, INVOICE_FIELDS, INVOICES_KEY, ITEM_FIELDS, ITEMS_KEY

_TEXT = pa.string()
_ITEM = pa.struct([(field, _TEXT) for field in ITEM_FIELDS])
_INVOICE = pa.struct([*((field, _TEXT) for field in INVOICE_FIELDS), (ITEMS_KEY, pa.list_(_ITEM))])
BODY_SCHEMA = pa.schema([*((field, _TEXT) for field in ACCOUNT_FIELDS), (INVOICES_KEY, pa.list_(_INVOICE))])
_KNOWN_ONLY = pa_json.ParseOptions(explicit_schema=BODY_SCHEMA, unexpected_field_behavior="error")


@dataclass
class AccountResponse:
    """One account's decoded `billing_invoices_past_due` body: `table` (one row of `BODY_SCHEMA`)
    when Arrow could read it, else `body`; `json_body()` gives the object either way."""

    account_id: str
    body: Optional[Dict[str, Any]] = None
    account_name: Optional[str] = None
    table: Optional[pa.Table] = None
    content: bytes = b""

    def json_body(self) -> Dict[str, Any]:
        if self.body is None:
            self.body = json.loads(self.content, parse_float=Decimal)
        return self.body


def decode(account_id: str, raw: RawBody, account_name: Optional[str] = None) -> AccountResponse:
    """Arrow when the body holds only known fields as strings, else exact JSON (or a clear error)."""
    table = read_known(raw.content)
    if table is not None:
        return AccountResponse(account_id, account_name=account_name, table=table, content=raw.content)
    try:
        body = json.loads(raw.content, parse_float=Decimal)
    except ValueError:
        raise ResponseError(
            f"account {account_id}: the response is not valid JSON ({raw.content_type}, {len(raw.content)} bytes)"
        ) from None
    if not isinstance(body, dict):
        raise ResponseError(f"account {account_id}: expected a JSON object, got {type(body).__name__}")
    return AccountResponse(account_id, body, account_name)


def read_known(content: bytes) -> Optional[pa.Table]:
    """The body as one Arrow row, or None when it holds anything but known fields as strings."""
    options = pa_json.ReadOptions(use_threads=False, block_size=max(len(content) + 1, 1 << 16))
    try:
        table = pa_json.read_json(io.BytesIO(content), read_options=options, parse_options=_KNOWN_ONLY)
    except (ValueError, pa.ArrowException):  # UnicodeDecodeError is a ValueError
        return None
    return table if table.num_rows == 1 else None  # two objects in one body are not JSON
