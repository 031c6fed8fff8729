"""Fingerprints of work units: they change when what a unit reads changed, and say how."""

from __future__ import annotations

import json
import os
from pathlib import Path

import bson
import mongomock
import psycopg
import pytest
from bson import ObjectId

from docshift.sources.base import describe_change
from docshift.sources.jsonfiles import JsonSource
from docshift.sources.mongodb import MongoSource
from docshift.sources.mongodump import MongodumpSource
from docshift.sources.postgres_kv import KvSource


def write_docs(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(bson.encode({"_id": i, "s": "v" * 50}) for i in range(n)))


def keep_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_bson_fingerprint_is_stable_and_json(tmp_path: Path) -> None:
    write_docs(tmp_path / "db" / "Users.bson", 400)
    stream = MongodumpSource(tmp_path / "db").stream("Users")
    (cut,) = stream.split(2)
    for start, end in ((None, cut), (cut, None), (None, None)):
        fp = stream.fingerprint(start, end)
        assert json.loads(json.dumps(fp)) == fp
        assert MongodumpSource(tmp_path / "db").stream("Users").fingerprint(start, end) == fp
        assert describe_change(fp, fp) is None


def test_bson_size_change_is_described(tmp_path: Path) -> None:
    path = tmp_path / "db" / "Users.bson"
    write_docs(path, 400)
    stream = MongodumpSource(tmp_path / "db").stream("Users")
    old = stream.fingerprint(None, None)
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    with path.open("r+b") as f:
        f.truncate(size - 70)
    keep_mtime(path, mtime + 1_000_000_000)
    new = stream.fingerprint(None, None)
    assert describe_change(old, new) == (
        f"Users.bson changed size from {size:,} to {size - 70:,} bytes and its "
        "modification time"
    )
    keep_mtime(path, mtime)
    assert describe_change(old, stream.fingerprint(None, None)) == (
        f"Users.bson changed size from {size:,} to {size - 70:,} bytes"
    )


def test_same_size_and_mtime_but_other_bytes_at_a_boundary(tmp_path: Path) -> None:
    path = tmp_path / "db" / "Users.bson"
    write_docs(path, 400)
    stream = MongodumpSource(tmp_path / "db").stream("Users")
    (cut,) = stream.split(2)
    mtime = path.stat().st_mtime_ns
    first, second = stream.fingerprint(None, cut), stream.fingerprint(cut, None)
    data = bytearray(path.read_bytes())
    data[int(cut) - 10] ^= 0xFF  # inside the last document of the first unit
    path.write_bytes(bytes(data))
    keep_mtime(path, mtime)
    change = describe_change(first, stream.fingerprint(None, cut))
    assert change is not None and "Users.bson" in change and f"{int(cut):,}" in change
    # the second unit starts at the same boundary: the bytes before its start changed too
    assert describe_change(second, stream.fingerprint(cut, None)) is not None


def test_far_from_boundaries_an_edit_keeps_size_and_mtime_but_touch_is_noticed(
        tmp_path: Path) -> None:
    path = tmp_path / "db" / "Users.bson"
    write_docs(path, 400)
    stream = MongodumpSource(tmp_path / "db").stream("Users")
    old = stream.fingerprint(None, None)
    keep_mtime(path, path.stat().st_mtime_ns + 1_000_000_000)
    assert describe_change(old, stream.fingerprint(None, None)) == (
        "Users.bson changed its modification time")


@pytest.mark.parametrize("file", ["c.bson.gz", "c.jsonl", "c.json", "c.json.gz"])
def test_other_files_notice_a_change(tmp_path: Path, file: str) -> None:
    path = tmp_path / file
    if file.startswith("c.bson"):
        import gzip
        path.write_bytes(gzip.compress(b"".join(bson.encode({"_id": i}) for i in range(50))))
        stream = MongodumpSource(tmp_path).stream("c")
    else:
        lines = [json.dumps({"_id": i}) for i in range(50)]
        text = ("[" + ",\n".join(lines) + "]") if file.startswith("c.json") else "\n".join(lines)
        if file.endswith(".gz"):
            import gzip
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text + "\n")
        stream = JsonSource(tmp_path).stream("c")
    old = stream.fingerprint(None, None)
    assert stream.fingerprint(None, None) == old
    path.write_bytes(path.read_bytes()[:-5])
    change = describe_change(old, stream.fingerprint(None, None))
    assert change is not None and change.startswith(file)


def test_jsonl_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"_id": i, "s": "w" * 40}) + "\n" for i in range(500)))
    stream = JsonSource(tmp_path).stream("c")
    (cut,) = stream.split(2)
    old = stream.fingerprint(cut, None)
    mtime = path.stat().st_mtime_ns
    data = bytearray(path.read_bytes())
    data[int(cut) - 5] = ord("x")
    path.write_bytes(bytes(data))
    keep_mtime(path, mtime)
    assert describe_change(old, stream.fingerprint(cut, None)) is not None


# -- tables and collections -------------------------------------------------------------------


def test_kv_fingerprint(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE kv (key text PRIMARY KEY, value jsonb)")
    conn.execute("INSERT INTO kv SELECT 'k' || lpad(g::text, 3, '0'), '{}' "
                 "FROM generate_series(1, 100) g")
    with KvSource(dsn, "kv") as source:
        stream = source.stream("kv")
        fp = stream.fingerprint("k010", "k050")
        assert json.loads(json.dumps(fp)) == fp
        assert stream.fingerprint("k010", "k050") == fp
        # rows added or removed outside the unit do not matter; the estimate is not part of it
        conn.execute("INSERT INTO kv VALUES ('k200', '{}')")
        conn.execute("DELETE FROM kv WHERE key = 'k005'")
        conn.execute("ANALYZE kv")
        assert describe_change(fp, stream.fingerprint("k010", "k050")) is None
        # inside it, any insert, update or delete does, boundaries or not
        conn.execute("""UPDATE kv SET value = '{"x": 1}' WHERE key = 'k030'""")
        change = describe_change(fp, stream.fingerprint("k010", "k050"))
        assert change is not None and "inserted, updated or deleted" in change
        conn.execute("DELETE FROM kv WHERE key IN ('k011', 'k050')")
        change = describe_change(fp, stream.fingerprint("k010", "k050"))
        assert change is not None and "public.kv" in change
        assert "k050" in change and "k011" in change
        whole = stream.fingerprint(None, None)
        assert describe_change(whole, stream.fingerprint(None, None)) is None


def test_mongo_fingerprint() -> None:
    client = mongomock.MongoClient()
    coll = client["crm"]["users"]
    coll.insert_many([{"_id": ObjectId(f"{i:024x}"), "n": i} for i in range(1, 21)])
    stream = MongoSource(None, "crm", client=client).stream("users")
    docs = list(stream.read())
    start, end = docs[4].position, docs[14].position
    fp = stream.fingerprint(start, end)
    assert json.loads(json.dumps(fp)) == fp
    coll.insert_one({"_id": ObjectId(f"{99:024x}"), "n": 99})  # after the unit: not a change
    assert describe_change(fp, stream.fingerprint(start, end)) is None
    coll.delete_one({"_id": docs[5].doc["_id"]})
    change = describe_change(fp, stream.fingerprint(start, end))
    assert change is not None and "crm.users" in change and docs[5].key in change
    coll.delete_one({"_id": docs[4].doc["_id"]})
    change = describe_change(fp, stream.fingerprint(start, end))
    assert change is not None and docs[4].key in change


def test_describe_change_of_unrelated_fingerprints() -> None:
    assert describe_change({"source": "a.bson", "size": 1}, {"source": "a.bson", "size": 1}) is None
    text = describe_change({"source": "a.bson", "size": 1}, {"source": "b.bson", "size": 1})
    assert text is not None and "a.bson" in text and "b.bson" in text
