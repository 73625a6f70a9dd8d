"""The one rule for text in a response: decoded by its declared charset, and valid Unicode.

A body is decoded by the charset its `Content-Type` declares (JSON's UTF-8 when it declares none):
`charset=iso-8859-1` bytes become the characters they stand for. Text that is still not valid
Unicode, a byte sequence that is not valid in the declared charset or a lone UTF-16 surrogate
escape (`"\\ud800"`), or that holds a NUL character (`"\\u0000"`: PostgreSQL cannot store one),
stops the run before anything is staged, with one error naming account,
resource, record, field and value. Such text cannot be written to Parquet or any warehouse: let
through, it failed inside the destination's loader, where the package stayed pending and every
later run failed on it.

Bodies that are clean (ASCII, or valid UTF-8 without surrogate escapes, which is what DocuSign
sends) are checked in a single pass over their bytes, so they keep the fast Arrow path.
"""

import codecs
import re
from collections.abc import Mapping
from email.message import Message
from functools import cache
from typing import Any

from .errors import ResponseError

RecordLists = Mapping[str, tuple[str, str | None]]
"""The JSON fields that hold lists of records, each with how an error names one (its label and
the field that identifies it)."""

_NOT_TEXT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
"""A JSON escape of a UTF-16 surrogate (valid only as the first or second half of a pair), or of
NUL."""
_NOT_TEXT = re.compile("[\ud800-\udfff\x00]")
"""What text may not hold: a lone surrogate (or an invalid byte, decoded as one), or NUL."""


@cache  # a run sees one or two distinct Content-Type values
def declared_charset(content_type: str) -> str:
    """The Python codec of the `charset` a `Content-Type` declares; UTF-8 when none or unknown."""
    message = Message()
    message["Content-Type"] = content_type
    charset = message.get_param("charset")
    try:
        return codecs.lookup(str(charset)).name if isinstance(charset, str) else "utf-8"
    except LookupError:
        return "utf-8"


def as_utf8(content: bytes, content_type: str) -> bytes:
    """The body as UTF-8 bytes: transcoded when it declares another charset it is valid in.

    Bytes that are not valid in the declared charset are returned as they are: `is_clean` is
    False for them and `check_text` names the value."""
    charset = declared_charset(content_type)
    if charset == "utf-8" or content.isascii():
        return content
    try:
        return content.decode(charset).encode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return content


def is_clean(content: bytes) -> bool:
    """Whether UTF-8 `content` holds only valid Unicode text: what Arrow may read as it is."""
    if b"\\" in content and _NOT_TEXT_ESCAPE.search(content):  # memchr: most bodies escape nothing
        return False  # pairs are fine, but only decoding tells a pair from a lone half
    if content.isascii():
        return True
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode(content: bytes) -> str:
    """UTF-8 `content` as text; each invalid byte becomes a lone surrogate (`U+DC80`-`U+DCFF`)
    that `check_text` then reports with the byte it stands for."""
    return content.decode("utf-8", "surrogateescape")


def check_text(body: Any, where: str, records: RecordLists) -> None:
    """Raises `ResponseError` at the first string of `body` (keys included) that is not valid
    Unicode, naming `where` (account and resource), the record, field and value."""
    _check(body, where, None, records)


def _check(value: Any, where: str, field: str | None, records: RecordLists) -> None:
    if isinstance(value, str):
        if _NOT_TEXT.search(value):
            _fail(value, where, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _NOT_TEXT.search(key):
                _fail(key, where, "(a field name)")
            record = records.get(key)
            if record is not None and isinstance(item, list):
                kind, id_field = record
                for index, element in enumerate(item):
                    ident = (
                        element.get(id_field) if id_field and isinstance(element, dict) else None
                    )
                    label = ident if isinstance(ident, str) and ident.strip() else f"#{index}"
                    _check(element, f"{where}, {kind} {label}", None, records)
            else:
                _check(item, where, key if field is None else f"{field}.{key}", records)
    elif isinstance(value, list):
        for index, element in enumerate(value):
            _check(element, where, f"{field}[{index}]", records)


def _fail(text: str, where: str, field: str | None) -> None:
    bad = _NOT_TEXT.search(text)
    assert bad is not None
    point = ord(bad.group())
    if point == 0:
        reason = "a NUL character (U+0000) is not text (PostgreSQL cannot store it)"
    elif 0xDC80 <= point <= 0xDCFF:
        reason = f"byte 0x{point - 0xDC00:02X} is not valid in the declared charset (UTF-8 if none)"
    else:
        reason = f"a lone surrogate U+{point:04X} is not a character"
    try:  # the bytes as received, invalid ones as \xNN
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    shown = raw.decode("utf-8", "backslashreplace")
    shown = shown if len(shown) <= 80 else shown[:80] + "..."
    raise ResponseError(f"{where}, field {field or '?'}: cannot read '{shown}': {reason}")
