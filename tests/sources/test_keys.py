"""Document keys are text PostgreSQL can store: no NUL, no invalid UTF-8, no lone surrogate."""

from __future__ import annotations

import os
from pathlib import Path

import bson
import mongomock
import psycopg
import pytest
from psycopg.types.json import Jsonb

from docshift.errors import SourceError
from docshift.sources.base import key_text
from docshift.sources.bsonvalues import id_to_key
from docshift.sources.jsonfiles import JsonSource
from docshift.sources.mongodb import MongoSource
from docshift.sources.mongodump import MongodumpSource
from docshift.sources.postgres_kv import KvSource


def storable(conn: psycopg.Connection, keys: list[str]) -> None:
    """Every key goes into a text column and into jsonb, and comes back unchanged."""
    for key in keys:
        row = conn.execute("SELECT %s::text, %s::jsonb", (key, Jsonb(key))).fetchone()
        assert row == (key, key)


def test_bson_id_with_invalid_utf8_and_nul(tmp_path: Path, conn: psycopg.Connection) -> None:
    docs = [bson.encode({"_id": "abc"}).replace(b"abc", name) for name in
            (b"a\xffc", b"a\x00c", b"abc")]
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "c.bson").write_bytes(b"".join(docs))
    got = list(MongodumpSource(tmp_path / "db").stream("c").read())
    # An embedded NUL ends a BSON cstring but not a BSON string: the reader keeps it.
    assert [d.key for d in got] == ["a\\xffc", "a\\u0000c", "abc"]
    storable(conn, [d.key for d in got])


def test_json_ids_with_nul_and_lone_surrogates(tmp_path: Path, conn: psycopg.Connection) -> None:
    (tmp_path / "c.jsonl").write_text(
        '{"_id": "x\\u0000y"}\n{"_id": "\\ud800z"}\n{"_id": "\\udcff"}\n{"_id": "ok"}\n'
    )
    keys = [d.key for d in JsonSource(tmp_path).stream("c").read()]
    assert keys == ["x\\u0000y", "\\ud800z", "\\xff", "ok"]
    storable(conn, keys)


def test_keys_of_unreadable_json_lines_are_storable(tmp_path: Path,
                                                     conn: psycopg.Connection) -> None:
    (tmp_path / "c.jsonl").write_bytes(b'{"_id": "k\x00\xfe", oops}\n')
    (doc,) = JsonSource(tmp_path).stream("c").read()
    assert doc.key == "k\\u0000\\xfe"
    storable(conn, [doc.key])


def test_live_ids_are_escaped_too(conn: psycopg.Connection) -> None:
    client = mongomock.MongoClient()
    client["db"]["c"].insert_many([{"_id": "n\x00l"}, {"_id": "plain"}])
    keys = [d.key for d in MongoSource(None, "db", client=client).stream("c").read()]
    assert keys == ["n\\u0000l", "plain"]
    storable(conn, keys)


@pytest.mark.parametrize("value", ["plain", "é ü 中", "a:b/c", "", "with space"])
def test_ordinary_ids_are_unchanged(value: str) -> None:
    assert id_to_key(value) == value


def test_escaping_is_unique_for_distinct_ids() -> None:
    ids = ["a\x00", "a\\u0000", "a\\\\u0000", "a\\", "a\\\\", "a\udcff", "a\\xff", "a\ud800",
           "a\\ud800", "a", "a\\x00"]
    keys = [key_text(i) for i in ids]
    assert len(set(keys)) == len(ids)
    assert all("\x00" not in k and k.encode("utf-8") for k in keys)
    assert key_text("a\\b") == "a\\\\b"  # a backslash is doubled so that escapes are unambiguous


def test_kv_keys_come_from_a_database_with_a_real_encoding(server_dsn: str, dsn: str) -> None:
    """PostgreSQL text holds no NUL and, except under SQL_ASCII, only valid text: that one
    encoding, whose keys could be any bytes, is refused up front with a clear message."""
    name = f"dstest_sql_ascii_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                      "LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        ascii_dsn = psycopg.conninfo.make_conninfo(dsn, dbname=name)
        with psycopg.connect(ascii_dsn, autocommit=True) as c:
            c.execute("CREATE TABLE kv (key text PRIMARY KEY, value jsonb)")
        with pytest.raises(SourceError, match="SQL_ASCII") as info:
            KvSource(ascii_dsn, "kv")
        assert "UTF8" in (info.value.hint or "")
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
