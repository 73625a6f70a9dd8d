"""Response bodies, decoded a batch at a time: straight to Arrow when they hold nothing unexpected.

Bodies whose fields are all known and all strings (what DocuSign sends) are read by Arrow's JSON
reader, one row per body, at C speed and without holding the GIL; one call for a whole batch of
one-line bodies costs about half of one call per body. Anything else (a number, a new field, a
malformed body) sends the batch to `json`, with numbers as `Decimal`, where the per-value rules and
the error messages that name account, record, field and value take over.
"""

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json

from .client import RawBody
from .errors import ResponseError
from .parse import ACCOUNT_FIELDS, INVOICE_FIELDS, INVOICES_KEY, ITEM_FIELDS, ITEMS_KEY
from .text import as_utf8, check_text, decode, is_clean

_TEXT = pa.string()
_ITEM = pa.struct([(field, _TEXT) for field in ITEM_FIELDS])
_INVOICE = pa.struct([*((field, _TEXT) for field in INVOICE_FIELDS), (ITEMS_KEY, pa.list_(_ITEM))])
BODY_SCHEMA = pa.schema(
    [*((field, _TEXT) for field in ACCOUNT_FIELDS), (INVOICES_KEY, pa.list_(_INVOICE))]
)
_KNOWN_ONLY = pa_json.ParseOptions(explicit_schema=BODY_SCHEMA, unexpected_field_behavior="error")


@dataclass
class AccountResponse:
    """One account's `billing_invoices_past_due` body: its bytes as received (`raw`), or an already
    decoded `body`; `json_body()` gives the object either way."""

    account_id: str
    body: dict[str, Any] | None = None
    account_name: str | None = None
    raw: RawBody | None = None

    def json_body(self) -> dict[str, Any]:
        """The body as exact JSON (numbers as `Decimal`); a clear error when it is not an object."""
        if self.body is None and self.raw is not None:
            content = as_utf8(self.raw.content, self.raw.content_type)
            try:
                body = json.loads(decode(content), parse_float=Decimal)
            except ValueError:
                raise ResponseError(
                    f"account {self.account_id}: the response is not valid JSON"
                    f" ({self.raw.content_type}, {len(self.raw.content)} bytes)"
                ) from None
            if not isinstance(body, dict):
                raise ResponseError(
                    f"account {self.account_id}: expected a JSON object, got {type(body).__name__}"
                )
            if not is_clean(content):
                check_text(body, self.account_id)
            self.body = body
        return self.body or {}


def read_known(responses: Sequence[AccountResponse]) -> pa.Table | None:
    """The bodies as Arrow rows of `BODY_SCHEMA`, one per response in order; None when any body
    holds anything but known fields as strings, or text that is not clean Unicode (or was not
    received as bytes)."""
    contents = [
        as_utf8(r.raw.content, r.raw.content_type)
        for r in responses
        if r.raw is not None and r.body is None
    ]
    if not contents or len(contents) != len(responses) or not all(map(is_clean, contents)):
        return None
    if all(_one_line_object(c) for c in contents):
        return _read(b"\n".join(contents), len(contents))
    tables = []
    for (
        content
    ) in contents:  # pretty-printed bodies: one call each, up to the first Arrow cannot read
        table = _read(content, 1)
        if table is None:
            return None
        tables.append(table)
    return pa.concat_tables(tables)


def _one_line_object(content: bytes) -> bool:
    """Whether the body can share a newline-delimited read: an object without line breaks (JSON
    allows them only between tokens, so a valid body never needs one)."""
    return content.lstrip().startswith(b"{") and b"\n" not in content and b"\r" not in content


def _read(content: bytes, rows: int) -> pa.Table | None:
    """`rows` objects of known string fields, or None. Exactly `rows` rows, so two objects in one
    body (not JSON) never pass, whether read alone or among others that each start with `{`."""
    options = pa_json.ReadOptions(use_threads=False, block_size=max(len(content) + 1, 1 << 16))
    try:
        table = pa_json.read_json(
            io.BytesIO(content), read_options=options, parse_options=_KNOWN_ONLY
        )
    except (ValueError, pa.ArrowException):  # UnicodeDecodeError is a ValueError
        return None
    return table if table.num_rows == rows else None
