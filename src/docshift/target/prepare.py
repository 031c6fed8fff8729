"""Get the target ready for loading, and undo it (rollback).

Create mode: the schema and bare tables (no keys, no indexes — those come after the data).
Existing mode: the tables must exist with every mapped column; primary, unique and foreign
keys and unique indexes that would block loading (and foreign keys elsewhere that point at
mapped tables) are dropped and their definitions saved in ``docshift.objects`` to be
re-created after the load. Rollback removes only the rows docshift loaded.
"""

from __future__ import annotations

import orjson
import psycopg
from psycopg import sql

from docshift.errors import TargetError
from docshift.spec.model import Mapping
from docshift.target.ddl import HIDDEN_COLUMNS, create_table, qualified
from docshift.target.state import objects, record_object
from docshift.transform.rows import SOURCE_DOC_COLUMN


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
    """Drop blocking keys and unique indexes (saving their definitions); add hidden columns.

    As pgloader does, unique *indexes* that back no constraint (an ORM's ``@unique``, the
    ``_AB_unique`` of an implicit many-to-many table) are saved with ``pg_get_indexdef``
    and dropped too: they would refuse a whole batch on one duplicate.
    """
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
        for iname, qual_index, qual, definition, cols, relname in _unique_indexes(conn, oids):
            record_object(conn, "dropped", relname, iname, orjson.dumps({
                "type": "i", "def": definition, "columns": cols, "qualified": qual,
                "index": qual_index,
            }).decode())
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(qual_index)))
        for t in m.tables:
            for col, typ in HIDDEN_COLUMNS.items():
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    qualified(schema, t), sql.Identifier(col), sql.SQL(typ)))


def _unique_indexes(conn: psycopg.Connection, oids: list[str]) -> list[tuple]:
    """Unique indexes of the tables that back no constraint.

    Their key columns are listed only when every key is a plain column and the index is
    not partial: only then can duplicates be resolved by those columns.
    """
    return conn.execute(
        "SELECT ic.relname, i.indexrelid::regclass::text, i.indrelid::regclass::text, "
        "pg_get_indexdef(i.indexrelid), "
        "CASE WHEN i.indpred IS NULL AND NOT (0 = ANY(i.indkey::int2[])) THEN "
        "  ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) "
        "        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
        "        ORDER BY k.o) END, "
        "tc.relname "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_class tc ON tc.oid = i.indrelid "
        "WHERE i.indisunique AND i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
        "ORDER BY 1", (oids,)).fetchall()


def empty_target(conn: psycopg.Connection, m: Mapping) -> list[str]:
    """Undo a migration's effect on the target; returns what was done, one line each.

    Create mode drops the tables docshift created, without CASCADE: when anything else
    (a view, another table's foreign key) depends on them, nothing is dropped and a
    TargetError names the dependents. Existing mode removes exactly the rows docshift
    loaded — found by the hidden column while it exists, then by the record of loaded keys
    kept at finalization — and re-creates every key and index it dropped; rows that were
    there before are never touched. The state schema is dropped last. Everything happens
    in one transaction.
    """
    done: list[str] = []
    with conn.transaction():
        if m.target.mode == "create":
            done += _drop_created(conn, m)
        else:
            done += _remove_loaded(conn, m)
            done += _restore_dropped(conn)
            for t in m.tables:
                if _table_exists(conn, m.target.schema_, t):
                    conn.execute(sql.SQL("ALTER TABLE {} {}").format(
                        qualified(m.target.schema_, t), sql.SQL(", ").join(
                            sql.SQL("DROP COLUMN IF EXISTS {}").format(sql.Identifier(c))
                            for c in HIDDEN_COLUMNS)))
        conn.execute("DROP SCHEMA IF EXISTS docshift CASCADE")
        done.append("dropped docshift's state (schema docshift)")
    return done


def _drop_created(conn: psycopg.Connection, m: Mapping) -> list[str]:
    tables = [(schema or m.target.schema_, t) for t, _, schema in objects(conn, "table")]
    tables = [(s, t) for s, t in tables if _table_exists(conn, s, t)]
    if not tables:
        return []
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE {}").format(
                sql.SQL(", ").join(qualified(s, t) for s, t in tables)))
    except psycopg.errors.DependentObjectsStillExist as exc:
        detail = (exc.diag.message_detail or "").strip()
        raise TargetError(
            "rollback would drop tables that other objects depend on; nothing was dropped:\n"
            + "\n".join(f"  - {line}" for line in detail.splitlines() if line),
            hint="Drop or change those objects first (they are not docshift's), then run "
            "rollback again.") from None
    return [f"dropped table {s}.{t}" for s, t in tables]


def _has_column(conn: psycopg.Connection, schema: str, table: str, column: str) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname = %s AND NOT attisdropped)",
        (f'"{schema}"."{table}"', column)).fetchone()[0]  # type: ignore[index]


def _remove_loaded(conn: psycopg.Connection, m: Mapping) -> list[str]:
    """Delete the rows docshift loaded, children first.

    Before each table's rows go, the foreign keys of other rows that reference them are
    checked: a cascade would delete or change rows docshift did not load (the user's), and
    any other action would refuse the delete, so either way nothing is removed and a
    TargetError names the foreign key.
    """
    schema = m.target.schema_
    loaded = {t: (name, orjson.loads(d or "{}")) for t, name, d in objects(conn, "loaded")}
    done = []
    for t in reversed(m.tables_in_load_order()):
        if not _table_exists(conn, schema, t):
            continue
        q = qualified(schema, t)
        if _has_column(conn, schema, t, SOURCE_DOC_COLUMN):
            mine = sql.SQL("{} IS NOT NULL").format(sql.Identifier(SOURCE_DOC_COLUMN))
        elif t in loaded and loaded[t][1].get("columns"):
            name, d = loaded[t]
            cols = sql.SQL(", ").join(map(sql.Identifier, d["columns"]))
            mine = sql.SQL("({}) IN (SELECT {} FROM docshift.{})").format(
                cols, cols, sql.Identifier(name))
        elif t in loaded:
            # no key: as many rows of each loaded image as were loaded
            state = sql.SQL("docshift.{}").format(sql.Identifier(loaded[t][0]))
            _refuse_referenced(conn, schema, t, None)
            n = conn.execute(sql.SQL(
                "WITH want AS (SELECT image, count(*) AS n FROM {s} GROUP BY image), "
                "cand AS (SELECT t.ctid AS rid, to_jsonb(t) AS image, row_number() OVER "
                "(PARTITION BY to_jsonb(t) ORDER BY t.ctid) AS rn FROM {q} t) "
                "DELETE FROM {q} t USING cand c JOIN want w ON w.image = c.image "
                "WHERE t.ctid = c.rid AND c.rn <= w.n").format(s=state, q=q)).rowcount
            done.append(f"removed {n:,} row(s) docshift loaded from {schema}.{t}")
            continue
        else:
            done.append(f"kept every row of {schema}.{t}: no record of which rows docshift "
                        "loaded")
            continue
        _refuse_referenced(conn, schema, t, mine)
        n = conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(q, mine)).rowcount
        done.append(f"removed {n:,} row(s) docshift loaded from {schema}.{t}")
    return done


def _regclass_text(conn: psycopg.Connection, schema: str, table: str) -> str:
    return conn.execute("SELECT to_regclass(%s)::text",
                        (f'"{schema}"."{table}"',)).fetchone()[0]  # type: ignore[index]


_FK_ACTIONS = {"c": "ON DELETE CASCADE would delete them", "n": "ON DELETE SET NULL would "
               "change them", "d": "ON DELETE SET DEFAULT would change them"}


def _refuse_referenced(conn: psycopg.Connection, schema: str, table: str,
                       mine: sql.Composable | None) -> None:
    """Raise TargetError when rows that remain (docshift did not load them: their loaded
    children are deleted first) reference rows of ``table`` matching ``mine`` (None: any
    row) through a foreign key."""
    fks = conn.execute(
        "SELECT c.conname, c.conrelid::regclass::text, c.confdeltype, "
        "  array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
        "        ORDER BY k.i), "
        "  array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
        "        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n "
        "        ORDER BY k.i) "
        "FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = to_regclass(%s)",
        (f'"{schema}"."{table}"',)).fetchall()
    for name, child, action, cols, pcols in fks:
        parent = qualified(schema, table)
        where = sql.SQL("") if mine is None else sql.SQL(" WHERE ") + mine
        # a table's reference to its own loaded rows goes with them
        own = (sql.SQL(" AND NOT ({})").format(mine)
               if mine is not None and child == _regclass_text(conn, schema, table)
               else sql.SQL(""))
        n = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE ({}) IN (SELECT {} FROM {}{}){}")
                         .format(sql.SQL(child), sql.SQL(", ").join(map(sql.Identifier, cols)),
                                 sql.SQL(", ").join(map(sql.Identifier, pcols)), parent, where,
                                 own)).fetchone()[0]  # type: ignore[index]
        if n:
            effect = _FK_ACTIONS.get(action, "the foreign key forbids deleting what they "
                                     "reference")
            raise TargetError(
                f"rollback would remove rows of {schema}.{table} that {n:,} row(s) of {child} "
                f"reference through foreign key {name}, and docshift did not load those "
                f"rows: {effect}. Nothing was removed.",
                hint=f"Delete or re-point those rows of {child} yourself if they should go, "
                "then run rollback again.")


def _restore_dropped(conn: psycopg.Connection) -> list[str]:
    """Re-create every key and unique index dropped before loading that is not back."""
    done = []
    dropped = [(t, n, orjson.loads(d or "{}")) for t, n, d in objects(conn, "dropped")]
    # keys and indexes first, then the foreign keys that may need them
    dropped.sort(key=lambda o: 1 if o[2].get("type") == "f" else 0)
    for table, name, d in dropped:
        if d.get("type") == "i":
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                  (d.get("index") or name,)).fetchone()[0]  # type: ignore[index]
            if not exists:
                conn.execute(sql.SQL(d["def"]))
                done.append(f"re-created index {name} on {table}")
            continue
        exists = conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = %s::regclass",
            (name, d["qualified"])).fetchone()
        if not exists:
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(d["qualified"]), sql.Identifier(name), sql.SQL(d["def"])))
            done.append(f"re-created constraint {name} on {table}")
    return done
