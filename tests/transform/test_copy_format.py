"""Rows formatted in one buffer for binary COPY load exactly what ``Copy.write_row`` loads."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from docshift.target import load
from docshift.target.load import TableCopy
from docshift.transform.convert import adapt_connection

COLUMNS = [("u", "uuid", "uuid"), ("t", "text", "text"), ("v", "varchar(5)", "varchar"),
           ("i", "integer", "int4"), ("b", "bigint", "int8"), ("n", "numeric(14,2)", "numeric"),
           ("f", "double precision", "float8"), ("ok", "boolean", "bool"),
           ("ts", "timestamptz", "timestamptz"), ("d", "date", "date"), ("j", "jsonb", "jsonb"),
           ("bin", "bytea", "bytea"), ("arr", "text[]", "text[]"),
           ("ua", "uuid[]", "uuid[]")]

ROWS: list[tuple[Any, ...]] = [
    # a uuid as the loader's rows carry it: its 16 bytes (convert.uuid_wire)
    (uuid.UUID(int=n).bytes, f"text {n} é", "abc", n, 2**40 + n, Decimal(n) / 4, n * 0.5,
     n % 2 == 0,
     dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
     dt.date(2021, 1, 1) + dt.timedelta(days=n), {"n": n, "s": ["x", None]},
     bytes([n % 256]) * 3, ["a", None, str(n)],
     [uuid.UUID(int=n + 1), None])  # a uuid[] keeps its uuid.UUID elements
    for n in range(500)
] + [(None,) * len(COLUMNS)]
LOADED = [(None if r[0] is None else uuid.UUID(bytes=r[0]), *r[1:]) for r in ROWS]
"""What PostgreSQL gives back for ROWS."""


def load_into(conn: psycopg.Connection, name: str, rows: list[tuple[Any, ...]]) -> list[Any]:
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t, _ in COLUMNS)))
    copy = TableCopy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(name)),
                     [n for _, _, n in COLUMNS])
    with conn.transaction(), conn.cursor() as cur:
        copy.write(cur, iter(rows))
    return conn.execute(sql.SQL("SELECT * FROM {} ORDER BY i NULLS LAST").format(
        sql.Identifier(name))).fetchall()


def test_one_buffer_loads_what_write_row_loads(conn: psycopg.Connection,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    adapt_connection(conn)
    assert load._format_row_binary is not None  # the fast path is the one in use here
    monkeypatch.setattr(load, "_SEND_BYTES", 1000)  # several sends per COPY
    fast = load_into(conn, "fast", ROWS)
    monkeypatch.setattr(load, "_format_row_binary", None)
    plain = load_into(conn, "plain", ROWS)
    assert fast == plain == LOADED


def test_empty_copy_and_a_value_the_format_cannot_carry(conn: psycopg.Connection) -> None:
    assert load_into(conn, "empty", []) == []
    with pytest.raises((TypeError, ValueError, OverflowError, psycopg.DataError)):
        load_into(conn, "bad", [(None, "x", "y", "not a number") + (None,) * (len(COLUMNS) - 4)])
    assert conn.execute("SELECT count(*) FROM bad").fetchone() == (0,)
