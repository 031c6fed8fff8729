import datetime as dt
import json
import math
import re
import struct
import uuid
from decimal import Decimal

import pytest
from bson import (
    BSON,
    Binary,
    Code,
    CodecOptions,
    DatetimeConversion,
    DBRef,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
)
from bson.datetime_ms import DatetimeMS
from bson.son import SON
from bson.tz_util import FixedOffset, utc
from hypothesis import example, given
from hypothesis import strategies as st

from docshift.errors import ConversionError
from docshift.transform.convert import (
    ConvertOptions,
    _dumps,
    converter_for,
    to_extended_json,
    to_json_value,
)
from docshift.transform.ids import objectid_to_uuid
from docshift.transform.pgtypes import parse_type

UTC = dt.UTC
OID = ObjectId("65b9f1a2c3d4e5f601234567")
ERROR_CLASSES = {"wrong_type", "nul_byte", "invalid_utf8", "too_long", "out_of_range",
                 "bad_number", "not_boolean", "bad_date", "bad_id"}


def conv(type_text, value, **options):
    return converter_for(parse_type(type_text), ConvertOptions(**options))(value)


def rejected(type_text, value, **options) -> ConversionError:
    with pytest.raises(ConversionError) as info:
        conv(type_text, value, **options)
    err = info.value
    assert err.field is None
    assert err.error_class in ERROR_CLASSES
    return err


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def bad_utf8(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


ACCEPTED = [
    # text
    ("text", "héllo 😀", "héllo 😀", {}),
    ("text", "", "", {}),
    ("text", 42, "42", {}),
    ("text", Int64(-7), "-7", {}),
    ("text", 1.5, "1.5", {}),
    ("text", 0.1, "0.1", {}),
    ("text", 1e16, "1e+16", {}),
    ("text", float("nan"), "NaN", {}),
    ("text", float("-inf"), "-Infinity", {}),
    ("text", Decimal("1.10"), "1.10", {}),
    ("text", Decimal128("1.10"), "1.10", {}),
    ("text", OID, "65b9f1a2c3d4e5f601234567", {}),
    ("text", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001", {}),
    ("text", "a\x00b\x00", "ab", {"strip_nul": True}),
    ("text", bad_utf8(b"caf\xe9"), "caf\ufffd", {"replace_invalid_utf8": True}),
    ("text", "abc", "abc", {"max_text_chars": 3}),
    ("text", "ab\x00c", "abc", {"max_text_chars": 3, "strip_nul": True}),
    ("varchar(3)", "abc", "abc", {}),
    ("varchar(3)", "ééé", "ééé", {}),
    ("varchar(3)", "😀😀😀", "😀😀😀", {}),
    ("varchar(3)", 999, "999", {}),
    ("varchar(5)", "abcd", "abcd", {"max_text_chars": 10}),
    ("varchar", "x" * 1000, "x" * 1000, {}),
    # integers
    ("smallint", 5, 5, {}),
    ("smallint", -32768, -32768, {}),
    ("smallint", 32767, 32767, {}),
    ("integer", Int64(5), 5, {}),
    ("integer", 3.0, 3, {}),
    ("integer", -0.0, 0, {}),
    ("integer", Decimal("7"), 7, {}),
    ("integer", Decimal("7.000"), 7, {}),
    ("integer", Decimal("1E+2"), 100, {}),
    ("integer", Decimal128("7"), 7, {}),
    ("integer", "42", 42, {}),
    ("integer", "-42", -42, {}),
    ("integer", "+42", 42, {}),
    ("integer", " 42 ", 42, {}),
    ("integer", "42.0", 42, {}),
    ("integer", "1e3", 1000, {}),
    ("bigint", 2**63 - 1, 2**63 - 1, {}),
    ("bigint", Int64(-(2**63)), -(2**63), {}),
    ("bigint", "-9223372036854775808", -(2**63), {}),
    ("bigint", 2.0**62, 2**62, {}),
    # numeric
    ("numeric", 1, Decimal(1), {}),
    ("numeric", Int64(10**18), Decimal(10**18), {}),
    ("numeric", 0.1, Decimal("0.1"), {}),
    ("numeric", 1e300, Decimal("1e300"), {}),
    ("numeric", Decimal("1.10"), Decimal("1.10"), {}),
    ("numeric", Decimal128("-1.10"), Decimal("-1.10"), {}),
    ("numeric", "12.50", Decimal("12.50"), {}),
    ("numeric", ".5", Decimal("0.5"), {}),
    ("numeric", "9" * 131072, Decimal("9" * 131072), {}),
    ("numeric", Decimal("1E-16383"), Decimal("1E-16383"), {}),
    ("numeric(5,2)", 1, Decimal("1.00"), {}),
    ("numeric(5,2)", "1.005", Decimal("1.00"), {}),
    ("numeric(5,2)", "1.015", Decimal("1.02"), {}),
    ("numeric(5,2)", 2.675, Decimal("2.68"), {}),  # 2.675 as written, not 2.67499999…
    ("numeric(5,2)", 999.994, Decimal("999.99"), {}),
    ("numeric(5,2)", -999.99, Decimal("-999.99"), {}),
    ("numeric(5,2)", Decimal("1E-100"), Decimal("0.00"), {}),
    ("numeric(5,2)", Decimal("0E+100"), Decimal("0.00"), {}),
    ("numeric(3,3)", 0.9994, Decimal("0.999"), {}),
    ("numeric(10)", "12345.5", Decimal("12346"), {}),
    ("numeric(1000,500)", "1" * 500 + ".5", Decimal("1" * 500 + ".5" + "0" * 499), {}),
    # floating point
    ("real", 1.5, 1.5, {}),
    ("real", 1, 1.0, {}),
    ("real", 3.4e38, 3.4e38, {}),
    ("real", 1e-50, 1e-50, {}),
    ("real", float("inf"), float("inf"), {}),
    ("real", float("nan"), float("nan"), {}),
    ("real", Decimal("0.25"), 0.25, {}),
    ("double precision", Int64(3), 3.0, {}),
    ("double precision", 2**1000, 2.0**1000, {}),
    ("double precision", Decimal128("0.1"), 0.1, {}),
    ("double precision", Decimal("NaN"), float("nan"), {}),
    ("double precision", "1.5e300", 1.5e300, {}),
    ("double precision", "-0.5", -0.5, {}),
    ("double precision", float("-inf"), float("-inf"), {}),
    # boolean
    ("boolean", True, True, {}),
    ("boolean", False, False, {}),
    ("boolean", "true", True, {}),
    ("boolean", "FALSE", False, {}),
    ("boolean", "True", True, {}),
    # timestamptz
    ("timestamptz", dt.datetime(2024, 1, 31, 10), dt.datetime(2024, 1, 31, 10, tzinfo=UTC), {}),
    ("timestamptz", dt.datetime(2024, 1, 31, 10, tzinfo=utc),
     dt.datetime(2024, 1, 31, 10, tzinfo=UTC), {}),
    ("timestamptz", dt.datetime(2024, 1, 31, 10, tzinfo=FixedOffset(-300, "EST")),
     dt.datetime(2024, 1, 31, 15, tzinfo=UTC), {}),
    ("timestamptz", dt.date(2024, 1, 31), dt.datetime(2024, 1, 31, tzinfo=UTC), {}),
    ("timestamptz", "2024-01-31", dt.datetime(2024, 1, 31, tzinfo=UTC), {}),
    ("timestamptz", "2024-01-31T10:00:00Z", dt.datetime(2024, 1, 31, 10, tzinfo=UTC), {}),
    ("timestamptz", "2024-01-31T10:00:00", dt.datetime(2024, 1, 31, 10, tzinfo=UTC), {}),
    ("timestamptz", "2024-01-31T10:00:00+05:30",
     dt.datetime(2024, 1, 31, 4, 30, tzinfo=UTC), {}),
    ("timestamptz", "2024-01-31T10:00:00.123456Z",
     dt.datetime(2024, 1, 31, 10, 0, 0, 123456, tzinfo=UTC), {}),
    ("timestamptz", "2024-01-31 10:00:00.5-01:00",
     dt.datetime(2024, 1, 31, 11, 0, 0, 500000, tzinfo=UTC), {}),
    ("timestamptz", {"$date": "2024-01-31T10:00:00.123Z"},
     dt.datetime(2024, 1, 31, 10, 0, 0, 123000, tzinfo=UTC), {}),
    ("timestamptz", {"$date": 1706695200123},
     dt.datetime(2024, 1, 31, 10, 0, 0, 123000, tzinfo=UTC), {}),
    ("timestamptz", {"$date": {"$numberLong": "-1000"}},
     dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), {}),
    ("timestamptz", DatetimeMS(1706695200123),
     dt.datetime(2024, 1, 31, 10, 0, 0, 123000, tzinfo=UTC), {}),
    ("timestamptz", 1706695200, dt.datetime(2024, 1, 31, 10, tzinfo=UTC), {"epoch": "s"}),
    ("timestamptz", 1706695200.5, dt.datetime(2024, 1, 31, 10, 0, 0, 500000, tzinfo=UTC),
     {"epoch": "s"}),
    ("timestamptz", Int64(1706695200123),
     dt.datetime(2024, 1, 31, 10, 0, 0, 123000, tzinfo=UTC), {"epoch": "ms"}),
    ("timestamptz", Decimal("1706695200.25"),
     dt.datetime(2024, 1, 31, 10, 0, 0, 250000, tzinfo=UTC), {"epoch": "s"}),
    ("timestamptz", "0001-01-01T00:00:00Z", dt.datetime(1, 1, 1, tzinfo=UTC), {}),
    ("timestamptz", "9999-12-31T23:59:59.999999",
     dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), {}),
    # timestamp
    ("timestamp", dt.datetime(2024, 1, 31, 10), dt.datetime(2024, 1, 31, 10), {}),
    ("timestamp", dt.datetime(2024, 1, 31, 10, tzinfo=UTC), dt.datetime(2024, 1, 31, 10), {}),
    ("timestamp", dt.datetime(2024, 1, 31, 10, tzinfo=utc), dt.datetime(2024, 1, 31, 10), {}),
    ("timestamp", "2024-01-31T10:00:00-02:00", dt.datetime(2024, 1, 31, 12), {}),
    ("timestamp", dt.date(2024, 1, 31), dt.datetime(2024, 1, 31), {}),
    ("timestamp", {"$date": 0}, dt.datetime(1970, 1, 1), {}),
    ("timestamp", 86_400_000, dt.datetime(1970, 1, 2), {"epoch": "ms"}),
    # date
    ("date", dt.date(2024, 1, 31), dt.date(2024, 1, 31), {}),
    ("date", dt.datetime(2024, 1, 31, 23, 59), dt.date(2024, 1, 31), {}),
    ("date", dt.datetime(2024, 1, 31, 23, tzinfo=FixedOffset(-300, "EST")),
     dt.date(2024, 2, 1), {}),
    ("date", "2024-01-31", dt.date(2024, 1, 31), {}),
    ("date", "2024-01-31T23:30:00-05:00", dt.date(2024, 2, 1), {}),
    ("date", {"$date": "2024-01-31T00:00:00Z"}, dt.date(2024, 1, 31), {}),
    ("date", 0, dt.date(1970, 1, 1), {"epoch": "s"}),
    ("date", -1, dt.date(1969, 12, 31), {"epoch": "ms"}),
    # uuid
    ("uuid", OID, objectid_to_uuid(OID), {}),
    ("uuid", str(OID), objectid_to_uuid(OID), {}),
    ("uuid", uuid.UUID(int=5), uuid.UUID(int=5), {}),
    # bytea
    ("bytea", b"\x00\xff", b"\x00\xff", {}),
    ("bytea", Binary(b"\x00\xff", 0), b"\x00\xff", {}),
    ("bytea", Binary(uuid.UUID(int=1).bytes, 4), uuid.UUID(int=1).bytes, {}),
    ("bytea", bytearray(b"ab"), b"ab", {}),
    ("bytea", memoryview(b"ab"), b"ab", {}),
    # jsonb
    ("jsonb", "abc", "abc", {}),
    ("jsonb", 5, 5, {}),
    ("jsonb", [1, "a", None], [1, "a", None], {}),
    ("jsonb", {"_id": OID, "n": Int64(1)}, {"_id": str(OID), "n": 1}, {}),
    ("jsonb", {"a": "x\x00"}, {"a": "x"}, {"strip_nul": True}),
    ("jsonb", "x" * 50, "x" * 50, {"max_text_chars": 3}),
    # arrays
    ("text[]", ["a", None, 3], ["a", None, "3"], {}),
    ("text[]", ("a", "b"), ["a", "b"], {}),
    ("text[]", [], [], {}),
    ("integer[]", [1, "2", 3.0, None], [1, 2, 3, None], {}),
    ("uuid[]", [OID, None], [objectid_to_uuid(OID), None], {}),
    ("numeric(4,1)[]", [1.25, "2.35"], [Decimal("1.2"), Decimal("2.4")], {}),
    ("jsonb[]", [{"a": OID}, [1], None], [{"a": str(OID)}, [1], None], {}),
    ("date[]", ["2024-01-31"], [dt.date(2024, 1, 31)], {}),
    ("boolean[]", [True, "false"], [True, False], {}),
]


@pytest.mark.parametrize(("type_text", "value", "expected", "options"), ACCEPTED,
                         ids=lambda x: repr(x)[:40])
def test_accepted(type_text, value, expected, options):
    got = conv(type_text, value, **options)
    if isinstance(expected, list):
        assert len(got) == len(expected)
        assert all(same(g, e) or g == e for g, e in zip(got, expected, strict=True))
        assert type(got) is list
    else:
        assert same(got, expected), (got, expected)
    if isinstance(got, dt.datetime) and got.tzinfo is not None:
        assert got.tzinfo is UTC


REJECTED = [
    # text
    ("text", True, "wrong_type", {}),
    ("text", {"a": 1}, "wrong_type", {}),
    ("text", [1], "wrong_type", {}),
    ("text", dt.datetime(2024, 1, 1), "wrong_type", {}),
    ("text", b"x", "wrong_type", {}),
    ("text", "a\x00b", "nul_byte", {}),
    ("text", bad_utf8(b"caf\xe9"), "invalid_utf8", {}),
    ("text", "\ud800", "invalid_utf8", {}),
    ("text", "abcd", "too_long", {"max_text_chars": 3}),
    ("varchar(3)", "abcd", "too_long", {}),
    ("varchar(3)", "ab\x00cd", "too_long", {"strip_nul": True}),
    ("varchar(3)", 1234, "too_long", {}),
    ("varchar(5)", "abcd", "too_long", {"max_text_chars": 3}),
    # integers
    ("smallint", 32768, "out_of_range", {}),
    ("smallint", -32769, "out_of_range", {}),
    ("integer", 2**31, "out_of_range", {}),
    ("integer", Int64(-(2**31) - 1), "out_of_range", {}),
    ("integer", 1e300, "out_of_range", {}),
    ("integer", Decimal("1E+40"), "out_of_range", {}),
    ("integer", "1e99999999", "out_of_range", {}),
    ("bigint", 2**63, "out_of_range", {}),
    ("bigint", "-9223372036854775809", "out_of_range", {}),
    ("integer", 1.5, "bad_number", {}),
    ("integer", "1.5", "bad_number", {}),
    ("integer", Decimal("0.1"), "bad_number", {}),
    ("integer", Decimal128("2.5"), "bad_number", {}),
    ("integer", "abc", "bad_number", {}),
    ("integer", "", "bad_number", {}),
    ("integer", "4_2", "bad_number", {}),
    ("integer", "0x10", "bad_number", {}),
    ("integer", "١٢", "bad_number", {}),  # non-ASCII digits
    ("integer", float("nan"), "bad_number", {}),
    ("integer", float("inf"), "bad_number", {}),
    ("integer", Decimal("NaN"), "bad_number", {}),
    ("integer", Decimal128("Infinity"), "bad_number", {}),
    ("integer", "NaN", "bad_number", {}),
    ("integer", True, "wrong_type", {}),
    ("integer", False, "wrong_type", {}),
    ("integer", [1], "wrong_type", {}),
    ("integer", {"$numberInt": "1"}, "wrong_type", {}),
    ("integer", OID, "wrong_type", {}),
    ("integer", dt.datetime(2024, 1, 1), "wrong_type", {}),
    # numeric
    ("numeric", float("nan"), "bad_number", {}),
    ("numeric", float("inf"), "bad_number", {}),
    ("numeric", Decimal("NaN"), "bad_number", {}),
    ("numeric", Decimal("-Infinity"), "bad_number", {}),
    ("numeric", Decimal128("NaN"), "bad_number", {}),
    ("numeric", "Infinity", "bad_number", {}),
    ("numeric", "1,5", "bad_number", {}),
    ("numeric", "1e", "bad_number", {}),
    ("numeric", Decimal("1E+131072"), "out_of_range", {}),
    ("numeric", Decimal("1E-16384"), "out_of_range", {}),
    ("numeric", Decimal("0E-16384"), "out_of_range", {}),
    ("numeric(5,2)", 999.995, "out_of_range", {}),
    ("numeric(5,2)", 1000, "out_of_range", {}),
    ("numeric(5,2)", "-1000", "out_of_range", {}),
    ("numeric(5,2)", "1e999999999", "out_of_range", {}),
    ("numeric(3,3)", 0.9995, "out_of_range", {}),
    ("numeric(3,3)", 1, "out_of_range", {}),
    ("numeric", True, "wrong_type", {}),
    ("numeric", [1], "wrong_type", {}),
    ("numeric", {}, "wrong_type", {}),
    # floating point
    ("real", 1e39, "out_of_range", {}),
    ("real", -3.5e38, "out_of_range", {}),
    ("real", 10**39, "out_of_range", {}),
    ("real", Decimal("1E+39"), "out_of_range", {}),
    ("real", "1e39", "out_of_range", {}),
    ("double precision", 10**400, "out_of_range", {}),
    ("double precision", "1e400", "out_of_range", {}),
    ("double precision", Decimal("-1E+400"), "out_of_range", {}),
    ("double precision", "abc", "bad_number", {}),
    ("double precision", "nan", "bad_number", {}),
    ("double precision", True, "wrong_type", {}),
    ("double precision", [1.0], "wrong_type", {}),
    ("real", OID, "wrong_type", {}),
    # boolean
    ("boolean", 0, "not_boolean", {}),
    ("boolean", 1, "not_boolean", {}),
    ("boolean", 1.0, "not_boolean", {}),
    ("boolean", "yes", "not_boolean", {}),
    ("boolean", "1", "not_boolean", {}),
    ("boolean", "t", "not_boolean", {}),
    ("boolean", " true", "not_boolean", {}),
    ("boolean", [True], "not_boolean", {}),
    ("boolean", {}, "not_boolean", {}),
    # dates and times
    ("timestamptz", "2024-02-30", "bad_date", {}),
    ("timestamptz", "not a date", "bad_date", {}),
    ("timestamptz", "2024-01-31T25:00:00", "bad_date", {}),
    ("timestamptz", "", "bad_date", {}),
    ("timestamptz", "31/01/2024", "bad_date", {}),
    ("timestamptz", "+10000-01-01", "bad_date", {}),
    ("timestamptz", {"$date": "nope"}, "bad_date", {}),
    ("timestamptz", {"$date": {"$numberLong": "x"}}, "bad_date", {}),
    ("timestamptz", {"$date": True}, "bad_date", {}),
    ("timestamptz", {"$date": None}, "bad_date", {}),
    ("timestamptz", float("nan"), "bad_date", {"epoch": "s"}),
    ("timestamptz", Decimal("Infinity"), "bad_date", {"epoch": "ms"}),
    ("timestamptz", DatetimeMS(2**62), "out_of_range", {}),
    ("timestamptz", DatetimeMS(-(2**62)), "out_of_range", {}),
    ("timestamptz", {"$date": 2**62}, "out_of_range", {}),
    ("timestamptz", 10**20, "out_of_range", {"epoch": "s"}),
    ("timestamptz", 1e20, "out_of_range", {"epoch": "ms"}),
    ("timestamptz", "0001-01-01T00:00:00+01:00", "out_of_range", {}),
    ("timestamptz", "9999-12-31T23:00:00-05:00", "out_of_range", {}),
    ("timestamptz", dt.datetime(1, 1, 1, tzinfo=FixedOffset(60, "x")), "out_of_range", {}),
    ("timestamp", DatetimeMS(2**62), "out_of_range", {}),
    ("date", DatetimeMS(-(2**62)), "out_of_range", {}),
    ("timestamptz", 1706695200, "wrong_type", {}),
    ("timestamp", 1.5, "wrong_type", {}),
    ("date", Int64(0), "wrong_type", {}),
    ("timestamptz", True, "wrong_type", {"epoch": "s"}),
    ("timestamptz", [2024, 1, 31], "wrong_type", {}),
    ("timestamptz", {"year": 2024}, "wrong_type", {}),
    ("timestamptz", {"$date": 0, "x": 1}, "wrong_type", {}),
    ("date", b"2024", "wrong_type", {}),
    ("date", OID, "wrong_type", {}),
    # uuid
    ("uuid", "", "bad_id", {}),
    ("uuid", 1.5, "bad_id", {}),
    ("uuid", True, "bad_id", {}),
    ("uuid", {"$oid": str(OID)}, "bad_id", {}),
    # bytea
    ("bytea", "abc", "wrong_type", {}),
    ("bytea", 5, "wrong_type", {}),
    ("bytea", [1, 2], "wrong_type", {}),
    # jsonb
    ("jsonb", float("nan"), "bad_number", {}),
    ("jsonb", {"a": [1, float("inf")]}, "bad_number", {}),
    ("jsonb", {"a": "x\x00"}, "nul_byte", {}),
    ("jsonb", {"a\x00": 1}, "nul_byte", {}),
    ("jsonb", [bad_utf8(b"\xff")], "invalid_utf8", {}),
    ("jsonb", {bad_utf8(b"\xff"): 1}, "invalid_utf8", {}),
    ("jsonb", {"a": object()}, "wrong_type", {}),
    ("jsonb", {1, 2}, "wrong_type", {}),
    # arrays
    ("text[]", "abc", "wrong_type", {}),
    ("integer[]", 5, "wrong_type", {}),
    ("integer[]", {"a": 1}, "wrong_type", {}),
    ("integer[]", [[1, 2]], "wrong_type", {}),
    ("integer[]", [1, None, 2**40], "out_of_range", {}),
    ("varchar(2)[]", ["ab", "abc"], "too_long", {}),
    ("boolean[]", [True, 1], "not_boolean", {}),
    ("date[]", ["2024-01-31", "x"], "bad_date", {}),
    ("uuid[]", [OID, ""], "bad_id", {}),
    ("jsonb[]", [{"a": float("nan")}], "bad_number", {}),
]


@pytest.mark.parametrize(("type_text", "value", "error_class", "options"), REJECTED,
                         ids=lambda x: repr(x)[:40])
def test_rejected(type_text, value, error_class, options):
    err = rejected(type_text, value, **options)
    assert err.error_class == error_class, str(err)
    assert err.reason
    if not type_text.endswith("[]") and type_text != "jsonb":
        assert err.value is value  # arrays and JSON name the offending element instead


def test_messages_say_what_is_wrong():
    assert "4 characters" in rejected("varchar(3)", "abcd").reason
    assert "varchar(3)" in rejected("varchar(3)", "abcd").reason
    assert "max_text_chars" in rejected("text", "abcd", max_text_chars=2).reason
    assert "-32768 to 32767" in rejected("smallint", 40000).reason
    assert "numeric(5,2)" in rejected("numeric(5,2)", 1000).reason
    assert "epoch" in rejected("date", 5).reason
    assert "expected an array" in rejected("text[]", "x").reason
    assert "strip_nul" in rejected("text", "\x00").reason


def test_array_error_names_the_element():
    err = rejected("integer[]", [1, None, "x", 4])
    assert err.reason.startswith("element 2: ")
    assert err.error_class == "bad_number"
    assert err.value == "x"


def test_array_elements_use_options():
    assert conv("text[]", ["a\x00"], strip_nul=True) == ["a"]
    assert rejected("text[]", ["abcd"], max_text_chars=3).reason.startswith("element 0: ")


def test_converted_ints_are_plain_ints():
    assert type(conv("bigint", Int64(5))) is int
    assert type(conv("bytea", Binary(b"x", 0))) is bytes
    assert type(conv("text", Code("x"))) is str


def test_out_of_range_bson_dates_decoded_as_datetime_ms():
    raw = BSON.encode({"when": DatetimeMS(2**62), "ok": DatetimeMS(1706695200123)})
    doc = raw.decode(CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO))
    assert type(doc["when"]) is DatetimeMS
    assert rejected("timestamptz", doc["when"]).error_class == "out_of_range"
    assert conv("timestamptz", doc["ok"]) == dt.datetime(2024, 1, 31, 10, 0, 0, 123000,
                                                         tzinfo=UTC)


# ----------------------------------------------------------------------------- hypothesis

INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


@pytest.mark.parametrize("type_text", list(INT_RANGES))
@given(data=st.data())
def test_ints_in_range_round_trip(type_text, data):
    bound = INT_RANGES[type_text]
    n = data.draw(st.integers(-bound, bound - 1))
    assert conv(type_text, n) == n
    assert conv(type_text, Int64(n)) == n
    assert conv(type_text, str(n)) == n
    assert conv(type_text, Decimal(n)) == n
    outside = data.draw(st.one_of(st.integers(max_value=-bound - 1),
                                  st.integers(min_value=bound)))
    assert rejected(type_text, outside).error_class == "out_of_range"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4,
                   min_value=-(10**8), max_value=10**8))
def test_numeric_rounds_half_even_to_scale(d):
    want = d.quantize(Decimal("0.01"), rounding="ROUND_HALF_EVEN")
    if abs(want) >= 10**8:
        assert rejected("numeric(10,2)", d).error_class == "out_of_range"
        return
    got = conv("numeric(10,2)", d)
    assert got == want
    assert got.as_tuple().exponent == -2
    assert conv("numeric(10,2)", str(d)) == got


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numeric_keeps_the_shortest_float_text(f):
    assert conv("numeric", f) == Decimal(repr(f))
    assert float(conv("numeric", f)) == f


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_real_accepts_every_float32(f):
    assert conv("real", f) == f


aware = st.datetimes(timezones=st.just(UTC))
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@given(aware)
def test_iso_strings_round_trip(d):
    assert conv("timestamptz", d.isoformat()) == d
    assert conv("timestamptz", d.isoformat().replace("+00:00", "Z")) == d
    assert conv("timestamp", d.isoformat()) == d.replace(tzinfo=None)
    assert conv("timestamp", d.replace(tzinfo=None).isoformat()) == d.replace(tzinfo=None)
    assert conv("date", d.isoformat()) == d.date()
    assert conv("date", d.date().isoformat()) == d.date()


@given(st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31)),
       offsets)
def test_offsets_are_moved_to_utc(naive, tz):
    d = naive.replace(tzinfo=tz)
    got = conv("timestamptz", d.isoformat())
    assert got == d
    assert got.tzinfo is UTC


@given(st.integers(-62135596800000, 253402300799999))
def test_epoch_ms_round_trip(ms):
    got = conv("timestamptz", ms, epoch="ms")
    assert got == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)
    assert conv("timestamptz", {"$date": {"$numberLong": str(ms)}}) == got
    assert conv("timestamptz", DatetimeMS(ms)) == got


# ----------------------------------------------------------------------------- JSON


def test_to_json_value_of_bson_types():
    when = dt.datetime(2024, 1, 31, 10, 0, 0, 123456)
    doc = SON([
        ("_id", OID),
        ("naive", when),
        ("aware", when.replace(tzinfo=FixedOffset(60, "CET"))),
        ("day", dt.date(2024, 1, 31)),
        ("early", dt.datetime(5, 1, 2)),
        ("before_year_1", dt.datetime(1, 1, 1, tzinfo=FixedOffset(60, "x"))),
        ("ms", DatetimeMS(0)),
        ("far", DatetimeMS(2**62)),
        ("d128", Decimal128("1.10")),
        ("dec", Decimal("-0.000")),
        ("i64", Int64(2**40)),
        ("big", 2**80),
        ("bytes", b"\x00\x01"),
        ("bin", Binary(b"\xff", 0)),
        ("binuuid", Binary(uuid.UUID(int=1).bytes, 4)),
        ("uuid", uuid.UUID(int=2)),
        ("regex", Regex("^a", "i")),
        ("pattern", re.compile("b", re.IGNORECASE)),
        ("ts", Timestamp(1, 2)),
        ("min", MinKey()),
        ("max", MaxKey()),
        ("code", Code("f()")),
        ("ref", DBRef("coll", OID)),
        ("tuple", (1, 2)),
        ("nested", {"list": [{"x": OID}], "none": None, "t": True, "f": -0.5}),
        (5, "int key"),
    ])
    assert to_json_value(doc) == {
        "_id": "65b9f1a2c3d4e5f601234567",
        "naive": "2024-01-31T10:00:00.123Z",
        "aware": "2024-01-31T09:00:00.123Z",
        "day": "2024-01-31",
        "early": "0005-01-02T00:00:00.000Z",
        "before_year_1": {"$date": {"$numberLong": "-62135600400000"}},
        "ms": "1970-01-01T00:00:00.000Z",
        "far": {"$date": {"$numberLong": str(2**62)}},
        "d128": "1.10",
        "dec": "-0.000",
        "i64": 2**40,
        "big": 2**80,
        "bytes": "AAE=",
        "bin": "/w==",
        "binuuid": "00000000-0000-0000-0000-000000000001",
        "uuid": "00000000-0000-0000-0000-000000000002",
        "regex": {"$regularExpression": {"pattern": "^a", "options": "i"}},
        "pattern": {"$regularExpression": {"pattern": "b", "options": "iu"}},
        "ts": {"$timestamp": {"t": 1, "i": 2}},
        "min": {"$minKey": 1},
        "max": {"$maxKey": 1},
        "code": {"$code": "f()"},
        "ref": {"$ref": "coll", "$id": {"$oid": "65b9f1a2c3d4e5f601234567"}},
        "tuple": [1, 2],
        "nested": {"list": [{"x": "65b9f1a2c3d4e5f601234567"}], "none": None, "t": True,
                   "f": -0.5},
        "5": "int key",
    }
    assert type(to_json_value(Int64(1))) is int


def test_to_json_value_options():
    opts = ConvertOptions(strip_nul=True, replace_invalid_utf8=True)
    assert to_json_value({"a\x00": ["b\x00", bad_utf8(b"\xff")]}, opts) == {
        "a": ["b", "\ufffd"]}
    with pytest.raises(ConversionError) as info:
        to_json_value({"k": "\x00"})
    assert info.value.error_class == "nul_byte"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.text(alphabet=st.characters(blacklist_categories=["Cs"],
                                       blacklist_characters="\x00")), kids, max_size=4),
    max_leaves=20,
)


@given(json_values)
@example(-(2**63) - 1)  # wider than 64 bits: orjson refuses it, json writes it exactly
def test_to_json_value_keeps_plain_json(v):
    assert to_json_value(v) == v
    # what install_json_dumps installs; read back with json, which keeps integers wider
    # than 64 bits exact (as jsonb does), where orjson would read them as floats
    assert json.loads(_dumps(to_json_value(v))) == v


def test_json_dumps_falls_back_for_wide_ints():
    assert _dumps({"n": 2**64, "s": "é"}) == '{"n":18446744073709551616,"s":"é"}'.encode()
    assert _dumps({"n": 2**63 - 1}) == b'{"n":9223372036854775807}'


# ----------------------------------------------------------------------------- Extended JSON


def _strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for k, x in v.items():
            yield k
            yield from _strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x)


def _jsonb_safe(text: str) -> bool:
    """Whether text is JSON whose strings hold neither NUL nor lone surrogates."""
    parsed = json.loads(text)
    for s in _strings(parsed):
        if "\x00" in s:
            return False
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def test_extended_json_of_bson_types():
    doc = {"_id": OID, "at": dt.datetime(2024, 1, 31, 10, tzinfo=UTC), "n": Int64(5),
           "d": Decimal128("1.10"), "nan": float("nan"), "far": DatetimeMS(2**62),
           "bin": Binary(b"\x01", 0)}
    assert json.loads(to_extended_json(doc)) == {
        "_id": {"$oid": "65b9f1a2c3d4e5f601234567"},
        "at": {"$date": "2024-01-31T10:00:00Z"},
        "n": 5,
        "d": {"$numberDecimal": "1.10"},
        "nan": {"$numberDouble": "NaN"},
        "far": {"$date": {"$numberLong": str(2**62)}},
        "bin": {"$binary": {"base64": "AQ==", "subType": "00"}},
    }


def test_extended_json_keeps_nul_and_bad_utf8_visible():
    text = to_extended_json({"a\x00": "x\x00y", "b": bad_utf8(b"caf\xe9"), "c": "😀"})
    assert json.loads(text) == {"a\\u0000": "x\\u0000y", "b": "caf\\udce9", "c": "😀"}


def test_extended_json_never_raises():
    loop: list = []
    loop.append(loop)
    for doc in (object(), {"a": {1, 2}}, loop, {(1, 2): 3}, b"\x00", "\x00\ud800"):
        text = to_extended_json(doc)
        assert _jsonb_safe(text)
    assert json.loads(to_extended_json({"a": object()})).startswith("{'a': <object")


nasty_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0)) | st.sampled_from(
    ["\\u0000", "\\\\u0000", "\\\x00", "\x00\\", "\\\\\\u0000\x00"])
nasty_docs = st.recursive(
    st.none() | st.integers() | st.floats() | nasty_text | st.builds(ObjectId),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(nasty_text, kids, max_size=3),
    max_leaves=12,
)


@given(nasty_docs)
def test_extended_json_is_always_jsonb_safe(doc):
    assert _jsonb_safe(to_extended_json(doc))


def test_postgres_accepts_extended_json(conn):
    docs = [
        {"a\x00": "x\x00y\\u0000", "b": bad_utf8(b"\xff\xfe"), "c": "\ud83d\ude00 😀"},
        {"_id": OID, "nan": float("nan"), "inf": float("-inf"), "far": DatetimeMS(-(2**62))},
        {"a": object()},
        "\\\\u0000\x00",
        [Regex("a\x00"), Code("x\x00"), MinKey()],
    ]
    conn.execute("CREATE TABLE q (doc jsonb)")
    for doc in docs:
        text = to_extended_json(doc)
        conn.execute("INSERT INTO q VALUES (%s::jsonb)", [text])
    assert conn.execute("SELECT count(*) FROM q").fetchone()[0] == len(docs)


def _as_stored(type_text: str, value):
    """``value`` as PostgreSQL stores it: real keeps float32 precision only."""
    if isinstance(value, list):
        return [None if v is None else _as_stored(type_text[:-2], v) for v in value]
    if type_text == "real" and not math.isnan(value):
        return struct.unpack("f", struct.pack("f", value))[0]
    return value


def test_every_accepted_value_survives_binary_copy(conn):
    conn.execute("SET TIME ZONE 'UTC'")
    types = [parse_type(t) for t, *_ in ACCEPTED]
    conn.execute("CREATE TABLE accepted ("
                 + ", ".join(f"c{i} {t.sql}" for i, t in enumerate(types)) + ")")
    cols = ", ".join(f"c{i}" for i in range(len(types)))
    with conn.cursor().copy(f"COPY accepted ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t.copy_name for t in types])
        copy.write_row([conv(t, v, **o) for t, v, _, o in ACCEPTED])
    row = conn.execute(f"SELECT {cols} FROM accepted").fetchone()
    for (type_text, value, expected, _), got in zip(ACCEPTED, row, strict=True):
        want = _as_stored(type_text, expected)
        got = _as_stored(type_text, got)
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(got)
        else:
            assert got == want, (type_text, value)
