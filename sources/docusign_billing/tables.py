"""Responses of any resource to its typed Arrow tables, with the version hashes history keys on.

One path for every resource, driven by its description (`resources.py`): values are collected
column by column and typed a whole column at a time (`parse.COLUMN_RULES`); a column that leaves
the fast path is typed value by value, which also names a bad value's account, resource, record,
item and field. A batch whose bodies Arrow read (`bodies.py`) is flattened into those columns
without a Python object per value (a thin adapter: it fills exactly what the record path fills,
pinned by `tests/test_parse.py`); any other batch is collected record by record.
"""

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from itertools import accumulate
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .bodies import read_known
from .dlt_internals import NamingConvention
from .errors import ApiError, ResponseError
from .parse import (
    ARROW_TYPES,
    COLUMN_RULES,
    Rule,
    is_sensitive,
    parse_extra,
    parse_private_extra,
)
from .resources import PAST_DUE, Level, Resource
from .shapes import AccountResponse, ParsedBatch
from .text import check_text

Column = tuple[str, pa.DataType, bool]  # name, type, nullable
Where = Callable[[int], str]  # row -> "account A, <resource> invoice I[, item J]"

_NAMING = NamingConvention()
_TEXT = pa.string()
_UTC = pa.timestamp("us", tz="UTC")
_KEY: Column = ("account_id", _TEXT, False)
_NAME: Column = ("account_name", _TEXT, True)
_SNAPSHOT_AT: Column = ("snapshot_at", _UTC, False)
_VERSION: Column = ("_dlt_id", _TEXT, False)
CLEARS_ITEMS = "_clears_items"
"""Items column of a `merge` resource (dlt's `hard_delete` hint): TRUE only on the marker row a
record without items sends, which deletes the record's earlier items and is itself never stored;
NULL on every item row (so always NULL in the destination)."""
_ERRORS = pa.schema(
    [
        pa.field("account_id", _TEXT, False),
        pa.field("account_name", _TEXT),
        pa.field("snapshot_at", _UTC, False),
        pa.field("http_status", pa.int64()),
        pa.field("error_code", _TEXT),
        pa.field("message", _TEXT, False),
        # part of the table's key, so not null here (dlt warned on every run with a failure
        # otherwise); rows of releases before it, which have none, stay as they are
        pa.field("resource", _TEXT, False),
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
    CLEARS_ITEMS,
    "invoice_count",
}
"""Columns this package writes besides the API's fields: a new API field never takes their name."""
_MAX_VALUE_CHARS = 80
_NULL = "\x00"  # stands for NULL in the hashed text, where "" is a value


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
        except (ValueError, OverflowError) as ex:  # overflow: a date beyond UTC's range
            raise ResponseError(
                f"{where(row)}, field {api_field}: cannot read {_shown(value)}: {ex}"
            ) from None
    return pa.array(typed, type=ARROW_TYPES[rule])


class _Columns:
    """Records of one type, typed column by column: known fields first, new API fields after."""

    def __init__(
        self,
        leading: Sequence[Column],
        rules: dict[str, Rule],
        skip: str = "",
        private: bool = False,
    ) -> None:
        lead = {name for name, _, _ in leading}
        self.rules = {f: r for f, r in rules.items() if column_name(f) not in lead}
        self.leading = list(leading)
        self.reserved = lead | {column_name(f) for f in rules} | _RESERVED
        self.not_extra = {skip} | set(rules)
        self.private = private
        """Sensitive new fields are dropped, sensitive parts of JSON ones too (`Resource.private`)."""
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
        extra = parse_private_extra if self.private else parse_extra
        for api_field in sorted(seen - self.not_extra):
            if self.private and is_sensitive(api_field):
                continue  # card, bank or personal details: never stored
            values = [r.get(api_field) for r in records]
            try:
                name = column_name(api_field)
            except ValueError:  # dlt's naming refuses it (an empty name)
                row = next(i for i, r in enumerate(records) if api_field in r)
                raise ResponseError(
                    f"{where(row)}, field {api_field!r} ({_shown(values[row])}):"
                    " a field name that cannot be a column"
                ) from None
            columns[f"{name}_api" if name in self.reserved else name] = _typed(
                values, extra, api_field, where
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


def _hash_text(typed: dict[str, pa.Array], known: Sequence[str], rows: int) -> pa.Array:
    """Each row's typed values as text: equal values give equal text whatever the API's format.

    New API fields count only where they hold a value, so a field appearing elsewhere in the
    batch does not make new versions of unchanged rows.
    """
    if not known:  # a resource without items
        return pa.array([""] * rows, _TEXT)
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


def _not_an_id(value: Any) -> str:
    """Why `value` cannot identify a record (it must be a non-blank string)."""
    if value is None:
        return "is missing"
    if isinstance(value, str):
        return f"{_shown(value)} is blank"
    kind = {bool: "boolean", dict: "object", list: "array"}.get(type(value), "number")
    return f"{_shown(value)} is a JSON {kind}, not a string"


def _records(parent: dict[str, Any], level: Level, where: str) -> list[dict[str, Any]]:
    """A list the API may send missing, null or empty (or one object, for a `single` level);
    anything but a list of objects is an error."""
    key = level.list_field
    value = parent.get(key)
    if value is None:
        return []
    if level.single:
        if not isinstance(value, dict):
            raise ResponseError(f"{where}: {key} must be an object, got {type(value).__name__}")
        return [value]
    if not isinstance(value, list) or not set(map(type, value)) <= {dict}:
        raise ResponseError(f"{where}: {key} must be a list of objects, got {type(value).__name__}")
    return value


_EMPTY_OBJECT = re.compile(rb"[ \t\r\n]*\{[ \t\r\n]*\}[ \t\r\n]*")
"""`{}` amid JSON's whitespace; a body with anything else fails at its first other byte, so a
large body costs nothing (removing the whitespace first copied every body: ~13 % of the
past-due run on pretty-printed bodies)."""


def _is_empty_object(response: AccountResponse) -> bool:
    if response.raw is None:
        return response.body == {}
    return _EMPTY_OBJECT.fullmatch(response.raw.content) is not None


class BatchParser:
    """Collects account responses of one resource and types them into one `ParsedBatch`; one
    instance per batch.

    Items of the versions in `loaded_versions` are left out (the destination holds them), and
    every item row carries the run's `load_id` (`_dlt_load_id`). With `clears_items` (a `merge`
    resource on a destination that merges by delete-insert), each record without items adds one
    marker row to the items (`CLEARS_ITEMS`): its merge deletes the record's earlier items, as the
    items of a changed record with items replace them through the merge key.
    """

    def __init__(
        self,
        snapshot_at: datetime,
        load_id: str | None = None,
        loaded_versions: pa.Array | None = None,
        resource: Resource = PAST_DUE,
        clears_items: bool = False,
    ) -> None:
        self.resource = resource
        self.clears_items = clears_items
        self.snapshot_at = snapshot_at
        self.load_id = load_id
        self.loaded_versions = loaded_versions
        records, items = resource.records, resource.items
        if records.key is None:
            raise ValueError(f"{resource.name}: records need a key")  # a description's mistake
        self.record_key: Column = (column_name(records.key), _TEXT, False)
        per_run = [_SNAPSHOT_AT] if resource.history == "per_run" else []
        self.body = _Columns([_KEY, _NAME, _SNAPSHOT_AT], resource.body.rules, records.list_field)
        private = resource.private
        self.records = _Columns(
            [_KEY, self.record_key, *per_run],
            records.rules,
            items.list_field if items else "",
            private,
        )
        self.items = _Columns([_KEY, self.record_key], items.rules if items else {}, "", private)
        self.accounts: list[tuple[str, str | None, int]] = []  # id, name, distinct records
        self.record_rows: list[tuple[str, str]] = []  # account, record key
        self.item_parents: list[int] = []  # record row of each item
        self.item_positions: list[int] = []  # its place in the record's list
        self.item_starts: list[int] = [0]  # items of record r: rows item_starts[r]:[r + 1]
        self.errors: list[dict[str, Any]] = []
        self.responses: list[AccountResponse] = []  # decoded together in build()
        self.size = 0
        """Bytes of the responses received: what fills a batch (`settings.BATCH_BYTES`)."""

    def add(self, response: AccountResponse) -> None:
        if self.resource.history == "scd2" and _is_empty_object(response):
            # for a history resource an answer without records retires every current version:
            # an empty object (not even the list field or a summary field) is refused instead
            raise ResponseError(
                f"account {response.account_id}, {self.resource.endpoint}: an empty JSON object"
                f" ({{}}), not an answer: it would retire every current {self.resource.records.label}"
            )
        self.responses.append(response)
        self.size += len(response.raw.content) if response.raw is not None else 0

    def _add_record(self, account_id: str, body: dict[str, Any], account_name: str | None) -> None:
        level, items_level = self.resource.records, self.resource.items
        key = level.key or ""
        records = _records(body, level, f"account {account_id}")
        ids = set()
        for index, record in enumerate(records):
            record_id = record.get(key)
            if not isinstance(record_id, str) or not record_id.strip():
                where = f"account {account_id}, {self.resource.endpoint}, {level.label} #{index}"
                raise ResponseError(f"{where}: {key} {_not_an_id(record_id)}")
            where = self._where(account_id, record_id)
            items = _records(record, items_level, where) if items_level else []
            self.item_parents += [self.records.count] * len(items)
            self.item_positions += range(len(items))
            self.records.records.append(record)
            self.record_rows.append((account_id, record_id))
            self.items.records += items
            self.item_starts.append(self.items.count)
            ids.add(record_id)
        self.body.records.append(body)
        self.accounts.append((account_id, account_name, len(ids)))

    def _flatten_arrow(self, body: pa.Table) -> bool:
        """The responses, read by Arrow into `body`, as the columns and row bookkeeping
        `_add_record` builds; False (nothing changed) when a case needs the record path: a null in
        a list, a blank record key."""
        level, items_level = self.resource.records, self.resource.items
        body = body.combine_chunks()
        record_lists = body.column(level.list_field).chunk(0)
        records = pc.list_flatten(record_lists)
        ids = records.field(level.key)
        item_lists = records.field(items_level.list_field) if items_level else None
        items = pc.list_flatten(item_lists) if item_lists is not None else None
        if records.null_count or ids.null_count or (items is not None and items.null_count):
            return False
        if not pc.all(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(ids)), 0)).as_py():
            return False
        owners = pc.list_parent_indices(record_lists)
        account_ids = pa.array([r.account_id for r in self.responses], _TEXT)
        self.record_rows = list(zip(pc.take(account_ids, owners).to_pylist(), ids.to_pylist()))
        if item_lists is not None and items is not None:
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
            self.items.text = items
        else:
            self.item_starts = [0] * (len(records) + 1)
            self.items.text = pa.array([], self.items.text_struct)
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
        body_fields = list(self.resource.body.rules)
        self.body.text = (
            pa.StructArray.from_arrays([body.column(f).chunk(0) for f in body_fields], body_fields)
            if body_fields
            else None
        )
        self.records.text = records
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
                "resource": self.resource.name,
            }
        )

    def _where(self, account_id: str, record_id: str) -> str:
        """How errors name a record: account, resource (its endpoint), record label and id."""
        return f"account {account_id}, {self.resource.endpoint}, {self.resource.records.label} {record_id}"

    def _record_where(self, row: int) -> str:
        return self._where(*self.record_rows[row])

    def _item_where(self, row: int) -> str:
        level = self.resource.items
        key = level.key if level else None
        item_id = (self.items.value(row, key) if key else None) or f"#{self.item_positions[row]}"
        label = level.label if level else "item"
        return f"{self._record_where(self.item_parents[row])}, {label} {item_id}"

    def build(self, completed_accounts: list[str] | None = None) -> ParsedBatch:
        """Types the batch; raises `ResponseError` naming account, record, field and value."""
        known = read_known(self.responses, self.resource)
        if known is None or not self._flatten_arrow(known):
            for response in self.responses:
                where = f"account {response.account_id}, {self.resource.endpoint}"
                body = response.json_body(where)
                if not response.text_checked:
                    check_text(body, where, self.resource.record_lists)
                self._add_record(response.account_id, body, response.account_name)
        record_typed = self.records.typed(self._record_where)
        item_typed = self.items.typed(self._item_where)
        accounts = pa.array([a for a, _ in self.record_rows], _TEXT)
        record_ids = pa.array([i for _, i in self.record_rows], _TEXT)
        key_name = self.record_key[0]
        per_run = self.resource.history == "per_run"
        leading = {"account_id": accounts, key_name: record_ids}
        if per_run:
            leading["snapshot_at"] = pa.array([self.snapshot_at] * len(accounts), _UTC)
        versions = self._versions(list(leading.values()), record_typed, item_typed)
        keep = self._first_of_each_record(versions)
        records = self.records.table(
            leading, record_typed, {"_dlt_id": (pa.array(versions, _TEXT), _VERSION)}
        )
        parents = pa.array(self.item_parents, pa.int64())
        positions = pa.array(self.item_positions, pa.int64())
        item_versions = pc.take(pa.array(versions, _TEXT), parents)
        trailing = {
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
        }
        if self.resource.history == "merge":
            trailing[CLEARS_ITEMS] = (
                pa.nulls(len(positions), pa.bool_()),
                (CLEARS_ITEMS, pa.bool_(), True),
            )
        items = self.items.table(
            {"account_id": pc.take(accounts, parents), key_name: pc.take(record_ids, parents)},
            item_typed,
            trailing,
        )
        item_keep = None
        if keep is not None:
            records = records.filter(pa.array(keep))
            item_keep = pc.take(pa.array(keep), parents)
        if self.loaded_versions is not None:
            new = pc.invert(pc.is_in(item_versions, value_set=self.loaded_versions))
            item_keep = new if item_keep is None else pc.and_(item_keep, new)
        if item_keep is not None:
            items = items.filter(item_keep)
        if self.clears_items:
            items = pa.concat_tables([items, self._clearing_rows(items.schema, versions, keep)])
        return ParsedBatch(
            self.resource.name,
            records,
            items if self.resource.items else None,
            self._summary() if self.resource.body.table else None,
            pa.Table.from_pylist(self.errors, schema=_ERRORS),
            completed_accounts,
        )

    def _clearing_rows(
        self, schema: pa.Schema, versions: list[str], keep: list[bool] | None
    ) -> pa.Table:
        """One `CLEARS_ITEMS` marker per record without items (kept once if repeated), in the
        items' schema: the record's keys and version, its item fields NULL."""
        starts = self.item_starts
        rows = [
            row
            for row in range(len(versions))
            if starts[row + 1] == starts[row] and (keep is None or keep[row])
        ]
        account_ids, record_ids = zip(*[self.record_rows[r] for r in rows]) if rows else ((), ())
        version = pa.array([versions[r] for r in rows], _TEXT)
        given = {
            "account_id": pa.array(account_ids, _TEXT),
            self.record_key[0]: pa.array(record_ids, _TEXT),
            "_dlt_id": pc.binary_join_element_wise(version, "cleared", "-"),
            "_dlt_parent_id": version,
            "_dlt_root_id": version,
            "_dlt_list_idx": pa.repeat(pa.scalar(0, pa.int64()), len(rows)),
            "_dlt_load_id": pa.repeat(pa.scalar(self.load_id, _TEXT), len(rows)),
            CLEARS_ITEMS: pa.repeat(pa.scalar(True), len(rows)),
        }
        return pa.Table.from_arrays(
            [given.get(f.name, pa.nulls(len(rows), f.type)) for f in schema], schema=schema
        )

    def _summary(self) -> pa.Table:
        typed = self.body.typed(lambda row: f"account {self.accounts[row][0]}")
        count = self.resource.count_column
        return self.body.table(
            {
                "account_id": pa.array([a for a, _, _ in self.accounts], _TEXT),
                "account_name": pa.array([n for _, n, _ in self.accounts], _TEXT),
                "snapshot_at": pa.array([self.snapshot_at] * len(self.accounts), _UTC),
            },
            typed,
            {
                count: (
                    pa.array([c for _, _, c in self.accounts], pa.int64()),
                    (count, pa.int64(), False),
                )
            }
            if count
            else {},
        )

    def _versions(
        self,
        keys: list[pa.Array],
        record_typed: dict[str, pa.Array],
        item_typed: dict[str, pa.Array],
    ) -> list[str]:
        """Content hash of each record with its items: a changed value is a new version.

        Hashed text: the record's key columns (account, record key[, snapshot_at]), its values,
        then each item's values, joined by \\x1d (nothing after the record's values when it has no
        items). Past-due invoices hash exactly as before the resource descriptions (pinned by
        `tests/test_resources.py`): existing history keys on it."""
        record_text = _hash_text(
            record_typed, [column_name(f) for f in self.records.rules], self.records.count
        )
        item_text = _hash_text(
            item_typed, [column_name(f) for f in self.items.rules], self.items.count
        )
        starts = pa.array(self.item_starts, pa.int32())
        per_record = pc.binary_join(pa.ListArray.from_arrays(starts, item_text), "\x1d")
        key_text = [pc.cast(k, _TEXT) for k in keys]
        head = pc.binary_join_element_wise(*key_text, record_text, "\x1d")
        has_items = pc.greater(pc.subtract(starts[1:], starts[:-1]), 0)
        text = pc.if_else(has_items, pc.binary_join_element_wise(head, per_record, "\x1d"), head)
        return [_digest(data) for data in pc.cast(text, pa.binary()).to_pylist()]

    def _first_of_each_record(self, versions: list[str]) -> list[bool] | None:
        """An exact repeat of a record in one batch is kept once; a differing one is an error.

        Returns the rows to keep, or None when there is no repeat."""
        seen: dict[tuple[str, str], str] = {}
        keep = []
        for row, (key, version) in enumerate(zip(self.record_rows, versions)):
            if key not in seen:
                seen[key] = version
                keep.append(True)
            elif seen[key] == version:
                keep.append(False)
            else:
                raise ResponseError(
                    f"{self._record_where(row)}: {self.resource.records.key} appears twice"
                    " with different content"
                )
        return None if all(keep) else keep
