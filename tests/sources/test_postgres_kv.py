"""KvSource against a real PostgreSQL: keyset paging in byte order, resume, read-only."""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg.types.json import Jsonb

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.postgres_kv import KvSource

# Keys whose byte order differs from most linguistic collations (case, accents, digits).
KEYS = [f"user:{i:04d}" for i in range(300)] + ["B", "a", "Z", "é", "e", "10", "9", "_x", "user"]


@pytest.fixture(params=["", ' COLLATE "C"'], ids=["default-collation", "c-collation"])
def kv(conn: psycopg.Connection, request: pytest.FixtureRequest) -> list[str]:
    """The table; with the database's collation its key index cannot give byte order (the
    reader then uses one sorted cursor), with COLLATE "C" it can (short keyset pages)."""
    conn.execute(
        f"CREATE TABLE kv_store_x (key text{request.param} PRIMARY KEY, value jsonb NOT NULL)"
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO kv_store_x (key, value) VALUES (%s, %s)",
            [(k, Jsonb({"key": k, "n": i, "tags": [i, str(i)], "big": 2**70}))
             for i, k in enumerate(KEYS)],
        )
    conn.execute("ANALYZE kv_store_x")
    return sorted(KEYS, key=lambda k: k.encode())


def read(source: KvSource, after: str | None = None) -> list[SourceDocument]:
    return list(source.stream(source.table).read(after=after))


def test_rows_come_in_byte_order_with_keys_as_positions(dsn: str, kv: list[str]) -> None:
    with KvSource(dsn, "kv_store_x", page_size=7) as source:
        assert source.stream_names() == ["kv_store_x"]
        docs = read(source)
    assert [d.key for d in docs] == kv
    assert [d.position for d in docs] == kv
    assert docs[0].doc == {"key": kv[0], "n": KEYS.index(kv[0]), "tags": [KEYS.index(kv[0]),
                           str(KEYS.index(kv[0]))], "big": 2**70}


@pytest.mark.parametrize("page_size", [1, 7, 5000])
def test_resume_at_random_cut_points(dsn: str, kv: list[str], page_size: int) -> None:
    with KvSource(dsn, "kv_store_x", page_size=page_size) as source:
        docs = read(source)
    assert len(docs) == len(KEYS)
    cuts = random.Random(page_size).sample(range(len(docs)), 12) + [0, len(docs) - 1]
    for i in cuts:
        with KvSource(dsn, "kv_store_x", page_size=page_size) as fresh:
            assert read(fresh, after=docs[i].position) == docs[i + 1 :]


def test_estimate_count(dsn: str, kv: list[str], conn: psycopg.Connection) -> None:
    with KvSource(dsn, "kv_store_x") as source:
        assert source.stream("kv_store_x").estimate_count() == len(KEYS)
    conn.execute("CREATE TABLE fresh (key text PRIMARY KEY, value jsonb)")
    conn.execute("INSERT INTO fresh SELECT g::text, '{}' FROM generate_series(1, 5) g")
    with KvSource(dsn, "fresh") as source:  # never analyzed: reltuples is -1
        assert source.stream("fresh").estimate_count() == 5


def test_text_values_with_one_bad_row(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE SCHEMA legacy; CREATE TABLE legacy.store (k varchar(50) PRIMARY KEY, v text)"
    )
    conn.execute(
        "INSERT INTO legacy.store VALUES ('a', '{\"x\": 1}'), ('b', '{\"x\": '), "
        "('c', '[1, 2]'), ('d', NULL), ('e', '12345678901234567890123')"
    )
    with KvSource(dsn, "store", schema="legacy", key_column="k", value_column="v") as source:
        docs = read(source)
    assert [d.key for d in docs] == ["a", "b", "c", "d", "e"]
    assert docs[0].doc == {"x": 1}
    bad = docs[1].doc
    assert isinstance(bad, UnreadableDocument)
    assert bad.raw == b'{"x": '
    assert bad.length == 6 and bad.offset is None
    assert "legacy.store" in bad.reason and "'b'" in bad.reason
    assert docs[2].doc == [1, 2]
    assert docs[3].doc is None
    assert docs[4].doc == 12345678901234567890123


def test_transactions_are_read_only(dsn: str, kv: list[str]) -> None:
    with KvSource(dsn, "kv_store_x") as source:
        stream = source.stream("kv_store_x")
        with stream.transaction() as cur:
            cur.execute("SHOW transaction_read_only")
            assert cur.fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), stream.transaction() as cur:
            cur.execute("DELETE FROM kv_store_x")
        # Even outside docshift's own transactions the session defaults to read-only.
        source.conn.autocommit = True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            source.conn.execute("DELETE FROM kv_store_x")
    with psycopg.connect(dsn) as check:
        assert check.execute("SELECT count(*) FROM kv_store_x").fetchone() == (len(KEYS),)


def test_transactions_between_pages(dsn: str, kv: list[str]) -> None:
    idle = psycopg.pq.TransactionStatus.IDLE
    with KvSource(dsn, "kv_store_x", page_size=10) as source:
        rows = source.stream("kv_store_x").read()
        next(rows)
        if source.key_is_indexed:  # short keyset pages: nothing open while the caller works
            assert source.conn.info.transaction_status == idle
        else:  # one sorted cursor: its read-only transaction stays open until the end
            assert source.conn.info.transaction_status != idle
            assert source.conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        rows.close()
        assert source.conn.info.transaction_status == idle


def test_strategy_follows_the_key_index(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE c_keys (key text COLLATE \"C\" PRIMARY KEY, value jsonb)")
    conn.execute("CREATE TABLE c_index (key text PRIMARY KEY, value jsonb)")
    conn.execute("CREATE INDEX ON c_index (key COLLATE \"C\")")
    conn.execute("CREATE TABLE no_index (key text NOT NULL, value jsonb)")
    conn.execute("CREATE VIEW a_view AS SELECT key, value FROM c_keys")
    conn.execute("CREATE TABLE int_keys (key int PRIMARY KEY, value jsonb)")
    expected = {"c_keys": True, "c_index": True, "no_index": False, "a_view": False,
                "int_keys": True}
    for table, indexed in expected.items():
        with KvSource(dsn, table) as source:
            assert source.key_is_indexed is indexed, table


def test_missing_table_and_columns(dsn: str, kv: list[str]) -> None:
    with pytest.raises(SourceError) as info:
        KvSource(dsn, "kv_store_y")
    assert "'kv_store_y'" in str(info.value) and "public.kv_store_x" in str(info.value)
    with pytest.raises(SourceError) as info:
        KvSource(dsn, "kv_store_x", value_column="data")
    message = str(info.value)
    assert "'data'" in message and "key (text)" in message and "value (jsonb)" in message
    with pytest.raises(SourceError, match="schema 'nope'"):
        KvSource(dsn, "kv_store_x", schema="nope")


def test_unusable_value_type_and_unknown_stream(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE nums (key text PRIMARY KEY, value integer)")
    with pytest.raises(SourceError, match="expected json, jsonb or text"):
        KvSource(dsn, "nums")
    conn.execute("CREATE TABLE ok (key text PRIMARY KEY, value json)")
    with KvSource(dsn, "ok") as source, pytest.raises(SourceError, match="'ok'"):
        source.stream("other")


def test_null_and_duplicate_keys_are_refused(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE loose (key text, value jsonb)")
    conn.execute("INSERT INTO loose VALUES ('a', '1'), ('a', '2'), ('b', '3')")
    with KvSource(dsn, "loose") as source, pytest.raises(SourceError, match="not unique"):
        read(source)
    conn.execute("DELETE FROM loose WHERE value = '2'")
    conn.execute("INSERT INTO loose VALUES (NULL, '4')")
    with KvSource(dsn, "loose") as source, pytest.raises(SourceError, match="1 rows have a NULL"):
        read(source)
    conn.execute("DELETE FROM loose WHERE key IS NULL")
    with KvSource(dsn, "loose") as source:
        assert [d.doc for d in read(source)] == [1, 3]


def test_integer_keys_page_in_numeric_order(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE byint (id bigint PRIMARY KEY, doc jsonb)")
    conn.execute(
        "INSERT INTO byint SELECT g, jsonb_build_object('g', g) FROM generate_series(1, 25) g"
    )
    with KvSource(dsn, "byint", key_column="id", value_column="doc", page_size=4) as source:
        docs = read(source)
        assert [d.key for d in docs] == [str(i) for i in range(1, 26)]
        assert read(source, after="20") == docs[20:]
        with pytest.raises(SourceError, match="resume position"):
            read(source, after="not-a-number")


def test_bad_dsn_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="cannot connect"):
        KvSource("host=127.0.0.1 port=1 dbname=x connect_timeout=2", "t")
