"""JsonSource: mongoexport JSON Lines and JSON arrays, Extended JSON, resume, bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import uuid
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import (
    Binary,
    Code,
    DBRef,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
    json_util,
)
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings
from hypothesis import strategies as st

from docshift.errors import SourceError
from docshift.sources import jsonfiles
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.bsonvalues import CODEC_OPTIONS, ejson_loads, ejson_loads_slow
from docshift.sources.jsonfiles import JsonSource

UTC = dt.UTC
CANONICAL = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL, tz_aware=True)
RELAXED = json_util.JSONOptions(json_mode=json_util.JSONMode.RELAXED, tz_aware=True)


def every_type() -> dict[str, Any]:
    """A document with one value of each BSON type a JSON export can carry."""
    return {
        "_id": ObjectId("65f0a1b2c3d4e5f601234567"),
        "str": "héllo \"quoted\" [not] {an} array, \\ back",
        "int": 42,
        "neg": -7,
        "long": Int64(2**40),
        "double": 3.25,
        "whole_double": 2.0,
        "nan": float("nan"),
        "inf": float("-inf"),
        "dec": Decimal128("12345.678900"),
        "bool": True,
        "null": None,
        "date": dt.datetime(2024, 2, 29, 13, 14, 15, 678000, tzinfo=UTC),
        "date_epoch": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "date_old": dt.datetime(1901, 1, 1, tzinfo=UTC),
        "date_far": DatetimeMS(2**60),
        "bin": Binary(b"\x00\x01\xff", 0),
        "bin_other": Binary(b"\x05", 0x80),
        "uuid": Binary.from_uuid(uuid.UUID("12345678-1234-5678-1234-567812345678")),
        "regex": Regex("^a.*z$", "im"),
        "ts": Timestamp(1700000000, 3),
        "code": Code("function() { return 1; }"),
        "minkey": MinKey(),
        "maxkey": MaxKey(),
        "ref": DBRef("users", ObjectId("65f0a1b2c3d4e5f601234568")),
        "nested": {"list": [1, {"deep": [Int64(5), "x"]}, []], "empty": {}},
        "huge": 123456789012345678901234567890,
    }


def bson_roundtrip(doc: dict[str, Any]) -> dict[str, Any]:
    """What the dump reader would give for ``doc``."""
    clean = {k: v for k, v in doc.items() if k != "huge"}  # > int64: not representable in BSON
    return bson.decode(bson.encode(clean), CODEC_OPTIONS)


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to itself and checks types of scalars."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and list(a) == list(b)
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    if isinstance(a, dt.datetime):
        return isinstance(b, dt.datetime) and a == b and b.utcoffset() == dt.timedelta(0)
    return type(a) is type(b) and a == b


def write_lines(path: Path, docs: list[Any], *, options: json_util.JSONOptions = RELAXED) -> None:
    text = "".join(json_util.dumps(d, json_options=options) + "\n" for d in docs)
    write(path, text)


def write(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def read_all(path: Path, name: str, after: str | None = None) -> list[SourceDocument]:
    return list(JsonSource(path).stream(name).read(after=after))


def sample(n: int = 30) -> list[dict[str, Any]]:
    base = dt.datetime(2023, 5, 1, tzinfo=UTC)
    return [
        {"_id": ObjectId(f"{i + 1:024x}"), "name": f"n{i}", "at": base + dt.timedelta(hours=i),
         "tags": [i, {"k": "v]"}], "amount": Decimal128(f"{i}.5")}
        for i in range(n)
    ]


# -- Extended JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize("options", [CANONICAL, RELAXED], ids=["canonical", "relaxed"])
def test_fast_and_reference_parsers_agree_on_every_type(options: json_util.JSONOptions) -> None:
    text = json_util.dumps(every_type(), json_options=options).encode()
    fast = ejson_loads(text)
    assert same(fast, ejson_loads_slow(text))
    assert same(fast, ejson_loads_slow(text))
    assert fast["huge"] == 123456789012345678901234567890


def test_export_decodes_like_the_dump_reader() -> None:
    doc = every_type()
    text = json_util.dumps(doc, json_options=CANONICAL).encode()
    parsed = ejson_loads(text)
    del parsed["huge"]
    assert same(parsed, bson_roundtrip(doc))


@pytest.mark.parametrize(
    "text",
    [
        '{"d": {"$date": "2020-01-01T00:00:00+02:00"}}',
        '{"d": {"$date": "2020-01-01T00:00:00.5Z"}}',
        '{"d": {"$date": 1577836800123}}',
        '{"d": {"$date": {"$numberLong": "-62135596800001"}}}',
        '{"r": {"$regex": "a", "$options": "i"}}',
        '{"b": {"$binary": "AAEC", "$type": "00"}}',
        '{"u": {"$uuid": "12345678-1234-5678-1234-567812345678"}}',
        '{"n": NaN, "i": Infinity}',
        '{"s": "\\ud800 lone surrogate"}',
        '{"\\u0024oid": "65f0a1b2c3d4e5f601234567"}',
        '{"x": [-9223372036854775809, 18446744073709551615, 1e19, 1.0e-5]}',
        '\ufeff{"bom": 1}',
    ],
)
def test_fast_parser_matches_reference_on_unusual_input(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    assert same(ejson_loads(data), ejson_loads_slow(data))


@settings(max_examples=200, deadline=None)
@given(
    ms=st.integers(min_value=-(2**50), max_value=2**50),
    mode=st.sampled_from([CANONICAL, RELAXED]),
)
def test_dates_agree_with_reference_and_bson(ms: int, mode: json_util.JSONOptions) -> None:
    value = DatetimeMS(ms)
    text = json_util.dumps({"d": value}, json_options=mode).encode()
    fast = ejson_loads(text)
    assert same(fast, ejson_loads_slow(text))
    assert same(fast, bson.decode(bson.encode({"d": value}), CODEC_OPTIONS))


def test_invalid_utf8_survives_as_surrogates(tmp_path: Path) -> None:
    write(tmp_path / "c.jsonl", b'{"_id": 1, "s": "x\xffz"}\n')
    (doc,) = read_all(tmp_path, "c")
    assert doc.doc == {"_id": 1, "s": "x\udcffz"}


# -- layouts and naming ----------------------------------------------------------------------


def test_stream_names(tmp_path: Path) -> None:
    write_lines(tmp_path / "crm.Users.json", [])
    write_lines(tmp_path / "orders.jsonl.gz", [])
    write_lines(tmp_path / "events.ndjson", [])
    write(tmp_path / "notes.txt", "x")
    source = JsonSource(tmp_path)
    assert source.stream_names() == ["crm.Users", "events", "orders"]
    assert JsonSource(tmp_path / "orders.jsonl.gz").stream_names() == ["orders"]
    with pytest.raises(SourceError, match="crm.Users, events, orders"):
        source.stream("users")


def test_duplicate_names_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no .json"):
        JsonSource(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        JsonSource(tmp_path / "missing")
    write_lines(tmp_path / "a.json", [])
    write_lines(tmp_path / "a.jsonl", [])
    with pytest.raises(SourceError, match="a.json and a.jsonl"):
        JsonSource(tmp_path)


@pytest.mark.parametrize("file", ["c.json", "c.json.gz"])
def test_lines_and_array_give_the_same_documents(tmp_path: Path, file: str) -> None:
    docs = sample()
    write_lines(tmp_path / "lines" / file, docs)
    write(tmp_path / "array" / file,
          "[\n" + ",\n".join(json_util.dumps(d, json_options=RELAXED) for d in docs) + "\n]\n")
    lines = read_all(tmp_path / "lines", "c")
    array = read_all(tmp_path / "array", "c")
    assert JsonSource(tmp_path / "lines").stream("c").layout() == "lines"
    assert JsonSource(tmp_path / "array").stream("c").layout() == "array"
    assert [d.doc for d in lines] == [d.doc for d in array] == docs
    assert [d.key for d in lines] == [str(d["_id"]) for d in docs]
    assert [d.position for d in array] == [str(i) for i in range(len(docs))]


def test_line_positions_are_byte_offsets(tmp_path: Path) -> None:
    raw = b'{"_id": 1}\r\n\n   \n{"_id": "\xc3\xa9"}\n{"_id": 3}'
    write(tmp_path / "c.jsonl", raw)
    docs = read_all(tmp_path, "c")
    assert [(d.key, d.position) for d in docs] == [("1", "12"), ("\u00e9", "31"), ("3", "41")]


def test_bom_blank_lines_and_empty_files(tmp_path: Path) -> None:
    write(tmp_path / "bom.jsonl", b'\xef\xbb\xbf{"_id": 1}\n\n\n{"_id": 2}\n')
    write(tmp_path / "bomarr.json", b'\xef\xbb\xbf  [{"_id": 1}]')
    write(tmp_path / "empty.json", b"")
    write(tmp_path / "blank.json", b"\n  \n")
    write(tmp_path / "emptyarr.json", b" [ ] \n")
    assert [d.key for d in read_all(tmp_path, "bom")] == ["1", "2"]
    assert [d.key for d in read_all(tmp_path, "bomarr")] == ["1"]
    for name in ("empty", "blank", "emptyarr"):
        assert read_all(tmp_path, name) == []
        assert JsonSource(tmp_path).stream(name).estimate_count() == 0


def test_missing_id_gets_ordinal_keys_also_after_resume(tmp_path: Path) -> None:
    write(tmp_path / "c.jsonl", '{"a": 1}\n\n{"a": 2}\n{"a": 3}\n{"a": 4}\n')
    write(tmp_path / "d.json", '[{"a": 1}, {"a": 2}, {"a": 3}]')
    docs = read_all(tmp_path, "c")
    assert [d.key for d in docs] == ["c#1", "c#2", "c#3", "c#4"]
    assert [d.key for d in read_all(tmp_path, "c", after=docs[1].position)] == ["c#3", "c#4"]
    assert [d.key for d in read_all(tmp_path, "d", after="0")] == ["d#2", "d#3"]


# -- array scanner ---------------------------------------------------------------------------


TRICKY = [
    {"_id": 1, "s": 'quote " and backslash \\ and ] } [ { , inside'},
    {"_id": 2, "s": "\\", "t": '\\"', "u": "end\\\\"},
    {"_id": 3, "deep": [[[[[[[[[[[[{"x": [1, 2, {"y": "]"}]}]]]]]]]]]]]]},
    {"_id": 4, "unicode": "日本語 ✓ \u2028", "empty": {}, "list": []},
    {"_id": 5, "commas": [1, 2, 3], "o": {"a": {"b": {"c": ","}}}},
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 64, 1 << 20])
@pytest.mark.parametrize("compact", [True, False])
def test_array_scanner_handles_any_chunking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, compact: bool
) -> None:
    monkeypatch.setattr(jsonfiles, "CHUNK_BYTES", chunk)
    if compact:
        text = json.dumps(TRICKY, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(TRICKY, indent=2)
    write(tmp_path / "c.json", text)
    write(tmp_path / "g.json.gz", text)
    for name in ("c", "g"):
        docs = read_all(tmp_path, name)
        assert [d.doc for d in docs] == TRICKY
        assert [d.doc for d in read_all(tmp_path, name, after="2")] == TRICKY[3:]


def test_array_with_non_document_and_invalid_elements(tmp_path: Path) -> None:
    text = (
        '[\n  {"_id": 1},\n  42,\n  {"_id": {"$oid": "65f0a1b2c3d4e5f601234567"}, "x": tru},'
        '\n  ,\n  {"_id": 5}\n]'
    )
    write(tmp_path / "c.json", text)
    docs = read_all(tmp_path, "c")
    assert [d.key for d in docs] == ["1", "c#2", "65f0a1b2c3d4e5f601234567", "c#4", "5"]
    assert [d.position for d in docs] == ["0", "1", "2", "3", "4"]
    bad = [d.doc for d in docs if isinstance(d.doc, UnreadableDocument)]
    where = [b.reason.split(": ", 1)[0] for b in bad]
    assert where == [f"{tmp_path / 'c.json'}:{n}" for n in (3, 4, 5)]
    assert "a number, not a document" in bad[0].reason
    assert "invalid JSON" in bad[1].reason and b'"x": tru' in bad[1].raw
    assert "empty element" in bad[2].reason


def test_truncated_array_and_trailing_garbage(tmp_path: Path) -> None:
    write(tmp_path / "cut.json", '[{"_id": 1}, {"_id": 2, "s": "abc')
    write(tmp_path / "extra.json", '[{"_id": 1}] {"_id": 2}')
    write(tmp_path / "unbalanced.json", '[{"_id": 1}}, {"_id": 2}]')
    docs = read_all(tmp_path, "cut")
    assert [d.key for d in docs] == ["1", "2"]
    assert isinstance(docs[1].doc, UnreadableDocument)
    assert "without its closing" in docs[1].doc.reason
    with pytest.raises(SourceError, match=r"extra\.json.*after the JSON array"):
        read_all(tmp_path, "extra")
    with pytest.raises(SourceError, match=r"unbalanced\.json.*unbalanced"):
        read_all(tmp_path, "unbalanced")


# -- bad lines -------------------------------------------------------------------------------


def test_bad_lines_are_unreadable_with_file_and_line(tmp_path: Path) -> None:
    text = (
        '{"_id": 1}\n'
        "\n"
        '{"_id": 2, "broken": }\n'
        '["not", "a", "document"]\n'
        '{"_id": {"$oid": "zz"}}\n'
        '{"_id": {"$date": "not a date"}}\n'
        '{"_id": 7}\n'
    )
    write(tmp_path / "c.jsonl", text)
    path = tmp_path / "c.jsonl"
    docs = read_all(tmp_path, "c")
    assert [d.key for d in docs] == ["1", "2", "c#3", "c#4", "c#5", "7"]
    reasons = [d.doc.reason for d in docs if isinstance(d.doc, UnreadableDocument)]
    assert [r.split(": ", 1)[0] for r in reasons] == [f"{path}:{n}" for n in (3, 4, 5, 6)]
    assert "an array, not a document" in reasons[1]
    assert docs[1].doc.raw == b'{"_id": 2, "broken": }'
    # Line numbers stay right after a resume.
    tail = read_all(tmp_path, "c", after=docs[2].position)
    assert tail[0].doc.reason.startswith(f"{path}:5: invalid Extended JSON value")
    assert tail[1].doc.reason.startswith(f"{path}:6:")


def test_line_numbers_after_a_resume_count_from_the_file_start(tmp_path: Path) -> None:
    write(tmp_path / "c.jsonl", '{"_id": 1}\n{"_id": 2}\n\n{"a": 3}\n{"_id": 4}\nbad\n')
    path = tmp_path / "c.jsonl"
    first = read_all(tmp_path, "c")
    tail = read_all(tmp_path, "c", after=first[0].position)
    assert [d.key for d in tail] == ["2", "c#3", "4", "c#5"]
    assert tail[-1].doc.reason.startswith(f"{path}:6: invalid JSON")
    assert JsonSource(tmp_path / "c.jsonl").stream_names() == ["c"]
    write(tmp_path / "data.export.txt", '{"_id": 1}\n')
    assert JsonSource(tmp_path / "data.export.txt").stream_names() == ["data.export"]


def test_pretty_printed_export_is_refused_with_advice(tmp_path: Path) -> None:
    write(tmp_path / "c.json", '{\n  "_id": 1\n}\n{\n  "_id": 2\n}\n')
    with pytest.raises(SourceError, match="--pretty") as info:
        read_all(tmp_path, "c")
    assert "--jsonArray" in (info.value.hint or "")
    write(tmp_path / "d.json", '[\n{\n  "_id": 1\n},\n{\n  "_id": 2\n}\n]\n')
    assert [d.key for d in read_all(tmp_path, "d")] == ["1", "2"]


def test_long_bad_line_is_kept_in_full(tmp_path: Path) -> None:
    write(tmp_path / "c.jsonl", '{"_id": "k", "s": "' + "x" * 50_000 + "\n")
    (doc,) = read_all(tmp_path, "c")
    assert doc.key == "k"
    assert isinstance(doc.doc, UnreadableDocument)
    assert doc.doc.raw == b'{"_id": "k", "s": "' + b"x" * 50_000


def test_unreadable_gzip_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.json.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(SourceError, match=r"c\.json\.gz"):
        read_all(tmp_path, "c")
    (tmp_path / "d.json.gz").write_bytes(gzip.compress(b'{"_id": 1}\n{"_id": 2}\n')[:-12])
    with pytest.raises(SourceError, match=r"d\.json\.gz"):
        read_all(tmp_path, "d")


# -- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["c.jsonl", "c.jsonl.gz", "c.json", "c.json.gz"])
def test_resume_at_every_cut_point(tmp_path: Path, file: str) -> None:
    docs_in = sample(20)
    if file.startswith("c.jsonl"):
        write_lines(tmp_path / file, docs_in)
    else:
        write(tmp_path / file, json_util.dumps(docs_in, json_options=RELAXED))
    docs = read_all(tmp_path, "c")
    assert [d.doc for d in docs] == docs_in
    for i, cut in enumerate(docs):
        assert read_all(tmp_path, "c", after=cut.position) == docs[i + 1 :]


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('{"_id": 1}\n{"_id": 2}\n', "3", "not the end of a line"),
        ('{"_id": 1}\n{"_id": 2}\n', "500", "beyond the end"),
        ('{"_id": 1}\n', "x1", "not a byte offset"),
        ('[{"_id": 1}]', "4", "past the last element"),
        ('[{"_id": 1}]', "{}", "not an element index"),
    ],
)
def test_bad_positions(tmp_path: Path, text: str, position: str, message: str) -> None:
    write(tmp_path / "c.json", text)
    with pytest.raises(SourceError, match=re.escape(message)):
        read_all(tmp_path, "c", after=position)


def test_estimate_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lines(tmp_path / "small.jsonl", sample(10))
    write(tmp_path / "arr.json", json_util.dumps(sample(10), json_options=RELAXED))
    source = JsonSource(tmp_path)
    assert source.stream("small").estimate_count() == 10
    assert source.stream("arr").estimate_count() == 10
    monkeypatch.setattr(jsonfiles, "CHUNK_BYTES", 300)
    write_lines(tmp_path / "big.jsonl", sample(200))
    write_lines(tmp_path / "big2.jsonl.gz", sample(200))
    estimate = JsonSource(tmp_path).stream("big").estimate_count()
    assert estimate is not None and 100 < estimate < 400
    assert JsonSource(tmp_path).stream("big2").estimate_count() is None
