"""Compare the relations of two mappings: tables matched by where their rows come from."""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from docshift.spec import Mapping


def origins(m: Mapping, table: str) -> set[tuple[str, str | None]]:
    """(stream or key prefix, unnest path) of every feed of ``table``."""
    out: set[tuple[str, str | None]] = set()
    for f in m.tables[table].feeds or []:
        if f.from_ is not None:
            out.add((f.from_, f.unnest))
        for k in f.keys or []:
            out.add((re.split(r"[{*]", k)[0], f.unnest))
    return out


def table_map(example: Mapping, inferred: Mapping) -> dict[str, str]:
    """Each example table → the inferred table sharing most of its origins."""
    out: dict[str, str] = {}
    for t in example.tables:
        mine = origins(example, t)
        best = max(inferred.tables, key=lambda u: len(mine & origins(inferred, u)))
        if mine & origins(inferred, best):
            out[t] = best
    return out


def foreign_keys(m: Mapping) -> set[tuple[str, str]]:
    """(table, referenced table) of every foreign key."""
    return {(t, c.references.split(".")[0]) for t, spec in m.tables.items()
            for c in spec.columns.values() if c.references}


def fanout_tables(m: Mapping) -> list[str]:
    """Junction and child tables: those fed by unnesting an array or a map."""
    return [t for t, spec in m.tables.items() if any(f.unnest for f in spec.feeds or [])]


def count(dsn: str, table: str, schema: str = "public") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])
