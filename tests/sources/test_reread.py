"""Re-reading by position: ``read(after=p)`` with the position of any yielded entry, unreadable
ones included, gives exactly the entries after it, for every source kind."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import bson
import mongomock
import psycopg
import pytest
from bson import ObjectId

from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.jsonfiles import JsonSource
from docshift.sources.mongodb import MongoSource
from docshift.sources.mongodump import MongodumpSource
from docshift.sources.postgres_kv import KvSource


def check(stream: Any) -> list[SourceDocument]:
    docs = list(stream.read())
    assert docs
    for i, d in enumerate(docs):
        assert list(stream.read(after=d.position)) == docs[i + 1 :], f"after entry {i}"
    return docs


@pytest.mark.parametrize("file", ["c.bson", "c.bson.gz"])
def test_dump_with_every_kind_of_damage(tmp_path: Path, file: str) -> None:
    good = [bson.encode({"_id": i, "v": "abc" * i}) for i in range(8)]
    undecodable = bytearray(bson.encode({"_id": 100, "p": 1}))
    undecodable[undecodable.index(b"p\x00") - 1] = 0x55
    data = (good[0] + bytes(undecodable) + good[1] + b"\xff" * 9 + good[2] + good[3]
            + b"\x07\x00\x00\x00" + good[4] + good[5] + good[6] + good[7][:-3])
    (tmp_path / file).write_bytes(gzip.compress(data) if file.endswith(".gz") else data)
    docs = check(MongodumpSource(tmp_path / file).stream("c"))
    assert [d.doc["_id"] for d in docs if isinstance(d.doc, dict)] == [0, 1, 2, 3, 4, 5, 6]
    raw = b"".join(d.doc.raw if isinstance(d.doc, UnreadableDocument) else bson.encode(d.doc)
                   for d in docs)
    assert raw == data  # every byte accounted for, once, in order


def test_json_lines_and_arrays_with_bad_entries(tmp_path: Path) -> None:
    (tmp_path / "lines.jsonl.gz").write_bytes(gzip.compress(
        b'{"_id": 1}\n\n{"_id": 2, oops}\n[3]\n{"x": 4}\n{"_id": 5'))
    (tmp_path / "arr.json").write_bytes(b'[{"_id": 1}, 7, {"_id": 3, bad}, , {"_id": 5}]')
    (tmp_path / "cut.json").write_bytes(b'[{"_id": 1}, {"_id": 2}, {"_id": 3, "s": "ab')
    source = JsonSource(tmp_path)
    expected = {"lines": (["1", "2", "lines#3", "lines#4", "5"], [False, True, True, False, True]),
                "arr": (["1", "arr#2", "3", "arr#4", "5"], [False, True, True, True, False]),
                "cut": (["1", "2", "3"], [False, False, True])}
    for name, (keys, unreadable) in expected.items():
        docs = check(source.stream(name))
        assert [d.key for d in docs] == keys
        assert [isinstance(d.doc, UnreadableDocument) for d in docs] == unreadable


def test_kv_table_with_an_unreadable_row(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE store (key text PRIMARY KEY, value text)")
    conn.execute("INSERT INTO store VALUES ('a', '1'), ('b', '{oops'), ('c', '[2]'), "
                 "('d', 'nope'), ('e', '{}')")
    with KvSource(dsn, "store", page_size=2) as source:
        docs = check(source.stream("store"))
    assert [d.key for d in docs] == ["a", "b", "c", "d", "e"]
    assert [isinstance(d.doc, UnreadableDocument) for d in docs] == [
        False, True, False, True, False]


def test_live_collection_with_mixed_id_types() -> None:
    client = mongomock.MongoClient()
    client["db"]["c"].insert_many(
        [{"_id": 5}, {"_id": "k"}, {"_id": ObjectId("65f000000000000000000001")}, {"_id": 1.5},
         {"_id": "a\x00b"}])
    docs = check(MongoSource(None, "db", client=client, page_size=2).stream("c"))
    assert [d.key for d in docs] == ["1.5", "5", "a\\u0000b", "k", "65f000000000000000000001"]


def test_every_source_has_warnings(tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    (tmp_path / "c.bson").write_bytes(bson.encode({"_id": 1}))
    (tmp_path / "c.jsonl").write_text('{"_id": 1}\n')
    conn.execute("CREATE TABLE kv (key text PRIMARY KEY, value jsonb)")
    with KvSource(dsn, "kv") as kv:
        assert kv.warnings == []
    assert MongodumpSource(tmp_path / "c.bson").warnings == []
    assert JsonSource(tmp_path / "c.jsonl").warnings == []
    assert MongoSource(None, "db", client=mongomock.MongoClient()).warnings == []
