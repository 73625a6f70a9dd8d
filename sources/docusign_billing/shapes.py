"""The data that flows client -> fetch -> bodies -> tables -> dlt, at the bottom of the import graph.

Every module passes these along; none of them needs anything but the errors module, so no stage
reaches back into an earlier one to name what it receives.
"""

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa

from .errors import ResponseError
from .text import as_utf8, decode, is_clean


@dataclass
class RawBody:
    """A successful response's body as received: decoded where it is parsed, off the HTTP path."""

    content: bytes
    content_type: str


@dataclass
class AccountResponse:
    """One account's response to one resource's call: its bytes as received (`raw`), or an already
    decoded `body`; `json_body()` gives the object either way. A paged or windowed resource gives
    one per page."""

    account_id: str
    body: dict[str, Any] | None = None
    account_name: str | None = None
    raw: RawBody | None = None
    text_checked: bool = True
    """False when the decoded body may hold text that is not valid Unicode (`text.is_clean`
    could not vouch for its bytes): the parser then checks every string with `text.check_text`."""

    def json_body(self, where: str = "") -> dict[str, Any]:
        """The body as exact JSON (numbers as `Decimal`); a clear error, naming `where` (default:
        the account), when it is not an object."""
        where = where or f"account {self.account_id}"
        if self.body is None and self.raw is not None:
            content = as_utf8(self.raw.content, self.raw.content_type)
            try:
                body = json.loads(decode(content), parse_float=Decimal)
            except ValueError:
                raise ResponseError(
                    f"{where}: the response is not valid JSON"
                    f" ({self.raw.content_type}, {len(self.raw.content)} bytes)"
                ) from None
            if not isinstance(body, dict):
                raise ResponseError(f"{where}: expected a JSON object, got {type(body).__name__}")
            self.text_checked = is_clean(content)
            self.body = body
        return self.body or {}


@dataclass
class ParsedBatch:
    """Typed tables of one resource for a batch of accounts; the resource's last batch of a run
    names every account it holds (`completed_accounts`).

    `records` are the resource's records (invoices, payments, the plan, charges), `items` the
    records' nested list (invoice items, seat discounts) or None, `summary` one row per account
    and run (past-due snapshots) or None."""

    resource: str
    records: pa.Table
    items: pa.Table | None
    summary: pa.Table | None
    errors: pa.Table
    completed_accounts: list[str] | None = None

    @property
    def invoices(self) -> pa.Table:
        """Past-due's name for its records."""
        return self.records

    @property
    def snapshots(self) -> pa.Table:
        """Past-due's name for its summary."""
        if self.summary is None:
            raise AttributeError(f"{self.resource} has no summary table")
        return self.summary
