"""Run a queries file against the target (and, where given, the source) and collect advice.

Per query: its parameter sets are drawn once; warm-up runs, then ``runs`` measured runs that
each take the next set; one ``EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)`` of the first
set, inside a transaction that is rolled back. The benchmark connection is read-only, so a
queries file can never change the target.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from docshift.bench import advice as adv
from docshift.bench.explain import parse_plan
from docshift.bench.model import BenchReport, QueryResult, SourceResult, Timing
from docshift.bench.queries import Params, QueriesFile, Query
from docshift.dsn import mask, scrub
from docshift.errors import DocshiftError, SourceError
from docshift.spec.model import Mapping
from docshift.target.connect import one_line

DEFAULT_RUNS = 20
DEFAULT_WARMUP = 2
DEFAULT_SEQ_SCAN_ROWS = 10_000
"""A sequential scan of a table at least this large is reported, with an index proposal;
below it a sequential scan is usually the planner's best choice."""
DRAW_SEED = 0.5
"""``setseed`` before drawing parameter values: the same data gives the same draw."""


@dataclass
class BenchOptions:
    """How to measure."""

    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    seq_scan_rows: int = DEFAULT_SEQ_SCAN_ROWS


Progress = Callable[[str], None]


def _read_only(dsn: str, what: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name="docshift-bench")
    except psycopg.Error as exc:
        error = SourceError if what == "source" else DocshiftError
        raise error(f"cannot reach the {what} database {mask(dsn)} "
                    f"({scrub(one_line(str(exc)), dsn)})",
                    hint="Check the DSN (host, port, database, user, password).") from None
    conn.execute("SET default_transaction_read_only = on")
    return conn


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def draw(params: Params | None, target: psycopg.Connection,
         source: psycopg.Connection | None, count: int, where: str, kv_table: str = ""
         ) -> list[dict[str, Any]]:
    """The parameter sets of a query: its list of values, or the rows its SQL draws."""
    if params is None:
        return [{}]
    if params.values is not None:
        return [dict(v) for v in params.values]
    assert params.sql is not None
    conn = target if params.from_ == "target" else source
    if conn is None:
        raise DocshiftError(f"{where}: params.from is 'source', but the source is not a "
                            "PostgreSQL key-value table",
                            hint="Draw the values from the target (from: target).")
    text = params.sql.strip().rstrip(";").replace("{kv_table}", kv_table)
    with conn.transaction():
        conn.execute("SELECT setseed(%s)", (DRAW_SEED,))
        # no parameters: a LIKE 'x:%' in the user's SQL stays as written
        cur = conn.execute(sql.SQL("SELECT * FROM ({}) AS draw ORDER BY random() LIMIT {}")
                           .format(sql.SQL(text), sql.Literal(params.count or count)))  # type: ignore[arg-type]
        names = [c.name for c in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if not rows:
        raise DocshiftError(f"{where}: params.sql returned no rows, so there is nothing to "
                            "look up", hint="Check that the tables it reads are loaded.")
    return rows


def _for_target(row: dict[str, Any], params: Params | None) -> dict[str, Any]:
    from docshift.transform.ids import to_uuid

    if params is None or not params.uuid:
        return row
    return {k: to_uuid(v) if k in params.uuid and v is not None else v for k, v in row.items()}


def _for_source(row: dict[str, Any], params: Params | None) -> dict[str, Any]:
    from docshift.transform.ids import uuid_to_objectid

    if params is None or not params.objectid:
        return row
    return {k: uuid_to_objectid(v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)))
            if k in params.objectid and v is not None else v for k, v in row.items()}


def _measure(run: Callable[[dict[str, Any]], Any], sets: list[dict[str, Any]],
             opts: BenchOptions) -> tuple[Timing, list[Any]]:
    results = []
    for i in range(opts.warmup):
        run(sets[i % len(sets)])
    times = []
    for i in range(opts.runs):
        values = sets[(opts.warmup + i) % len(sets)]
        start = time.perf_counter()
        results.append(run(values))
        times.append(_ms(start))
    return Timing(times), results


class _Sources:
    """The source connections the queries file needs, opened on first use."""

    def __init__(self, m: Mapping, target_dsn: str) -> None:
        self.m, self.target_dsn = m, target_dsn
        self._kv: psycopg.Connection | None = None
        self._mongo: Any = None

    def kv_conn(self) -> psycopg.Connection | None:
        if self.m.source.kind != "postgres_kv":
            return None
        if self._kv is None:
            self._kv = _read_only(self.m.source.dsn or self.target_dsn, "source")
        return self._kv

    def kv_table(self, conn: psycopg.Connection) -> str:
        """The key-value table's name, quoted (empty for other sources)."""
        spec = self.m.source
        if spec.kind != "postgres_kv":
            return ""
        ident = sql.Identifier(spec.schema_, spec.table or "") if spec.schema_ else \
            sql.Identifier(spec.table or "")
        return ident.as_string(conn)

    def mongo(self) -> Any:
        if self._mongo is None:
            from docshift.sources.mongodb import MongoSource

            self._mongo = MongoSource(self.m.source.uri, self.m.source.database or "")
        return self._mongo.database

    def close(self) -> None:
        if self._kv is not None:
            self._kv.close()
        if self._mongo is not None:
            self._mongo.close()


def _source_result(q: Query, sources: _Sources, sets: list[dict[str, Any]],
                   opts: BenchOptions) -> SourceResult | None:
    if q.source is None:
        return None
    kind = "kv" if q.source.kv is not None else "mongodb"
    have = sources.m.source.kind
    if kind == "kv" and have != "postgres_kv" or kind == "mongodb" and have != "mongodb":
        need = "a postgres_kv" if kind == "kv" else "a live mongodb"
        return SourceResult(kind, note=f"not timed: this needs {need} source, the mapping's "
                            f"is {have}")
    from_source = [_for_source(s, q.params) for s in sets]
    try:
        if q.source.kv is not None:
            from docshift.bench.kvaccess import KvAccess

            spec = sources.m.source
            conn = sources.kv_conn()
            assert conn is not None
            access = KvAccess(conn, spec.table or "", schema=spec.schema_,
                              key_column=spec.key_column, value_column=spec.value_column)
            steps = q.source.kv
            timing, results = _measure(lambda p: access.run(steps, p), from_source, opts)
            rows = sum(r.rows_read for r in results)
            trips = sum(r.round_trips for r in results)
        else:
            from docshift.bench.mongoaccess import run_mongo

            db = sources.mongo()
            access_m = q.source.mongodb
            assert access_m is not None
            timing, results = _measure(lambda p: run_mongo(db, access_m, p), from_source, opts)
            rows, trips = sum(r.documents for r in results), len(results)
    except DocshiftError as exc:
        return SourceResult(kind, error=f"{exc.message} (hint: {exc.hint})" if exc.hint
                            else exc.message)
    except (psycopg.Error, ValueError, TypeError) as exc:
        return SourceResult(kind, error=f"{type(exc).__name__}: {str(exc).strip()}")
    n = max(len(results), 1)
    return SourceResult(kind, timing=timing, rows_read=rows, rows_read_per_run=rows / n,
                        round_trips_per_run=trips / n)


def _target_result(q: Query, conn: psycopg.Connection, sets: list[dict[str, Any]],
                   opts: BenchOptions) -> QueryResult:
    res = QueryResult(q.name, q.sql.strip(), q.expect_ms)
    text = sql.SQL(q.sql.strip().rstrip(";"))  # type: ignore[arg-type]
    targets = [_for_target(s, q.params) for s in sets]

    def once(values: dict[str, Any]) -> int:
        return len(conn.execute(text, values or None).fetchall())

    try:
        res.timing, counts = _measure(once, targets, opts)
        res.rows = counts[0] if counts else 0
        with conn.transaction(force_rollback=True):
            explained = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) ") + text,
                targets[0] or None).fetchone()
        assert explained is not None
        res.plan = parse_plan(explained[0])
    except psycopg.Error as exc:
        state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        res.error = f"{str(exc).strip()}{state}"
    return res


@contextmanager
def _closing(*conns: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for c in conns:
            c.close()


def bench(m: Mapping, dsn: str, queries: QueriesFile, opts: BenchOptions | None = None,
          progress: Progress | None = None) -> BenchReport:
    """Run every query of ``queries`` on the target ``dsn`` (and its source access)."""
    opts = opts or BenchOptions()
    started = time.perf_counter()
    schema = m.target.schema_
    conn = _read_only(dsn, "target")
    sources = _Sources(m, dsn)
    rep = BenchReport(environment={
        "target": mask(dsn), "schema": schema, "source": m.source.kind,
        "server_version": conn.info.server_version, "queries_file": queries.path,
        "mapping": m.path, "runs": opts.runs, "warmup": opts.warmup,
        "seq_scan_rows": opts.seq_scan_rows})
    with _closing(conn, sources):
        before = adv.index_scans(conn, schema)
        for q in queries.queries:
            if progress:
                progress(q.name)
            where = f"{queries.path}: query {q.name!r}"
            try:
                sets = draw(q.params, conn, sources.kv_conn(), opts.warmup + opts.runs, where,
                            sources.kv_table(conn))
            except psycopg.Error as exc:
                rep.queries.append(QueryResult(q.name, q.sql.strip(), q.expect_ms,
                                               error=f"params.sql: {str(exc).strip()}"))
                continue
            res = _target_result(q, conn, sets, opts)
            res.source = _source_result(q, sources, sets, opts)
            rep.queries.append(res)
        adv.flush_statistics(conn)
        rep.advice = _advice(conn, schema, rep, before, opts)
    rep.seconds = time.perf_counter() - started
    return rep


def _advice(conn: psycopg.Connection, schema: str, rep: BenchReport,
            before: dict[tuple[str, str], int], opts: BenchOptions) -> list[adv.Advice]:
    sizes = {(s, t): max(int(n), 0) for s, t, n in conn.execute(
        "SELECT n.nspname, c.relname, c.reltuples::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm')")}
    out = adv.missing_fk_indexes(conn, schema)
    seen: set[tuple[str, str | None]] = set()
    read: set[str] = set()
    for q in rep.queries:
        if q.plan is None:
            continue
        read |= {t for s, t in q.plan.relations if s == schema}
        for scan in q.plan.seq_scans:
            scan.table_rows = sizes.get((scan.schema, scan.table), 0)
            if scan.table_rows < opts.seq_scan_rows:
                continue
            a = adv.seq_scan_advice(conn, scan, q.name)
            if (a.table, a.ddl) not in seen:
                seen.add((a.table, a.ddl))
                out.append(a)
    out += adv.unused_indexes(conn, schema, before, adv.index_scans(conn, schema), read)
    out += adv.never_analyzed(conn, schema)
    return out
