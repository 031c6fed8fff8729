"""``docshift plan``: the DDL and load order a run would use, as text. Touches nothing."""

from __future__ import annotations

from docshift.spec.model import Mapping
from docshift.target.ddl import constraints, create_table, render
from docshift.transform.rows import SOURCE_KEY_COLUMN, compile_streams


def render_plan(m: Mapping) -> str:
    """The plan as SQL text with comments."""
    out = [f"-- docshift plan for {m.path}",
           f"-- source: {m.source.kind}; target schema {m.target.schema_!r}, "
           f"mode {m.target.mode}", ""]
    out.append("-- 1. load order (source stream → tables it fills)")
    for stream, p in compile_streams(m).items():
        out.append(f"--    {stream} → {', '.join(p.tables)}")
    order = m.tables_in_load_order()
    if m.target.mode == "create":
        out += ["", "-- 2. tables, created bare (keys and indexes come after the data);",
                f"--    {SOURCE_KEY_COLUMN} names each row's source document during the run "
                "and is dropped at the end", ""]
        out += [render(create_table(m, t)) + ";" for t in order]
    else:
        out += ["", "-- 2. existing tables: primary, unique and foreign keys on the mapped "
                "tables are dropped before loading and re-created after it"]
    out += ["", "-- 3. after the data: duplicates and orphans resolved per policy, then"]
    for kind in ("primary_key", "unique", "foreign_key", "index"):
        for t in order:
            for c in constraints(m, t):
                if c.kind == kind and (m.target.mode == "create" or kind == "foreign_key"):
                    note = f"  -- orphans: {c.on_orphan}" if c.on_orphan else ""
                    out.append(render(c.statement) + ";" + note)
    return "\n".join(out) + "\n"
