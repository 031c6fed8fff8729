"""Set-based SQL that finds duplicates and orphans after loading, and removes rows.

Rows docshift did not load (NULL ``__docshift_doc``: they were in an existing table before
the run) are never deleted or updated here: every statement that changes a row requires
``__docshift_doc IS NOT NULL``. Among rows with an equal key the first in source order
stays: rows that were there before the run first, then by document number, ties within
one document by physical order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from docshift.target.ddl import qualified
from docshift.transform.rows import SOURCE_DOC_COLUMN, SOURCE_KEY_COLUMN

DOC = sql.Identifier(SOURCE_DOC_COLUMN)
KEY = sql.Identifier(SOURCE_KEY_COLUMN)


@dataclass(frozen=True)
class Duplicate:
    """A loaded row whose key an earlier row holds."""

    doc_id: int
    source_key: str
    value: str
    holder_key: str | None  # None: the holder was in the table before the run
    holder_doc: int | None


@dataclass(frozen=True)
class Orphan:
    """A loaded row whose reference points at no parent row."""

    doc_id: int
    source_key: str
    value: str


def key_text(cols: Sequence[str], alias: str = "t") -> sql.Composable:
    """SQL text of a key: ``col::text`` for one column, ``(a, b)`` for several."""
    parts = [sql.SQL("{}.{}::text").format(sql.Identifier(alias), sql.Identifier(c))
             for c in cols]
    if len(parts) == 1:
        return parts[0]
    return sql.SQL("'(' || concat_ws(', ', {}) || ')'").format(sql.SQL(", ").join(parts))


def _ranked(schema: str, table: str, cols: Sequence[str]) -> sql.Composed:
    keys = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in cols)
    not_null = sql.SQL(" AND ").join(
        sql.SQL("t.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols)
    return sql.SQL(
        "SELECT t.ctid AS rid, t.{doc} AS doc, t.{key} AS src, {val} AS val, "
        "row_number() OVER w AS rn, first_value(t.{key}) OVER w AS holder_key, "
        "first_value(t.{doc}) OVER w AS holder_doc FROM {q} t WHERE {nn} "
        "WINDOW w AS (PARTITION BY {keys} ORDER BY t.{doc} NULLS FIRST, t.ctid)").format(
        doc=DOC, key=KEY, val=key_text(cols), q=qualified(schema, table), nn=not_null,
        keys=keys)


def find_duplicates(conn: psycopg.Connection, schema: str, table: str,
                    cols: Sequence[str]) -> list[Duplicate]:
    """Loaded rows that repeat the key ``cols`` of an earlier row (the first one stays)."""
    rows = conn.execute(sql.SQL(
        "SELECT doc, src, val, holder_key, holder_doc FROM ({}) r "
        "WHERE rn > 1 AND doc IS NOT NULL ORDER BY doc").format(
        _ranked(schema, table, cols))).fetchall()
    return [Duplicate(*r) for r in rows]


def drop_duplicates(conn: psycopg.Connection, run_id: int, schema: str, table: str,
                    cols: Sequence[str], source: str) -> int:
    """Delete loaded rows that repeat an earlier row's key, recording each in removals."""
    stmt = sql.SQL(
        "WITH ranked AS ({ranked}), gone AS (DELETE FROM {q} t USING ranked r "
        "WHERE t.ctid = r.rid AND r.rn > 1 AND r.doc IS NOT NULL "
        "RETURNING r.doc, r.src, r.val, r.holder_key) "
        "INSERT INTO docshift.removals (run_id, table_name, kind, source, source_key, doc_id, "
        "column_name, value, message) SELECT {run}, {t}, 'duplicate_dropped', {s}, src, doc, "
        "{cols}, val, 'duplicate of ' || {cols} || ' ' || val || ' held by ' || "
        "CASE WHEN holder_key IS NULL THEN 'a row that was in the table before the run' "
        "ELSE 'document ' || holder_key END || ' (on_duplicate: keep_first)' FROM gone").format(
        ranked=_ranked(schema, table, cols), q=qualified(schema, table),
        run=sql.Literal(run_id), t=sql.Literal(table), s=sql.Literal(source),
        cols=sql.Literal(",".join(cols)))
    return conn.execute(stmt).rowcount


def duplicate_rows(conn: psycopg.Connection, schema: str, table: str,
                   cols: Sequence[str]) -> int:
    """How many rows share their key ``cols`` with another row."""
    keys = sql.SQL(", ").join(map(sql.Identifier, cols))
    nn = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c))
                               for c in cols)
    return conn.execute(sql.SQL(
        "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {} WHERE {} GROUP BY {} "
        "HAVING count(*) > 1) d").format(qualified(schema, table), nn, keys)
    ).fetchone()[0]  # type: ignore[index]


def _orphan_condition(schema: str, column: str, parent: str, pcol: str) -> sql.Composed:
    return sql.SQL(
        "t.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {pq} p WHERE p.{pc} = t.{c})").format(
        c=sql.Identifier(column), pq=qualified(schema, parent), pc=sql.Identifier(pcol))


def find_orphans(conn: psycopg.Connection, schema: str, table: str, column: str,
                 parent: str, pcol: str) -> list[Orphan]:
    """Loaded rows whose ``column`` points at no row of ``parent``."""
    rows = conn.execute(sql.SQL(
        "SELECT t.{doc}, t.{key}, t.{c}::text FROM {q} t WHERE t.{doc} IS NOT NULL AND {cond} "
        "ORDER BY t.{doc}, t.ctid").format(
        doc=DOC, key=KEY, c=sql.Identifier(column), q=qualified(schema, table),
        cond=_orphan_condition(schema, column, parent, pcol))).fetchall()
    return [Orphan(*r) for r in rows]


def count_orphans(conn: psycopg.Connection, schema: str, table: str, column: str,
                  parent: str, pcol: str, sample: int) -> tuple[int, list[str]]:
    """How many rows (loaded or not) point at no parent, and a few of their values."""
    cond = _orphan_condition(schema, column, parent, pcol)
    q = qualified(schema, table)
    n = conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(q, cond)
                     ).fetchone()[0]  # type: ignore[index]
    values = [r[0] for r in conn.execute(sql.SQL(
        "SELECT DISTINCT t.{}::text FROM {} t WHERE {} LIMIT {}").format(
        sql.Identifier(column), q, cond, sql.Literal(sample)))] if n else []
    return n, values


def change_orphans(conn: psycopg.Connection, schema: str, table: str, column: str,
                   parent: str, pcol: str, action: str) -> list[Orphan]:
    """Set loaded orphan references to NULL (``null``) or delete their rows (``drop``)."""
    cond = _orphan_condition(schema, column, parent, pcol)
    change = (sql.SQL("UPDATE {q} t SET {c} = NULL FROM o WHERE t.ctid = o.rid")
              if action == "null" else sql.SQL("DELETE FROM {q} t USING o WHERE t.ctid = o.rid"))
    stmt = sql.SQL(
        "WITH o AS (SELECT t.ctid AS rid, t.{doc} AS doc, t.{key} AS src, t.{c}::text AS val "
        "FROM {q} t WHERE t.{doc} IS NOT NULL AND {cond}), changed AS ({change}) "
        "SELECT doc, src, val FROM o ORDER BY doc").format(
        doc=DOC, key=KEY, c=sql.Identifier(column), q=qualified(schema, table), cond=cond,
        change=change.format(q=qualified(schema, table), c=sql.Identifier(column)))
    return [Orphan(*r) for r in conn.execute(stmt).fetchall()]


def row_images(conn: psycopg.Connection, schema: str, table: str,
               doc_ids: Sequence[int]) -> dict[int, Any]:
    """One row of ``table`` per document (without the hidden columns), as JSON."""
    rows = conn.execute(sql.SQL(
        "SELECT DISTINCT ON (t.{doc}) t.{doc}, to_jsonb(t) - {k} - {d} FROM {q} t "
        "WHERE t.{doc} = ANY(%s) ORDER BY t.{doc}, t.ctid").format(
        doc=DOC, k=sql.Literal(SOURCE_KEY_COLUMN), d=sql.Literal(SOURCE_DOC_COLUMN),
        q=qualified(schema, table)), (list(doc_ids),)).fetchall()
    return dict(rows)  # type: ignore[arg-type]


def remove_documents(conn: psycopg.Connection, schema: str, tables: Iterable[str],
                     doc_ids: Sequence[int]) -> dict[str, int]:
    """Delete every row of the given documents from ``tables`` (children first)."""
    out = {}
    for t in tables:
        n = conn.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
            qualified(schema, t), DOC), (list(doc_ids),)).rowcount
        if n:
            out[t] = n
    return out


REMOVAL_COLUMNS = ("run_id", "table_name", "kind", "source", "source_key", "doc_id",
                   "column_name", "value", "source_value", "message")


def write_removals(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows of ``docshift.removals`` (tuples in REMOVAL_COLUMNS order)."""
    if not rows:
        return
    with conn.cursor().copy(sql.SQL("COPY docshift.removals ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, REMOVAL_COLUMNS)))) as copy:
        for r in rows:
            copy.write_row(r)


def all_null_columns(conn: psycopg.Connection, schema: str, table: str,
                     columns: Sequence[str]) -> list[str]:
    """Columns of ``columns`` that are NULL in every row of a non-empty, analyzed table.

    ``pg_stats`` names the candidates cheaply; each is confirmed by an exact query.
    """
    candidates = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_stats WHERE schemaname = %s AND tablename = %s "
        "AND null_frac = 1", (schema, table))]
    out = []
    for c in [c for c in columns if c in candidates]:
        has_value = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS NOT NULL)"
                                         ).format(qualified(schema, table), sql.Identifier(c))
                                 ).fetchone()[0]  # type: ignore[index]
        if not has_value:
            out.append(c)
    return out
