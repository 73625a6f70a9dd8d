"""Past-due responses to the typed Arrow tables, with the row hashes that SCD2 history keys on.

Values are collected column by column and typed a whole column at a time (`parse.COLUMN_RULES`);
a column that leaves the fast path is typed value by value, which also names a bad value's
account, invoice, item and field. A batch whose bodies Arrow read (`bodies.py`) is flattened into
those columns without a Python object per value; any other batch is collected record by record.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .bodies import AccountResponse, read_known
from .dlt_internals import NamingConvention
from .errors import ApiError, ResponseError
from .parse import (
    ACCOUNT_FIELDS,
    ARROW_TYPES,
    COLUMN_RULES,
    INVOICE_FIELDS,
    INVOICES_KEY,
    ITEM_FIELDS,
    ITEMS_KEY,
    Rule,
    parse_extra,
)

Column = tuple[str, pa.DataType, bool]  # name, type, nullable
Where = Callable[[int], str]  # row -> "account A, invoice I[, item J]"

_NAMING = NamingConvention()
_TEXT = pa.string()
_UTC = pa.timestamp("us", tz="UTC")
_KEY: Column = ("account_id", _TEXT, False)
_NAME: Column = ("account_name", _TEXT, True)
_INVOICE_KEY: Column = ("invoice_id", _TEXT, False)
_VERSION: Column = ("_dlt_id", _TEXT, False)
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
_RESERVED = {
    "_dlt_id",
    "_dlt_parent_id",
    "_dlt_root_id",
    "_dlt_list_idx",
    "_dlt_load_id",
    "_dlt_valid_from",
    "_dlt_valid_to",
    "invoice_count",
}
"""Columns this package writes besides the API's fields: a new API field never takes their name."""
_MAX_VALUE_CHARS = 80
_NULL = "\x00"  # stands for NULL in the hashed text, where "" is a value


@dataclass
class ParsedBatch:
    """Typed tables for a batch of accounts; the last batch of a run names every account it holds."""

    invoices: pa.Table
    items: pa.Table
    snapshots: pa.Table
    errors: pa.Table
    completed_accounts: list[str] | None = None


@cache
def column_name(api_field: str) -> str:
    """The destination column of an API field, by dlt's own snake_case convention."""
    return _NAMING.normalize_identifier(api_field)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[:_MAX_VALUE_CHARS] + "..."


def _typed(values: pa.Array | list[Any], rule: Rule, api_field: str, where: Where) -> pa.Array:
    """One column (Arrow text, or the values as sent) typed by its rule: whole-column fast path,
    else value by value."""
    column_rule = COLUMN_RULES.get(rule)
    if column_rule is not None:
        try:
            return column_rule(
                values if isinstance(values, pa.Array) else pa.array(values, type=_TEXT)
            )
        except (ValueError, TypeError, pa.ArrowException):
            pass  # not all plain strings in the fast grammar: the per-value rule decides
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    typed = []
    for row, value in enumerate(values):
        try:
            typed.append(rule(value))
        except ValueError as ex:
            raise ResponseError(
                f"{where(row)}, field {api_field}: cannot read {_shown(value)}: {ex}"
            ) from None
    return pa.array(typed, type=ARROW_TYPES[rule])


class _Columns:
    """Records of one type, typed column by column: known fields first, new API fields after."""

    def __init__(self, leading: Sequence[Column], rules: dict[str, Rule], skip: str = "") -> None:
        lead = {name for name, _, _ in leading}
        self.rules = {f: r for f, r in rules.items() if column_name(f) not in lead}
        self.leading = list(leading)
        self.reserved = lead | {column_name(f) for f in rules} | _RESERVED
        self.not_extra = {skip} | set(rules)
        self.text_struct = pa.struct([(f, _TEXT) for f in self.rules])
        self.records: list[dict[str, Any]] = []
        self.text: pa.StructArray | None = None
        """The records' known fields as Arrow text, when they came from Arrow-read bodies."""

    @property
    def count(self) -> int:
        return len(self.records) if self.text is None else len(self.text)

    def value(self, row: int, api_field: str) -> Any:
        return (
            self.records[row].get(api_field)
            if self.text is None
            else self.text.field(api_field)[row].as_py()
        )

    def typed(self, where: Where) -> dict[str, pa.Array]:
        """Every API column typed, under its destination name (a new field that collides with a
        known column gets an `_api` suffix)."""
        records = self.records
        text = self.text if self.text is not None else self._known_as_text()
        columns = {
            column_name(f): _typed(
                text.field(f) if text is not None else [r.get(f) for r in records], rule, f, where
            )
            for f, rule in self.rules.items()
        }
        seen: set = set()
        for record in records:
            seen.update(record)
        for api_field in sorted(seen - self.not_extra):
            name = column_name(api_field)
            values = [r.get(api_field) for r in records]
            columns[f"{name}_api" if name in self.reserved else name] = _typed(
                values, parse_extra, api_field, where
            )
        return columns

    def _known_as_text(self) -> pa.StructArray | None:
        """The known fields of all records as Arrow text in one pass at C speed (a missing field
        is NULL); None when some value is not a string, for the per-value rules to judge."""
        try:
            return pa.array(self.records, type=self.text_struct)
        except (TypeError, pa.ArrowException):
            return None

    def table(
        self,
        leading: dict[str, pa.Array],
        typed: dict[str, pa.Array],
        trailing: dict[str, tuple[pa.Array, Column]],
    ) -> pa.Table:
        fields, arrays = [], []
        for name, type_, nullable in self.leading:
            fields.append(pa.field(name, type_, nullable))
            arrays.append(leading[name])
        for name, array in typed.items():
            fields.append(pa.field(name, array.type))
            arrays.append(array)
        for name, (array, (_, type_, nullable)) in trailing.items():
            fields.append(pa.field(name, type_, nullable))
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _hash_text(typed: dict[str, pa.Array], known: Sequence[str]) -> pa.Array:
    """Each row's typed values as text: equal values give equal text whatever the API's format.

    New API fields count only where they hold a value, so a field appearing elsewhere in the
    batch does not make new versions of unchanged rows.
    """
    text = pc.binary_join_element_wise(
        *[pc.fill_null(pc.cast(typed[n], _TEXT), _NULL) for n in known], "\x1f"
    )
    extras = [
        pc.fill_null(pc.binary_join_element_wise(pa.scalar(f"\x1f{name}="), typed[name], ""), "")
        for name in sorted(set(typed) - set(known))
    ]
    return pc.binary_join_element_wise(text, *extras, "")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _records(parent: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """A list the API may send missing, null or empty; anything but a list of objects is an error."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not set(map(type, value)) <= {dict}:
        raise ResponseError(f"{where}: {key} must be a list of objects, got {type(value).__name__}")
    return value


class BatchParser:
    """Collects account responses and types them into one `ParsedBatch`; one instance per batch.

    Items of the versions in `loaded_versions` are left out (the destination holds them), and
    every item row carries the run's `load_id` (`_dlt_load_id`).
    """

    def __init__(
        self,
        snapshot_at: datetime,
        load_id: str | None = None,
        loaded_versions: pa.Array | None = None,
    ) -> None:
        self.snapshot_at = snapshot_at
        self.load_id = load_id
        self.loaded_versions = loaded_versions
        self.snapshots = _Columns(
            [_KEY, _NAME, ("snapshot_at", _UTC, False)], ACCOUNT_FIELDS, skip=INVOICES_KEY
        )
        self.invoices = _Columns([_KEY, _INVOICE_KEY], INVOICE_FIELDS, skip=ITEMS_KEY)
        self.items = _Columns([_KEY, _INVOICE_KEY], ITEM_FIELDS)
        self.accounts: list[tuple[str, str | None, int]] = []  # id, name, distinct invoices
        self.invoice_rows: list[tuple[str, str]] = []  # account, invoice id
        self.item_parents: list[int] = []  # invoice row of each item
        self.item_positions: list[int] = []  # its place in the invoice's list
        self.item_starts: list[int] = [
            0
        ]  # items of invoice r: rows item_starts[r]:item_starts[r + 1]
        self.errors: list[dict[str, Any]] = []
        self.responses: list[AccountResponse] = []  # decoded together in build()
        self.size = 0
        """Bytes of the responses received: what fills a batch (`settings.BATCH_BYTES`)."""

    def add(self, response: AccountResponse) -> None:
        self.responses.append(response)
        self.size += len(response.raw.content) if response.raw is not None else 0

    def _add_record(self, account_id: str, body: dict[str, Any], account_name: str | None) -> None:
        invoices = _records(body, INVOICES_KEY, f"account {account_id}")
        ids = set()
        for index, invoice in enumerate(invoices):
            invoice_id = invoice.get("invoiceId")
            where = f"account {account_id}, invoice {invoice_id or f'#{index}'}"
            if not isinstance(invoice_id, str) or not invoice_id.strip():
                raise ResponseError(f"{where}: invoiceId is missing")
            items = _records(invoice, ITEMS_KEY, where)
            self.item_parents += [self.invoices.count] * len(items)
            self.item_positions += range(len(items))
            self.invoices.records.append(invoice)
            self.invoice_rows.append((account_id, invoice_id))
            self.items.records += items
            self.item_starts.append(self.items.count)
            ids.add(invoice_id)
        self.snapshots.records.append(body)
        self.accounts.append((account_id, account_name, len(ids)))

    def _flatten_arrow(self, body: pa.Table) -> bool:
        """The responses, read by Arrow into `body`, as the columns and row bookkeeping
        `_add_record` builds; False (nothing changed) when a case needs the record path: a null in
        a list, a blank invoiceId."""
        body = body.combine_chunks()
        invoice_lists = body.column(INVOICES_KEY).chunk(0)
        invoices = pc.list_flatten(invoice_lists)
        item_lists = invoices.field(ITEMS_KEY)
        items = pc.list_flatten(item_lists)
        ids = invoices.field("invoiceId")
        if invoices.null_count or items.null_count or ids.null_count:
            return False
        if not pc.all(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0)).as_py():
            return False
        owners = pc.list_parent_indices(invoice_lists)
        account_ids = pa.array([r.account_id for r in self.responses], _TEXT)
        self.invoice_rows = list(zip(pc.take(account_ids, owners).to_pylist(), ids.to_pylist()))
        self.item_starts = [
            0,
            *accumulate(pc.fill_null(pc.list_value_length(item_lists), 0).to_pylist()),
        ]
        parents = pc.list_parent_indices(item_lists)
        self.item_parents = parents.to_pylist()
        first_of_parent = pc.take(pa.array(self.item_starts[:-1], pa.int64()), parents)
        self.item_positions = pc.subtract(
            pa.array(range(len(items)), pa.int64()), first_of_parent
        ).to_pylist()
        distinct = (
            pa.table({"owner": owners, "id": ids})
            .group_by("owner")
            .aggregate([("id", "count_distinct")])
        )
        counts = dict(zip(distinct["owner"].to_pylist(), distinct["id_count_distinct"].to_pylist()))
        self.accounts = [
            (r.account_id, r.account_name, counts.get(row, 0))
            for row, r in enumerate(self.responses)
        ]
        self.snapshots.text = pa.StructArray.from_arrays(
            [body.column(f).chunk(0) for f in ACCOUNT_FIELDS], list(ACCOUNT_FIELDS)
        )
        self.invoices.text, self.items.text = invoices, items
        return True

    def add_failure(self, account_id: str, account_name: str | None, error: ApiError) -> None:
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

    def _invoice_where(self, row: int) -> str:
        account_id, invoice_id = self.invoice_rows[row]
        return f"account {account_id}, invoice {invoice_id}"

    def _item_where(self, row: int) -> str:
        item_id = self.items.value(row, "invoiceItemId") or f"#{self.item_positions[row]}"
        return f"{self._invoice_where(self.item_parents[row])}, item {item_id}"

    def build(self, completed_accounts: list[str] | None = None) -> ParsedBatch:
        """Types the batch; raises `ResponseError` naming account, record, field and value."""
        known = read_known(self.responses)
        if known is None or not self._flatten_arrow(known):
            for response in self.responses:
                self._add_record(response.account_id, response.json_body(), response.account_name)
        snapshots = self._snapshots()
        invoice_typed = self.invoices.typed(self._invoice_where)
        item_typed = self.items.typed(self._item_where)
        accounts = pa.array([a for a, _ in self.invoice_rows], _TEXT)
        invoice_ids = pa.array([i for _, i in self.invoice_rows], _TEXT)
        versions = self._versions(accounts, invoice_ids, invoice_typed, item_typed)
        keep = self._first_of_each_invoice(versions)
        invoices = self.invoices.table(
            {"account_id": accounts, "invoice_id": invoice_ids},
            invoice_typed,
            {"_dlt_id": (pa.array(versions, _TEXT), _VERSION)},
        )
        parents = pa.array(self.item_parents, pa.int64())
        positions = pa.array(self.item_positions, pa.int64())
        item_versions = pc.take(pa.array(versions, _TEXT), parents)
        items = self.items.table(
            {"account_id": pc.take(accounts, parents), "invoice_id": pc.take(invoice_ids, parents)},
            item_typed,
            {
                "_dlt_id": (
                    pc.binary_join_element_wise(item_versions, pc.cast(positions, _TEXT), "-"),
                    _VERSION,
                ),
                "_dlt_parent_id": (item_versions, ("_dlt_parent_id", _TEXT, False)),
                "_dlt_root_id": (item_versions, ("_dlt_root_id", _TEXT, False)),
                "_dlt_list_idx": (positions, ("_dlt_list_idx", pa.int64(), False)),
                "_dlt_load_id": (
                    pa.repeat(pa.scalar(self.load_id, _TEXT), len(positions)),
                    ("_dlt_load_id", _TEXT, True),
                ),
            },
        )
        item_keep = None
        if keep is not None:
            invoices = invoices.filter(pa.array(keep))
            item_keep = pc.take(pa.array(keep), parents)
        if self.loaded_versions is not None:
            new = pc.invert(pc.is_in(item_versions, value_set=self.loaded_versions))
            item_keep = new if item_keep is None else pc.and_(item_keep, new)
        if item_keep is not None:
            items = items.filter(item_keep)
        return ParsedBatch(
            invoices,
            items,
            snapshots,
            pa.Table.from_pylist(self.errors, schema=_ERRORS),
            completed_accounts,
        )

    def _snapshots(self) -> pa.Table:
        typed = self.snapshots.typed(lambda row: f"account {self.accounts[row][0]}")
        return self.snapshots.table(
            {
                "account_id": pa.array([a for a, _, _ in self.accounts], _TEXT),
                "account_name": pa.array([n for _, n, _ in self.accounts], _TEXT),
                "snapshot_at": pa.array([self.snapshot_at] * len(self.accounts), _UTC),
            },
            typed,
            {
                "invoice_count": (
                    pa.array([c for _, _, c in self.accounts], pa.int64()),
                    ("invoice_count", pa.int64(), False),
                )
            },
        )

    def _versions(
        self,
        accounts: pa.Array,
        invoice_ids: pa.Array,
        invoice_typed: dict[str, pa.Array],
        item_typed: dict[str, pa.Array],
    ) -> list[str]:
        """Content hash of each invoice with its items: a changed value is a new version.

        Hashed text: account, invoice id, the invoice's values, then each item's values, joined
        by \\x1d (nothing after the invoice's values when it has no items)."""
        invoice_text = _hash_text(invoice_typed, [column_name(f) for f in self.invoices.rules])
        item_text = _hash_text(item_typed, [column_name(f) for f in self.items.rules])
        starts = pa.array(self.item_starts, pa.int32())
        per_invoice = pc.binary_join(pa.ListArray.from_arrays(starts, item_text), "\x1d")
        head = pc.binary_join_element_wise(accounts, invoice_ids, invoice_text, "\x1d")
        has_items = pc.greater(pc.subtract(starts[1:], starts[:-1]), 0)
        text = pc.if_else(has_items, pc.binary_join_element_wise(head, per_invoice, "\x1d"), head)
        return [_digest(data) for data in pc.cast(text, pa.binary()).to_pylist()]

    def _first_of_each_invoice(self, versions: list[str]) -> list[bool] | None:
        """An exact repeat of an invoice in one response is kept once; a differing one is an error.

        Returns the rows to keep, or None when there is no repeat."""
        seen: dict[tuple[str, str], str] = {}
        keep = []
        for row, (key, version) in enumerate(zip(self.invoice_rows, versions)):
            if key not in seen:
                seen[key] = version
                keep.append(True)
            elif seen[key] == version:
                keep.append(False)
            else:
                raise ResponseError(
                    f"{self._invoice_where(row)}: invoiceId appears twice with different content"
                )
        return None if all(keep) else keep
