"""Get the target ready for loading, and undo it (rollback).

Create mode: the schema and bare tables (no keys, no indexes — those come after the data).
Existing mode: the tables must exist with every mapped column; primary, unique and foreign
keys that would block loading (and foreign keys elsewhere that point at mapped tables) are
dropped and their definitions saved in ``docshift.objects`` to be re-created after the load.
"""

from __future__ import annotations

import orjson
import psycopg
from psycopg import sql

from docshift.errors import TargetError
from docshift.spec.model import Mapping
from docshift.target.ddl import HIDDEN_COLUMNS, create_table, qualified
from docshift.target.state import objects, record_object


def prepare_create(conn: psycopg.Connection, m: Mapping) -> None:
    """Create the target schema and bare tables, recording what docshift made."""
    schema = m.target.schema_
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for name in m.tables_in_load_order():
            if _table_exists(conn, schema, name) and not _made_by_us(conn, name):
                raise TargetError(
                    f"table {schema}.{name} already exists and docshift did not create it",
                    hint="Use 'target: {mode: existing}' to load into existing tables, or "
                    "drop it first.")
            conn.execute(create_table(m, name))
            record_object(conn, "table", name, schema, schema)


def _made_by_us(conn: psycopg.Connection, name: str) -> bool:
    return any(t == name for t, _, _ in objects(conn, "table"))


def _table_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                        (f'"{schema}"."{name}"',)).fetchone()[0]  # type: ignore[index]


def resolve_existing_types(conn: psycopg.Connection, m: Mapping) -> None:
    """Check every mapped table and column exists; fill in types the mapping left out."""
    problems = []
    for tname, table in m.tables.items():
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            (f'"{m.target.schema_}"."{tname}"',)).fetchall()
        if not rows:
            problems.append(f"table {m.target.schema_}.{tname} does not exist in the target "
                            "(existing mode loads into tables that are already there)")
            continue
        have = dict(rows)
        for cname in table.columns:
            col = table.column(cname)
            if cname not in have:
                problems.append(f"table {tname!r}: column {cname!r} does not exist in the "
                                f"target table (it has: {', '.join(sorted(have))})")
            elif col.type is None:
                col.type = have[cname]
        if table.extra and table.extra not in have:
            problems.append(f"table {tname!r}: extra column {table.extra!r} does not exist")
    if problems:
        raise TargetError("the target does not match the mapping:\n"
                          + "\n".join(f"  - {p}" for p in problems))


def prepare_existing(conn: psycopg.Connection, m: Mapping) -> None:
    """Drop blocking keys (saving their definitions) and add the hidden source-key column."""
    schema = m.target.schema_
    with conn.transaction():
        oids = [f'"{schema}"."{t}"' for t in m.tables]
        rows = conn.execute(
            "SELECT c.conname, c.contype, c.conrelid::regclass::text, "
            "pg_get_constraintdef(c.oid), "
            "ARRAY(SELECT attname FROM pg_attribute a WHERE a.attrelid = c.conrelid "
            "      AND a.attnum = ANY(c.conkey) ORDER BY array_position(c.conkey, a.attnum)), "
            "cl.relname "
            "FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid "
            "WHERE c.contype IN ('p', 'u', 'f') AND (c.conrelid = ANY(%(t)s::regclass[]) "
            "   OR (c.contype = 'f' AND c.confrelid = ANY(%(t)s::regclass[])))",
            {"t": oids}).fetchall()
        # foreign keys go first: a key cannot be dropped while a foreign key uses it
        rows.sort(key=lambda r: 0 if r[1] == "f" else 1)
        for name, kind, qual, definition, cols, relname in rows:
            record_object(conn, "dropped", relname, name, orjson.dumps({
                "type": kind, "def": definition, "columns": cols, "qualified": qual,
            }).decode())
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.SQL(qual), sql.Identifier(name)))
        for t in m.tables:
            for col, typ in HIDDEN_COLUMNS.items():
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    qualified(schema, t), sql.Identifier(col), sql.SQL(typ)))


def empty_target(conn: psycopg.Connection, m: Mapping) -> list[str]:
    """Undo a migration's effect on the target; returns what was done, one line each.

    Create mode drops the tables docshift created; existing mode empties the mapped tables
    and re-creates any constraint still waiting to be. The state schema is dropped last.
    """
    done: list[str] = []
    with conn.transaction():
        if m.target.mode == "create":
            for table, _, schema in objects(conn, "table"):
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                    qualified(schema or m.target.schema_, table)))
                done.append(f"dropped table {schema}.{table}")
        else:
            tables = sql.SQL(", ").join(qualified(m.target.schema_, t) for t in m.tables)
            conn.execute(sql.SQL("TRUNCATE {}").format(tables))
            done.append("emptied " + ", ".join(m.tables))
            for t in m.tables:
                for col in HIDDEN_COLUMNS:
                    conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                        qualified(m.target.schema_, t), sql.Identifier(col)))
            for table, name, definition in objects(conn, "dropped"):
                d = orjson.loads(definition or "{}")
                exists = conn.execute(
                    "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = %s::regclass",
                    (name, d["qualified"])).fetchone()
                if not exists:
                    conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        sql.SQL(d["qualified"]), sql.Identifier(name), sql.SQL(d["def"])))
                    done.append(f"re-created constraint {name} on {table}")
        conn.execute("DROP SCHEMA IF EXISTS docshift CASCADE")
        done.append("dropped docshift's state (schema docshift)")
    return done
