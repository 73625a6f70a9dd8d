"""The data dictionary (`docs/data-dictionary.md`), generated from the resource descriptions.

`python -m sources.docusign_billing.dictionary > docs/data-dictionary.md` writes it;
`tests/test_dictionary.py` keeps it equal to the file and to the tables a load creates.
"""

import sys
from dataclasses import dataclass

import pyarrow as pa

from . import settings
from .parse import ARROW_TYPES
from .resources import RESOURCES, Level, Resource
from .tables import CLEARS_ITEMS, column_name

_TYPE_NAMES = {
    pa.string(): "text",
    pa.bool_(): "boolean",
    pa.int64(): "bigint",
    pa.timestamp("us", tz="UTC"): "timestamp (UTC)",
    pa.decimal128(settings.DECIMAL_PRECISION, settings.DECIMAL_SCALE): (
        f"decimal({settings.DECIMAL_PRECISION},{settings.DECIMAL_SCALE})"
    ),
}
_WRITE = {
    "scd2": "SCD2 history per account (`_dlt_valid_from`/`_dlt_valid_to`)",
    "merge": "merge: one row per key, replaced when it changes",
    "per_run": "merge on account, key and `snapshot_at`: one row per run",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class Table:
    name: str
    write: str
    meaning: str
    columns: tuple[Column, ...]


def _text(name: str, meaning: str) -> Column:
    return Column(name, "text", meaning)


def _fields(level: Level, leading: list[Column]) -> list[Column]:
    lead = {c.name for c in leading}
    return [
        Column(column_name(f.api), _TYPE_NAMES[ARROW_TYPES[f.rule]], f"`{f.api}`: {f.meaning}")
        for f in level.fields
        if column_name(f.api) not in lead
    ]


def resource_tables(resource: Resource) -> list[Table]:
    """Every table of `resource` with its columns in the order `tables.py` builds them."""
    records, items, body = resource.records, resource.items, resource.body
    key = column_name(records.key or "")
    account = _text("account_id", "DocuSign account GUID")
    record_key = _text(key, f"`{records.key}` of the {records.label}")
    snapshot = Column("snapshot_at", "timestamp (UTC)", "start of the run that read it")
    version = _text("_dlt_id", f"content hash of the {records.label} version with its items")
    tables = []
    lead = [account, record_key, *([snapshot] if resource.history == "per_run" else [])]
    history = (
        [
            Column("_dlt_valid_from", "timestamp (UTC)", "run that first saw this version"),
            Column("_dlt_valid_to", "timestamp (UTC)", "run that saw it change; NULL: current"),
        ]
        if resource.history == "scd2"
        else []
    )
    load_id = _text("_dlt_load_id", "the load that first wrote the item")
    tables.append(
        Table(
            records.table or "",
            _WRITE[resource.history],
            records.meaning,
            (*lead, *_fields(records, lead), version, *history),
        )
    )
    if items is not None and items.table:
        item_lead = [account, record_key]
        tables.append(
            Table(
                items.table,
                "append, items of versions new to the destination"
                if resource.history == "scd2"
                else f"merge: replaced with their {records.label}, deleted when it has none",
                items.meaning,
                (
                    *item_lead,
                    *_fields(items, item_lead),
                    _text("_dlt_id", "version hash and position"),
                    _text("_dlt_parent_id", f"the {records.label} version's `_dlt_id`"),
                    _text("_dlt_root_id", f"the {records.label} version's `_dlt_id`"),
                    Column("_dlt_list_idx", "bigint", "position in the list"),
                    load_id,
                    *(
                        [
                            Column(
                                CLEARS_ITEMS,
                                "boolean",
                                "always NULL (TRUE only on the marker row that deletes the items"
                                f" of the {records.label} when it has none; never stored)",
                            )
                        ]
                        if resource.history == "merge"
                        else []
                    ),
                ),
            )
        )
    if body.table:
        body_lead = [account, _text("account_name", "account name (OAuth discovery)"), snapshot]
        count = (
            [Column(resource.count_column, "bigint", f"distinct {records.label}s")]
            if resource.count_column
            else []
        )
        tables.append(
            Table(
                body.table,
                "merge on account and `snapshot_at`: one row per run",
                body.meaning,
                (*body_lead, *_fields(body, body_lead), *count),
            )
        )
    return tables


ERRORS = Table(
    settings.ERRORS_TABLE,
    "merge on account, `resource` and `snapshot_at`",
    "accounts whose call failed in a run, by resource",
    (
        _text("account_id", "DocuSign account GUID"),
        _text("account_name", "account name (OAuth discovery)"),
        Column("snapshot_at", "timestamp (UTC)", "start of the run"),
        Column("http_status", "bigint", "HTTP status, when DocuSign answered"),
        _text("error_code", "DocuSign's `errorCode`"),
        _text("message", "the error as the run reported it"),
        _text("resource", "the resource whose call failed (NULL in rows before resources)"),
    ),
)


def all_tables() -> list[Table]:
    return [t for r in RESOURCES.values() for t in resource_tables(r)] + [ERRORS]


def render() -> str:
    """The data dictionary as Markdown."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from `sources/docusign_billing/resources.py` by",
        "`python -m sources.docusign_billing.dictionary > docs/data-dictionary.md`; do not edit.",
        "Fields DocuSign adds later land as further `text` columns (`snake_case`).",
        "",
    ]
    for resource in RESOURCES.values():
        params = "&".join(f"{k}={v}" for k, v in resource.params)
        call = f"GET {resource.path}" + (f"?{params}" if params else "")
        if resource.windowed:
            call += " (from_date/to_date windows, nextUri pages)"
        lines += [f"## Resource `{resource.name}`", "", f"`{call}`", ""]
        for table in resource_tables(resource):
            lines += _table(table)
    lines += ["## Every resource", ""] + _table(ERRORS)
    return "\n".join(lines).rstrip() + "\n"


def _table(table: Table) -> list[str]:
    return [
        f"### `{table.name}`",
        "",
        f"{table.meaning}. Write: {table.write}.",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        *(f"| `{c.name}` | {c.type} | {c.meaning} |" for c in table.columns),
        "",
    ]


if __name__ == "__main__":
    sys.stdout.write(render())
