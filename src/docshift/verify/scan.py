"""The verifier's pass over the source: one part (a stream, or one of the run's work units of
it) read with the verifier's own reader, giving the part's ledger and its expected rows as
binary COPY data.

Parts are independent, so they run side by side in worker processes. Each worker copies
its expected rows into the verifier's tables itself, on a connection of its own, when those
tables are in the scratch schema; when they are temporary tables of the verifier's session,
the COPY data goes back to that session, which copies it.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import queue
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from typing import Any

from docshift._gc import collector_paused
from docshift.errors import DocshiftError
from docshift.spec.model import Mapping
from docshift.verify.expect import FILTERED, IGNORED, LOADED, REJECTED, UNMATCHED, StreamReader
from docshift.verify.ledger import Quarantined
from docshift.verify.model import Difference, DocumentCounts

NORMAL, OPTIONAL, QUARANTINED = "n", "o", "q"
"""Kinds of expected rows: must be in the target; may be (a row-level quarantine entry of an
older finalization removed some of the document's rows in that table); must not be."""

ORDINAL_BITS = 40
"""A document's number is ``prefix << ORDINAL_BITS | ordinal``, as the run numbers them."""

CHUNK_BYTES = 1 << 20
"""COPY data a part gathers per table before handing it on."""

GC_EVERY = 100_000
"""Documents read between full garbage collections (the collector is paused meanwhile)."""

FLUSH_BYTES = 8 << 20
"""COPY data gathered per table before it is copied into the verifier's table of it (bounded
memory, and few COPY statements)."""

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
"""The header and trailer of PostgreSQL's binary COPY format, around the parts' rows."""

_MASK = (1 << 64) - 1


def priority(seed: int, doc_no: int) -> int:
    """A document's place in the random sample (splitmix64 of its number and the seed): the
    ``N`` lowest of a stream are its sample, whichever part read them."""
    x = (doc_no + (seed + 1) * 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@dataclass(frozen=True)
class Part:
    """What one pass reads: documents of ``stream`` after ``start`` up to ``end``."""

    index: int
    stream_number: int
    stream: str
    start: str | None
    end: str | None
    prefix: int
    """Document numbers are ``prefix << 40 | ordinal``: the run's unit number when the run
    numbered the part's documents (``numbered``), else a number of the verifier's own."""
    numbered: bool


@dataclass
class Entries:
    """The quarantine entries a part may meet, by (index in the whole list, entry)."""

    by_doc: dict[int, list[tuple[int, Quarantined]]] = field(default_factory=dict)
    by_key: dict[str, list[tuple[int, Quarantined]]] = field(default_factory=dict)


@dataclass
class PartResult(DocumentCounts):
    """What one part found, merged per stream by the verifier."""

    index: int
    unaccounted_diffs: list[Difference] = field(default_factory=list)
    unexpected_diffs: list[Difference] = field(default_factory=list)
    unexpected: int = 0
    unmapped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    sample: list[tuple[int, int]] = field(default_factory=list)
    """(priority, document number) of the part's ``sample`` lowest-priority loaded documents."""
    used: list[int] = field(default_factory=list)
    partly_quarantined: list[int] = field(default_factory=list)
    copied: list[int] = field(default_factory=list)
    """Bytes of expected rows this part's process copied, per table (when it copies)."""


Sink = Callable[[int, bytes], None]
"""Takes a table's (by index) COPY data: rows in PostgreSQL's binary COPY row format."""


class TableCopy:
    """A :data:`Sink` that copies each table's rows into the verifier's table of it, on
    ``conn``, :data:`FLUSH_BYTES` at a time."""

    def __init__(self, conn: Any, targets: list[Any],
                 timer: Callable[[], Any] | None = None) -> None:
        from psycopg import sql

        self.conn = conn
        self.statements = [sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(t)
                           for t in targets]
        self.timer = timer
        self.buffers: list[list[bytes]] = [[] for _ in targets]
        self.buffered = [0] * len(targets)
        self.copied = [0] * len(targets)

    def __call__(self, i: int, data: bytes) -> None:
        self.buffers[i].append(data)
        self.buffered[i] += len(data)
        if self.buffered[i] >= FLUSH_BYTES:
            self.flush(i)

    def flush(self, i: int | None = None) -> None:
        """Copy what is gathered for table ``i`` (every table by default)."""
        for j in range(len(self.buffers)) if i is None else (i,):
            if not self.buffers[j]:
                continue
            with ((self.timer or nullcontext)(), self.conn.cursor() as cur,
                  cur.copy(self.statements[j]) as copy):
                copy.write(COPY_SIGNATURE)
                for data in self.buffers[j]:
                    copy.write(data)
                copy.write(COPY_TRAILER)
            self.copied[j] += self.buffered[j]
            self.buffers[j].clear()
            self.buffered[j] = 0


class _Encoder:
    """Rows of one table in binary COPY format, without a connection."""

    def __init__(self, types: list[str]) -> None:
        from psycopg import adapt, postgres, pq

        # psycopg's own row formatter (C-accelerated); it is what Copy.write_row calls
        from psycopg._copy_base import format_row_binary

        from docshift.transform.convert import adapt_connection, adapt_uuid_wire

        adapters = adapt.AdaptersMap(postgres.adapters)
        adapt_connection(adapters)  # jsonb as the loader writes it, through orjson
        adapt_uuid_wire(adapters)  # uuid values as their 16 bytes (ids.to_uuid_bytes)
        self.tx = adapt.Transformer(adapters)
        self.tx.set_dumper_types([adapters.types.get_oid(t) for t in types], pq.Format.BINARY)
        self.format = format_row_binary
        self.buffer = bytearray()


def copy_types(columns: list[str], types: dict[str, Any]) -> list[str]:
    """The COPY types of a table's expected rows: its columns, then key, number, kind."""
    return [types[c].copy_name for c in columns] + ["text", "int8", "text"]


def scan(m: Mapping, dsn: str, part: Part, entries: Entries, sample: int, seed: int,
         cap: int, tables: list[tuple[str, list[str]]], sink: Sink) -> PartResult:
    """Read ``part`` and account for each of its documents; expected rows go to ``sink``."""
    from docshift.sources import open_source

    index = {name: i for i, (name, _) in enumerate(tables)}
    encoders = [_Encoder(types) for _, types in tables]
    res = PartResult(part.index)
    reader = StreamReader(m, part.stream)
    heap: list[tuple[int, int]] = []  # (-priority, doc_no): the lowest priorities kept

    def emit(table: str, rows: list[tuple[Any, ...]], key: str, doc_no: int,
             kind: str) -> None:
        i = index[table]
        enc = encoders[i]
        tail, fmt, tx, buf = (key, doc_no, kind), enc.format, enc.tx, enc.buffer
        for r in rows:
            fmt(r + tail, tx, buf)
        if len(enc.buffer) >= CHUNK_BYTES:
            sink(i, bytes(enc.buffer))
            enc.buffer.clear()

    # the collector is paused while reading, as in the loader's workers, and run every
    # GC_EVERY documents instead
    with collector_paused(), closing(open_source(m.source, dsn)) as src:
        stream = src.stream(part.stream)
        past = getattr(stream, "past", None)
        base = part.prefix << ORDINAL_BITS
        by_docs = entries.by_doc if part.numbered else None
        by_keys = entries.by_key
        for ordinal, sdoc in enumerate(stream.read(after=part.start)):
            if part.end is not None and past is not None and past(sdoc.position, part.end):
                break
            res.documents += 1
            if not res.documents % GC_EVERY:
                gc.collect()
            doc_no = base | ordinal
            exp = reader.read(sdoc)
            # most documents meet no quarantine entry: two failed lookups tell
            by_doc = by_docs.get(doc_no) if by_docs else None
            qs = [iq for iq in by_doc if part.stream in iq[1].streams
                  and iq[1].source_key == sdoc.key] if by_doc else []
            if by_keys:
                qs += by_keys.get(sdoc.key, ())
            if qs:
                res.used += [i for i, _ in qs]
                whole = [q for _, q in qs if q.whole_document]
                res.quarantined += 1
                if exp.outcome == LOADED:
                    partial = {q.table for _, q in qs if not q.whole_document}
                    if not whole:
                        res.partly_quarantined.append(doc_no)
                    for table, rows in exp.rows.items():
                        kind = (QUARANTINED if whole else
                                OPTIONAL if table in partial else NORMAL)
                        emit(table, rows, sdoc.key, doc_no, kind)
                elif exp.outcome != REJECTED:
                    res.unexpected += 1
                    if len(res.unexpected_diffs) < cap:
                        res.unexpected_diffs.append(Difference(
                            sdoc.key, None, exp.outcome, "quarantined",
                            f"quarantined ({qs[0][1].error_class}) although the mapping says "
                            f"it is {exp.outcome}"))
            elif exp.outcome == REJECTED:
                res.unaccounted += 1
                if len(res.unaccounted_diffs) < cap:
                    res.unaccounted_diffs.append(Difference(
                        sdoc.key, exp.field, exp.error_class, None,
                        f"not in the target and not in the quarantine: it cannot be converted "
                        f"({exp.error_class}"
                        + (f" in table {exp.table}" if exp.table else "") + f": {exp.message})"))
            elif exp.outcome == LOADED:
                res.loaded += 1
                for table, rows in exp.rows.items():
                    emit(table, rows, sdoc.key, doc_no, NORMAL)
                if sample:
                    p = -priority(seed, doc_no)
                    if len(heap) < sample:
                        heapq.heappush(heap, (p, doc_no))
                    elif p > heap[0][0]:
                        heapq.heapreplace(heap, (p, doc_no))
                for path in reader.unmapped(sdoc, exp.rows):
                    res.unmapped[path] += 1
                    res.examples.setdefault(path, sdoc.key)
            elif exp.outcome == FILTERED:
                res.filtered += 1
            elif exp.outcome == IGNORED:
                res.ignored += 1
            elif exp.outcome == UNMATCHED:
                res.unmatched += 1
            if part.end is not None and sdoc.position == part.end:
                break
    for i, enc in enumerate(encoders):
        if enc.buffer:
            sink(i, bytes(enc.buffer))
    res.sample = sorted((-p, d) for p, d in heap)
    return res


# ---------------------------------------------------------------------- worker processes

QUEUE_CHUNKS = 32
"""COPY chunks in flight from the workers: bounds memory when the server copies slowly."""

_WAIT_SECONDS = 1.0


def _worker(m: Mapping, dsn: str, args: tuple[Any, ...], into: list[Any] | None,
            tasks: Any, out: Any, parent_pid: int) -> None:
    from docshift.run.worker import exit_with_parent

    # killed outright, the verifier takes its workers along: none reads on without it
    exit_with_parent(parent_pid)
    # what the process imported lives as long as it does: left out of the collections
    gc.freeze()
    copier = None
    try:
        if into is not None:
            from docshift.target.connect import connect

            try:
                copier = TableCopy(connect(dsn), into)
            except DocshiftError as exc:
                out.put(("error", -1, (str(exc), getattr(exc, "hint", None))))
                return
            except BaseException:  # noqa: BLE001 - reported to the verifier, which raises it
                out.put(("error", -1, ("a verification worker process could not connect:\n"
                                       f"{traceback.format_exc()}", None)))
                return
        while True:
            task = tasks.get()
            if task is None:
                return
            part, entries = task
            try:
                if copier is None:
                    res = scan(m, dsn, part, entries, *args,
                               sink=lambda i, data: out.put(("rows", i, data)))
                else:
                    res = scan(m, dsn, part, entries, *args, sink=copier)
                    copier.flush()
                    res.copied, copier.copied = copier.copied, [0] * len(into or ())
            except DocshiftError as exc:
                # sent as text: an exception with keyword arguments does not survive pickling
                out.put(("error", part.index, (str(exc), getattr(exc, "hint", None))))
                return
            except BaseException:  # noqa: BLE001 - reported to the verifier, which raises it
                out.put(("error", part.index, (f"verifying {part.stream} failed in a worker "
                                               f"process:\n{traceback.format_exc()}", None)))
                return
            out.put(("done", part.index, res))
    finally:
        if copier is not None:
            copier.conn.close()


def scan_parallel(m: Mapping, dsn: str, work: list[tuple[Part, Entries]], workers: int,
                  args: tuple[Any, ...], sink: Sink,
                  into: list[Any] | None = None) -> list[PartResult]:
    """:func:`scan` every part in ``workers`` processes. With ``into`` (the verifier's
    tables, as ``sql.Identifier``, in the order of ``args``' tables) each process copies its
    rows there itself and each result says how much (``copied``); else COPY data reaches
    ``sink`` here, in this process, in whatever order the parts produce it."""
    ctx = multiprocessing.get_context("spawn")
    tasks = ctx.Queue()
    out = ctx.Queue(QUEUE_CHUNKS)
    # largest first would need sizes; source order keeps neighbouring units apart enough
    for w in work:
        tasks.put(w)
    procs = [ctx.Process(target=_worker, args=(m, dsn, args, into, tasks, out, os.getpid()),
                         daemon=True)
             for _ in range(workers)]
    for _ in procs:
        tasks.put(None)
    for p in procs:
        p.start()
    results: dict[int, PartResult] = {}
    try:
        while len(results) < len(work):
            try:
                msg = out.get(timeout=_WAIT_SECONDS)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    codes = [p.exitcode for p in procs]
                    raise DocshiftError(f"verification worker processes ended unexpectedly "
                                        f"(exit codes {codes})") from None
                continue
            if msg[0] == "rows":
                sink(msg[1], msg[2])
            elif msg[0] == "done":
                results[msg[1]] = msg[2]
            else:
                message, hint = msg[2]
                raise DocshiftError(message, hint=hint)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return [results[w.index] for w, _ in work]
