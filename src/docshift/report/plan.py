"""``docshift plan --json``: the plan of a run as data, for scripts."""

from __future__ import annotations

from typing import Any

from docshift.spec.model import Mapping
from docshift.target.ddl import constraints, create_table, render
from docshift.transform.rows import compile_streams


def plan_json(m: Mapping) -> dict[str, Any]:
    """Streams and the tables they fill, the load order, and every statement a run issues
    (``create``: the tables; ``after_data``: keys, foreign keys and indexes, in order)."""
    order = m.tables_in_load_order()
    create = m.target.mode == "create"
    after = [{"table": c.table, "kind": c.kind, "name": c.name, "statement":
              render(c.statement) + ";", "on_orphan": c.on_orphan}
             for kind in ("primary_key", "unique", "foreign_key", "index")
             for t in order for c in constraints(m, t)
             if c.kind == kind and (create or kind == "foreign_key")]
    return {
        "mapping": str(m.path),
        "source": m.source.kind,
        "schema": m.target.schema_,
        "mode": m.target.mode,
        "streams": [{"stream": s, "tables": p.tables} for s, p in compile_streams(m).items()],
        "load_order": order,
        "create": [render(create_table(m, t)) + ";" for t in order] if create else [],
        "after_data": after,
    }
