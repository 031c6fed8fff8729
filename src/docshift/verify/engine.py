"""Verification: read the source once, write what it should have become next to the
target (in unlogged tables of a scratch schema of the verifier's own, dropped at the end),
and compare set-based in SQL, the tables side by side on several connections.

The expected rows come from :mod:`docshift.verify.expect`, never from the loader; the
loader's counters and positions are never read (of the checkpoints, only the work units'
numbers and bounds, to number documents as the run did). The quarantine is read only to
accept a document as quarantined, and a quarantined document is then checked to be absent.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from docshift.errors import DocshiftError
from docshift.spec.check import resolve_reference
from docshift.spec.model import Mapping
from docshift.transform.pgtypes import parse_type
from docshift.verify import ledger, scan
from docshift.verify.expect import (
    table_types,
)
from docshift.verify.model import (
    FAIL,
    PASS,
    WARN,
    Check,
    Difference,
    StreamLedger,
    VerifyOptions,
    VerifyReport,
)

PARALLEL_MIN_DOCS = 50_000
"""From this many source documents on (and with more than one part to read), the source is
read by several processes unless ``VerifyOptions.workers`` says otherwise."""

SCRATCH_PREFIX = "docshift_verify_"
"""The verifier's scratch schema is this and random hex: its tables of expected rows are
seen by all its connections (temporary tables are seen by one), and no two verifications
share one."""

TEMP_BUFFERS = "256MB"
"""Memory for temporary tables, where the expected rows live when the scratch schema cannot
be created (no CREATE privilege on the database)."""

_POLL_SECONDS = 0.5
"""How often the main thread looks whether a comparison failed (it waits interruptibly)."""

DROP_LOCK_TIMEOUT = "10s"
"""How long dropping the scratch schema waits for a lock (a statement being cancelled)."""

WORK_MEM = "128MB"
"""The verifier's session's memory per hash table or sort, so that its joins and
aggregates over whole tables are hashed in memory rather than sorted on disk."""

STATISTICS_TARGET = 10
"""``default_statistics_target`` for analyzing the verifier's tables: a small sample is
enough to size their joins, and a tenth of the default's cost."""

_SRC, _DOC, _KIND = "_v_src", "_v_doc", "_v_kind"

NUMERIC = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
POINTS_IN_TIME = {"date", "timestamp", "timestamptz"}
TEXTS = {"text", "varchar"}


@dataclass
class _Table:
    name: str
    columns: list[str]
    types: dict[str, Any]
    pk: list[str]
    exp: sql.Identifier
    resolved: sql.Identifier
    copied: int = 0
    """Bytes of expected rows copied: the size that orders the comparisons."""
    present: bool = True


def verify(m: Mapping, dsn: str, options: VerifyOptions | None = None) -> VerifyReport:
    """Verify the target against the source, layer by layer; the report says what failed."""
    from docshift.target.connect import connect

    options = options or VerifyOptions()
    started = time.monotonic()
    rep = VerifyReport(options=options)
    scratch = SCRATCH_PREFIX + secrets.token_hex(6)
    try:
        with connect(dsn) as conn:
            _session(conn)
            _verify(m, dsn, conn, options, rep, scratch)
    except BaseException:
        # the scratch schema goes whatever happened; the first error is the one to see
        with suppress(DocshiftError):
            _drop_scratch(dsn, scratch)
        raise
    _drop_scratch(dsn, scratch)
    order = {layer: i for i, layer in enumerate(
        ("reconciliation", "content", "integrity", "nulls", "aggregates", "schema",
         "coverage"))}
    rep.checks.sort(key=lambda c: order.get(c.layer, 99))
    rep.seconds = time.monotonic() - started
    return rep


def _session(conn: psycopg.Connection) -> None:
    """Settings of each of the verifier's connections."""
    # without the scratch schema the expected rows live in temporary tables: let them stay
    # in memory (this must be set before the session first touches a temporary table)
    conn.execute(sql.SQL("SET temp_buffers = {}").format(sql.Literal(TEMP_BUFFERS)))
    # the comparisons join and aggregate whole tables: room for hash tables and sorts
    conn.execute(sql.SQL("SET work_mem = {}").format(sql.Literal(WORK_MEM)))
    # the verifier's tables are analyzed for their joins' sake; a small sample suffices
    conn.execute(sql.SQL("SET default_statistics_target = {}").format(
        sql.Literal(STATISTICS_TARGET)))


def _drop_scratch(dsn: str, scratch: str) -> None:
    """Drop the scratch schema, on a connection of its own (the verifier's may be broken)."""
    from docshift.target.connect import connect

    try:
        with connect(dsn) as conn:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(DROP_LOCK_TIMEOUT)))
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(scratch)))
    except (psycopg.Error, DocshiftError) as exc:
        raise DocshiftError(
            f"could not drop the verifier's scratch schema {scratch}: {exc}",
            hint=f"Drop it with `DROP SCHEMA {scratch} CASCADE` (it holds only the "
            "verifier's expected rows).") from None


def _verify(m: Mapping, dsn: str, conn: psycopg.Connection, options: VerifyOptions,
            rep: VerifyReport, scratch: str) -> None:
    from docshift import __version__
    from docshift.dsn import mask
    from docshift.sources import open_source

    run_id = ledger.latest_run_id(conn)
    if run_id is None:
        raise DocshiftError("nothing to verify: docshift has not migrated into this "
                            "database", hint="Run `docshift run` first.")
    rep.environment = {
        "docshift_version": __version__, "mapping": m.path,
        "source": _describe_source(m, mask), "target": mask(dsn),
        "schema": m.target.schema_, "mode": m.target.mode, "run_id": run_id,
        "run_status": ledger.run_status(conn, run_id),
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if m.target.mode == "existing":
        from docshift.target.prepare import resolve_existing_types

        resolve_existing_types(conn, m)
    v = _Verifier(m, conn, options, rep, run_id, dsn, scratch)
    with v.phase("schema"):
        v.schema()
    src = open_source(m.source, dsn)
    try:
        v.read_source(src)
    finally:
        src.close()
    v.compare_and_check()


def _describe_source(m: Mapping, mask: Any) -> str:
    s = m.source
    if s.kind == "postgres_kv":
        return f"postgres_kv table {s.table}" + (f" at {mask(s.dsn)}" if s.dsn else "")
    if s.kind == "mongodb":
        return f"mongodb {mask(s.uri or '')} database {s.database}"
    return f"{s.kind} {s.path}"


def _ledger_message(led: StreamLedger) -> str:
    return (f"{led.documents} documents: {led.loaded} loaded, {led.quarantined} quarantined, "
            f"{led.filtered} filtered, {led.ignored} ignored, {led.unmatched} unmatched, "
            f"{led.unaccounted} unaccounted")


FLOAT_SUM_TOLERANCE = 1e-9
"""Relative tolerance for sums of real / double precision columns: a float sum depends on
the order of its terms, which differs between two scans."""


def _close(a: float, b: float) -> bool:
    if a != a and b != b:  # NaN on both sides
        return True
    return abs(a - b) <= FLOAT_SUM_TOLERANCE * max(abs(a), abs(b))


class _Verifier:
    def __init__(self, m: Mapping, conn: psycopg.Connection, options: VerifyOptions,
                 rep: VerifyReport, run_id: int, dsn: str, scratch: str) -> None:
        self.m, self._conn, self.opts, self.rep, self.dsn = m, conn, options, rep, dsn
        self.scratch = scratch
        # "UNLOGGED" in the scratch schema; "TEMP" (one session) without the privilege
        self.persistence = "UNLOGGED"
        # the connection and the checks list of a comparison running in a thread of its own
        self._local = threading.local()
        self._phase_lock = threading.Lock()
        self.connections = 1
        """How many connections compare side by side: as many as processes read."""
        self.schema_name = m.target.schema_
        self.cap = options.max_differences
        self.tables: dict[str, _Table] = {}
        for i, (name, spec) in enumerate(m.tables.items()):
            types = table_types(m, spec)
            if spec.extra:
                # the catch-all column is compared like any jsonb column: by value
                types[spec.extra] = parse_type("jsonb")
            self.tables[name] = _Table(name, list(types), types,
                                       list(spec.primary_key or []),
                                       sql.Identifier(scratch, f"exp_{i}"),
                                       sql.Identifier(scratch, f"res_{i}"))
        self.quarantine = ledger.quarantined(conn, run_id)
        self.provenance = ledger.provenance(conn) if m.target.mode == "existing" else {}
        self.sample: dict[str, list[int]] = {}
        # the ledger of each stream and its check, by the stream's number in the verifier
        self.ledgers: dict[int, StreamLedger] = {}
        self.stream_checks: dict[int, Check] = {}
        # documents with only row-level quarantine entries: counted as quarantined, yet some
        # of their rows are expected
        self.partly_quarantined: set[int] = set()
        self.deferred: list[str] = []
        """Tables whose primary key (the only ``reject`` keys) was not probed for duplicates
        before the comparisons: each clean full join proves it (:meth:`_clean_keyed`)."""
        self.certified: set[str] = set()
        """Tables whose full join proved their expected keys held once."""
        # the stream (by number) of each document-number prefix
        self.prefix_stream: dict[int, int] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def conn(self) -> psycopg.Connection:
        """This thread's connection: its own while it runs a comparison, else the main one."""
        return getattr(self._local, "conn", None) or self._conn

    def target(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema_name), sql.Identifier(table))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to the report's ``phases[name]``."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            with self._phase_lock:
                phases = self.rep.phases
                phases[name] = phases.get(name, 0.0) + time.monotonic() - t0

    def add(self, layer: str, name: str, table: str, status: str, **kw: Any) -> Check:
        c = Check(name=name, layer=layer, table=table, status=status, **kw)
        checks = getattr(self._local, "checks", None)
        (self.rep.checks if checks is None else checks).append(c)
        return c

    def rows(self, q: sql.Composable, params: Any = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(q, params).fetchall()

    def one(self, q: sql.Composable, params: Any = None) -> Any:
        row = self.conn.execute(q, params).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ schema

    def schema(self) -> None:
        existing = self.m.target.mode == "existing"
        for t in self.tables.values():
            cols = {r[0]: r[1:] for r in self.rows(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                "a.atthasdef FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
                "AND a.attnum > 0 AND NOT a.attisdropped",
                (f'"{self.schema_name}"."{t.name}"',))}
            if not cols:
                t.present = False
                self.add("schema", "table exists", t.name, FAIL, expected="table",
                         actual=None, message=f"table {self.schema_name}.{t.name} does not "
                         "exist in the target")
                continue
            diffs = []
            spec = self.m.tables[t.name]
            pk = set(t.pk)
            for c in t.columns:
                if c not in cols:
                    diffs.append(Difference(None, c, "column", None, "column is missing"))
                    continue
                if existing:
                    continue
                have_type, notnull, hasdef = cols[c]
                if c == spec.extra:
                    if parse_type(have_type).sql != "jsonb":
                        diffs.append(Difference(None, c, "jsonb", have_type, "type differs"))
                    continue
                want = t.types[c].sql
                try:
                    have = parse_type(have_type).sql
                except ValueError:
                    have = have_type
                if have != want:
                    diffs.append(Difference(None, c, want, have_type, "type differs"))
                col = spec.column(c)
                nullable = col.nullable if col.nullable is not None else c not in pk
                if notnull == nullable:
                    diffs.append(Difference(None, c, "NULL" if nullable else "NOT NULL",
                                            "NOT NULL" if notnull else "NULL",
                                            "nullability differs"))
                if (col.default is not None) != hasdef:
                    diffs.append(Difference(None, c, col.default, "a default" if hasdef
                                            else None, "default differs"))
            self.add("schema", "columns", t.name, FAIL if diffs else PASS,
                     expected=len(t.columns), actual=len(t.columns) - sum(
                         d.message == "column is missing" for d in diffs),
                     differences=diffs[:self.cap], differences_total=len(diffs),
                     message="" if not diffs else f"{len(diffs)} column difference(s)")
            if any(d.message == "column is missing" for d in diffs):
                t.present = False

    # ------------------------------------------------------------------ source

    def _create_scratch(self) -> None:
        """The schema of the verifier's tables; without the privilege to create it, they are
        temporary tables of the main session, and the comparisons run one after another."""
        try:
            self.conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.scratch)))
        except psycopg.errors.InsufficientPrivilege:
            self.persistence = "TEMP"
            for i, t in enumerate(self.tables.values()):
                t.exp = sql.Identifier("pg_temp", f"_v_exp_{i}")
                t.resolved = sql.Identifier("pg_temp", f"_v_res_{i}")

    def _create(self, table: sql.Identifier,
                columns: list[sql.Composable] | None = None) -> sql.Composed:
        """``CREATE … TABLE table``, with ``columns`` or to be followed by ``AS``."""
        # autovacuum would analyze the scratch tables once filled, competing for the CPUs;
        # the verifier analyzes them itself
        return sql.SQL("CREATE {} TABLE {}{} WITH (autovacuum_enabled = false)").format(
            sql.SQL(self.persistence), table,
            sql.SQL("") if columns is None else sql.SQL(" ({})").format(
                sql.SQL(", ").join(columns)))

    def read_source(self, src: Any) -> None:
        self._create_scratch()
        for t in self.tables.values():
            defs = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t.types[c].sql))
                    for c in t.columns]
            defs += [sql.SQL("{} text").format(sql.Identifier(_SRC)),
                     sql.SQL("{} bigint").format(sql.Identifier(_DOC)),
                     sql.SQL("{} text").format(sql.Identifier(_KIND))]
            self.conn.execute(self._create(t.exp, defs))
        streams = [s for s in dict.fromkeys(
            (self.m.source.table if self.m.source.kind == "postgres_kv" else f.from_)
            for t in self.m.tables.values() for f in t.feeds or []) if s is not None]
        work = self._parts(streams)
        for number, stream in enumerate(streams):
            self.ledgers[number] = StreamLedger(stream)
            self.rep.streams.append(self.ledgers[number])
        tables = [(t.name, scan.copy_types(t.columns, t.types)) for t in self.tables.values()]
        args = (self.opts.sample if not self.opts.full else 0, self.opts.seed, self.cap, tables)
        order = list(self.tables.values())
        sink = scan.TableCopy(self.conn, [t.exp for t in order], timer=lambda: self.phase(
            "read source: copy into the verifier's tables"))
        workers = self._workers(src, streams, work)
        # the scratch schema's tables are seen by every connection: each process copies its
        # own rows there; temporary tables only by this one, which copies them all
        into = None
        if self.persistence == "UNLOGGED":
            self.connections = workers
            into = [t.exp for t in order]
        with self.phase("read source"):
            if workers > 1:
                results = scan.scan_parallel(self.m, self.dsn, work, workers, args, sink, into)
            else:
                results = [scan.scan(self.m, self.dsn, p, e, *args, sink=sink) for p, e in work]
            sink.flush()
        for i, t in enumerate(order):
            t.copied = sink.copied[i] + sum(r.copied[i] for r in results if r.copied)
        with self.phase("analyze"):
            # the planner would misjudge the joins of tables never analyzed (temporary ones
            # never are automatically); the key columns, from a small sample, suffice
            for t in self.tables.values():
                keys = [c for c in dict.fromkeys(t.pk + [_KIND]) if c in t.columns + [_KIND]]
                self.conn.execute(sql.SQL("ANALYZE {} ({})").format(
                    t.exp, sql.SQL(", ").join(map(sql.Identifier, keys))))
        by_stream: dict[int, list[scan.PartResult]] = {}
        for (part, _), res in zip(work, results, strict=True):
            by_stream.setdefault(part.stream_number, []).append(res)
        used: set[int] = set()
        for number, stream in enumerate(streams):
            self._stream_checks(number, stream, by_stream.get(number, []), used)
        stray = [q for i, q in enumerate(self.quarantine) if i not in used]
        self.add("reconciliation", "quarantine entries name source documents", "(quarantine)",
                 FAIL if stray else PASS, expected=0, actual=len(stray),
                 differences=[Difference(q.source_key, q.field, None, None,
                                         f"entry ({q.error_class}) of {','.join(q.streams)} "
                                         + ("names no document of the source" if q.doc_id is None
                                            else f"names document {q.doc_id}, which is not a "
                                            "document of the source with this key"))
                              for q in stray[:self.cap]], differences_total=len(stray))
        with self.phase("duplicates of reject keys"):
            self._unquarantined_duplicates()

    def _parts(self, streams: list[str]) -> list[tuple[scan.Part, scan.Entries]]:
        """What to read, in source order: each of the run's work units of a stream whose
        units are numbered (its documents then get the run's numbers), else the whole
        stream; with the quarantine entries each part may meet."""
        units = ledger.units(self.conn, self.rep.environment["run_id"])
        spare = 1 + max((u.number for us in units.values() for u in us), default=-1)
        parts: list[scan.Part] = []
        for number, stream in enumerate(streams):
            if stream in units:
                for u in units[stream]:
                    parts.append(scan.Part(len(parts), number, stream, u.start, u.end, u.number,
                                           True))
            else:
                parts.append(scan.Part(len(parts), number, stream, None, None, spare, False))
                spare += 1
        self.prefix_stream = {p.prefix: p.stream_number for p in parts}
        entries = {p.index: scan.Entries() for p in parts}
        by_prefix = {p.prefix: p for p in parts if p.numbered}
        whole = {}
        for p in parts:
            whole.setdefault(p.stream, []).append(p)
        # an entry naming its document by number is matched by that number (several documents
        # may share a key); one without (older state, or no numbered units) by its key
        for i, q in enumerate(self.quarantine):
            if q.doc_id is not None and all(s in units for s in q.streams):
                part = by_prefix.get(q.doc_id >> scan.ORDINAL_BITS)
                if part is not None:
                    entries[part.index].by_doc.setdefault(q.doc_id, []).append((i, q))
                continue
            if q.source_key is None:
                continue  # names no document: reported below
            for s in q.streams:
                for part in whole.get(s, []):
                    entries[part.index].by_key.setdefault(q.source_key, []).append((i, q))
        return [(p, entries[p.index]) for p in parts]

    def _workers(self, src: Any, streams: list[str], work: list[Any]) -> int:
        """How many processes read the source: one for a small source, where starting
        processes would cost more than it saves."""
        asked = self.opts.workers
        cap = min(len(work), os.cpu_count() or 1)
        if asked is not None:
            return max(1, min(asked, len(work)))
        if cap < 2:
            return 1
        total = 0
        for s in streams:
            total += src.stream(s).estimate_count() or 0
        return cap if total >= PARALLEL_MIN_DOCS else 1

    def _stream_checks(self, number: int, stream: str, parts: list[scan.PartResult],
                       used: set[int]) -> None:
        led = self.ledgers[number]
        unaccounted: list[Difference] = []
        unexpected: list[Difference] = []
        n_unexpected = 0
        unmapped: Counter[str] = Counter()
        examples: dict[str, str] = {}
        sample: list[tuple[int, int]] = []
        for r in parts:
            led.add(r)
            unaccounted += r.unaccounted_diffs
            unexpected += r.unexpected_diffs
            n_unexpected += r.unexpected
            unmapped.update(r.unmapped)
            for path, key in r.examples.items():
                examples.setdefault(path, key)
            sample += r.sample
            used.update(r.used)
            self.partly_quarantined.update(r.partly_quarantined)
        self.sample[stream] = [d for _, d in sorted(sample)[:self.opts.sample]]
        diffs = (unaccounted + unexpected)[:self.cap]
        status = (FAIL if led.unaccounted or not led.balanced else
                  WARN if n_unexpected else PASS)
        self.stream_checks[number] = self.add(
            "reconciliation", "every document accounted for", f"stream {stream}", status,
            expected=led.documents, actual=led.documents - led.unaccounted,
            message=_ledger_message(led), differences=diffs,
            differences_total=led.unaccounted + n_unexpected)
        cover = [Difference(examples[p], p, n, None, f"{n} document(s) have this field; no "
                            "column reads it and no 'ignore' names it")
                 for p, n in unmapped.most_common()]
        self.add("coverage", "unmapped source fields", f"stream {stream}",
                 WARN if cover else PASS, expected=0, actual=len(cover),
                 differences=cover[:self.cap], differences_total=len(cover))

    def _unquarantined_duplicates(self, defer: bool = True) -> None:
        """A document whose row repeats a key of an earlier document (or of another row of
        its own) under ``on_duplicate: reject`` must have been quarantined by the run.

        Keys are taken in the run's order (tables in load order, each table's keys in
        order), and a document found here is withheld before the next key is looked at,
        as the run withholds it. What is left is the first document in source order for
        every key.
        """
        kind, doc, src = (sql.Identifier(x) for x in (_KIND, _DOC, _SRC))
        keys = [(name, cols) for name in self.m.tables_in_load_order()
                for cols in self.m.tables[name].unique_keys()
                if self.m.tables[name].duplicate_policy(cols) == "reject"
                and all(c in self.tables[name].columns for c in cols)]
        if defer and keys and not self.partly_quarantined and not self._drops_orphans() and all(
                list(cols) == self.tables[name].pk and self._loaded(self.tables[name]) is None
                for name, cols in keys):
            # only primary keys: the comparisons' full joins prove them free of duplicates
            # (compare_and_check probes them after all when one does not)
            self.deferred = [name for name, _ in keys]
            return

        def condition(cols: list[str]) -> tuple[sql.Composable, sql.Composable]:
            return (sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c))
                                          for c in cols))

        # mostly there are none: a hashed count per key says so without sorting, the keys
        # side by side (withholding a document only removes expected rows, so a key found
        # free of duplicates here stays so)
        probed: dict[int, bool] = {}

        def probe(i: int, name: str, cols: list[str]) -> None:
            by, nn = condition(cols)
            probed[i] = bool(self.one(sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {e} WHERE {kind} = 'n' AND {nn} "
                "GROUP BY {keys} HAVING count(*) > 1)").format(
                e=self.tables[name].exp, kind=kind, nn=nn, keys=by)))

        self._side_by_side([lambda i=i, n=n, c=c: probe(i, n, c)
                            for i, (n, c) in enumerate(keys)], list(range(len(keys))))
        for i, (name, cols) in enumerate(keys):
            if not probed[i]:
                continue
            t = self.tables[name]
            by, nn = condition(cols)
            found = self.rows(sql.SQL(
                "SELECT {doc}, min({src}), min(v) FROM (SELECT {doc}, {src}, {val} AS v, "
                "row_number() OVER (PARTITION BY {keys} ORDER BY {doc}) AS rn FROM {e} e "
                "WHERE {kind} = 'n' AND {nn}) r WHERE rn > 1 GROUP BY {doc} "
                "ORDER BY {doc}").format(
                doc=doc, src=src, val=self._key_text("e", cols), keys=by,
                e=t.exp, kind=kind, nn=nn))
            if not found:
                continue
            docs = [d for d, _, _ in found]
            for other in self.tables.values():
                self.conn.execute(sql.SQL(
                    "UPDATE {e} SET {kind} = 'q' WHERE {kind} = 'n' AND {doc} = ANY(%s)"
                ).format(e=other.exp, kind=kind, doc=doc), (docs,))
            for d, key, value in found:
                self._unaccounted(d, Difference(
                    key, ",".join(cols), value, None,
                    f"repeats ({', '.join(cols)}) = {value} of table {name} held by an "
                    "earlier row, so the run quarantines it (on_duplicate: reject), but it "
                    "is not in the quarantine"))

    def _drops_orphans(self) -> bool:
        """Whether a reference is under ``on_orphan: drop``: the comparisons then delete
        expected rows (:meth:`_null_orphans`), which may hide a duplicate key that the run,
        resolving keys before orphans, quarantined."""
        return any((t.column(c).on_orphan or self.m.options.on_orphan) == "drop"
                   for t in self.m.tables.values() for c in t.columns
                   if t.column(c).references)

    def _unaccounted(self, doc_no: int, diff: Difference) -> None:
        """Count a document the read took as loaded as unaccounted after all."""
        number = self.prefix_stream[doc_no >> scan.ORDINAL_BITS]
        led, check = self.ledgers[number], self.stream_checks[number]
        if doc_no not in self.partly_quarantined:
            led.loaded -= 1
            led.unaccounted += 1
        check.status = FAIL
        check.actual = led.documents - led.unaccounted
        check.message = _ledger_message(led)
        if len(check.differences) < self.cap:
            check.differences.append(diff)
        check.differences_total += 1

    # ------------------------------------------------------------------ compare

    def compare_and_check(self) -> None:
        """Each table's comparisons and integrity checks, on ``self.connections``
        connections side by side, the largest tables' comparisons first. The checks are
        reported in the order one connection gives them."""
        present = [n for n in self.m.tables_in_load_order() if self.tables[n].present]
        tasks: list[Callable[[], None]] = [
            lambda t=self.tables[n]: self._compare(t) for n in present]
        tasks += [lambda n=n: self._integrity(n) for n in present]
        tasks.append(self._integrity_removals)
        by_size = sorted(range(len(present)), key=lambda i: -self.tables[present[i]].copied)
        with self.phase("compare and integrity"):
            checks = self._side_by_side(tasks, by_size + list(range(len(present), len(tasks))))
        if self.deferred and not self.certified.issuperset(self.deferred):
            # a primary key the full joins did not prove: probe every key as the run takes
            # them, withholding what it finds, and compare again from the start
            self.deferred = []
            for t in self.tables.values():
                self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t.resolved))
            with self.phase("duplicates of reject keys"):
                self._unquarantined_duplicates(defer=False)
            self.compare_and_check()
            return
        for found in checks:
            self.rep.checks.extend(found)

    def _side_by_side(self, tasks: list[Callable[[], None]],
                      order: list[int]) -> list[list[Check]]:
        """Run ``tasks`` (their indexes taken in ``order``) on ``self.connections``
        connections, one thread each; the checks each task adds, by task. An error in one
        cancels the others' statements and is raised here, as is an interruption."""
        checks: list[list[Check]] = [[] for _ in tasks]
        if self.connections < 2:
            for i in range(len(tasks)):
                self._local.checks = checks[i]
                try:
                    tasks[i]()
                finally:
                    self._local.checks = None
            return checks
        from docshift.target.connect import connect

        pending = list(reversed(order))
        lock = threading.Lock()
        stop = threading.Event()
        errors: list[BaseException] = []
        conns: list[psycopg.Connection] = []

        def work(conn: psycopg.Connection) -> None:
            self._local.conn = conn
            while not stop.is_set():
                with lock:
                    if not pending:
                        return
                    i = pending.pop()
                self._local.checks = checks[i]
                try:
                    tasks[i]()
                except BaseException as exc:  # noqa: BLE001 - raised by the main thread
                    with lock:
                        errors.append(exc)
                    stop.set()
                    return

        threads: list[threading.Thread] = []
        try:
            for _ in range(self.connections):
                conns.append(connect(self.dsn))
                _session(conns[-1])
            threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in conns]
            for th in threads:
                th.start()
            while any(th.is_alive() for th in threads):
                if stop.wait(_POLL_SECONDS):
                    # one failed: the others' statements are not worth finishing
                    for c in conns:
                        c.cancel_safe()
                    break
            for th in threads:
                th.join()
        finally:
            if any(th.is_alive() for th in threads):  # interrupted
                stop.set()
                for c in conns:
                    c.cancel_safe()
                for th in threads:
                    th.join()
            for c in conns:
                c.close()
        if errors:
            raise errors[0]
        return checks

    def _compare(self, t: _Table) -> None:
        with self.phase(f"compare {t.name}"):
            self._null_orphans(t)
            self._rows_from_before(t)
            if t.pk:
                self._compare_keyed(t)
            else:
                self._compare_multiset(t)

    def _integrity(self, name: str) -> None:
        with self.phase("integrity"):
            self._integrity_of(name)

    def _integrity_removals(self) -> None:
        with self.phase("integrity"):
            self._removals()

    def _null_orphans(self, t: _Table) -> None:
        """Expected references under ``on_orphan: null`` that name no target row are NULL;
        under ``on_orphan: drop`` their rows are not expected.

        The referenced table's rows are checked on their own, so its target rows decide here.
        """
        for c in self.m.tables[t.name].columns:
            col = self.m.tables[t.name].column(c)
            if not col.references:
                continue
            policy = col.on_orphan or self.m.options.on_orphan
            if policy not in ("null", "drop"):
                continue
            ptable, pcol = resolve_reference(self.m, col.references)
            change = ("UPDATE {e} e SET {c} = NULL" if policy == "null" else
                      "DELETE FROM {e} e")  # drop: the row goes, its document stays
            self.conn.execute(sql.SQL(
                change + " WHERE {c} IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM {p} p WHERE p.{pc} = e.{c})").format(
                e=t.exp, c=sql.Identifier(c), p=self.target(ptable),
                pc=sql.Identifier(pcol)))

    def _rows_from_before(self, t: _Table) -> None:
        """Existing mode: a row that was in the table before the run stays; an expected row
        holding its key under ``on_duplicate: keep_first`` is dropped (under ``reject`` its
        document must be in the quarantine, which the row checks then demand)."""
        if self._loaded(t) is None:
            return
        spec = self.m.tables[t.name]
        for cols in spec.unique_keys():
            if spec.duplicate_policy(cols) != "keep_first" or any(
                    c not in t.columns for c in cols):
                continue
            self.conn.execute(sql.SQL(
                "DELETE FROM {e} e WHERE e.{kind} <> 'q' AND EXISTS (SELECT 1 FROM {tg} t "
                "WHERE {join} AND NOT {loaded})").format(
                e=t.exp, kind=sql.Identifier(_KIND), tg=self.target(t.name),
                join=self._join(cols), loaded=self._loaded_filter(t, "t")))

    def _cols(self, alias: str, cols: Iterable[str]) -> sql.Composed:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias),
                                                          sql.Identifier(c)) for c in cols)

    def _join(self, cols: list[str], a: str = "e", b: str = "t") -> sql.Composed:
        return sql.SQL(" AND ").join(sql.SQL("{a}.{c} = {b}.{c}").format(
            a=sql.Identifier(a), b=sql.Identifier(b), c=sql.Identifier(c)) for c in cols)

    def _key_text(self, alias: str, cols: list[str]) -> sql.Composed:
        return sql.SQL(" || ', ' || ").join(
            sql.SQL("coalesce({}.{}::text, 'NULL')").format(sql.Identifier(alias),
                                                            sql.Identifier(c)) for c in cols)

    def _sample_filter(self, t: _Table, alias: str) -> tuple[sql.Composable, dict[str, Any]]:
        """A condition on expected rows (as ``alias``): of a sampled document; with its
        parameters, named, as a statement may use it several times."""
        if self.opts.full:
            return sql.SQL("true"), {}
        docs = [d for s in self.sample.values() for d in s]
        return sql.SQL("{}.{} = ANY(%(sample)s)").format(sql.Identifier(alias),
                                                         sql.Identifier(_DOC)), {"sample": docs}

    def _loaded(self, t: _Table) -> sql.Composable | None:
        """Existing mode: the record of the rows the run loaded into ``t``, keyed like it;
        None when there is none (create mode, or a run that did not finish)."""
        prov = self.provenance.get(t.name)
        if prov is None or not t.pk or sorted(prov.columns or []) != sorted(t.pk):
            return None
        return sql.SQL("docshift.{}").format(sql.Identifier(prov.relation))

    def _loaded_filter(self, t: _Table, alias: str) -> sql.Composable:
        """A condition on rows of ``t`` (as ``alias``): loaded by the run, where that is
        known; else true."""
        loaded = self._loaded(t)
        if loaded is None:
            return sql.SQL("true")
        return sql.SQL("EXISTS (SELECT 1 FROM {} p WHERE {})").format(
            loaded, self._join(t.pk, "p", alias))

    def _compare_keyed(self, t: _Table) -> None:
        """Rows, content and aggregates of a table with a primary key: on a clean table one
        full join of the target with the expected rows gives every count
        (:meth:`_clean_keyed`); else the expected rows are resolved to one per key (one
        join), then one scan of them and one of the target give every count
        (:meth:`_resolved_keyed`), and the failing rows are listed only when a count says
        there are some."""
        e, tg, pk = t.exp, self.target(t.name), t.pk
        src, doc = sql.Identifier(_SRC), sql.Identifier(_DOC)
        loaded = self._loaded(t)
        aggs = self._aggregate_exprs(t)
        where, params = self._sample_filter(t, "e")
        clean = self._clean_keyed(t, aggs, where, params)
        r = t.resolved
        if clean is not None:
            (expected, n_missing, n_not_loaded, want, actual, n_extra, n_before, compared,
             per_col, have) = clean
        else:
            (expected, n_missing, n_not_loaded, want, actual, n_extra, n_before, compared,
             per_col, have) = self._resolved_keyed(t, aggs, where, params)
        is_loaded = (sql.SQL("true") if loaded is None else
                     sql.SQL("p.{} IS NOT NULL").format(sql.Identifier(pk[0])))
        missing: list[tuple[Any, ...]] = []
        if n_missing:
            missing = self.rows(sql.SQL(
                "SELECT e.{src}, {key} FROM {r} e WHERE NOT e._v_in_target ORDER BY e.{doc} "
                "LIMIT {cap}").format(src=src, key=self._key_text("e", pk), r=r, doc=doc,
                                      cap=sql.Literal(self.cap)))
        extra: list[tuple[Any, ...]] = []
        if n_extra:
            # a quarantined document's row names its key; one of no document names none
            extra = self.rows(sql.SQL(
                "SELECT (SELECT min(q.{src}) FROM {e} q WHERE {qjoin}), {key} FROM {tg} t "
                "LEFT JOIN {r} e ON {join}{lj} WHERE e.{doc} IS NULL AND {loaded} "
                "LIMIT {cap}").format(
                src=src, e=e, qjoin=self._join(pk, "q", "t"), key=self._key_text("t", pk),
                tg=tg, r=r, join=self._join(pk), lj=self._loaded_join(t, "t"), doc=doc,
                loaded=is_loaded, cap=sql.Literal(self.cap)))
        not_loaded: list[tuple[Any, ...]] = []
        if n_not_loaded:
            not_loaded = self.rows(sql.SQL(
                "SELECT e.{src}, {key} FROM {r} e{lj} WHERE e._v_in_target AND p.{pk0} IS NULL "
                "ORDER BY e.{doc} LIMIT {cap}").format(
                src=src, key=self._key_text("e", pk), r=r, lj=self._loaded_join(t, "e"),
                pk0=sql.Identifier(pk[0]), doc=doc, cap=sql.Literal(self.cap)))
        if loaded is None:
            n_before = 0
        diffs = [Difference(k, ",".join(pk), key, None, "row missing from the target")
                 for k, key in missing]
        diffs += [Difference(k, ",".join(pk), None, key,
                             "row of a quarantined document is in the target" if k else
                             "row in the target that no source document gives")
                  for k, key in extra]
        diffs += [Difference(k, ",".join(pk), key, key,
                             "the target row with this key was not loaded by the run (it was "
                             "in the table before), yet the document is not in the quarantine")
                  for k, key in not_loaded]
        existing = self.m.target.mode == "existing"
        quarantined_present = n_extra and self.one(sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {tg} t JOIN {e} q ON {qjoin} LEFT JOIN {r} e ON {join}"
            "{lj} WHERE e.{doc} IS NULL AND {loaded})").format(
            tg=tg, e=e, qjoin=self._join(pk, "q", "t"), r=r, join=self._join(pk),
            lj=self._loaded_join(t, "t"), doc=doc, loaded=is_loaded))
        status = PASS
        if n_missing or quarantined_present or n_not_loaded:
            status = FAIL
        elif n_extra:
            # without the run's record of what it loaded, an existing table's rows of its
            # own from before the migration cannot be told from stray ones
            status = WARN if existing and loaded is None else FAIL
        self.add("reconciliation", "rows", t.name, status, expected=expected, actual=actual,
                 message=f"{n_missing} missing, {n_extra} not from the source"
                 + (f", {n_not_loaded} not loaded by the run" if n_not_loaded else "")
                 + (f"; {n_before} row(s) were in the table before the run" if n_before
                    else ""),
                 differences=diffs[:self.cap],
                 differences_total=n_missing + n_extra + n_not_loaded)
        # content: every mapped column of the sampled documents' rows
        cdiffs: list[Difference] = []
        for c, n in per_col.items():
            if not n:
                continue
            for k, sv, tv in self.rows(sql.SQL(
                    "SELECT e.{src}, e.{c}::text, t.{c}::text FROM {r} e JOIN {tg} t ON {join} "
                    "WHERE {where} AND e.{c} IS DISTINCT FROM t.{c} ORDER BY e.{doc} LIMIT {cap}"
                    ).format(src=src, c=sql.Identifier(c), r=r, tg=tg, join=self._join(pk),
                             where=where, doc=doc, cap=sql.Literal(self.cap)), params):
                cdiffs.append(Difference(k, c, sv, tv, "value differs"))
        total = sum(per_col.values())
        self.add("content", "mapped fields" + ("" if self.opts.full else " (sample)"), t.name,
                 FAIL if total else PASS, expected=compared, actual=compared - (
                     0 if not total else len({d.key for d in cdiffs})),
                 message=f"{compared} row(s) compared, {total} differing value(s)",
                 differences=cdiffs[:self.cap], differences_total=total)
        self._aggregate_checks(t, aggs, want, have)

    def _clean_keyed(self, t: _Table, aggs: list[tuple[str, str, sql.SQL]],
                     where: sql.Composable, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The counts of :meth:`_compare_keyed` from one hash full join of the target with
        the expected rows, when that suffices: every count of a difference is 0. None when
        a count is not, or when the expected rows need resolving to one per key first (a
        key under ``keep_first``, rows of partly quarantined documents, existing mode with
        the run's record): then :meth:`_resolved_keyed` counts, and names the rows.

        Under ``reject`` every key the expected rows hold is held once after
        :meth:`_unquarantined_duplicates`; that each expected row met at most one target
        row is checked too (its count in the join equals its count alone).
        """
        spec = self.m.tables[t.name]
        if (self._loaded(t) is not None or self.partly_quarantined
                or spec.duplicate_policy(t.pk) != "reject"):
            return None
        e, tg, pk, cols = t.exp, self.target(t.name), t.pk, t.columns
        doc, kind = sql.Identifier(_DOC), sql.Identifier(_KIND)
        pk0 = sql.Identifier(pk[0])
        matched = sql.SQL("e.{} IS NOT NULL AND t.{} IS NOT NULL").format(doc, pk0)
        exprs = [sql.SQL("(SELECT count(*) FROM {} WHERE {} = 'n')").format(e, kind),
                 sql.SQL("(SELECT count(*) FROM {})").format(tg),
                 sql.SQL("count(e.{})").format(doc),
                 sql.SQL("count(*) FILTER (WHERE t.{} IS NULL)").format(pk0),
                 sql.SQL("count(t.{})").format(pk0),
                 sql.SQL("count(*) FILTER (WHERE e.{} IS NULL)").format(doc),
                 sql.SQL("count(*) FILTER (WHERE {} AND {})").format(matched, where)]
        exprs += [sql.SQL("count(*) FILTER (WHERE {m} AND {w} AND e.{c} IS DISTINCT FROM t.{c})")
                  .format(m=matched, w=where, c=sql.Identifier(c)) for c in cols]
        exprs += [x.format(a=sql.Identifier("e"), c=sql.Identifier(c)) for _, c, x in aggs]
        exprs += [x.format(a=sql.Identifier("t"), c=sql.Identifier(c)) for _, c, x in aggs]
        got = self.conn.execute(sql.SQL(
            "SELECT {} FROM {tg} t FULL JOIN (SELECT * FROM {e} WHERE {kind} = 'n') e ON {j}"
        ).format(sql.SQL(", ").join(exprs), tg=tg, e=e, kind=kind, j=self._join(pk)),
            params).fetchone()
        assert got is not None
        alone, rows, expected, n_missing, actual, n_extra, compared = got[:7]
        per_col = dict(zip(cols, got[7:7 + len(cols)], strict=True))
        rest = got[7 + len(cols):]
        if (alone != expected or rows != actual or n_missing or n_extra
                or any(per_col.values())):
            return None
        # every expected row met one target row and every target row one expected row: as
        # the target's key is unique (a valid primary key), so are the expected rows' keys
        if spec.primary_key and self._unique_indexes_cover(t.name, pk):
            self.certified.add(t.name)
        want, have = rest[:len(aggs)], rest[len(aggs):]
        return expected, 0, 0, want, actual, 0, 0, compared, per_col, have

    def _resolved_keyed(self, t: _Table, aggs: list[tuple[str, str, sql.SQL]],
                        where: sql.Composable, params: dict[str, Any]) -> tuple[Any, ...]:
        """The counts of :meth:`_compare_keyed` after resolving the expected rows to one per
        key into ``t.resolved``, which the listing of failing rows then reads."""
        e, tg, pk, cols = t.exp, self.target(t.name), t.pk, t.columns
        doc = sql.Identifier(_DOC)
        loaded = self._loaded(t)
        same = sql.SQL("ROW({}) IS NOT DISTINCT FROM ROW({})").format(
            self._cols("e", cols), self._cols("t", cols))
        # one candidate per key: the one equal to the target row if any, else the first
        # document's; keys held only by withheld rows are not expected
        self.conn.execute(sql.SQL(
            "{create} AS SELECT DISTINCT ON ({epk}) e.*, "
            "(t.{pk0} IS NOT NULL) AS _v_in_target FROM {e} e LEFT JOIN {tg} t ON {join} "
            "WHERE e.{kind} = 'n' OR (e.{kind} = 'o' AND t.{pk0} IS NOT NULL) "
            "ORDER BY {epk}, ({same}) DESC, e.{kind}, e.{doc}").format(
            create=self._create(t.resolved), epk=self._cols("e", pk),
            pk0=sql.Identifier(pk[0]),
            e=e, tg=tg, join=self._join(pk), kind=sql.Identifier(_KIND), same=same, doc=doc))
        r = t.resolved
        self.conn.execute(sql.SQL("ANALYZE {} ({})").format(
            r, sql.SQL(", ").join(map(sql.Identifier, pk))))
        # the expected side: one scan of the resolved rows
        lead = [sql.SQL("count(*)"), sql.SQL("count(*) FILTER (WHERE NOT e._v_in_target)")]
        if loaded is not None:
            lead.append(sql.SQL("count(*) FILTER (WHERE e._v_in_target AND p.{} IS NULL)")
                        .format(sql.Identifier(pk[0])))
        eaggs = [x.format(a=sql.Identifier("e"), c=sql.Identifier(c)) for _, c, x in aggs]
        got = self.conn.execute(sql.SQL("SELECT {} FROM {} e{}").format(
            sql.SQL(", ").join(lead + eaggs), r, self._loaded_join(t, "e"))).fetchone()
        assert got is not None
        expected, n_missing = got[0], got[1]
        n_not_loaded = got[2] if loaded is not None else 0
        want = got[len(lead):]
        # the target side: one scan of the target joined to the resolved rows, for the rows
        # no document gives, the content of the others and the aggregates
        matched = sql.SQL("e.{} IS NOT NULL").format(doc)
        is_loaded = (sql.SQL("true") if loaded is None else
                     sql.SQL("p.{} IS NOT NULL").format(sql.Identifier(pk[0])))
        tlead = [sql.SQL("count(*)"),
                 sql.SQL("count(*) FILTER (WHERE NOT {} AND {})").format(matched, is_loaded),
                 sql.SQL("count(*) FILTER (WHERE NOT {} AND NOT {})").format(matched, is_loaded),
                 sql.SQL("count(*) FILTER (WHERE {} AND {})").format(matched, where)]
        tlead += [sql.SQL("count(*) FILTER (WHERE {m} AND {w} AND e.{c} IS DISTINCT FROM t.{c})")
                  .format(m=matched, w=where, c=sql.Identifier(c)) for c in cols]
        taggs = [x.format(a=sql.Identifier("t"), c=sql.Identifier(c)) if loaded is None else
                 sql.SQL("{} FILTER (WHERE {})").format(
                     x.format(a=sql.Identifier("t"), c=sql.Identifier(c)), is_loaded)
                 for _, c, x in aggs]
        got = self.conn.execute(sql.SQL("SELECT {} FROM {} t LEFT JOIN {} e ON {}{}").format(
            sql.SQL(", ").join(tlead + taggs), tg, r, self._join(pk),
            self._loaded_join(t, "t")), params).fetchone()
        assert got is not None
        actual, n_extra, n_before, compared = got[0], got[1], got[2], got[3]
        per_col = dict(zip(cols, got[4:4 + len(cols)], strict=True))
        have = got[4 + len(cols):]
        if loaded is None:
            n_before = 0
        return (expected, n_missing, n_not_loaded, want, actual, n_extra, n_before, compared,
                per_col, have)

    def _loaded_join(self, t: _Table, alias: str) -> sql.Composable:
        """Existing mode: a join giving ``p``, the run's record of the row ``alias`` (NULL
        columns for a row the run did not load); nothing when there is no record."""
        loaded = self._loaded(t)
        if loaded is None:
            return sql.SQL("")
        keys = sql.SQL(", ").join(map(sql.Identifier, t.pk))
        return sql.SQL(" LEFT JOIN (SELECT DISTINCT {k} FROM {l}) p ON {j}").format(
            k=keys, l=loaded, j=self._join(t.pk, "p", alias))

    def _compare_multiset(self, t: _Table) -> None:
        e, tg = t.exp, self.target(t.name)
        self.conn.execute(sql.SQL(
            "{create} AS SELECT * FROM {e} WHERE {kind} = 'n'").format(
            create=self._create(t.resolved), e=e, kind=sql.Identifier(_KIND)))
        cols = sql.SQL(", ").join(map(sql.Identifier, t.columns))
        r = t.resolved
        expected = self.one(sql.SQL("SELECT count(*) FROM {}").format(r))
        actual = self.one(sql.SQL("SELECT count(*) FROM {}").format(tg))
        missing = self.one(sql.SQL(
            "SELECT count(*) FROM (SELECT {c} FROM {r} EXCEPT ALL SELECT {c} FROM {tg}) x"
        ).format(c=cols, r=r, tg=tg))
        extra = self.one(sql.SQL(
            "SELECT count(*) FROM (SELECT {c} FROM {tg} EXCEPT ALL SELECT {c} FROM {e} "
            "WHERE {kind} <> 'q') x").format(c=cols, e=e, tg=tg, kind=sql.Identifier(_KIND)))
        sample = self.rows(sql.SQL(
            "SELECT row({c})::text FROM (SELECT {c} FROM {r} EXCEPT ALL SELECT {c} FROM {tg}) x "
            "LIMIT {cap}").format(c=cols, r=r, tg=tg, cap=sql.Literal(self.cap))) if missing else []
        diffs = [Difference(None, None, s, None, "row missing from the target")
                 for (s,) in sample]
        status = FAIL if missing or (extra and self.m.target.mode == "create") else (
            WARN if extra else PASS)
        self.add("reconciliation", "rows (as a multiset)", t.name, status, expected=expected,
                 actual=actual, message=f"{missing} missing, {extra} not from the source",
                 differences=diffs, differences_total=missing + extra)
        aggs = self._aggregate_exprs(t)
        if not aggs:
            return
        select = [x.format(a=sql.Identifier("x"), c=sql.Identifier(c)) for _, c, x in aggs]
        want = self.conn.execute(sql.SQL("SELECT {} FROM {} x").format(
            sql.SQL(", ").join(select), r)).fetchone()
        # in existing mode the target's rows that no document gives may be the table's own
        # from before the run (the warning above): they are left out of its aggregates
        target = (sql.SQL("(SELECT {c} FROM {tg} INTERSECT ALL SELECT {c} FROM {r})").format(
            c=cols, tg=tg, r=r) if extra and self.m.target.mode == "existing" else tg)
        have = self.conn.execute(sql.SQL("SELECT {} FROM {} x").format(
            sql.SQL(", ").join(select), target)).fetchone()
        assert want is not None and have is not None
        self._aggregate_checks(t, aggs, want, have)

    def _aggregate_exprs(self, t: _Table) -> list[tuple[str, str, sql.SQL]]:
        """Per column, the aggregates compared: (kind, column, an expression of ``{a}``, the
        table's alias, and ``{c}``, the column)."""
        exprs: list[tuple[str, str, sql.SQL]] = []
        for c in t.columns:
            ty = t.types[c]
            exprs.append(("nulls", c, sql.SQL("count({a}.{c})")))
            if ty.array:
                continue
            if ty.base in NUMERIC:
                for f in ("min", "max", "sum"):
                    exprs.append((f, c, sql.SQL(f + "({a}.{c})")))
            elif ty.base in POINTS_IN_TIME:
                for f in ("min", "max"):
                    exprs.append((f, c, sql.SQL(f + "({a}.{c})")))
            elif ty.base in TEXTS:
                exprs.append(("length", c, sql.SQL("sum(length({a}.{c}))")))
        return exprs

    def _aggregate_checks(self, t: _Table, exprs: list[tuple[str, str, sql.SQL]],
                          want: Any, have: Any) -> None:
        """The nulls and aggregates checks of ``t`` from the expected rows' aggregates
        (``want``) and the target's (``have``; in existing mode, of the rows the run loaded
        where that is recorded)."""
        if not exprs:
            return
        nulls: list[Difference] = []
        aggs: list[Difference] = []
        for (kind, c, _), w, h in zip(exprs, want, have, strict=True):
            if w == h or (isinstance(w, float) and isinstance(h, float) and _close(w, h)):
                continue
            if kind == "nulls":
                nulls.append(Difference(None, c, w, h, "non-null values: source vs target"))
            else:
                aggs.append(Difference(None, c, str(w), str(h), f"{kind} differs"))
        self.add("nulls", "non-null values per column", t.name, FAIL if nulls else PASS,
                 expected=None, actual=None, differences=nulls, differences_total=len(nulls),
                 message="nothing turned into NULL" if not nulls else
                 f"{len(nulls)} column(s) differ in non-null values")
        self.add("aggregates", "min / max / sum / length per column", t.name,
                 FAIL if aggs else PASS, differences=aggs, differences_total=len(aggs),
                 message="all agree" if not aggs else f"{len(aggs)} aggregate(s) differ")

    # ------------------------------------------------------------------ integrity

    def _unique_indexes_cover(self, name: str, key: list[str]) -> bool:
        """Whether a valid unique index of target table ``name`` enforces ``key``."""
        return any(cols <= set(key) for _, cols in self._unique_indexes(name))

    def _unique_indexes(self, name: str) -> list[tuple[str, set[str]]]:
        """The valid unique indexes of target table ``name`` on plain columns, without a
        predicate: (index name, its columns)."""
        return [(ix, set(cols)) for ix, cols in self.rows(
            "SELECT c.relname, array(SELECT a.attname FROM pg_attribute a "
            "WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indisvalid "
            "AND i.indisready AND i.indislive "
            "AND i.indpred IS NULL AND i.indexprs IS NULL AND NOT (0 = ANY(i.indkey))",
            (f'"{self.schema_name}"."{name}"',))]

    def _integrity_of(self, name: str) -> None:
        """The integrity checks of one table: orphans, duplicates, constraints, indexes."""
        from docshift.target.ddl import constraints

        existing = self.m.target.mode == "existing"
        spec = self.m.tables[name]
        tg = self.target(name)
        for c in spec.columns:
            col = spec.column(c)
            if not col.references:
                continue
            ptable, pcol = resolve_reference(self.m, col.references)
            policy = col.on_orphan or self.m.options.on_orphan
            cond = sql.SQL("t.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {p} p WHERE "
                           "p.{pc} = t.{c})").format(c=sql.Identifier(c),
                                                    p=self.target(ptable),
                                                    pc=sql.Identifier(pcol))
            n = self.one(sql.SQL("SELECT count(*) FROM {} t WHERE ").format(tg) + cond)
            sample = self.rows(sql.SQL("SELECT t.{c}::text FROM {tg} t WHERE {cond} "
                                       "LIMIT {cap}").format(
                c=sql.Identifier(c), tg=tg, cond=cond, cap=sql.Literal(self.cap))
            ) if n else []
            status = PASS if not n else WARN if policy == "keep" else FAIL
            self.add("integrity", f"orphans of {c} → {ptable}.{pcol}", name, status,
                     expected=0, actual=n, message=f"{n} orphan reference(s)"
                     + (" (kept by on_orphan: keep)" if n and policy == "keep" else ""),
                     differences=[Difference(None, c, None, v, "references no row")
                                  for (v,) in sample], differences_total=n)
        enforced = self._unique_indexes(name)
        for key in spec.unique_keys():
            by = next((ix for ix, cols in enforced if cols <= set(key)), None)
            if by is not None:
                # PostgreSQL refuses a duplicate of a valid unique index's columns, with or
                # without triggers: rows equal on the key are equal on those columns
                self.add("integrity", f"duplicates of ({', '.join(key)})", name, PASS,
                         expected=0, actual=0,
                         message=f"0 duplicated key value(s): enforced by the valid unique "
                         f"index {by}")
                continue
            idents = sql.SQL(", ").join(map(sql.Identifier, key))
            nn = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(k))
                                       for k in key)
            n = self.one(sql.SQL(
                "SELECT count(*) FROM (SELECT 1 FROM {tg} WHERE {nn} GROUP BY {k} "
                "HAVING count(*) > 1) x").format(k=idents, tg=tg, nn=nn))
            dup = self.rows(sql.SQL(
                "SELECT concat_ws(', ', {k}), count(*) FROM {tg} WHERE {nn} GROUP BY {k} "
                "HAVING count(*) > 1 LIMIT {cap}").format(
                k=idents, tg=tg, nn=nn, cap=sql.Literal(self.cap))) if n else []
            self.add("integrity", f"duplicates of ({', '.join(key)})", name,
                     FAIL if n else PASS, expected=0, actual=n,
                     message=f"{n} duplicated key value(s)",
                     differences=[Difference(None, ",".join(key), None, v,
                                             f"held by {cnt} rows") for v, cnt in dup],
                     differences_total=n)
        have = {r[0]: (r[1], r[2]) for r in self.rows(
            "SELECT conname, contype::text, convalidated FROM pg_constraint "
            "WHERE conrelid = to_regclass(%s)", (f'"{self.schema_name}"."{name}"',))}
        if not existing:
            missing, invalid = [], []
            for con in constraints(self.m, name):
                if con.kind == "index":
                    continue
                if con.name not in have:
                    missing.append(Difference(None, ",".join(con.columns), con.name, None,
                                              f"{con.kind.replace('_', ' ')} is missing"))
                elif not have[con.name][1] and con.on_orphan != "keep":
                    invalid.append(Difference(None, ",".join(con.columns), con.name,
                                              "NOT VALID", "constraint is not validated"))
            probs = missing + invalid
            self.add("integrity", "constraints present and validated", name,
                     FAIL if probs else PASS, differences=probs,
                     differences_total=len(probs),
                     message="all present and validated" if not probs else
                     f"{len(missing)} missing, {len(invalid)} not validated")
        else:
            invalid = [Difference(None, None, n, "NOT VALID", "constraint is not validated")
                       for n, (_, ok) in have.items() if not ok]
            self.add("integrity", "constraints validated", name,
                     WARN if invalid else PASS, differences=invalid,
                     differences_total=len(invalid))
        self._fk_indexed(name, spec, existing)

    def _removals(self) -> None:
        """What ``docshift.removals`` claims must hold in the target: a dropped duplicate's
        key is held by exactly one row, a nulled or dropped reference names no parent row."""
        groups: dict[tuple[str, str, str], list[ledger.Removal]] = {}
        for r in ledger.removals(self.conn, self.rep.environment["run_id"]):
            if r.table in self.tables and self.tables[r.table].present and r.column:
                groups.setdefault((r.table, r.kind, r.column), []).append(r)
        for (table, kind, column), items in groups.items():
            values = sorted({r.value for r in items if r.value is not None})
            cols = column.split(",")
            spec = self.m.tables[table]
            if any(c not in spec.columns for c in cols):
                continue
            if kind == "duplicate_dropped":
                parts = [sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in cols]
                text = parts[0] if len(parts) == 1 else sql.SQL(
                    "'(' || concat_ws(', ', {}) || ')'").format(sql.SQL(", ").join(parts))
                bad = self.rows(sql.SQL(
                    "SELECT v.v, count(t.*) FROM unnest(%s::text[]) v(v) LEFT JOIN {tg} t "
                    "ON {text} = v.v GROUP BY v.v HAVING count(t.*) <> 1").format(
                    tg=self.target(table), text=text), (values,))
                note = "the key of a dropped duplicate is not held by exactly one row"
            elif kind in ("reference_nulled", "orphan_dropped") and len(cols) == 1:
                ref = spec.column(cols[0]).references
                if not ref:
                    continue
                ptable, pcol = resolve_reference(self.m, ref)
                bad = self.rows(sql.SQL(
                    "SELECT v.v, count(p.*) FROM unnest(%s::text[]) v(v) JOIN {p} p "
                    "ON p.{pc}::text = v.v GROUP BY v.v").format(
                    p=self.target(ptable), pc=sql.Identifier(pcol)), (values,))
                note = "a reference recorded as an orphan names an existing row"
            else:
                continue
            by_value = {r.value: r.source_key for r in items}
            diffs = [Difference(by_value.get(v), column, v, f"{n} row(s)", note)
                     for v, n in bad]
            self.add("integrity", f"{kind.replace('_', ' ')} records hold", table,
                     FAIL if diffs else PASS, expected=len(values),
                     actual=len(values) - len(diffs), differences=diffs[:self.cap],
                     differences_total=len(diffs),
                     message=f"{len(items)} recorded, {len(diffs)} contradicted by the target")

    def _fk_indexed(self, name: str, spec: Any, existing: bool) -> None:
        fk_cols = [c for c in spec.columns if spec.column(c).references]
        if not fk_cols:
            return
        leading = {r[0] for r in self.rows(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(%s)",
            (f'"{self.schema_name}"."{name}"',))}
        unindexed = [Difference(None, c, "an index leading with it", None,
                                "foreign-key column has no index")
                     for c in fk_cols if c not in leading]
        bad = FAIL if spec.index_foreign_keys and not existing else WARN
        self.add("integrity", "foreign-key columns indexed", name,
                 bad if unindexed else PASS, differences=unindexed,
                 differences_total=len(unindexed))
