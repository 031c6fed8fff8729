"""DDL for the target tables: created bare before loading, keyed and indexed after.

As pgloader does, docshift creates each table without constraints or indexes, loads it with
binary COPY, and only then resolves duplicates and orphans (set-based, following the
mapping's policies) and adds primary keys, unique keys, foreign keys, CHECKs and indexes.
Identifiers are always composed with :class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from docshift.spec.check import resolve_reference
from docshift.spec.model import Mapping, TableSpec
from docshift.spec.names import object_name  # the names the mapping check validated
from docshift.transform.rows import SOURCE_DOC_COLUMN, SOURCE_KEY_COLUMN, column_types

MAX_IDENT = 63
"""PostgreSQL truncates identifiers longer than this; names are shortened with a hash."""


HIDDEN_COLUMNS = {SOURCE_KEY_COLUMN: "text", SOURCE_DOC_COLUMN: "bigint"}
"""Columns every loaded table carries while the run is under way (dropped at the end)."""


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def load_columns(table: TableSpec) -> list[str]:
    """The columns COPY writes, in row order: mapped columns, catch-all, hidden columns."""
    cols = list(table.columns)
    if table.extra:
        cols.append(table.extra)
    return [*cols, *HIDDEN_COLUMNS]


def create_table(m: Mapping, name: str) -> sql.Composed:
    """CREATE TABLE without keys or indexes (those come after the data)."""
    table = m.tables[name]
    types = column_types(m, table)
    pk = set(table.primary_key or [])
    defs = []
    for cname, t in types.items():
        col = table.column(cname)
        parts = [sql.Identifier(cname), sql.SQL(t.sql)]
        nullable = col.nullable if col.nullable is not None else cname not in pk
        if not nullable:
            parts.append(sql.SQL("NOT NULL"))
        if col.default is not None:
            parts += [sql.SQL("DEFAULT"), sql.Literal(col.default)]
        defs.append(sql.SQL(" ").join(parts))
    if table.extra:
        defs.append(sql.SQL("{} jsonb").format(sql.Identifier(table.extra)))
    defs += [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
             for c, t in HIDDEN_COLUMNS.items()]
    # enum CHECKs come with the table, unlike keys: conversion already refuses values
    # outside the list, so they never fail a COPY, and checking each row as it arrives is
    # cheaper than scanning the whole table again afterwards
    for cname in types:
        col = table.column(cname)
        if col.enum is not None:
            values = sql.SQL(", ").join(sql.Literal(v) for v in col.enum)
            defs.append(sql.SQL("CONSTRAINT {} CHECK ({} IN ({}))").format(
                sql.Identifier(object_name(name, cname, "check")), sql.Identifier(cname),
                values))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} (\n  {}\n)").format(
        qualified(m.target.schema_, name), sql.SQL(",\n  ").join(defs))


@dataclass(frozen=True)
class Constraint:
    """A constraint or index docshift adds after loading, with what it applies to."""

    kind: str  # primary_key | unique | foreign_key | index
    table: str
    name: str
    columns: tuple[str, ...]
    statement: sql.Composed
    references: tuple[str, str] | None = None
    on_orphan: str | None = None


def constraints(m: Mapping, name: str) -> list[Constraint]:
    """Keys and indexes of one table, in the order they are built after the data."""
    table = m.tables[name]
    t = qualified(m.target.schema_, name)
    out: list[Constraint] = []

    def add(kind: str, cname: str, cols: list[str], body: sql.Composable, **kw: object) -> None:
        stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            t, sql.Identifier(cname), body)
        out.append(Constraint(kind, name, cname, tuple(cols), stmt, **kw))  # type: ignore[arg-type]

    def idents(cols: list[str]) -> sql.Composed:
        return sql.SQL(", ").join(map(sql.Identifier, cols))

    if table.primary_key:
        add("primary_key", object_name(name, "pkey"), table.primary_key,
            sql.SQL("PRIMARY KEY ({})").format(idents(table.primary_key)))
    for cname in table.columns:
        col = table.column(cname)
        if col.unique:
            add("unique", object_name(name, cname, "key"), [cname],
                sql.SQL("UNIQUE ({})").format(sql.Identifier(cname)))
    for cname in table.columns:
        col = table.column(cname)
        if col.references:
            ptable, pcol = resolve_reference(m, col.references)
            policy = col.on_orphan or m.options.on_orphan
            body = sql.SQL("FOREIGN KEY ({}) REFERENCES {} ({})").format(
                sql.Identifier(cname), qualified(m.target.schema_, ptable), sql.Identifier(pcol))
            if policy == "keep":
                body = sql.SQL("{} NOT VALID").format(body)
            add("foreign_key", object_name(name, cname, "fkey"), [cname], body,
                references=(ptable, pcol), on_orphan=policy)
    indexed: set[tuple[str, ...]] = {tuple(k) for k in table.unique_keys()}
    for index in table.index_list():
        cols = index.columns
        iname = index.name or object_name(name, *cols, "idx")
        opclass = sql.SQL(" " + index.opclass) if index.opclass else sql.SQL("")
        stmt = sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} USING {} ({}){}").format(
            sql.SQL("UNIQUE " if index.unique else ""), sql.Identifier(iname), t,
            sql.SQL(index.using),
            sql.SQL(", ").join(sql.SQL("{}{}").format(sql.Identifier(c), opclass) for c in cols),
            sql.SQL(" WHERE " + index.where) if index.where else sql.SQL(""))
        out.append(Constraint("index", name, iname, tuple(cols), stmt))
        indexed.add(tuple(cols))
    if table.index_foreign_keys:
        for c in [c for c in out if c.kind == "foreign_key"]:
            # an index whose leading columns are the FK serves it already
            if any(k[: len(c.columns)] == c.columns for k in indexed):
                continue
            iname = object_name(name, *c.columns, "idx")
            stmt = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(iname), t, idents(list(c.columns)))
            out.append(Constraint("index", name, iname, c.columns, stmt))
            indexed.add(c.columns)
    return out


def render(stmt: sql.Composable) -> str:
    """SQL text of a composed statement, without a connection (for ``plan``)."""
    return stmt.as_string(None)
