"""Bad input never stops a run and is never lost: each case through the command line.

Every case writes a small real dump (or JSON Lines file) holding good documents and one
kind of damage, runs ``docshift run``, and checks the exit code, that every good document
is loaded, and that the damage is a quarantine entry naming what is wrong.
"""

from __future__ import annotations

import base64
from pathlib import Path

import bson
import psycopg
import pytest
from bson import ObjectId
from typer.testing import CliRunner

from docshift.cli import app
from docshift.spec import load_mapping
from tests.run.sample import interrupt_after_first_batch

runner = CliRunner()

MAPPING = """
source: {kind: mongodump, path: "%(path)s"}
target: {dsn: "%(dsn)s"}
tables:
  people:
    from: people
    primary_key: id
    extra: more
    columns:
      id: {type: uuid, from: _id}
      name: text
"""


def oid(i: int) -> ObjectId:
    return ObjectId(i.to_bytes(12, "big"))


def good(n: int, start: int = 0) -> list[dict]:
    return [{"_id": oid(i), "name": f"person {i}", "age": i} for i in range(start, start + n)]


def dump(tmp_path: Path, data: bytes, metadata: bytes | None = None) -> Path:
    db = tmp_path / "dump" / "app"
    db.mkdir(parents=True, exist_ok=True)
    (db / "people.bson").write_bytes(data)
    if metadata is not None:
        (db / "people.metadata.json").write_bytes(metadata)
    return tmp_path / "dump"


def run(tmp_path: Path, dsn: str, root: Path, mapping: str = MAPPING) -> tuple[int, str]:
    path = tmp_path / "docshift.yaml"
    path.write_text(mapping % {"path": root, "dsn": dsn})
    res = runner.invoke(app, ["run", "-c", str(path)])
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.output


def loaded(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM people")}


def rejects(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT source_key, field, error_class, message, document "
                        "FROM docshift.rejects ORDER BY id").fetchall()


def encode(docs: list[dict]) -> bytes:
    return b"".join(bson.encode(d) for d in docs)


def test_truncated_last_document_loads_everything_before_and_keeps_the_bytes(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    tail = bson.encode({"_id": oid(99), "name": "cut off"})[:-7]
    code, out = run(tmp_path, dsn, dump(tmp_path, encode(good(12)) + tail))
    assert code == 3, out
    assert loaded(conn) == {f"person {i}" for i in range(12)}
    (entry,) = rejects(conn)
    assert entry[2] == "unreadable"
    record = entry[4]["$unreadable"]
    assert base64.b64decode(record["raw_base64"]) == tail
    assert record["offset"] == len(encode(good(12)))
    assert "people.bson" in entry[3]


def test_corrupt_length_prefix_in_the_middle_keeps_what_is_around_it(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    bad = bytearray(bson.encode({"_id": oid(50), "name": "corrupt"}))
    bad[0:4] = (2**31 - 1).to_bytes(4, "little")  # a length far past the end of the file
    code, out = run(tmp_path, dsn, dump(tmp_path, encode(good(5)) + bytes(bad)
                                        + encode(good(5, 5))))
    assert code == 3, out
    before = {f"person {i}" for i in range(5)}
    assert before <= loaded(conn)  # every document before the damage
    assert len(rejects(conn)) >= 1
    assert all(r[2] == "unreadable" for r in rejects(conn))


def test_garbage_metadata_is_a_warning(tmp_path: Path, dsn: str,
                                       conn: psycopg.Connection) -> None:
    code, out = run(tmp_path, dsn, dump(tmp_path, encode(good(4)), b"{not json at all"))
    assert code == 0, out
    assert "warning" in out and "people.metadata.json" in out
    assert len(loaded(conn)) == 4


@pytest.mark.parametrize("value", ["nul \x00 inside", float("nan"), b"\xff\xfe not utf-8"])
def test_a_bad_value_in_the_catch_all_quarantines_only_its_document(
        tmp_path: Path, dsn: str, conn: psycopg.Connection, value: object) -> None:
    docs = good(6)
    raw = encode(docs[:3])
    if isinstance(value, bytes):
        # a BSON string that is not UTF-8, as old drivers could write it
        marker = "PLACEHOLDER"
        enc = bson.encode({"_id": oid(77), "name": "bad extra", "note": marker})
        raw += enc.replace(marker.encode(), value[: len(marker)].ljust(len(marker), b"!"))
    else:
        raw += bson.encode({"_id": oid(77), "name": "bad extra", "note": value})
    raw += encode(docs[3:])
    code, out = run(tmp_path, dsn, dump(tmp_path, raw))
    assert code in (0, 3), out
    assert {f"person {i}" for i in range(6)} <= loaded(conn)
    names = loaded(conn)
    entries = rejects(conn)
    # the document is either loaded with a value jsonb can hold, or quarantined whole
    assert ("bad extra" in names) != (len(entries) == 1)
    if entries:
        assert entries[0][0] == str(oid(77))
        assert entries[0][1] and "note" in entries[0][1]


def test_bad_field_names_are_reported_escaped(tmp_path: Path, dsn: str,
                                              conn: psycopg.Connection) -> None:
    mapping = MAPPING.replace("    extra: more\n", "")
    enc = bson.encode({"_id": oid(80), "name": "odd keys", "KEYX": 1})
    raw = encode(good(3)) + enc.replace(b"KEYX", b"K\xffYX") + encode(good(2, 3))
    code, out = run(tmp_path, dsn, dump(tmp_path, raw), mapping)
    assert code == 0, out
    assert len(loaded(conn)) == 6
    paths = [r[0] for r in conn.execute("SELECT path FROM docshift.unmapped")]
    assert any(p.startswith("K") and p.endswith("YX") for p in paths), paths
    assert "age" in paths


def test_a_nul_in_a_json_field_name_is_reported_escaped(tmp_path: Path, dsn: str,
                                                        conn: psycopg.Connection) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "people.jsonl").write_text(
        '{"_id": "a", "name": "one"}\n{"_id": "b", "name": "two", "x\\u0000y": 1}\n')
    mapping = MAPPING.replace("kind: mongodump", "kind: json").replace("    extra: more\n", "")
    code, out = run(tmp_path, dsn, folder, mapping)
    assert code == 0, out
    assert loaded(conn) == {"one", "two"}
    paths = [r[0] for r in conn.execute("SELECT path FROM docshift.unmapped")]
    assert len(paths) == 1 and "\x00" not in paths[0] and paths[0].startswith("x"), paths


def test_string_ids_that_postgresql_cannot_store_as_text(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    weird = [{"_id": "id\x00with-nul", "name": "nul id"},
             {"_id": "plain-id", "name": "plain id"}]
    raw = encode(good(2)) + encode(weird)
    marker = "XXXXXX"
    enc = bson.encode({"_id": marker, "name": "latin1 id"})
    raw += enc.replace(marker.encode(), b"caf\xe9!!")
    code, out = run(tmp_path, dsn, dump(tmp_path, raw))
    assert code in (0, 3), out
    names = loaded(conn)
    accounted = len(names) + len(rejects(conn))
    assert accounted == 5
    assert {"person 0", "person 1", "plain id"} <= names
    keys = [r[0] for r in conn.execute("SELECT source_key FROM docshift.rejects")]
    assert all("\x00" not in k for k in keys)


def test_duplicate_ids_keep_the_first_document_in_source_order(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    first = {"_id": oid(5), "name": "zz first in the file"}
    second = {"_id": oid(5), "name": "aa second in the file"}
    code, out = run(tmp_path, dsn, dump(tmp_path, encode(good(3) + [first, second])))
    assert code == 3, out
    assert "zz first in the file" in loaded(conn)
    assert "aa second in the file" not in loaded(conn)
    (entry,) = rejects(conn)
    assert entry[2] == "duplicate_key"
    assert entry[4]["name"] == "aa second in the file"  # the original document, whole


def test_a_source_changed_between_interrupt_and_resume_is_refused(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    root = dump(tmp_path, encode(good(300)))
    path = tmp_path / "docshift.yaml"
    path.write_text(MAPPING % {"path": root, "dsn": dsn})
    m = load_mapping(path)
    interrupt_after_first_batch(m, dsn)
    # re-dumped: the same size, other contents
    (root / "app" / "people.bson").write_bytes(encode(good(300, 1000)))
    res = runner.invoke(app, ["run", "-c", str(path)])
    assert res.exit_code == 1, res.output
    assert "the source changed" in res.output and "--restart" in res.output
    assert "people.bson" in res.output
    res = runner.invoke(app, ["run", "-c", str(path), "--restart"])
    assert res.exit_code == 0, res.output
    assert loaded(conn) == {f"person {i}" for i in range(1000, 1300)}


KV_MAPPING = """
source: {kind: postgres_kv, table: kvt}
target: {dsn: "%(dsn)s"}
tables:
  items:
    keys: "item:{id}"
    primary_key: id
    extra: more
    columns:
      id: {type: text, from: $key.id}
      name: text
      n: integer
  item_sets:
    keys: "item_set:{id}"
    unnest: $
    columns:
      set_id: {type: text, from: $key.id}
      item_id: {type: text, from: $item}
"""


def test_key_value_values_that_are_not_objects_are_quarantined_not_loaded_empty(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    from psycopg.types.json import Jsonb

    conn.execute("CREATE TABLE kvt (key text PRIMARY KEY, value jsonb)")
    rows = [("item:1", {"name": "ok", "n": 1}), ("item:2", ["lost", "data"]),
            ("item:3", "a string"), ("item:4", 42), ("item:5", None),
            ("item_set:a", ["1", "2"])]  # an array is what an unnest: $ table reads
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kvt VALUES (%s, %s)", [(k, Jsonb(v)) for k, v in rows])
    path = tmp_path / "docshift.yaml"
    path.write_text(KV_MAPPING % {"dsn": dsn})
    res = runner.invoke(app, ["run", "-c", str(path)])
    assert res.exit_code == 3, res.output
    assert conn.execute("SELECT id, name FROM items").fetchall() == [("1", "ok")]
    assert conn.execute("SELECT count(*) FROM item_sets").fetchone()[0] == 2
    got = conn.execute("SELECT source_key, table_name, error_class FROM docshift.rejects "
                       "ORDER BY source_key").fetchall()
    assert got == [(f"item:{i}", "items", "not_an_object") for i in (2, 3, 4, 5)]


def test_a_key_value_row_updated_between_interrupt_and_resume_is_refused(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    from psycopg.types.json import Jsonb

    conn.execute("CREATE TABLE kvt (key text PRIMARY KEY, value jsonb)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kvt VALUES (%s, %s)",
                        [(f"item:{i:04}", Jsonb({"name": f"n{i}", "n": i})) for i in range(300)])
    path = tmp_path / "docshift.yaml"
    path.write_text(KV_MAPPING % {"dsn": dsn})
    interrupt_after_first_batch(load_mapping(path), dsn)
    # an already loaded row changes: its key stays, its value (and row version) does not
    conn.execute("""UPDATE kvt SET value = '{"name": "renamed", "n": 1}' WHERE key = 'item:0001'""")
    res = runner.invoke(app, ["run", "-c", str(path)])
    assert res.exit_code == 1, res.output
    assert "the source changed" in res.output and "--restart" in res.output
    assert "inserted, updated or deleted" in res.output
