"""Past-due responses to the three Arrow tables, with the row hashes that SCD2 history keys on."""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from .errors import ApiError, ResponseError
from .parse import (
    ACCOUNT_FIELDS,
    ARROW_TYPES,
    INVOICE_FIELDS,
    INVOICES_KEY,
    ITEM_FIELDS,
    ITEMS_KEY,
    Rule,
    parse_extra,
)

Row = Dict[str, Any]
Column = Tuple[str, pa.DataType, bool]  # name, type, nullable

_NAMING = NamingConvention()
_TEXT = pa.string()
_KEY: Column = ("account_id", _TEXT, False)
_NAME: Column = ("account_name", _TEXT, True)
_UTC = pa.timestamp("us", tz="UTC")
_ERRORS = pa.schema(
    [
        pa.field("account_id", _TEXT, False),
        pa.field("account_name", _TEXT),
        pa.field("snapshot_at", _UTC, False),
        pa.field("http_status", pa.int64()),
        pa.field("error_code", _TEXT),
        pa.field("message", _TEXT, False),
    ]
)
_INVOICE_KEY: Column = ("invoice_id", _TEXT, False)
_LINKAGE: List[Column] = [
    ("_dlt_id", _TEXT, False),
    ("_dlt_parent_id", _TEXT, False),
    ("_dlt_root_id", _TEXT, False),
    ("_dlt_list_idx", pa.int64(), False),
]
_MAX_VALUE_CHARS = 80


@dataclass
class AccountResponse:
    """One account's `billing_invoices_past_due` body, as fetched."""

    account_id: str
    body: Dict[str, Any]
    account_name: Optional[str] = None


@dataclass
class ParsedBatch:
    """Typed tables for a batch of accounts; the last batch of a run names every account it holds."""

    invoices: pa.Table
    items: pa.Table
    snapshots: pa.Table
    errors: pa.Table
    completed_accounts: Optional[List[str]] = None


@lru_cache(maxsize=None)
def column_name(api_field: str) -> str:
    """The destination column of an API field, by dlt's own snake_case convention."""
    return _NAMING.normalize_identifier(api_field)


class _TableBuilder:
    """Collects typed rows and builds one Arrow table: known columns first, new API fields after."""

    def __init__(self, leading: Sequence[Column], rules: Dict[str, Rule], trailing: Sequence[Column]):
        lead = {name for name, _, _ in leading}
        known = [(column_name(f), ARROW_TYPES[r], True) for f, r in rules.items() if column_name(f) not in lead]
        self._columns = [*leading, *known, *trailing]
        self._reserved = {name for name, _, _ in self._columns}
        self._extras: Dict[str, None] = {}
        self.rows: List[Row] = []

    def parse(self, raw: Dict[str, Any], rules: Dict[str, Rule], where: str, skip: str = "") -> Row:
        """Types every field of `raw`; unknown fields become text columns (schema drift)."""
        row: Row = {}
        for key, value in raw.items():
            if key == skip:
                continue
            rule = rules.get(key, parse_extra)
            name = column_name(key)
            if rule is parse_extra:
                name = f"{name}_api" if name in self._reserved else name
                self._extras[name] = None
            try:
                row[name] = rule(value)
            except ValueError as ex:
                shown = repr(value)
                shown = shown if len(shown) <= _MAX_VALUE_CHARS else shown[:_MAX_VALUE_CHARS] + "..."
                raise ResponseError(f"{where}, field {key}: cannot read {shown}: {ex}") from None
        return row

    def to_arrow(self) -> pa.Table:
        fields = [pa.field(name, type_, nullable) for name, type_, nullable in self._columns]
        fields += [pa.field(name, _TEXT) for name in self._extras]
        return pa.Table.from_pylist(self.rows, schema=pa.schema(fields))


def _records(parent: Dict[str, Any], key: str, where: str) -> List[Dict[str, Any]]:
    """A list the API may send missing, null or empty; anything but a list of objects is an error."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ResponseError(f"{where}: {key} must be a list of objects, got {type(value).__name__}")
    return value


def _canonical(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def _row_hash(*parts: Any) -> str:
    """Deterministic content hash: the same data gives the same version, whatever its text form."""
    text = "\x1f".join(
        "\x1e".join(f"{k}={_canonical(v)}" for k, v in sorted(p.items())) if isinstance(p, dict) else _canonical(p)
        for p in parts
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class BatchParser:
    """Parses account responses into one `ParsedBatch`; one instance per batch."""

    def __init__(self, snapshot_at: datetime) -> None:
        self.snapshot_at = snapshot_at
        self.snapshots = _TableBuilder(
            [_KEY, _NAME, ("snapshot_at", _UTC, False)],
            ACCOUNT_FIELDS,
            [("invoice_count", pa.int64(), False)],
        )
        self.invoices = _TableBuilder([_KEY, _INVOICE_KEY], INVOICE_FIELDS, _LINKAGE[:1])
        self.items = _TableBuilder([_KEY, _INVOICE_KEY], ITEM_FIELDS, _LINKAGE)
        self.errors: List[Row] = []

    def add(self, response: AccountResponse) -> None:
        account_id, body = response.account_id, response.body
        where = f"account {account_id}"
        invoices = _records(body, INVOICES_KEY, where)
        snapshot = self.snapshots.parse(body, ACCOUNT_FIELDS, where, skip=INVOICES_KEY)
        versions: Dict[str, str] = {}
        for index, raw in enumerate(invoices):
            self._add_invoice(account_id, index, raw, versions)
        snapshot.update(
            account_id=account_id,
            account_name=response.account_name,
            snapshot_at=self.snapshot_at,
            invoice_count=len(versions),
        )
        self.snapshots.rows.append(snapshot)

    def add_failure(self, account_id: str, account_name: Optional[str], error: ApiError) -> None:
        """An account whose call failed: recorded, its history left untouched."""
        self.errors.append(
            {
                "account_id": account_id,
                "account_name": account_name,
                "snapshot_at": self.snapshot_at,
                "http_status": error.status,
                "error_code": error.code,
                "message": str(error),
            }
        )

    def _add_invoice(self, account_id: str, index: int, raw: Dict[str, Any], versions: Dict[str, str]) -> None:
        invoice_id = raw.get("invoiceId")
        where = f"account {account_id}, invoice {invoice_id or f'#{index}'}"
        if not isinstance(invoice_id, str) or not invoice_id.strip():
            raise ResponseError(f"{where}: invoiceId is missing")
        invoice = self.invoices.parse(raw, INVOICE_FIELDS, where, skip=ITEMS_KEY)
        items = [
            self.items.parse(item, ITEM_FIELDS, f"{where}, item {item.get('invoiceItemId') or f'#{i}'}")
            for i, item in enumerate(_records(raw, ITEMS_KEY, where))
        ]
        version = _row_hash(account_id, invoice, *items)
        if invoice_id in versions:
            if versions[invoice_id] == version:
                return  # an exact repeat in the same response: tolerated, kept once
            raise ResponseError(f"{where}: invoiceId appears twice with different content")
        versions[invoice_id] = version
        invoice.update(account_id=account_id, _dlt_id=version)
        self.invoices.rows.append(invoice)
        for position, item in enumerate(items):
            item.update(
                account_id=account_id,
                invoice_id=invoice_id,
                _dlt_id=_row_hash(version, position),
                _dlt_parent_id=version,
                _dlt_root_id=version,
                _dlt_list_idx=position,
            )
            self.items.rows.append(item)

    @property
    def invoice_count(self) -> int:
        return len(self.invoices.rows)

    def build(self, completed_accounts: Optional[List[str]] = None) -> ParsedBatch:
        return ParsedBatch(
            self.invoices.to_arrow(),
            self.items.to_arrow(),
            self.snapshots.to_arrow(),
            pa.Table.from_pylist(self.errors, schema=_ERRORS),
            completed_accounts,
        )
