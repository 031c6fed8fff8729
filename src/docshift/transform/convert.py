"""Source values → the Python values psycopg's binary COPY dumpers take.

:func:`converter_for` builds, once per column, a function that converts one non-None source
value for that column's :class:`~docshift.transform.pgtypes.PgType` or raises
:class:`~docshift.errors.ConversionError`. ``docs/conversions.md`` lists every rule.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, DecimalException
from typing import Any, Literal

import orjson
from bson import Binary, Code, Decimal128, ObjectId, json_util
from bson.datetime_ms import DatetimeMS

from docshift.errors import ConversionError
from docshift.transform.ids import to_uuid
from docshift.transform.pgtypes import PgType

Converter = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_INT_RANGES: dict[str, tuple[int, int]] = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
# Doubles at or beyond this magnitude round to infinity as float32 (ties go to even, which
# for the largest float32 is infinity).
_REAL_LIMIT = float(2**128 - 2**103)
# What psycopg's binary numeric format can carry (and PostgreSQL's numeric can store).
_NUMERIC_MAX_INT_DIGITS = 131_072
_NUMERIC_MAX_SCALE = 16_383

_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER_LONG = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class ConvertOptions:
    """How lenient conversions are; one set per run."""

    strip_nul: bool = False
    """Remove NUL characters from text instead of rejecting it (``nul_byte``)."""
    replace_invalid_utf8: bool = False
    """Replace lone surrogates (undecodable bytes) with U+FFFD instead of rejecting."""
    epoch: Literal["s", "ms"] | None = None
    """Numbers for date/timestamp columns are Unix epochs in this unit; None rejects them."""
    max_text_chars: int | None = None
    """Text longer than this many characters is rejected (``too_long``)."""


DEFAULT_OPTIONS = ConvertOptions()


def convert_options(options: Any) -> ConvertOptions:
    """The conversion settings of a mapping's ``options:`` (an ``OptionsSpec``)."""
    return ConvertOptions(strip_nul=options.strip_nul,
                          replace_invalid_utf8=options.replace_invalid_utf8,
                          epoch=options.epoch, max_text_chars=options.max_text_chars)


def _err(error_class: str, reason: str, value: Any) -> ConversionError:
    return ConversionError(reason, error_class=error_class, value=value)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _float_text(v: float) -> str:
    if math.isfinite(v):
        return repr(v)
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _parse_number(s: str) -> Decimal | None:
    """The Decimal a numeric string spells, or None when it is not a plain decimal number."""
    return Decimal(s.strip()) if _NUMBER.fullmatch(s) else None


# --------------------------------------------------------------------------- text


def _clean_text(options: ConvertOptions, limit: int | None, limit_desc: str,
                what: str) -> Callable[[str, Any], str]:
    """A checker for text bound for PostgreSQL: NUL, lone surrogates, length."""
    strip_nul = options.strip_nul
    replace_bad = options.replace_invalid_utf8

    def clean(s: str, value: Any) -> str:
        if "\x00" in s:
            if not strip_nul:
                raise _err("nul_byte", f"{what} contains a NUL character, which PostgreSQL "
                           "cannot store (strip_nul removes it)", value)
            s = s.replace("\x00", "")
        if not s.isascii():
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                if not replace_bad:
                    raise _err("invalid_utf8", f"{what} contains bytes that are not valid "
                               "UTF-8 (replace_invalid_utf8 replaces them with U+FFFD)",
                               value) from None
                s = _SURROGATE.sub("\ufffd", s)
        if limit is not None and len(s) > limit:
            raise _err("too_long", f"text of {len(s)} characters is longer than {limit_desc}",
                       value)
        return s

    return clean


def _text_of(v: Any) -> str:
    """The text of a non-str source value allowed in a text column."""
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, bool):
        raise _err("wrong_type", "expected text, got a boolean", v)
    if isinstance(v, int):
        try:
            return int.__repr__(v)
        except ValueError:  # more digits than Python will print
            raise _err("too_long", "the number has too many digits to be shown as text",
                       v) from None
    if isinstance(v, float):
        return _float_text(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, Decimal128):
        return str(v.to_decimal())
    if isinstance(v, (ObjectId, uuid.UUID)):
        return str(v)
    raise _err("wrong_type", f"expected text, got {_type_name(v)}", v)


def _text_converter(t: PgType, options: ConvertOptions) -> Converter:
    limit, limit_desc = t.length, f"the {t.length} characters varchar({t.length}) allows"
    if options.max_text_chars is not None and (limit is None or options.max_text_chars < limit):
        limit = options.max_text_chars
        limit_desc = f"the max_text_chars limit ({limit})"
    clean = _clean_text(options, limit, limit_desc, "text")

    def convert(v: Any) -> str:
        if type(v) is str:
            return clean(v, v)
        return clean(_text_of(v), v)

    return convert


# --------------------------------------------------------------------------- numbers


def _to_decimal(v: Any, target: str) -> Decimal:
    """An exact, finite Decimal for a numeric source value (bools rejected)."""
    if isinstance(v, Decimal):
        d = v
    elif isinstance(v, bool):
        raise _err("wrong_type", f"expected a number for {target}, got a boolean", v)
    elif isinstance(v, int):
        return Decimal(int(v))
    elif isinstance(v, float):
        # repr is the shortest text that round-trips: 0.1 stays 0.1, not its binary expansion
        d = Decimal(repr(v)) if math.isfinite(v) else Decimal(_float_text(v))
    elif isinstance(v, Decimal128):
        d = v.to_decimal()
    elif isinstance(v, str):
        parsed = _parse_number(v)
        if parsed is None:
            raise _err("bad_number", f"{str(v)!r} is not a number", v)
        d = parsed
    else:
        raise _err("wrong_type", f"expected a number for {target}, got {_type_name(v)}", v)
    if not d.is_finite():
        raise _err("bad_number", f"{target} cannot store {d}", v)
    return d


def _int_converter(t: PgType) -> Converter:
    name = t.base
    lo, hi = _INT_RANGES[name]

    def out_of_range(v: Any) -> ConversionError:
        return _err("out_of_range", f"{v} is outside the range of {name} ({lo} to {hi})", v)

    def slow(v: Any) -> int:
        if isinstance(v, int) and not isinstance(v, bool):
            n = int(v)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise _err("bad_number", f"{name} cannot store {_float_text(v)}", v)
            if not v.is_integer():
                raise _err("bad_number", f"{v!r} is not a whole number", v)
            n = int(v)
        else:
            d = _to_decimal(v, name)
            if d != d.to_integral_value():
                raise _err("bad_number", f"{d} is not a whole number", v)
            if not lo <= d <= hi:
                raise out_of_range(v)
            n = int(d)
        if lo <= n <= hi:
            return n
        raise out_of_range(v)

    def convert(v: Any) -> int:
        if type(v) is int:
            if lo <= v <= hi:
                return v
            raise out_of_range(v)
        return slow(v)

    return convert


def _numeric_converter(t: PgType) -> Converter:
    if t.precision is None:
        def unconstrained(v: Any) -> Decimal:
            d = v if type(v) is Decimal and v.is_finite() else _to_decimal(v, "numeric")
            exp = d.as_tuple().exponent
            if (isinstance(exp, int) and exp < -_NUMERIC_MAX_SCALE) or (
                    d and d.adjusted() >= _NUMERIC_MAX_INT_DIGITS):
                raise _err("out_of_range", f"{d} has more digits than PostgreSQL's numeric "
                               f"stores ({_NUMERIC_MAX_INT_DIGITS} before and "
                               f"{_NUMERIC_MAX_SCALE} after the decimal point)", v)
            return d

        return unconstrained

    p, s = t.precision, t.scale or 0
    int_digits = p - s
    quantum = Decimal(1).scaleb(-s)
    ctx = Context(prec=p + 1, rounding=ROUND_HALF_EVEN)
    spec = f"numeric({p},{s})"

    def out_of_range(v: Any) -> ConversionError:
        return _err("out_of_range", f"{v} does not fit {spec}: it holds at most {int_digits} "
                    f"digits before the decimal point (after rounding to {s} decimal places)",
                    v)

    def constrained(v: Any) -> Decimal:
        if type(v) is str and _NUMBER.fullmatch(v):  # a numeric string: _to_decimal's rule
            d = Decimal(v.strip())
        else:
            d = v if type(v) is Decimal and v.is_finite() else _to_decimal(v, spec)
        # checked before rounding too so that huge exponents never reach quantize
        if d and d.adjusted() >= int_digits:
            raise out_of_range(v)
        try:
            r = d.quantize(quantum, context=ctx)
        except DecimalException:
            raise out_of_range(v) from None
        if r and r.adjusted() >= int_digits:
            raise out_of_range(v)
        return r

    return constrained


def _float_converter(t: PgType) -> Converter:
    real = t.base == "real"
    name = t.base

    def slow(v: Any) -> float:
        if isinstance(v, float):
            f = float(v)
            finite_source = math.isfinite(f)
        elif isinstance(v, bool):
            raise _err("wrong_type", f"expected a number for {name}, got a boolean", v)
        elif isinstance(v, int):
            finite_source = True
            try:
                f = float(v)
            except OverflowError:
                raise _err("out_of_range", f"{v} is outside the range of {name}", v) from None
        elif isinstance(v, (Decimal, Decimal128, str)):
            d = v.to_decimal() if isinstance(v, Decimal128) else v
            if isinstance(d, str):
                parsed = _parse_number(d)
                if parsed is None:
                    raise _err("bad_number", f"{str(d)!r} is not a number", v)
                d = parsed
            finite_source = d.is_finite()
            f = math.nan if d.is_nan() else float(d)
        else:
            raise _err("wrong_type", f"expected a number for {name}, got {_type_name(v)}", v)
        if finite_source and (math.isinf(f) or (real and abs(f) >= _REAL_LIMIT)):
            raise _err("out_of_range", f"{v} is outside the range of {name}", v)
        return f

    if real:
        def convert_real(v: Any) -> float:
            if type(v) is float and -_REAL_LIMIT < v < _REAL_LIMIT:
                return v
            return slow(v)

        return convert_real

    def convert_double(v: Any) -> float:
        if type(v) is float:
            return v
        return slow(v)

    return convert_double


# --------------------------------------------------------------------------- boolean


def _bool_converter(t: PgType) -> Converter:
    def convert(v: Any) -> bool:
        if v is True or v is False:
            return v
        if isinstance(v, str):
            low = v.lower()
            if low == "true":
                return True
            if low == "false":
                return False
        raise _err("not_boolean", "expected true or false (a boolean, or the text "
                   f"'true'/'false'), got {_type_name(v)}", v)

    return convert


# --------------------------------------------------------------------------- dates


def _from_epoch(amount: float | int | Decimal, unit: str, value: Any) -> datetime:
    if isinstance(amount, float) and not math.isfinite(amount):
        raise _err("bad_date", f"{_float_text(amount)} is not a point in time", value)
    try:
        if unit == "ms":
            delta = (timedelta(milliseconds=amount) if isinstance(amount, int)
                     else timedelta(milliseconds=float(amount)))
        else:
            delta = (timedelta(seconds=amount) if isinstance(amount, int)
                     else timedelta(seconds=float(amount)))
        return _EPOCH + delta
    except OverflowError:
        raise _err("out_of_range", f"epoch {amount} {unit} is outside the dates Python and "
                   "PostgreSQL share (years 1 to 9999)", value) from None


def _parse_iso(s: str, value: Any) -> datetime:
    try:
        d = datetime.fromisoformat(s)
    except ValueError as exc:
        raise _err("bad_date", f"{s!r} is not an ISO-8601 date or time ({exc})",
                   value) from None
    return _as_utc(d, value)


def _naive(d: datetime) -> datetime:
    # the constructor is several times faster than datetime.replace()
    return datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond)


def _as_utc(d: datetime, value: Any) -> datetime:
    tz = d.tzinfo
    if tz is UTC:
        return d
    if tz is None:
        return datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, UTC)
    try:
        return d.astimezone(UTC)
    except OverflowError:
        raise _err("out_of_range", "the time is outside years 1 to 9999 once moved to UTC",
                   value) from None


def _point_in_time(v: Any, epoch: str | None) -> datetime | date:
    """An aware UTC datetime (or a plain date) for any supported date/time source value."""
    if isinstance(v, datetime):
        return _as_utc(v, v)
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        return _parse_iso(str(v), v)
    if isinstance(v, DatetimeMS):
        return _from_epoch(int(v), "ms", v)
    if isinstance(v, Mapping):
        if len(v) == 1 and "$date" in v:
            inner = v["$date"]
            if isinstance(inner, str):
                return _parse_iso(inner, v)
            if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                return _from_epoch(inner, "ms", v)
            if (isinstance(inner, Mapping) and len(inner) == 1
                    and isinstance(n := inner.get("$numberLong"), str)
                    and _NUMBER_LONG.fullmatch(n)):
                return _from_epoch(int(n), "ms", v)
            raise _err("bad_date", "the $date value is not an ISO-8601 string or epoch "
                       "milliseconds", v)
        raise _err("wrong_type", "expected a date or time, got an object", v)
    if isinstance(v, (int, float, Decimal, Decimal128)) and not isinstance(v, bool):
        if epoch is None:
            raise _err("wrong_type", "expected a date or time, got a number (set the epoch "
                       "option to read numbers as Unix epochs)", v)
        amount = v.to_decimal() if isinstance(v, Decimal128) else v
        if isinstance(amount, Decimal):
            if not amount.is_finite():
                raise _err("bad_date", f"{amount} is not a point in time", v)
            amount = int(amount) if amount == amount.to_integral_value() else float(amount)
        return _from_epoch(amount, epoch, v)
    raise _err("wrong_type", f"expected a date or time, got {_type_name(v)}", v)


def _timestamptz_converter(options: ConvertOptions) -> Converter:
    epoch = options.epoch

    def convert(v: Any) -> datetime:
        if type(v) is datetime:
            tz = v.tzinfo
            if tz is UTC:
                return v
            if tz is None:
                return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second,
                                v.microsecond, UTC)
        d = _point_in_time(v, epoch)
        if type(d) is date:
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        return d

    return convert


def _timestamp_converter(options: ConvertOptions) -> Converter:
    epoch = options.epoch

    def convert(v: Any) -> datetime:
        if type(v) is datetime:
            tz = v.tzinfo
            if tz is None:
                return v
            if tz is UTC:
                return _naive(v)
        d = _point_in_time(v, epoch)
        if type(d) is date:
            return datetime(d.year, d.month, d.day)
        return _naive(d)

    return convert


def _date_converter(options: ConvertOptions) -> Converter:
    epoch = options.epoch

    def convert(v: Any) -> date:
        if type(v) is datetime and (v.tzinfo is None or v.tzinfo is UTC):
            return v.date()
        if type(v) is date:
            return v
        d = _point_in_time(v, epoch)
        return d.date() if isinstance(d, datetime) else d

    return convert


# --------------------------------------------------------------------------- bytea


def _bytea_converter(t: PgType) -> Converter:
    def convert(v: Any) -> bytes:
        if type(v) is bytes:
            return v
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v)
        raise _err("wrong_type", f"expected binary data, got {_type_name(v)}", v)

    return convert


# --------------------------------------------------------------------------- json


def _iso_ms(d: datetime) -> str:
    tz = d.tzinfo
    if tz is None:
        return d.isoformat(timespec="milliseconds") + "Z"
    if tz is not UTC:
        d = d.astimezone(UTC)
    return d.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def _json_datetime(d: datetime) -> Any:
    try:
        return _iso_ms(d)
    except OverflowError:  # an offset moves it outside years 1 to 9999
        ms = (d - _EPOCH) // timedelta(milliseconds=1)
        return {"$date": {"$numberLong": str(ms)}}


@functools.lru_cache(maxsize=16)
def _json_converter(options: ConvertOptions) -> Converter:
    clean = _clean_text(ConvertOptions(strip_nul=options.strip_nul,
                                       replace_invalid_utf8=options.replace_invalid_utf8),
                        None, "", "a JSON string")

    def text(s: str) -> str:
        if s.isascii() and "\x00" not in s:
            return s
        return clean(s, s)

    def key(k: Any) -> str:
        return text(k if type(k) is str else str(k))

    # The checks for plain keys and values are inlined: a function call per key and value
    # would double the cost of converting a typical document.
    def convert(v: Any) -> Any:
        t = type(v)
        if t is dict:
            return {
                (k if type(k) is str and k.isascii() and "\x00" not in k else key(k)):
                (x if (tx := type(x)) is int or tx is bool or x is None
                 or (tx is str and x.isascii() and "\x00" not in x) else convert(x))
                for k, x in v.items()
            }
        if t is list:
            return [x if (tx := type(x)) is int or tx is bool or x is None
                    or (tx is str and x.isascii() and "\x00" not in x) else convert(x)
                    for x in v]
        if t is str:
            return text(v)
        if t is int or t is bool or v is None:
            return v
        if t is float:
            if v - v == 0.0:  # false for NaN and ±inf
                return v
            raise _err("bad_number", f"JSON cannot store {_float_text(v)}", v)
        return slow(v)

    def slow(v: Any) -> Any:
        t = type(v)
        if t is ObjectId:
            return str(v)
        if t is datetime:
            return _iso_ms(v) if v.tzinfo is UTC else _json_datetime(v)
        if isinstance(v, int):
            return int(v)
        if isinstance(v, ObjectId):
            return str(v)
        if isinstance(v, datetime):
            return _json_datetime(v)
        if isinstance(v, DatetimeMS):
            ms = int(v)
            try:
                return _iso_ms(_EPOCH + timedelta(milliseconds=ms))
            except OverflowError:
                return {"$date": {"$numberLong": str(ms)}}
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, Decimal128):
            return str(v.to_decimal())
        if isinstance(v, uuid.UUID):
            return str(v)
        if isinstance(v, Binary) and v.subtype == 4 and len(v) == 16:
            return str(uuid.UUID(bytes=bytes(v)))
        if isinstance(v, (bytes, bytearray, memoryview)):
            return base64.b64encode(v).decode("ascii")
        if isinstance(v, Code):
            return convert(json_util.default(v, json_util.RELAXED_JSON_OPTIONS))
        if isinstance(v, str):
            return text(str.__str__(v))
        if isinstance(v, float):
            return convert(float(v))
        if isinstance(v, Mapping):
            return {key(k): convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        try:
            ext = json_util.default(v, json_util.RELAXED_JSON_OPTIONS)
        except TypeError:
            raise _err("wrong_type", f"{_type_name(v)} cannot be stored as JSON", v) from None
        return convert(ext)

    return convert


def to_json_value(v: Any, options: ConvertOptions = DEFAULT_OPTIONS) -> Any:
    """``v`` with every BSON value replaced by a JSON value (dict, list, str, int, float, …).

    ObjectId → hex text, datetime → ISO-8601 UTC text with milliseconds and ``Z``,
    Decimal/Decimal128 → text, Int64 → int, bytes/Binary → base64 text (Binary subtype 4 →
    UUID text), UUID → text, other BSON types → their relaxed Extended JSON. NaN/±inf raise
    ``bad_number``; NUL characters ``nul_byte`` and lone surrogates ``invalid_utf8`` (unless
    ``options`` says to strip or replace them).
    """
    return _json_converter(options)(v)


def _jsonb_converter(options: ConvertOptions) -> Converter:
    # psycopg's jsonb dumper chosen by set_types(["jsonb"]) serializes any object itself, so
    # the plain JSON value is returned: no Jsonb wrapper to allocate per value.
    return _json_converter(options)


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:
        # orjson refuses integers wider than 64 bits, which JSON (and jsonb) allow
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode()


def adapt_connection(conn: Any) -> None:
    """Make ``conn`` serialize json/jsonb values with orjson (much faster than ``json``).

    Only this connection (and cursors made from it afterwards) is changed; psycopg's
    process-wide dumper stays as it was.
    """
    from psycopg.types.json import set_json_dumps

    set_json_dumps(_dumps, context=conn)


def adapt_uuid_wire(adapters: Any) -> None:
    """Let ``adapters`` (a connection's or cursor's) COPY ``uuid`` values given as their 16
    bytes, as they are, besides ``uuid.UUID`` objects (a ``uuid.UUID`` and its dumper cost
    about twice as much per id as the bytes)."""
    adapters.register_dumper(None, _uuid_wire_dumper())


@functools.cache
def _uuid_wire_dumper() -> type:
    from psycopg import postgres
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class UuidWireDumper(Dumper):
        """Binary ``uuid`` from 16 bytes, or from a ``uuid.UUID``."""

        format = Format.BINARY
        oid = postgres.types["uuid"].oid

        def dump(self, obj: Any) -> bytes:
            return obj if type(obj) is bytes else obj.bytes

    return UuidWireDumper


def install_json_dumps() -> None:
    """Deprecated: changes psycopg's global JSON dumper; use :func:`adapt_connection`."""
    import warnings

    from psycopg.types.json import set_json_dumps

    warnings.warn("install_json_dumps() changes psycopg's global JSON dumper; call "
                  "adapt_connection(conn) on each loading connection instead",
                  DeprecationWarning, stacklevel=2)
    set_json_dumps(_dumps)


def printable_text(text: str) -> str:
    """``text`` as PostgreSQL text can hold it: NUL as ``\\u0000``, a lone surrogate as
    ``\\udcXX`` (backslash included). Valid text is returned unchanged.

    For names and keys that are shown or recorded rather than loaded as data: field names
    in the unmapped report, source keys in the hidden column.
    """
    if text.isascii() and "\x00" not in text:
        return text
    text = text.replace("\x00", "\\u0000")
    if not text.isascii():
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _jsonb_safe(text: str) -> str:
    # jsonb rejects the escape \u0000 and lone surrogates: keep both visible as plain text.
    if "\\u0000" in text:
        text = _NUL_ESCAPE.sub(r"\1\\\\u0000", text)
    if not text.isascii():
        text = _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", text)
    return text


def to_extended_json(doc: Any) -> str:
    """Relaxed Extended JSON v2 text of ``doc``, for keeping an original document.

    Never raises: what cannot be encoded becomes the ``repr`` of ``doc`` as a JSON string.
    The text is always accepted by jsonb: a NUL character is kept as the six characters
    ``\\u0000`` and a lone surrogate as ``\\udcXX`` (backslash included) in the string.
    """
    try:
        text = json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS,
                               ensure_ascii=False)
    except Exception:
        try:
            text = json.dumps(repr(doc), ensure_ascii=False)
        except Exception:
            text = json.dumps(f"<{_type_name(doc)} that cannot be shown>")
    return _jsonb_safe(text)


# --------------------------------------------------------------------------- arrays


def _array_converter(element: Converter) -> Converter:
    def convert(v: Any) -> list[Any]:
        if type(v) is list or isinstance(v, (list, tuple)):
            try:
                return [None if x is None else element(x) for x in v]
            except ConversionError:
                for i, x in enumerate(v):
                    if x is None:
                        continue
                    try:
                        element(x)
                    except ConversionError as exc:
                        raise ConversionError(f"element {i}: {exc.reason}",
                                              error_class=exc.error_class,
                                              value=exc.value) from None
                raise
        raise _err("wrong_type", f"expected an array, got {_type_name(v)}", v)

    return convert


# --------------------------------------------------------------------------- dispatch


def _scalar_converter(t: PgType, options: ConvertOptions) -> Converter:
    base = t.base
    if base in ("text", "varchar"):
        return _text_converter(t, options)
    if base in _INT_RANGES:
        return _int_converter(t)
    if base == "numeric":
        return _numeric_converter(t)
    if base in ("real", "double precision"):
        return _float_converter(t)
    if base == "boolean":
        return _bool_converter(t)
    if base == "timestamptz":
        return _timestamptz_converter(options)
    if base == "timestamp":
        return _timestamp_converter(options)
    if base == "date":
        return _date_converter(options)
    if base == "uuid":
        return to_uuid
    if base == "jsonb":
        return _jsonb_converter(options)
    if base == "bytea":
        return _bytea_converter(t)
    raise ValueError(f"no converter for type {t.sql!r}")


@dataclass(frozen=True)
class FastPath:
    """The common case of a converter, for generated code to inline.

    When ``condition`` (a Python expression over ``v``) holds, the converter would return
    ``result`` (an expression over ``v``); otherwise the converter itself must be called.
    Names the expressions use are in ``names``. Each fast path repeats the first test of its
    converter above, so both always agree.
    """

    condition: str
    result: str = "v"
    names: dict[str, Any] | None = None


def fast_path(t: PgType, options: ConvertOptions = DEFAULT_OPTIONS) -> FastPath | None:
    """The inlinable common case of ``converter_for(t, options)``, if it has one."""
    if t.array:
        return None
    base = t.base
    if base in ("text", "varchar"):
        # ASCII has no lone surrogates; NUL is ASCII, so it is checked on its own
        plain = "type(v) is str and v.isascii() and '\\x00' not in v"
        limit = t.length
        if options.max_text_chars is not None and (limit is None
                                                   or options.max_text_chars < limit):
            limit = options.max_text_chars
        return FastPath(plain if limit is None else f"{plain} and len(v) <= {limit}")
    if base in _INT_RANGES:
        lo, hi = _INT_RANGES[base]
        return FastPath(f"type(v) is int and {lo} <= v <= {hi}")
    if base == "double precision":
        return FastPath("type(v) is float")
    if base == "boolean":
        return FastPath("v is True or v is False")
    if base == "timestamptz":
        return FastPath("type(v) is datetime and v.tzinfo is UTC",
                        names={"datetime": datetime, "UTC": UTC})
    if base == "uuid":
        from docshift.transform.ids import objectid_to_uuid

        return FastPath("type(v) is ObjectId", "objectid_to_uuid(v)",
                        {"ObjectId": ObjectId, "objectid_to_uuid": objectid_to_uuid})
    return None


def uuid_wire() -> tuple[Converter, FastPath]:
    """A ``uuid`` column's converter and fast path as the loader and the verifier use them:
    the UUID's 16 bytes (:func:`docshift.transform.ids.to_uuid_bytes`, the id rules of
    ``to_uuid``), which :func:`adapt_uuid_wire`'s dumper copies as they are (a ``uuid.UUID``
    object and its dumper cost about twice as much per id)."""
    from docshift.transform.ids import objectid_to_uuid_bytes, to_uuid_bytes

    return to_uuid_bytes, FastPath("type(v) is ObjectId", "objectid_to_uuid_bytes(v)",
                                   {"ObjectId": ObjectId,
                                    "objectid_to_uuid_bytes": objectid_to_uuid_bytes})


def converter_for(t: PgType, options: ConvertOptions = DEFAULT_OPTIONS) -> Converter:
    """The function that turns one non-None source value into the value to COPY into ``t``.

    It raises :class:`~docshift.errors.ConversionError` (``field`` left unset) when the value
    does not fit; ``docs/conversions.md`` lists the rules and error classes.
    """
    element = _scalar_converter(t.element, options)
    return _array_converter(element) if t.array else element
