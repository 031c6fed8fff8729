"""MongodumpSource: dump layouts, BSON streaming, resume, damaged files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import struct
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from bson.datetime_ms import DatetimeMS

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.mongodump import MongodumpSource

UTC = dt.UTC


def write_bson(path: Path, docs: list[Any], *, raw: bytes = b"") -> bytes:
    """Write documents (dicts or pre-encoded bytes) as a dump file; gzip if ``.gz``."""
    data = b"".join(d if isinstance(d, bytes) else bson.encode(d) for d in docs) + raw
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return data


def sample_docs(n: int = 25) -> list[dict[str, Any]]:
    base = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    return [
        {
            "_id": ObjectId(f"{i:024x}"),
            "name": f"user {i}",
            "n": i,
            "big": Int64(2**40 + i),
            "at": base + dt.timedelta(days=i),
            "tags": ["a", str(i)],
            "sub": {"x": i / 2, "d": Decimal128(f"{i}.10")},
        }
        for i in range(n)
    ]


def read_all(source: MongodumpSource, name: str, after: str | None = None) -> list[SourceDocument]:
    return list(source.stream(name).read(after=after))


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    db = tmp_path / "dump" / "crm"
    write_bson(db / "users.bson", sample_docs())
    write_bson(db / "orders.bson.gz", sample_docs(12))
    write_bson(db / "system.views.bson", [{"_id": "crm.v"}])
    (db / "users.metadata.json").write_text(
        json.dumps(
            {
                "options": {},
                "indexes": [{"v": {"$numberInt": "2"}, "key": {"_id": {"$numberInt": "1"}},
                             "name": "_id_"}],
                "collectionName": "users",
                "type": "collection",
            }
        )
    )
    return tmp_path / "dump"


# -- layouts ---------------------------------------------------------------------------------


def test_dump_root_and_database_folder_give_the_same_streams(dump: Path) -> None:
    for path in (dump, dump / "crm"):
        source = MongodumpSource(path)
        assert source.stream_names() == ["orders", "users"]
        assert source.database_path == dump / "crm"


def test_single_file_is_accepted(dump: Path) -> None:
    source = MongodumpSource(dump / "crm" / "users.bson")
    assert source.stream_names() == ["users"]
    assert len(read_all(source, "users")) == 25


def test_several_databases_are_refused_with_their_names(dump: Path) -> None:
    write_bson(dump / "billing" / "invoices.bson", [{"_id": 1}])
    with pytest.raises(SourceError) as info:
        MongodumpSource(dump)
    assert "billing" in str(info.value) and "crm" in str(info.value)
    assert "database" in (info.value.hint or "")


def test_folders_with_only_system_collections_are_not_databases(dump: Path) -> None:
    write_bson(dump / "admin" / "system.version.bson", [{"_id": "featureCompatibilityVersion"}])
    (dump / "oplog.bson").write_bytes(b"")
    assert MongodumpSource(dump).stream_names() == ["orders", "users"]


def test_missing_and_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        MongodumpSource(tmp_path / "nope")
    with pytest.raises(SourceError, match=r"no \.bson"):
        MongodumpSource(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="not a .bson"):
        MongodumpSource(tmp_path / "notes.txt")


def test_unknown_stream_lists_collections(dump: Path) -> None:
    with pytest.raises(SourceError, match="orders, users"):
        MongodumpSource(dump).stream("customers")


def test_metadata(dump: Path) -> None:
    source = MongodumpSource(dump)
    meta = source.metadata("users")
    assert meta is not None
    assert meta["indexes"][0] == {"v": 2, "key": {"_id": 1}, "name": "_id_"}
    assert source.metadata("orders") is None


def test_gzipped_metadata_and_escaped_or_long_names(tmp_path: Path) -> None:
    db = tmp_path / "shop"
    write_bson(db / "a%2Fb.bson", [{"_id": 1}])
    write_bson(db / "shortened.bson.gz", [{"_id": 2}])
    (db / "shortened.metadata.json.gz").write_bytes(
        gzip.compress(json.dumps({"collectionName": "a_very_long_name", "count": 1}).encode())
    )
    source = MongodumpSource(db)
    assert source.stream_names() == ["a/b", "a_very_long_name"]
    stream = source.stream("a_very_long_name")
    assert stream.estimate_count() == 1  # gz: taken from the metadata
    assert [d.key for d in stream.read()] == ["2"]


def test_duplicate_collection_files(tmp_path: Path) -> None:
    write_bson(tmp_path / "db" / "users.bson", [])
    write_bson(tmp_path / "db" / "users.bson.gz", [])
    with pytest.raises(SourceError, match="users"):
        MongodumpSource(tmp_path / "db")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"just a string"'])
def test_garbage_metadata_is_a_warning(tmp_path: Path, text: str) -> None:
    write_bson(tmp_path / "db" / "users.bson", [{"_id": 1}])
    (tmp_path / "db" / "users.metadata.json").write_text(text)
    source = MongodumpSource(tmp_path / "db")
    assert source.metadata("users") is None
    assert [d.key for d in source.stream("users").read()] == ["1"]
    (warning,) = source.warnings
    assert "users.metadata.json" in warning and "ignored" in warning


def test_garbage_gzipped_metadata_is_a_warning(tmp_path: Path) -> None:
    write_bson(tmp_path / "db" / "users.bson.gz", [{"_id": 1}])
    (tmp_path / "db" / "users.metadata.json.gz").write_bytes(b"not gzip")
    source = MongodumpSource(tmp_path / "db")
    assert source.stream_names() == ["users"]
    assert source.stream("users").estimate_count() is None
    assert len(source.warnings) == 1 and "users.metadata.json.gz" in source.warnings[0]


def test_warnings_are_empty_for_a_sound_dump(dump: Path) -> None:
    assert MongodumpSource(dump).warnings == []


# -- decoding --------------------------------------------------------------------------------


def test_documents_keys_and_positions(dump: Path) -> None:
    docs = read_all(MongodumpSource(dump), "users")
    expected = sample_docs()
    assert [d.doc for d in docs] == expected
    assert [d.key for d in docs] == [str(e["_id"]) for e in expected]
    sizes = [len(bson.encode(e)) for e in expected]
    assert [int(d.position) for d in docs] == [sum(sizes[: i + 1]) for i in range(len(sizes))]
    first = docs[0].doc
    assert first["at"].tzinfo is not None and first["at"].utcoffset() == dt.timedelta(0)
    assert type(first["big"]) is Int64
    assert list(first) == ["_id", "name", "n", "big", "at", "tags", "sub"]


def test_key_rendering_of_id_types(tmp_path: Path) -> None:
    ids: list[Any] = ["plain", 42, Int64(7), 1.5, {"a": 1, "b": "x"},
                      dt.datetime(2020, 1, 2, tzinfo=UTC), Binary(b"\x01\x02", 0)]
    write_bson(tmp_path / "db" / "c.bson", [{"_id": i} for i in ids] + [{"x": 1}, {"y": 2}])
    keys = [d.key for d in read_all(MongodumpSource(tmp_path / "db"), "c")]
    assert keys[:7] == [
        "plain", "42", "7", "1.5", '{"a": 1, "b": "x"}',
        '{"$date": "2020-01-02T00:00:00Z"}',
        '{"$binary": {"base64": "AQI=", "subType": "00"}}',
    ]
    assert keys[7:] == ["c#8", "c#9"]


def test_ordinal_keys_survive_a_resume(tmp_path: Path) -> None:
    for name in ("c.bson", "g.bson.gz"):
        write_bson(tmp_path / "db" / name, [{"x": i} for i in range(6)])
    source = MongodumpSource(tmp_path / "db")
    for name in ("c", "g"):
        docs = read_all(source, name)
        assert [d.key for d in docs] == [f"{name}#{i}" for i in range(1, 7)]
        tail = read_all(source, name, after=docs[2].position)
        assert [d.key for d in tail] == [f"{name}#{i}" for i in range(4, 7)]


def test_out_of_range_dates_and_invalid_utf8(tmp_path: Path) -> None:
    doc = bson.encode({"_id": 1, "far": DatetimeMS(2**62), "s": "xyz", "k": 1})
    broken = doc.replace(b"xyz", b"x\xffz")
    write_bson(tmp_path / "db" / "c.bson", [broken])
    (got,) = read_all(MongodumpSource(tmp_path / "db"), "c")
    assert got.doc == {"_id": 1, "far": DatetimeMS(2**62), "s": "x\udcffz", "k": 1}
    assert got.doc["s"].encode("utf-8", "surrogateescape") == b"x\xffz"


# -- resume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["users", "orders"])
def test_resume_at_every_cut_point(dump: Path, name: str) -> None:
    source = MongodumpSource(dump)
    docs = read_all(source, name)
    assert read_all(source, name, after=None) == docs
    for i, cut in enumerate(docs):
        assert read_all(source, name, after=cut.position) == docs[i + 1 :]


def test_resume_in_a_fresh_source_object(dump: Path) -> None:
    docs = read_all(MongodumpSource(dump), "orders")
    assert read_all(MongodumpSource(dump), "orders", after=docs[4].position) == docs[5:]


def test_large_documents_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docshift.sources import mongodump

    monkeypatch.setattr(mongodump, "CHUNK_BYTES", 100)
    docs = [{"_id": i, "blob": "x" * (i * 37)} for i in range(20)]
    for name in ("c.bson", "g.bson.gz"):
        write_bson(tmp_path / "db" / name, docs)
    source = MongodumpSource(tmp_path / "db")
    for name in ("c", "g"):
        got = read_all(source, name)
        assert [d.doc for d in got] == docs
        assert read_all(source, name, after=got[9].position) == got[10:]


@pytest.mark.parametrize("position", ["abc", "-3", "12x", "5"])
def test_bad_positions(dump: Path, position: str) -> None:
    stream = MongodumpSource(dump).stream("users")
    with pytest.raises(SourceError, match="users.bson"):
        list(stream.read(after=position))


def test_position_beyond_the_end(dump: Path) -> None:
    for name in ("users", "orders"):
        stream = MongodumpSource(dump).stream(name)
        with pytest.raises(SourceError, match="beyond the end"):
            list(stream.read(after="99999999"))


# -- damaged files ---------------------------------------------------------------------------


def corrupt(doc: dict[str, Any], field: bytes) -> bytes:
    """``doc`` encoded, with the type byte of element ``field`` set to an invalid type."""
    data = bytearray(bson.encode(doc))
    at = data.index(field + b"\x00") - 1
    data[at] = 0x55
    return bytes(data)


@pytest.mark.parametrize("file", ["c.bson", "c.bson.gz"])
def test_undecodable_document_is_yielded_and_reading_continues(tmp_path: Path, file: str) -> None:
    bad = corrupt({"_id": ObjectId("65f000000000000000000001"), "payload": 5}, b"payload")
    write_bson(tmp_path / "db" / file, [{"_id": 1}, bad, {"_id": 3}])
    docs = read_all(MongodumpSource(tmp_path / "db"), "c")
    assert [d.key for d in docs] == ["1", "65f000000000000000000001", "3"]
    unreadable = docs[1].doc
    assert isinstance(unreadable, UnreadableDocument)
    assert file in unreadable.reason and "byte offset 14" in unreadable.reason
    assert unreadable.raw == bad
    assert (unreadable.offset, unreadable.length) == (14, len(bad))
    assert docs[2].doc == {"_id": 3}


def test_unreadable_raw_bytes_are_kept_in_full(tmp_path: Path) -> None:
    bad = corrupt({"_id": "k", "blob": "y" * 20_000, "z": 1}, b"z")
    write_bson(tmp_path / "db" / "c.bson", [bad])
    (doc,) = read_all(MongodumpSource(tmp_path / "db"), "c")
    assert doc.key == "k"
    assert isinstance(doc.doc, UnreadableDocument)
    assert doc.doc.raw == bad


@pytest.mark.parametrize("file", ["c.bson", "c.bson.gz"])
def test_truncated_tail_is_unreadable_after_the_complete_documents(tmp_path: Path,
                                                                   file: str) -> None:
    full = bson.encode({"_id": 2, "s": "abcdef"})
    write_bson(tmp_path / "db" / file, [{"_id": 1}], raw=full[:-4])
    docs = read_all(MongodumpSource(tmp_path / "db"), "c")
    assert [d.key for d in docs] == ["1", f"{file}@14"]
    tail = docs[1].doc
    assert isinstance(tail, UnreadableDocument) and tail.raw == full[:-4]
    assert file in tail.reason and "byte offset 14" in tail.reason


@pytest.mark.parametrize("length", [0, 4, 64 * 1024 * 1024])
def test_impossible_length_is_an_unreadable_region(tmp_path: Path, length: int) -> None:
    damage = struct.pack("<i", length) + b"\0" * 8
    write_bson(tmp_path / "db" / "c.bson", [{"_id": 1}], raw=damage)
    stream = MongodumpSource(tmp_path / "db").stream("c")
    docs = list(stream.read())
    assert docs[0].doc == {"_id": 1}
    (tail,) = [d.doc for d in docs[1:]]
    assert isinstance(tail, UnreadableDocument) and tail.raw == damage
    assert f"invalid BSON document length {length} at byte offset 14" in tail.reason
    assert stream.estimate_count() is None


def test_a_gz_file_that_is_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "c.bson.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(SourceError, match=r"c\.bson\.gz"):
        list(MongodumpSource(tmp_path / "db").stream("c").read())


# -- counting --------------------------------------------------------------------------------


def test_estimate_count(dump: Path, tmp_path: Path) -> None:
    source = MongodumpSource(dump)
    assert source.stream("users").estimate_count() == 25
    assert source.stream("orders").estimate_count() is None  # gz without a count in metadata
    write_bson(tmp_path / "db" / "empty.bson", [])
    assert MongodumpSource(tmp_path / "db").stream("empty").estimate_count() == 0
    assert list(MongodumpSource(tmp_path / "db").stream("empty").read()) == []
