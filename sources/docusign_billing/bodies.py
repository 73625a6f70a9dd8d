"""Response bodies, decoded a batch at a time: straight to Arrow when they hold nothing unexpected.

Bodies whose fields are all known and all strings (what DocuSign sends) are read by Arrow's JSON
reader, one row per body, at C speed and without holding the GIL; one call for a whole batch of
one-line bodies costs about half of one call per body. Anything else (a number, a new field, a
malformed body) sends the batch to `json`, with numbers as `Decimal`, where the per-value rules and
the error messages that name account, record, field and value take over.
"""

import io
from collections.abc import Sequence
from functools import cache

import pyarrow as pa
import pyarrow.json as pa_json

from .resources import PAST_DUE, Level, Resource
from .shapes import AccountResponse
from .text import as_utf8, is_clean

_TEXT = pa.string()

__all__ = ["AccountResponse", "body_schema", "read_known"]


def _struct_fields(level: Level, nested: Level | None) -> list[tuple[str, pa.DataType]]:
    fields = [(field.api, _TEXT) for field in level.fields]
    if nested is not None:
        fields.append((nested.list_field, pa.list_(pa.struct(_struct_fields(nested, None)))))
    return fields


@cache
def body_schema(resource: Resource) -> pa.Schema:
    """A response of `resource` as Arrow reads it: every described field as text, the records
    and their items as lists of structs."""
    records = pa.struct(_struct_fields(resource.records, resource.items))
    return pa.schema(
        [*_struct_fields(resource.body, None), (resource.records.list_field, pa.list_(records))]
    )


@cache
def _known_only(resource: Resource) -> pa_json.ParseOptions:
    return pa_json.ParseOptions(
        explicit_schema=body_schema(resource), unexpected_field_behavior="error"
    )


def read_known(
    responses: Sequence[AccountResponse], resource: Resource = PAST_DUE
) -> pa.Table | None:
    """The bodies as Arrow rows of `body_schema(resource)`, one per response in order; None when
    any body holds anything but described fields as strings (or was not received as bytes), or
    the resource's records are a single object (small bodies: the record path is fast enough)."""
    if resource.records.single:
        return None
    options = _known_only(resource)
    contents = [
        as_utf8(r.raw.content, r.raw.content_type)
        for r in responses
        if r.raw is not None and r.body is None
    ]
    if not contents or len(contents) != len(responses) or not all(map(is_clean, contents)):
        return None  # text that is not clean Unicode goes the record path, which names it
    if not all(map(_is_object, contents)):
        return None  # Arrow crashes (SIGSEGV) on a bare `null`; `json_body` names the account
    if all(_one_line_object(c) for c in contents):
        return _read(b"\n".join(contents), len(contents), options)
    tables = []
    for (
        content
    ) in contents:  # pretty-printed bodies: one call each, up to the first Arrow cannot read
        table = _read(content, 1, options)
        if table is None:
            return None
        tables.append(table)
    return pa.concat_tables(tables)


def _is_object(content: bytes) -> bool:
    """Whether the body starts (after JSON whitespace) like an object: the only shape handed to
    Arrow. Several objects in one body give more rows than bodies, which `_read` refuses."""
    return content.lstrip(b" \t\n\r").startswith(b"{")


def _one_line_object(content: bytes) -> bool:
    """Whether the body can share a newline-delimited read: an object without line breaks (JSON
    allows them only between tokens, so a valid body never needs one)."""
    return _is_object(content) and b"\n" not in content and b"\r" not in content


def _read(content: bytes, rows: int, parse_options: pa_json.ParseOptions) -> pa.Table | None:
    """`rows` objects of known string fields, or None. Exactly `rows` rows, so two objects in one
    body (not JSON) never pass, whether read alone or among others that each start with `{`."""
    options = pa_json.ReadOptions(use_threads=False, block_size=max(len(content) + 1, 1 << 16))
    try:
        table = pa_json.read_json(
            io.BytesIO(content), read_options=options, parse_options=parse_options
        )
    except (ValueError, pa.ArrowException):  # UnicodeDecodeError is a ValueError
        return None
    return table if table.num_rows == rows else None
