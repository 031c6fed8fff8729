"""After the data: resolve duplicates and orphans set-based, then add keys and indexes.

Each step is recorded in ``docshift.steps`` once done (named by table and object:
``add:<table>.<name>``, ``dedupe:<table>:<cols>``, ``orphans:<table>.<name>#<round>``,
``recreate:<table>.<name>``), so an interrupted finalization resumes where it stopped.

Order: every unique key of every table (duplicates resolved when the plain key build finds
some) → foreign keys, tried all at once; only when one fails, orphans are resolved, parents
before children, round after round until nothing changes, and the keys are added then →
indexes → (existing mode: the record of the rows docshift loaded) → drop the hidden columns
→ ANALYZE → warnings about columns that stayed NULL.

A document rejected here (a duplicate or an orphan under ``reject``) is quarantined whole:
its original is read again from the source and all its rows leave every table its stream
feeds. Rows removed or changed by ``keep_first``, ``on_orphan: null`` and ``on_orphan: drop``
are recorded in ``docshift.removals``. Rows that were in an existing table before the run are
never touched. In existing mode the keys and unique indexes docshift dropped before loading
are re-created instead of the mapping's own; one that cannot be is a failure, and the hidden
columns stay so that a re-run can retry it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from docshift.errors import DocshiftError
from docshift.spec.check import source_path
from docshift.spec.model import Mapping
from docshift.target import resolve
from docshift.target.connect import connect
from docshift.target.ddl import HIDDEN_COLUMNS, Constraint, constraints, object_name, qualified
from docshift.target.state import mark_step, objects, record_object, write_rejects
from docshift.transform.convert import to_extended_json
from docshift.transform.ids import uuid_to_objectid
from docshift.transform.rows import SOURCE_DOC_COLUMN, compile_streams

ORPHAN_SAMPLE = 5
"""How many orphan values a warning quotes."""

LOCK_TIMEOUT = "5s"
"""How long one statement of finalization waits for a lock before saying who holds it."""

LOCK_WAIT_TOTAL = 60.0
"""Seconds a step keeps retrying a lock before finalization stops (re-run to resume)."""

MAINTENANCE_WORK_MEM = "256MB"
"""Memory for each key and index build (PostgreSQL's default, 64MB, spills large sorts to
disk); set per session, for docshift's own connections only."""


@dataclass
class FinalizeReport:
    """What finalization changed, per table, and problems it could not solve.

    ``duplicates`` counts duplicates resolved either way: documents quarantined
    (``reject``) and rows dropped (``keep_first``, also in ``duplicates_dropped``).
    ``quarantined`` counts documents quarantined here, ``orphans_rejected`` those of them
    quarantined for an orphan reference.
    """

    duplicates: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    orphans_rejected: dict[str, int] = field(default_factory=dict)
    orphans_nulled: dict[str, int] = field(default_factory=dict)
    orphans_dropped: dict[str, int] = field(default_factory=dict)
    orphans_kept: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _add(counts: dict[str, int], table: str, n: int) -> None:
    if n:
        counts[table] = counts.get(table, 0) + n


@dataclass
class _Key:
    """A unique key to resolve and (unless ``statement`` is None) to build."""

    table: str
    name: str
    columns: list[str]
    statement: sql.Composable | None
    step: str  # the step that builds it


@dataclass
class _Hit:
    """A document to quarantine, and why."""

    doc_id: int
    source_key: str
    table: str
    field: str
    error_class: str
    value: str
    message: str  # with "{src}" where the source value goes


def finalize(conn: psycopg.Connection, m: Mapping, run_id: int, log: Any = None,
             *, dsn: str | None = None, parallel: int = 1) -> FinalizeReport:
    """Run every remaining finalization step of ``run_id``.

    With ``parallel`` > 1 (and a ``dsn`` to open more connections), key builds that need
    no resolution, index builds and ANALYZE of different tables run concurrently;
    everything that removes rows runs on ``conn``, one step at a time.
    """
    f = _Finalizer(conn, m, run_id, log, dsn, parallel)
    try:
        return f.run()
    finally:
        f.close()
        conn.execute("RESET lock_timeout")


OUTSIDE_TRANSACTION = ("compact:",)
"""Steps (by name prefix) that PostgreSQL runs only outside a transaction block."""


def _outside(step: str) -> bool:
    return step.startswith(OUTSIDE_TRANSACTION)


def _tune(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(
        sql.Literal(MAINTENANCE_WORK_MEM)))
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))


class _Finalizer:
    def __init__(self, conn: psycopg.Connection, m: Mapping, run_id: int, log: Any,
                 dsn: str | None, parallel: int) -> None:
        self.conn, self.m, self.run_id, self.log = conn, m, run_id, log or (lambda s: None)
        self.dsn, self.parallel = dsn, parallel
        self.schema = m.target.schema_
        self.order = m.tables_in_load_order()
        self.plans = compile_streams(m)
        self.sources = {t: ",".join(s for s, p in self.plans.items() if t in p.tables) or t
                        for t in self.order}
        self.existing = m.target.mode == "existing"
        self.cons = {t: constraints(m, t) for t in self.order}
        self.rep = FinalizeReport()
        self.dropped = [(t, n, orjson.loads(d or "{}")) for t, n, d in objects(conn, "dropped")]
        self._units: dict[int, str] | None = None
        # the run lock is held: no other session records steps of this run, so the
        # recorded steps are read once and kept up to date as steps commit
        self._done: dict[str, dict[str, Any]] = dict(conn.execute(
            "SELECT step, detail FROM docshift.steps WHERE run_id = %s", (run_id,)).fetchall())
        self._local = threading.local()
        self._conns: list[psycopg.Connection] = []
        self._pool: ThreadPoolExecutor | None = None

    # -- steps -------------------------------------------------------------------------

    def done(self, c: psycopg.Connection, name: str) -> dict[str, Any] | None:
        return self._done.get(name)

    def step(self, c: psycopg.Connection, name: str,
             fn: Callable[[psycopg.Connection], dict[str, Any] | None], *,
             transaction: bool = True) -> dict[str, Any] | None:
        """Run ``fn`` in a transaction and record it, unless already recorded.

        With ``transaction=False`` ``fn`` runs on its own and the record follows it.

        ``fn`` returning None means "not done": its transaction commits (whatever it
        resolved stays resolved) but the step is not recorded, so a re-run tries again.
        """
        detail = self.done(c, name)
        if detail is not None:
            return detail
        self.log(name)

        def body(cn: psycopg.Connection) -> dict[str, Any] | None:
            d = fn(cn)
            if d is not None:
                mark_step(cn, self.run_id, name, d)
            return d

        d = self.locked(c, name, body, transaction=transaction)
        if d is not None:
            self._done[name] = d  # committed
        return d

    def locked(self, c: psycopg.Connection, name: str,
               body: Callable[[psycopg.Connection], Any], *, transaction: bool = True) -> Any:
        """Run ``body`` (in a transaction), retrying while a lock is held elsewhere."""
        started = time.monotonic()
        while True:
            try:
                if not transaction:
                    return body(c)
                with c.transaction():
                    return body(c)
            except psycopg.errors.LockNotAvailable:
                who = self.blockers(c)
                if time.monotonic() - started >= LOCK_WAIT_TOTAL:
                    raise DocshiftError(
                        f"finalization step {name} could not get a lock within "
                        f"{LOCK_WAIT_TOTAL:g} s: the tables are locked by {who}",
                        hint="Let that session finish, or end it (SELECT "
                        "pg_terminate_backend(<pid>)), then re-run to resume finalization."
                    ) from None
                self.log(f"{name}: waiting for a lock held by {who}")

    def blockers(self, c: psycopg.Connection) -> str:
        """Who holds locks on the mapped tables (the sessions a step waits for)."""
        rels = [f'"{self.schema}"."{t}"' for t in self.order]
        rows = c.execute(
            "SELECT DISTINCT a.pid, a.application_name, a.state, left(a.query, 200) "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() "
            "AND l.relation = ANY(%s::regclass[]) ORDER BY 1", (rels,)).fetchall()
        if not rows:
            return "another session (it has let go since)"
        return "; ".join(f"pid {pid} (application {app!r}, {state}, query: {q!r})"
                         for pid, app, state, q in rows)

    def per_table(self, groups: list[list[tuple[str, Callable[[psycopg.Connection], Any]]]]
                  ) -> None:
        """Groups (one per table) run side by side; steps within a group in order.

        A step whose name is in :data:`OUTSIDE_TRANSACTION` runs outside a transaction.
        """
        groups = [g for g in groups if g]
        if self.parallel <= 1 or self.dsn is None or len(groups) <= 1:
            for g in groups:
                for name, fn in g:
                    self.step(self.conn, name, fn, transaction=not _outside(name))
            return
        def work(group: list[tuple[str, Callable[[psycopg.Connection], Any]]]) -> None:
            c = self.thread_connection()
            for name, fn in group:
                self.step(c, name, fn, transaction=not _outside(name))

        if self._pool is None:
            # one pool for the whole finalization: its threads keep their connections
            self._pool = ThreadPoolExecutor(max_workers=self.parallel)
        for fut in [self._pool.submit(work, g) for g in groups]:
            fut.result()

    def thread_connection(self) -> psycopg.Connection:
        """This thread's own connection, opened once and kept for every later group."""
        c = getattr(self._local, "conn", None)
        if c is None or c.closed:
            assert self.dsn is not None
            c = connect(self.dsn)
            _tune(c)
            self._local.conn = c
            self._conns.append(c)
        return c

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for c in self._conns:
            c.close()
        self._conns.clear()

    # -- the whole sequence ------------------------------------------------------------

    def run(self) -> FinalizeReport:
        _tune(self.conn)
        keys = self.keys()
        # plain key builds first, side by side; the ones that meet duplicates are resolved
        # afterwards one by one, since quarantining a document touches several tables
        self.per_table([[(k.step, lambda c, k=k: self.try_key(c, k))
                         for k in keys if k.table == t and k.statement is not None
                         and self.policy(k) == "reject"] for t in self.order])
        for k in keys:
            self.resolve_key(k)
        self.foreign_keys()
        if not self.existing:
            if not self.rep.failures:
                # every duplicate and orphan is resolved: the hidden columns have done their
                # job. Each table is rewritten once without them, before its secondary
                # indexes exist, so that only its keys are rebuilt with it
                self.per_table([[(f"drop-key-column:{t}", lambda c, t=t: self.drop_hidden(c, t)),
                                 (f"compact:{t}", lambda c, t=t: self.compact(c, t))]
                                for t in self.order])
            self.per_table([[(f"add:{t}.{c.name}", lambda cn, c=c: self.build(cn, c.table,
                                                                              c.statement))
                             for c in self.cons[t] if c.kind == "index"] for t in self.order])
        self.collect()
        if self.rep.failures:
            # the hidden columns stay: a re-run retries what failed, rollback still works
            return self.rep
        if self.existing:
            # the user's tables are not rewritten: the loaded rows keep the dropped columns'
            # bytes until the table is next rewritten (VACUUM FULL), as docs/operations.md says
            for t in self.order:
                self.step(self.conn, f"drop-key-column:{t}",
                          lambda c, t=t: self.drop_hidden(c, t))
        self.per_table([[(f"analyze:{t}", lambda c, t=t: self.analyze(c, t))]
                        for t in self.order])
        self.all_null_warnings()
        return self.rep

    # -- unique keys -------------------------------------------------------------------

    def keys(self) -> list[_Key]:
        """Every unique key, in load order: the ones to build and the ones only resolved."""
        out: list[_Key] = []
        for t in self.order:
            built: list[list[str]] = []
            if self.existing:
                for table, name, d in self.dropped:
                    if table != t or d.get("type") not in ("p", "u", "i"):
                        continue
                    stmt = (sql.SQL(d["def"]) if d["type"] == "i" else
                            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                                sql.SQL(d["qualified"]), sql.Identifier(name),
                                sql.SQL(d["def"])))
                    cols = d.get("columns") or []
                    out.append(_Key(t, name, cols, stmt, f"recreate:{t}.{name}"))
                    built.append(cols)
            else:
                for c in self.cons[t]:
                    if c.kind in ("primary_key", "unique"):
                        out.append(_Key(t, c.name, list(c.columns), c.statement,
                                        f"add:{t}.{c.name}"))
                        built.append(list(c.columns))
            # keys the mapping declares that no constraint enforces (a unique index is
            # built later): duplicates are still resolved
            for cols in self.m.tables[t].unique_keys():
                if cols not in built:
                    out.append(_Key(t, "", list(cols), None, ""))
                    built.append(cols)
        return out

    def policy(self, k: _Key) -> str:
        table = self.m.tables[k.table]
        per_key = getattr(table, "duplicate_policy", None)
        if per_key is not None and k.columns:
            return str(per_key(list(k.columns)))
        return table.on_duplicate

    def try_key(self, c: psycopg.Connection, k: _Key) -> dict[str, Any] | None:
        """Build the key if no duplicate is in the way; None (not done) otherwise."""
        try:
            with c.transaction():
                c.execute(k.statement)  # type: ignore[arg-type]
        except psycopg.errors.UniqueViolation:
            return None
        return {"table": k.table}

    def resolve_key(self, k: _Key) -> None:
        c = self.conn
        if k.statement is not None and self.done(c, k.step) is not None:
            return
        if k.columns:
            self.step(c, f"dedupe:{k.table}:{','.join(k.columns)}",
                      lambda cn: self.dedupe(cn, k))
        if k.statement is not None:
            self.step(c, k.step, lambda cn: self.build(cn, k.table, k.statement, k.columns))

    def dedupe(self, c: psycopg.Connection, k: _Key) -> dict[str, Any]:
        t = k.table
        if self.policy(k) == "keep_first":
            n = resolve.drop_duplicates(c, self.run_id, self.schema, t, k.columns,
                                        self.sources[t])
            return {"table": t, "policy": "keep_first", "dropped": n}
        what = ", ".join(k.columns)
        hits = []
        for d in resolve.find_duplicates(c, self.schema, t, k.columns):
            value = f"'{d.value}'" if len(k.columns) == 1 else d.value
            holder = ("a row that was in the table before the run" if d.holder_doc is None
                      else "the same document" if d.holder_doc == d.doc_id
                      else f"document {d.holder_key}")
            hits.append(_Hit(d.doc_id, d.source_key, t, ",".join(k.columns), "duplicate_key",
                             d.value, f"duplicate of {what} {value}{{src}} held by {holder}"))
        n = self.quarantine(c, hits)
        return {"table": t, "policy": "reject", "quarantined": n}

    def build(self, c: psycopg.Connection, table: str, statement: sql.Composable,
              columns: list[str] | None = None, reference: Constraint | None = None
              ) -> dict[str, Any] | None:
        """Add a key, foreign key or index; a failure is reported, not raised."""
        try:
            with c.transaction():
                c.execute(statement)
        except psycopg.errors.LockNotAvailable:
            raise
        except psycopg.DatabaseError as exc:
            reason = (exc.diag.message_primary or str(exc)).strip()
            rows = ""
            if columns and isinstance(exc, psycopg.errors.UniqueViolation):
                n = resolve.duplicate_rows(c, self.schema, table, columns)
                rows = f"; {n} row(s) share their key with another row"
            elif reference is not None and reference.references:
                n, _ = resolve.count_orphans(c, self.schema, table, reference.columns[0],
                                             *reference.references, sample=0)
                rows = f"; {n} row(s) point at no parent"
            self.rep.failures.append(
                f"{table}: could not add ({statement.as_string(c)}): {reason}{rows}")
            return None
        return {"table": table}

    # -- foreign keys and orphans ------------------------------------------------------

    def fk_statements(self) -> list[tuple[str, str, sql.Composable, Constraint | None]]:
        """(table, step, statement, the mapping's foreign key) of every foreign key to add."""
        mapped = {(c.table, c.columns[0]): c for t in self.order for c in self.cons[t]
                  if c.kind == "foreign_key"}
        if not self.existing:
            return [(c.table, f"add:{c.table}.{c.name}", c.statement, c)
                    for c in mapped.values()]
        out = []
        rank = {t: i for i, t in enumerate(self.order)}
        for table, name, d in sorted(self.dropped, key=lambda o: rank.get(o[0], -1)):
            if d.get("type") != "f":
                continue
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(d["qualified"]), sql.Identifier(name), sql.SQL(d["def"]))
            cols = d.get("columns") or []
            ref = mapped.get((table, cols[0])) if len(cols) == 1 else None
            out.append((table, f"recreate:{table}.{name}", stmt, ref))
        return out

    def foreign_keys(self) -> None:
        fks = self.fk_statements()
        todo = [fk for fk in fks if self.done(self.conn, fk[1]) is None]
        if not todo:
            return

        added: dict[str, dict[str, Any]] = {}

        def all_at_once(c: psycopg.Connection) -> bool:
            added.clear()
            try:
                with c.transaction():
                    for table, name, stmt, ref in todo:
                        detail: dict[str, Any] = {"table": table}
                        if ref is not None and ref.on_orphan == "keep":
                            detail.update(self.kept(c, ref))
                        c.execute(stmt)
                        mark_step(c, self.run_id, name, detail)
                        added[name] = detail
            except (psycopg.errors.ForeignKeyViolation, psycopg.errors.UniqueViolation,
                    psycopg.errors.InvalidForeignKey):
                return False
            return True

        self.log("add foreign keys")
        if self.locked(self.conn, "add foreign keys", all_at_once):
            self._done.update(added)
            return
        self.orphans_fixpoint()
        for table, name, stmt, ref in todo:
            def add(c: psycopg.Connection, table: str = table, stmt: sql.Composable = stmt,
                    ref: Constraint | None = ref) -> dict[str, Any] | None:
                detail: dict[str, Any] = {"table": table}
                if ref is not None and ref.on_orphan == "keep":
                    detail.update(self.kept(c, ref))
                return None if self.build(c, table, stmt, reference=ref) is None else detail
            self.step(self.conn, name, add)

    def kept(self, c: psycopg.Connection, ref: Constraint) -> dict[str, Any]:
        assert ref.references is not None
        n, sample = resolve.count_orphans(c, self.schema, ref.table, ref.columns[0],
                                          *ref.references, sample=ORPHAN_SAMPLE)
        return {"kept": n, "sample": sample, "column": ref.columns[0]} if n else {}

    def orphans_fixpoint(self) -> None:
        """Resolve orphans, parents before children, until a round changes nothing.

        Quarantining or dropping rows can leave new orphans behind (the children of a
        removed parent), hence the rounds.
        """
        fks = [c for t in self.order for c in self.cons[t]
               if c.kind == "foreign_key" and c.on_orphan != "keep"]
        rnd = 1
        while True:
            removed = 0
            for c in fks:
                d = self.step(self.conn, f"orphans:{c.table}.{c.name}#{rnd}",
                              lambda cn, c=c: self.orphans(cn, c))
                removed += (d or {}).get("removed", 0)
            if not removed:
                return
            rnd += 1

    def orphans(self, c: psycopg.Connection, fk: Constraint) -> dict[str, Any]:
        assert fk.references is not None
        ptable, pcol = fk.references
        col = fk.columns[0]
        t = fk.table
        policy = fk.on_orphan or "reject"
        if policy == "reject":
            hits = [_Hit(o.doc_id, o.source_key, t, col, "orphan", o.value,
                         f"{col} references {ptable}.{pcol} = {o.value}{{src}}, "
                         "which does not exist")
                    for o in resolve.find_orphans(c, self.schema, t, col, ptable, pcol)]
            before = self._rows_removed
            n = self.quarantine(c, hits)
            return {"table": t, "policy": policy, "quarantined": n,
                    "removed": self._rows_removed - before}
        changed = resolve.change_orphans(c, self.schema, t, col, ptable, pcol, policy)
        if not changed:
            return {"table": t, "policy": policy}
        values = self.source_values(c, t, col, [(o.doc_id, o.value) for o in changed])
        kind = "reference_nulled" if policy == "null" else "orphan_dropped"
        action = "set to NULL" if policy == "null" else "row dropped"
        rows = []
        for o in changed:
            sv = values.get((o.doc_id, o.value))
            src = f" (source value {sv})" if sv is not None else ""
            rows.append((self.run_id, t, kind, self.sources[t], o.source_key, o.doc_id, col,
                         o.value, sv, f"{col} references {ptable}.{pcol} = {o.value}{src}, "
                         f"which does not exist: {action} (on_orphan: {policy})"))
        resolve.write_removals(c, rows)
        sample = list(dict.fromkeys(o.value for o in changed))[:ORPHAN_SAMPLE]
        n = len(changed)
        return {"table": t, "policy": policy, "column": col, "sample": sample,
                "nulled" if policy == "null" else "dropped": n,
                "removed": n if policy == "drop" else 0}

    # -- quarantine --------------------------------------------------------------------

    _rows_removed = 0

    def unit_streams(self, c: psycopg.Connection) -> dict[int, str]:
        if self._units is None:
            self._units = dict(c.execute(
                "SELECT unit_no, source_stream FROM docshift.checkpoints WHERE run_id = %s",
                (self.run_id,)).fetchall())
        return self._units

    def quarantine(self, c: psycopg.Connection, hits: list[_Hit]) -> int:
        """Quarantine each hit's document whole; returns how many documents."""
        from docshift.run.reread import reread
        from docshift.target.state import split_doc_id

        first: dict[int, _Hit] = {}
        for h in hits:
            first.setdefault(h.doc_id, h)
        if not first:
            return 0
        docs = reread(c, self.m, self.dsn, self.run_id, list(first))
        images: dict[int, Any] = {}
        missing = [d for d in first if d not in docs]
        for t in {first[d].table for d in missing}:
            images.update(resolve.row_images(c, self.schema, t,
                                             [d for d in missing if first[d].table == t]))
        streams = self.unit_streams(c)
        rejects = []
        for d, h in first.items():
            sdoc = docs.get(d)
            stream = streams.get(split_doc_id(d)[0], self.sources[h.table])
            src = ""
            if sdoc is not None:
                sv = self.source_value(stream, h.table, h.field, sdoc, h.value)
                src = f" (source value {sv})" if sv is not None else ""
                document = to_extended_json(sdoc.doc)
            else:
                document = orjson.dumps({"row": images.get(d)}, default=str).decode()
                src = " (the source document could not be read again; the row is kept)"
            rejects.append((self.run_id, stream, h.source_key, h.table, "finalize", h.field,
                            h.error_class, h.message.replace("{src}", src), document, d))
        write_rejects(c, rejects)
        tables: list[str] = []
        for d in first:
            plan = self.plans.get(streams.get(split_doc_id(d)[0], ""))
            for t in (plan.tables if plan else self.order):
                if t not in tables:
                    tables.append(t)
        # children first: a row never outlives its parent inside the statement sequence
        tables.sort(key=lambda t: -self.order.index(t))
        removed = resolve.remove_documents(c, self.schema, tables, list(first))
        self._rows_removed += sum(removed.values())
        return len(first)

    def source_value(self, stream: str, table: str, column: str, sdoc: Any,
                     value: str) -> str | None:
        """How the source wrote ``value`` when that differs from the target's text."""
        if "," in column:
            return None
        oid = _objectid_text(value)
        if oid is not None:
            return oid
        from docshift.run.reread import source_value

        plan = self.plans.get(stream)
        raw = source_value(plan, table, column, sdoc, value) if plan else None
        if raw is None or (isinstance(raw, str) and raw == value):
            return None
        return repr(raw)

    def source_values(self, c: psycopg.Connection, table: str, column: str,
                      items: list[tuple[int, str]]) -> dict[tuple[int, str], str | None]:
        """Source values of (doc_id, value) pairs; documents are read again when needed."""
        from docshift.run.reread import reread
        from docshift.target.state import split_doc_id

        out: dict[tuple[int, str], str | None] = {}
        need = []
        for d, v in items:
            oid = _objectid_text(v)
            out[(d, v)] = oid
            if oid is None:
                need.append(d)
        if need:
            docs = reread(c, self.m, self.dsn, self.run_id, need)
            streams = self.unit_streams(c)
            for d, v in items:
                if out[(d, v)] is None and d in docs:
                    out[(d, v)] = self.source_value(streams.get(split_doc_id(d)[0], ""),
                                                    table, column, docs[d], v)
        return out

    # -- the end -----------------------------------------------------------------------

    def drop_hidden(self, c: psycopg.Connection, t: str) -> dict[str, Any]:
        q = qualified(self.schema, t)
        if self.existing:
            self.keep_provenance(c, t)
        c.execute(sql.SQL("ALTER TABLE {} {}").format(q, sql.SQL(", ").join(
            sql.SQL("DROP COLUMN IF EXISTS {}").format(sql.Identifier(col))
            for col in HIDDEN_COLUMNS)))
        return {"table": t}

    def compact(self, c: psycopg.Connection, t: str) -> dict[str, Any]:
        """Rewrite ``t`` so that no row keeps the dropped hidden columns' bytes.

        ``DROP COLUMN`` leaves the values in every row; ``VACUUM FULL`` writes each row
        again without them (and rebuilds the keys built so far). It runs outside a
        transaction; if it is interrupted the old table stays whole and a re-run repeats
        it. The step is recorded afterwards, in a transaction of its own.
        """
        c.execute(sql.SQL("VACUUM (FULL) {}").format(qualified(self.schema, t)))
        return {"table": t}

    def analyze(self, c: psycopg.Connection, t: str) -> dict[str, Any]:
        c.execute(sql.SQL("ANALYZE {}").format(qualified(self.schema, t)))
        return {}

    def keep_provenance(self, c: psycopg.Connection, t: str) -> None:
        """Keep the primary key (or the whole row) of every row docshift loaded into ``t``.

        Rollback finds docshift's rows by it once the hidden columns are gone.
        """
        pk = next((d.get("columns") for table, _, d in self.dropped
                   if table == t and d.get("type") == "p"), None) or self.m.tables[t].primary_key
        name = object_name("loaded", t)
        target = sql.SQL("docshift.{}").format(sql.Identifier(name))
        q = qualified(self.schema, t)
        c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        if pk:
            c.execute(sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                target, sql.SQL(", ").join(map(sql.Identifier, pk)), q,
                sql.Identifier(SOURCE_DOC_COLUMN)))
        else:
            c.execute(sql.SQL(
                "CREATE TABLE {} AS SELECT to_jsonb(t) - {} AS image FROM {} t "
                "WHERE t.{} IS NOT NULL").format(
                target, sql.SQL(" - ").join(sql.Literal(h) for h in HIDDEN_COLUMNS), q,
                sql.Identifier(SOURCE_DOC_COLUMN)))
        c.execute("DELETE FROM docshift.objects WHERE kind = 'loaded' AND table_name = %s", (t,))
        record_object(c, "loaded", t, name, orjson.dumps({"columns": pk}).decode())

    def all_null_warnings(self) -> None:
        read = dict(self.conn.execute(
            "SELECT source_stream, sum(docs_read) FROM docshift.checkpoints WHERE run_id = %s "
            "GROUP BY 1", (self.run_id,)).fetchall())
        for t in self.order:
            table = self.m.tables[t]
            feeds = [s for s, p in self.plans.items() if t in p.tables]
            if not any(read.get(s) for s in feeds):
                continue
            for col in resolve.all_null_columns(self.conn, self.schema, t, list(table.columns)):
                paths = sorted({source_path(self.m, table, feed, col)
                                for feed in table.feeds or []})
                self.rep.warnings.append(
                    f"{t}.{col}: NULL in every row although its source had documents "
                    f"(source path {', '.join(paths)}); check the path in the mapping")

    def collect(self) -> None:
        """Rebuild counts and warnings from recorded steps, so a resumed run reports them."""
        rep = self.rep
        for step, d in self.conn.execute(
                "SELECT step, detail FROM docshift.steps WHERE run_id = %s ORDER BY done_at",
                (self.run_id,)):
            t = d.get("table")
            if t is None:
                continue
            if step.startswith("dedupe:"):
                n = d.get("quarantined", 0) + d.get("dropped", 0)
                _add(rep.duplicates, t, n)
                _add(rep.duplicates_dropped, t, d.get("dropped", 0))
                _add(rep.quarantined, t, d.get("quarantined", 0))
            elif step.startswith("orphans:"):
                _add(rep.orphans_rejected, t, d.get("quarantined", 0))
                _add(rep.quarantined, t, d.get("quarantined", 0))
                _add(rep.orphans_nulled, t, d.get("nulled", 0))
                _add(rep.orphans_dropped, t, d.get("dropped", 0))
                sample = ", ".join(d.get("sample", []))
                if d.get("nulled"):
                    rep.warnings.append(f"{t}.{d['column']}: {d['nulled']} orphan reference(s) "
                                        f"set to NULL (e.g. {sample}); see docshift.removals")
                if d.get("dropped"):
                    rep.warnings.append(f"{t}.{d['column']}: {d['dropped']} orphan row(s) "
                                        f"dropped (e.g. {sample}); see docshift.removals")
            if d.get("kept"):
                _add(rep.orphans_kept, t, d["kept"])
                rep.warnings.append(
                    f"{t}.{d['column']}: {d['kept']} orphan reference(s) kept; the foreign "
                    f"key is NOT VALID (e.g. {', '.join(d['sample'])})")


def _objectid_text(value: str) -> str | None:
    """``ObjectId('…')`` when ``value`` is a UUID that carries an ObjectId, else None."""
    try:
        return repr(uuid_to_objectid(uuid.UUID(value)))
    except ValueError:
        return None
