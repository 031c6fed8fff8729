"""After the data: resolve duplicates and orphans set-based, then add keys and indexes.

Each step is recorded in ``docshift.steps`` once done, so an interrupted finalization
resumes where it stopped. Order: duplicates of every unique key (all tables) → primary and
unique keys → orphans and foreign keys, parents before children → CHECKs → indexes →
drop the hidden source-key column → ANALYZE. In existing mode, the constraints docshift
dropped before loading are re-created instead of the mapping's own; any that cannot be
re-created is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from docshift.spec.model import Mapping
from docshift.target.connect import connect
from docshift.target.ddl import HIDDEN_COLUMNS, Constraint, constraints, qualified
from docshift.target.state import mark_step, objects, step_done
from docshift.transform.rows import SOURCE_KEY_COLUMN, compile_streams

ORPHAN_SAMPLE = 5
"""How many orphan values a warning quotes."""


@dataclass
class FinalizeReport:
    """What finalization changed: counts per table and problems it could not solve."""

    duplicates: dict[str, int] = field(default_factory=dict)
    orphans_rejected: dict[str, int] = field(default_factory=dict)
    orphans_nulled: dict[str, int] = field(default_factory=dict)
    orphans_kept: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


Step = tuple[str, Callable[[psycopg.Connection], Any]]


def finalize(conn: psycopg.Connection, m: Mapping, run_id: int, log: Any = None,
             *, dsn: str | None = None, parallel: int = 1) -> FinalizeReport:
    """Run every remaining finalization step of ``run_id``.

    With ``parallel`` > 1 (and a ``dsn`` to open more connections), steps on different
    tables that do not lock each other — key builds, CHECKs and indexes, ANALYZE — run
    concurrently; foreign keys always run one by one, parents before children.
    """
    rep = FinalizeReport()
    _tune(conn)
    order = m.tables_in_load_order()
    plans = compile_streams(m)
    # quarantine rows name the source stream(s) that feed the table
    sources = {t: ",".join(s for s, p in plans.items() if t in p.tables) or t for t in order}
    existing = m.target.mode == "existing"
    all_cons = {t: constraints(m, t) for t in order}

    def run(c: psycopg.Connection, name: str, fn: Callable[[psycopg.Connection], Any]) -> None:
        if step_done(c, run_id, name):
            return
        if log:
            log(name)
        with c.transaction():
            detail = fn(c)
            if not isinstance(detail, dict):
                detail = {}
            mark_step(c, run_id, name, detail)

    def sequential(steps: list[Step]) -> None:
        for name, fn in steps:
            run(conn, name, fn)

    def per_table(groups: list[list[Step]]) -> None:
        """Groups (one per table) run side by side; steps within a group in order."""
        groups = [g for g in groups if g]
        if parallel <= 1 or dsn is None or len(groups) <= 1:
            for g in groups:
                sequential(g)
            return

        def work(group: list[Step]) -> None:
            with connect(dsn) as c:
                _tune(c)
                for name, fn in group:
                    run(c, name, fn)

        with ThreadPoolExecutor(max_workers=min(parallel, len(groups))) as pool:
            for f in [pool.submit(work, g) for g in groups]:
                f.result()

    if existing:
        sequential([
            (f"dedupe:{t}:{','.join(k)}",
             lambda c, t=t, k=k: _dedupe(c, m, run_id, t, k, rep, sources[t]))
            for t in order for k in _unique_keys(conn, m, t)])
        sequential([
            (f"orphans:{c.name}",
             lambda cn, c=c: _orphans(cn, m, run_id, c, rep, sources[c.table]))
            for t in order for c in all_cons[t] if c.kind == "foreign_key"])
        _recreate_dropped(conn, m, run_id, rep, lambda name, fn: run(conn, name, fn))
    else:
        groups: list[list[Step]] = []
        for t in order:
            keyed = {c.columns for c in all_cons[t] if c.kind in ("primary_key", "unique")}
            group: list[Step] = [
                (f"add:{c.name}", lambda cn, c=c: _add_key(cn, m, run_id, c, rep,
                                                          sources[c.table]))
                for c in all_cons[t] if c.kind in ("primary_key", "unique")]
            # unique indexes: resolve duplicates before the index build
            group += [(f"dedupe:{t}:{','.join(k)}",
                       lambda cn, t=t, k=k: _dedupe(cn, m, run_id, t, k, rep, sources[t]))
                      for k in m.tables[t].unique_keys() if tuple(k) not in keyed]
            groups.append(group)
        per_table(groups)
        sequential([
            (f"add:{c.name}",
             lambda cn, c=c: _add_foreign_key(cn, m, run_id, c, rep, sources[c.table]))
            for t in order for c in all_cons[t] if c.kind == "foreign_key"])
        # index builds share their table (SHARE locks): each may run beside any other
        per_table([[(f"add:{c.name}", lambda cn, c=c: cn.execute(c.statement))]
                   for t in order for c in all_cons[t] if c.kind == "index"])
    sequential([
        (f"drop-key-column:{t}", lambda c, t=t: c.execute(
            sql.SQL("ALTER TABLE {} {}").format(
                qualified(m.target.schema_, t), sql.SQL(", ").join(
                    sql.SQL("DROP COLUMN IF EXISTS {}").format(sql.Identifier(col))
                    for col in HIDDEN_COLUMNS))))
        for t in order])
    per_table([[(f"analyze:{t}", lambda c, t=t: c.execute(
        sql.SQL("ANALYZE {}").format(qualified(m.target.schema_, t))))] for t in order])
    _collect_details(conn, run_id, rep)
    return rep


MAINTENANCE_WORK_MEM = "256MB"
"""Memory for each key and index build (PostgreSQL's default, 64MB, spills large sorts to
disk); set per session, for docshift's own connections only."""


def _tune(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(
        sql.Literal(MAINTENANCE_WORK_MEM)))


def _unique_keys(conn: psycopg.Connection, m: Mapping, t: str) -> list[list[str]]:
    keys = m.tables[t].unique_keys()
    if m.target.mode == "existing":
        for table, _, definition in objects(conn, "dropped"):
            if table == t and definition:
                d = orjson.loads(definition)
                if d["type"] in ("p", "u") and d["columns"] not in keys:
                    keys.append(d["columns"])
    return keys


def _add_key(conn: psycopg.Connection, m: Mapping, run_id: int, c: Constraint,
             rep: FinalizeReport, source: str) -> dict[str, Any]:
    """Add a primary/unique key, resolving duplicates first when there are any.

    Under ``reject`` duplicates are the exception, so the key is simply tried: its index
    build is the cheapest duplicate check there is. ``keep_first`` tables (junctions fed
    from both sides) expect duplicates and resolve them first.
    """
    if m.tables[c.table].on_duplicate == "reject":
        try:
            with conn.transaction():
                conn.execute(c.statement)
            return {}
        except psycopg.errors.UniqueViolation:
            pass
    detail = _dedupe(conn, m, run_id, c.table, list(c.columns), rep, source)
    conn.execute(c.statement)
    return detail


def _add_foreign_key(conn: psycopg.Connection, m: Mapping, run_id: int, c: Constraint,
                     rep: FinalizeReport, source: str) -> dict[str, Any]:
    """Add a foreign key; orphans are resolved by policy only if the plain add fails."""
    if c.on_orphan != "keep":
        try:
            with conn.transaction():
                conn.execute(c.statement)
            return {}
        except psycopg.errors.ForeignKeyViolation:
            pass
    detail = _orphans(conn, m, run_id, c, rep, source)
    conn.execute(c.statement)
    return detail


def _dedupe(conn: psycopg.Connection, m: Mapping, run_id: int, t: str, keycols: list[str],
            rep: FinalizeReport, source: str) -> dict[str, Any]:
    table = m.tables[t]
    q = qualified(m.target.schema_, t)
    keys = sql.SQL(", ").join(sql.Identifier(c) for c in keycols)
    not_null = sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in keycols)
    ranked = sql.SQL(
        "SELECT ctid AS rid, {key} AS src, to_jsonb(t) - {key_text} AS doc, row_number() OVER "
        "(PARTITION BY {keys} ORDER BY {key}, t::text) AS rn FROM {q} t WHERE {nn}"
    ).format(key=sql.Identifier(SOURCE_KEY_COLUMN), key_text=sql.Literal(SOURCE_KEY_COLUMN),
             keys=keys, q=q, nn=not_null)
    delete = sql.SQL(
        "WITH ranked AS ({ranked}), gone AS (DELETE FROM {q} t USING ranked r "
        "WHERE t.ctid = r.rid AND r.rn > 1 RETURNING r.src, r.doc) ").format(
        ranked=ranked, q=q)
    if table.on_duplicate == "reject":
        stmt = delete + sql.SQL(
            "INSERT INTO docshift.rejects (run_id, source, source_key, table_name, stage, field,"
            " error_class, message, document) SELECT {run}, {s}, src, {t}, 'finalize', {f},"
            " 'duplicate_key', {msg}, doc FROM gone").format(
            run=sql.Literal(run_id), s=sql.Literal(source), t=sql.Literal(t),
            f=sql.Literal(",".join(keycols)),
            msg=sql.Literal(f"duplicate value of unique key ({', '.join(keycols)}); "
                            "an earlier document holds it"))
    else:
        stmt = delete + sql.SQL("SELECT count(*) FROM gone")
    cur = conn.execute(stmt)
    n = cur.rowcount if table.on_duplicate == "reject" else cur.fetchone()[0]  # type: ignore[index]
    if n:
        rep.duplicates[t] = rep.duplicates.get(t, 0) + n
    return {"removed": n, "policy": table.on_duplicate}


def _orphans(conn: psycopg.Connection, m: Mapping, run_id: int, c: Constraint,
             rep: FinalizeReport, source: str) -> dict[str, Any]:
    assert c.references is not None
    ptable, pcol = c.references
    col = c.columns[0]
    q = qualified(m.target.schema_, c.table)
    pq = qualified(m.target.schema_, ptable)
    cond = sql.SQL("t.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {pq} p WHERE p.{pc} = t.{c})"
                   ).format(c=sql.Identifier(col), pq=pq, pc=sql.Identifier(pcol))
    policy = c.on_orphan
    if policy == "reject":
        stmt = sql.SQL(
            "WITH gone AS (DELETE FROM {q} t WHERE {cond} RETURNING t.{key} AS src, "
            "to_jsonb(t) - {key_text} AS doc, t.{c}::text AS val) "
            "INSERT INTO docshift.rejects (run_id, source, source_key, table_name, stage, field,"
            " error_class, message, document) SELECT {run}, {s}, src, {t}, 'finalize', {f},"
            " 'orphan', {msg} || val || ', which does not exist', doc FROM gone").format(
            s=sql.Literal(source),
            q=q, cond=cond, key=sql.Identifier(SOURCE_KEY_COLUMN),
            key_text=sql.Literal(SOURCE_KEY_COLUMN), c=sql.Identifier(col),
            run=sql.Literal(run_id), t=sql.Literal(c.table), f=sql.Literal(col),
            msg=sql.Literal(f"{col} references {ptable}.{pcol} = "))
        n = conn.execute(stmt).rowcount
        if n:
            rep.orphans_rejected[c.table] = rep.orphans_rejected.get(c.table, 0) + n
        return {"rejected": n}
    sample = [r[0] for r in conn.execute(sql.SQL(
        "SELECT DISTINCT t.{c}::text FROM {q} t WHERE {cond} LIMIT {n}").format(
        c=sql.Identifier(col), q=q, cond=cond, n=sql.Literal(ORPHAN_SAMPLE)))]
    if not sample:
        return {}
    if policy == "null":
        n = conn.execute(sql.SQL("UPDATE {q} t SET {c} = NULL WHERE {cond}").format(
            q=q, c=sql.Identifier(col), cond=cond)).rowcount
        return {"nulled": n, "sample": sample}
    n = conn.execute(sql.SQL("SELECT count(*) FROM {q} t WHERE {cond}").format(
        q=q, cond=cond)).fetchone()[0]  # type: ignore[index]
    return {"kept": n, "sample": sample}


def _collect_details(conn: psycopg.Connection, run_id: int, rep: FinalizeReport) -> None:
    """Rebuild warnings from recorded steps, so a resumed finalization reports them too."""
    for step, detail in conn.execute(
            "SELECT step, detail FROM docshift.steps WHERE run_id = %s ORDER BY done_at",
            (run_id,)):
        name = step.split(":", 1)[-1]
        if "nulled" in detail:
            rep.orphans_nulled[name] = detail["nulled"]
            rep.warnings.append(f"{name}: {detail['nulled']} orphan reference(s) set to NULL "
                                f"(e.g. {', '.join(detail['sample'])})")
        if "kept" in detail:
            rep.orphans_kept[name] = detail["kept"]
            rep.warnings.append(f"{name}: {detail['kept']} orphan reference(s) kept; the "
                                f"foreign key is NOT VALID (e.g. {', '.join(detail['sample'])})")
        if "failed" in detail:
            rep.failures.append(f"{name}: could not be re-created: {detail['failed']}")


def _recreate_dropped(conn: psycopg.Connection, m: Mapping, run_id: int,
                      rep: FinalizeReport, step: Any) -> None:
    dropped = objects(conn, "dropped")
    # keys first, then foreign keys that may point at them
    dropped.sort(key=lambda o: 0 if orjson.loads(o[2] or "{}").get("type") in ("p", "u") else 1)
    for table, name, definition in dropped:
        d = orjson.loads(definition or "{}")

        def recreate(c: psycopg.Connection, name: str = name, d: dict = d) -> dict[str, Any]:
            try:
                with c.transaction():
                    c.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                        sql.SQL(d["qualified"]), sql.Identifier(name), sql.SQL(d["def"])))
            except psycopg.DatabaseError as exc:
                return {"failed": (exc.diag.message_primary or str(exc)).strip(),
                        "definition": d["def"]}
            return {"recreated": True}

        step(f"recreate:{table}.{name}", recreate)
