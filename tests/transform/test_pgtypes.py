import datetime as dt
import json
import uuid
from decimal import Decimal

import psycopg
import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from psycopg.types.json import set_json_dumps

from docshift.transform.convert import _dumps, adapt_connection, converter_for
from docshift.transform.ids import objectid_to_uuid
from docshift.transform.pgtypes import BASES, PgType, parse_type


@pytest.mark.parametrize(("text", "expected"), [
    ("text", PgType("text")),
    ("varchar", PgType("varchar")),
    ("varchar(20)", PgType("varchar", length=20)),
    ("character varying(20)", PgType("varchar", length=20)),
    ("smallint", PgType("smallint")),
    ("int2", PgType("smallint")),
    ("integer", PgType("integer")),
    ("int", PgType("integer")),
    ("int4", PgType("integer")),
    ("bigint", PgType("bigint")),
    ("int8", PgType("bigint")),
    ("numeric", PgType("numeric")),
    ("numeric(10,2)", PgType("numeric", precision=10, scale=2)),
    ("numeric(10)", PgType("numeric", precision=10, scale=0)),
    ("decimal(12,4)", PgType("numeric", precision=12, scale=4)),
    ("decimal", PgType("numeric")),
    ("real", PgType("real")),
    ("float4", PgType("real")),
    ("double precision", PgType("double precision")),
    ("float8", PgType("double precision")),
    ("double", PgType("double precision")),
    ("float", PgType("double precision")),
    ("boolean", PgType("boolean")),
    ("bool", PgType("boolean")),
    ("date", PgType("date")),
    ("timestamp", PgType("timestamp")),
    ("timestamp without time zone", PgType("timestamp")),
    ("timestamptz", PgType("timestamptz")),
    ("timestamp with time zone", PgType("timestamptz")),
    ("uuid", PgType("uuid")),
    ("jsonb", PgType("jsonb")),
    ("bytea", PgType("bytea")),
    ("text[]", PgType("text", array=True)),
    ("varchar(5)[]", PgType("varchar", length=5, array=True)),
    ("numeric(4,1)[]", PgType("numeric", precision=4, scale=1, array=True)),
    ("int[]", PgType("integer", array=True)),
    ("uuid[]", PgType("uuid", array=True)),
    ("timestamp with time zone[]", PgType("timestamptz", array=True)),
])
def test_parse(text, expected):
    assert parse_type(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("  TEXT ", PgType("text")),
    ("Text", PgType("text")),
    ("DOUBLE   PRECISION", PgType("double precision")),
    ("Numeric ( 10 , 2 )", PgType("numeric", precision=10, scale=2)),
    ("VARCHAR( 3 )", PgType("varchar", length=3)),
    ("text [ ]", PgType("text", array=True)),
    ("Timestamp  With\tTime Zone", PgType("timestamptz")),
    ("INT8[]", PgType("bigint", array=True)),
    ("Character\nVarying(4) []", PgType("varchar", length=4, array=True)),
])
def test_case_and_whitespace(text, expected):
    assert parse_type(text) == expected


@pytest.mark.parametrize(("text", "sql"), [
    ("varchar(20)", "varchar(20)"),
    ("decimal(10,2)", "numeric(10,2)"),
    ("numeric(7)", "numeric(7,0)"),
    ("text[]", "text[]"),
    ("timestamp with time zone", "timestamptz"),
    ("float8", "double precision"),
    ("double precision[]", "double precision[]"),
    ("int", "integer"),
])
def test_sql(text, sql):
    assert parse_type(text).sql == sql


ALL_TYPES = [
    PgType(b) for b in BASES
] + [
    PgType("varchar", length=7), PgType("numeric", precision=9, scale=3),
    PgType("numeric", precision=3, scale=3),
] + [PgType(b, array=True) for b in BASES] + [
    PgType("varchar", length=2, array=True), PgType("numeric", precision=5, scale=2, array=True),
]


@pytest.mark.parametrize("t", ALL_TYPES, ids=lambda t: t.sql)
def test_sql_round_trip(t):
    assert parse_type(t.sql) == t
    assert parse_type(t.sql.upper()) == t


@pytest.mark.parametrize("t", ALL_TYPES, ids=lambda t: t.sql)
def test_element_and_copy_name(t):
    assert t.element.array is False
    assert t.element.base == t.base
    assert t.copy_name == t.base + ("[]" if t.array else "")
    if not t.array:
        assert t.element is t


@pytest.mark.parametrize(("text", "message"), [
    ("strng", r"unknown type 'strng' \(did you mean 'text'\?\); supported: text, varchar\(n\)"),
    ("string", r"did you mean 'text'"),
    ("integr", r"did you mean 'integer'"),
    ("timestmp", r"did you mean 'timestamp'"),
    ("varchr(10)", r"did you mean 'varchar\(n\)'"),
    ("datetime", r"did you mean 'timestamptz'"),
    ("blob", r"did you mean 'bytea'"),
    ("zzzz", r"^unknown type 'zzzz'; supported: "),
    ("json", r"use 'jsonb'"),
    ("JSON[]", r"use 'jsonb'"),
    ("text[][]", r"arrays of arrays"),
    ("varchar(0)", r"between 1 and"),
    ("varchar(-1)", r"between 1 and"),
    ("varchar(x)", r"whole number"),
    ("varchar(1,2)", r"one length"),
    ("numeric(0,0)", r"precision must be between 1 and 1000"),
    ("numeric(1001,2)", r"precision must be between 1 and 1000"),
    ("numeric(5,6)", r"scale must be between 0 and the precision \(5\)"),
    ("numeric(5,-1)", r"scale must be between 0"),
    ("numeric(5,2,1)", r"precision and a scale"),
    ("integer(4)", r"integer takes no arguments"),
    ("timestamp(3)", r"timestamp takes no arguments"),
    ("", r"cannot read type"),
    ("text(", r"cannot read type"),
    ("[]", r"cannot read type"),
])
def test_errors(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_type(text)
    if "did you mean" in message or "unknown" in message:
        assert "supported:" in str(info.value)


def _sample(t: PgType):
    """One source value for a column of type t, and what PostgreSQL should give back."""
    oid = ObjectId("65b9f1a2c3d4e5f601234567")
    when = dt.datetime(2024, 1, 31, 10, 30, 15, 123000, tzinfo=dt.UTC)
    samples = {
        "text": ("héllo, wörld", "héllo, wörld"),
        "varchar": ("abc", "abc"),
        "smallint": ("-32768", -32768),
        "integer": (Int64(2**31 - 1), 2**31 - 1),
        "bigint": (-(2**63), -(2**63)),
        "numeric": (Decimal128("12345.678"), Decimal("12345.678")),
        "real": (1.5, 1.5),
        "double precision": (0.1, 0.1),
        "boolean": ("TRUE", True),
        "date": ("2024-01-31T23:30:00-05:00", dt.date(2024, 2, 1)),
        "timestamp": ({"$date": "2024-01-31T10:30:15.123Z"}, when.replace(tzinfo=None)),
        "timestamptz": (when.replace(tzinfo=None), when),
        "uuid": (str(oid), objectid_to_uuid(oid)),
        "jsonb": ({"id": oid, "at": when, "n": Decimal128("1.10"), "big": 2**70,
                   "u": uuid.UUID(int=1)},
                  {"id": str(oid), "at": "2024-01-31T10:30:15.123Z", "n": "1.10",
                   "big": 2**70, "u": "00000000-0000-0000-0000-000000000001"}),
        "bytea": (Binary(b"\x00\x01\xff", 0), b"\x00\x01\xff"),
    }
    value, expected = samples[t.base]
    if t.base == "varchar" and t.length is not None:
        value, expected = value[: t.length], expected[: t.length]
    if t.base == "numeric" and t.precision is not None:
        value, expected = 0.5, Decimal("0.5").quantize(Decimal(1).scaleb(-(t.scale or 0)))
    if t.array:
        return [value, None, value], [expected, None, expected]
    return value, expected


@pytest.mark.parametrize("install_orjson", [False, True], ids=["json", "orjson"])
def test_binary_copy_of_every_type(conn, install_orjson):
    if install_orjson:
        adapt_connection(conn)
    conn.execute("CREATE TABLE every ("
                 + ", ".join(f"c{i} {t.sql}" for i, t in enumerate(ALL_TYPES)) + ")")
    values, expected = [], []
    for t in ALL_TYPES:
        value, want = _sample(t)
        values.append(converter_for(t)(value))
        expected.append(want)
    cols = ", ".join(f"c{i}" for i in range(len(ALL_TYPES)))
    with conn.cursor().copy(f"COPY every ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t.copy_name for t in ALL_TYPES])
        copy.write_row(values)
    conn.execute("SET TIME ZONE 'UTC'")
    row = conn.execute(f"SELECT {cols} FROM every").fetchone()
    for t, got, want in zip(ALL_TYPES, row, expected, strict=True):
        assert got == want, t.sql
    declared = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'every'::regclass AND attnum > 0 ORDER BY attnum").fetchall()
    assert [parse_type(d) for (d,) in declared] == ALL_TYPES


def test_adapt_connection_changes_only_that_connection(conn, dsn):
    from psycopg.adapt import PyFormat
    from psycopg.types.json import Jsonb

    set_json_dumps(json.dumps)  # the library default, whatever ran before
    adapt_connection(conn)
    assert conn.adapters.get_dumper(Jsonb, PyFormat.BINARY)._dumps is _dumps
    assert psycopg.adapters.get_dumper(Jsonb, PyFormat.BINARY)._dumps is json.dumps
    with psycopg.connect(dsn) as other:
        assert other.adapters.get_dumper(Jsonb, PyFormat.BINARY)._dumps is json.dumps
