"""Decoding options and helpers shared by every MongoDB-flavoured source.

All readers (live server, ``mongodump`` BSON, ``mongoexport`` Extended JSON) decode into the
same Python types, so that the rest of docshift never needs to know where a document came
from: timezone-aware UTC ``datetime`` (``DatetimeMS`` when out of Python's range),
``bson.Int64`` for 64-bit integers, ``bson.Binary`` for UUIDs (subtype 4/3), and lone
surrogates for invalid UTF-8 so that one bad string does not make a whole document unreadable.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from bson import ObjectId, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.errors import InvalidId
from bson.json_util import JSONMode, JSONOptions

from docshift.sources.base import key_text

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict,
    tz_aware=True,
    tzinfo=UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
    unicode_decode_error_handler="surrogateescape",
)
"""Codec options for every BSON decode in docshift."""

JSON_OPTIONS = JSONOptions(
    json_mode=JSONMode.CANONICAL,
    document_class=dict,
    tz_aware=True,
    tzinfo=UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
    unicode_decode_error_handler="surrogateescape",
)
"""Extended JSON options: parsing accepts canonical, relaxed and legacy input alike;
dumping produces canonical Extended JSON (used for resume positions)."""

RELAXED_JSON_OPTIONS = JSONOptions(
    json_mode=JSONMode.RELAXED,
    document_class=dict,
    tz_aware=True,
    tzinfo=UTC,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)
"""Relaxed Extended JSON, for rendering ``_id`` values as human-readable keys."""

_PARSERS = frozenset(json_util._PARSERS)  # the keys json_util recognises as type wrappers
_U64_LIMIT = 2.0**64
_I64_MIN = -(2.0**63)
_BOM = b"\xef\xbb\xbf"
# Relaxed Extended JSON dates as mongoexport writes them (UTC, at most millisecond precision).
_ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?Z")


def id_to_key(value: Any) -> str:
    """Render an ``_id`` as text: ObjectId as hex, strings as is, others as relaxed EJSON.

    A string holding NUL, undecodable bytes or lone surrogates is escaped
    (:func:`~docshift.sources.base.key_text`), so that every key fits a PostgreSQL ``text``.
    """
    if type(value) is ObjectId:
        return value.binary.hex()  # str(value), without its Python-level hexlify
    if isinstance(value, str):
        return key_text(value)
    if isinstance(value, ObjectId):
        return str(value)
    return json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS)


def document_key(doc: Any, stream: str, ordinal: int) -> str:
    """The key of a decoded document: its ``_id`` as text, else ``<stream>#<ordinal>``."""
    if isinstance(doc, dict) and "_id" in doc:
        return id_to_key(doc["_id"])
    return key_text(f"{stream}#{ordinal}")


def _wrapper(value: dict[str, Any]) -> Any:
    """Decode one type wrapper; the common mongoexport shapes without json_util's overhead."""
    if len(value) == 1:
        inner = value.get("$oid")
        if inner is not None:
            if type(inner) is str and len(inner) == 24:
                try:
                    return ObjectId(inner)
                except InvalidId:
                    pass  # json_util raises the error
        else:
            inner = value.get("$date")
            if type(inner) is str and _ISO_UTC.fullmatch(inner):
                # Same value json_util computes (its strptime path is ~50x slower).
                return datetime.fromisoformat(inner)
    return json_util.object_hook(value, JSON_OPTIONS)


class _Inexact(Exception):
    """orjson turned an integer beyond 64 bits into a float: parse again exactly."""


def _check_float(value: float) -> None:
    # Integer literals orjson holds exactly are ints; beyond that range they become floats.
    if (value >= _U64_LIMIT or value <= _I64_MIN) and value.is_integer():
        raise _Inexact


def _convert(value: Any) -> Any:
    """Turn Extended JSON wrappers inside a plain JSON value into bson types, bottom-up."""
    if type(value) is dict:
        for k, v in value.items():
            t = type(v)
            if t is dict or t is list:
                value[k] = _convert(v)
            elif t is float:
                _check_float(v)
        return value if _PARSERS.isdisjoint(value) else _wrapper(value)
    if type(value) is list:
        for i, v in enumerate(value):
            t = type(v)
            if t is dict or t is list:
                value[i] = _convert(v)
            elif t is float:
                _check_float(v)
    elif type(value) is float:
        _check_float(value)
    return value


def _check(value: Any) -> Any:
    """Like :func:`_convert` for JSON without type wrappers: only the exactness check."""
    if type(value) is dict:
        value_iter: Any = value.values()
    elif type(value) is list:
        value_iter = value
    else:
        if type(value) is float:
            _check_float(value)
        return value
    for v in value_iter:
        t = type(v)
        if t is dict or t is list:
            _check(v)
        elif t is float:
            _check_float(v)
    return value


def ejson_loads_slow(data: bytes) -> Any:
    """Parse Extended JSON with the reference implementation (``bson.json_util``)."""
    text = data.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    return json_util.loads(text, json_options=JSON_OPTIONS)


def ejson_loads(data: bytes) -> Any:
    """Parse one Extended JSON value (canonical, relaxed or legacy) into bson types.

    Same result as :func:`ejson_loads_slow`, several times faster: orjson parses, and only
    objects that are type wrappers (``{"$oid": …}``, ``{"$date": …}``…) are converted.
    Raises ``ValueError``/``TypeError`` (or ``bson.errors`` subclasses) on invalid input.
    """
    if data.startswith(_BOM):
        data = data[3:]
    try:
        value = orjson.loads(data)
        if b'"$' in data or b"\\u0024" in data:
            return _convert(value)
        return _check(value)
    except (orjson.JSONDecodeError, _Inexact):
        # NaN/Infinity literals, lone surrogate escapes, invalid UTF-8, huge integers.
        return ejson_loads_slow(data)


def json_loads(data: bytes | str) -> Any:
    """Parse plain JSON (no Extended JSON types), fast, exact for big integers."""
    try:
        return _check(orjson.loads(data))
    except (orjson.JSONDecodeError, _Inexact):
        return json.loads(data)


def canonical_ejson(value: Any) -> str:
    """``value`` as canonical Extended JSON (type-exact, so it round-trips)."""
    return json_util.dumps(value, json_options=JSON_OPTIONS)


def parse_canonical_ejson(text: str) -> Any:
    """Inverse of :func:`canonical_ejson`."""
    return json_util.loads(text, json_options=JSON_OPTIONS)
