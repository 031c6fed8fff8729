"""Schema advice, each item with the DDL that fixes it.

Foreign keys without an index (for the whole schema), an index for each sequential scan of a
large table (from the columns its filter, joins and sorts use: a trigram or ``tsvector`` GIN
index for text search, a GIN index for ``@>``), indexes the workload never used, and tables
never analyzed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from docshift.bench.explain import SeqScan


@dataclass
class Advice:
    """One thing to change in the schema, and the statement that changes it."""

    kind: str
    """missing_fk_index | seq_scan | unused_index | never_analyzed"""
    table: str
    message: str
    ddl: str | None
    query: str | None = None
    """The benchmark query that showed it (seq_scan, never_analyzed)."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def _qualified(conn: psycopg.Connection, schema: str, table: str) -> str:
    return sql.Identifier(schema, table).as_string(conn)


def _ident(conn: psycopg.Connection, name: str) -> str:
    return sql.Identifier(name.strip('"')).as_string(conn)


def missing_fk_indexes(conn: psycopg.Connection, schema: str) -> list[Advice]:
    """Foreign keys of ``schema`` whose columns lead no index of their table."""
    rows = conn.execute(
        "SELECT c.conname, t.relname, "
        "  array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
        "        ORDER BY k.i)::text[], "
        "  r.relname "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_class r ON r.oid = c.confrelid "
        "WHERE c.contype = 'f' AND n.nspname = %s AND NOT EXISTS ("
        "  SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND "
        "  (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> c.conkey"
        "  AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)]"
        "      <@ c.conkey) "
        "ORDER BY t.relname, c.conname", (schema,)).fetchall()
    out = []
    for conname, table, columns, parent in rows:
        cols = ", ".join(_ident(conn, c) for c in columns)
        out.append(Advice(
            "missing_fk_index", table,
            f"foreign key {conname} ({', '.join(columns)} → {parent}) has no index: "
            f"deleting or updating a {parent} row scans {table}, and joins from {parent} "
            "cannot use an index",
            f"CREATE INDEX ON {_qualified(conn, schema, table)} ({cols});"))
    return out


def seq_scan_advice(conn: psycopg.Connection, scan: SeqScan, query: str) -> Advice:
    """A proposed index for a sequential scan of a large table, from the columns it uses."""
    table = _qualified(conn, scan.schema, scan.table)
    size = f"{scan.table} ({scan.table_rows:,} rows) is read sequentially"
    if scan.text_search:
        kind, what = scan.text_search[0]
        if kind == "trigram":
            return Advice("seq_scan", scan.table,
                          f"{size} for a LIKE / ILIKE on {what}: a trigram index serves it",
                          "CREATE EXTENSION IF NOT EXISTS pg_trgm; "
                          f"CREATE INDEX ON {table} USING gin ({_ident(conn, what)} "
                          "gin_trgm_ops);", query)
        return Advice("seq_scan", scan.table,
                      f"{size} for a full-text search on {what}: a GIN index on the same "
                      "expression serves it", f"CREATE INDEX ON {table} USING gin ({what});",
                      query)
    if scan.containment:
        col = scan.containment[0]
        return Advice("seq_scan", scan.table,
                      f"{size} for a containment test (@>) on {col}: a GIN index serves it",
                      f"CREATE INDEX ON {table} USING gin ({_ident(conn, col)});", query)
    for what, columns in (("filter", scan.filter_columns), ("join", scan.join_columns),
                          ("sort", scan.sort_columns)):
        if columns:
            cols = ", ".join(_ident(conn, c.removesuffix(" DESC")) +
                             (" DESC" if c.endswith(" DESC") else "") for c in columns)
            return Advice("seq_scan", scan.table,
                          f"{size} for its {what} on {', '.join(columns)}: an index on "
                          f"({', '.join(columns)}) serves it",
                          f"CREATE INDEX ON {table} ({cols});", query)
    return Advice("seq_scan", scan.table,
                  f"{size} with no filter, join or sort on it: the query reads the whole "
                  "table (add a WHERE or a LIMIT with an ORDER BY on an indexed column)",
                  None, query)


def index_scans(conn: psycopg.Connection, schema: str) -> dict[tuple[str, str], int]:
    """idx_scan of every index in ``schema``, by (table, index)."""
    return {(t, i): int(n) for t, i, n in conn.execute(
        "SELECT relname, indexrelname, idx_scan FROM pg_stat_user_indexes "
        "WHERE schemaname = %s", (schema,))}


def flush_statistics(conn: psycopg.Connection) -> None:
    """Make this connection's index and table statistics visible to other connections now
    (PostgreSQL 15+ flushes them at most once a second otherwise)."""
    if conn.info.server_version >= 150000:
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")


def unused_indexes(conn: psycopg.Connection, schema: str, before: dict[tuple[str, str], int],
                   after: dict[tuple[str, str], int], tables: set[str]) -> list[Advice]:
    """Indexes of the tables the workload read that it never used (not keys: they enforce
    constraints)."""
    constraint = {r[0] for r in conn.execute(
        "SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = ic.relnamespace "
        "WHERE n.nspname = %s AND (i.indisunique OR i.indisprimary OR EXISTS ("
        "  SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid))", (schema,))}
    fk_columns = {(r[0], r[1]) for r in conn.execute(
        "SELECT t.relname, ic.relname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_index i ON i.indrelid = t.oid "
        "JOIN pg_class ic ON ic.oid = i.indexrelid WHERE c.contype = 'f' AND n.nspname = %s "
        "AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> "
        "c.conkey", (schema,))}
    out = []
    for (table, index), n in sorted(after.items()):
        if table not in tables or index in constraint or n > before.get((table, index), 0):
            continue
        why = (" (it serves a foreign key: keep it if rows of the referenced table are "
               "deleted or updated)" if (table, index) in fk_columns else "")
        out.append(Advice("unused_index", table,
                          f"index {index} on {table} was not used by any query of this "
                          f"benchmark{why}; drop it only if the application never needs it",
                          f"DROP INDEX {_qualified(conn, schema, index)};"))
    return out


def never_analyzed(conn: psycopg.Connection, schema: str) -> list[Advice]:
    """Tables of ``schema`` that have never been analyzed: their estimates are guesses."""
    rows = conn.execute(
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s AND last_analyze IS NULL "
        "AND last_autoanalyze IS NULL ORDER BY relname", (schema,)).fetchall()
    return [Advice("never_analyzed", t, f"{t} has never been analyzed: the planner guesses its "
                   "size and value distribution", f"ANALYZE {_qualified(conn, schema, t)};")
            for (t,) in rows]
