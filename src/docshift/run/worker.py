"""Migrate one source stream: read → build rows → load in batches, resuming at the checkpoint.

Runs in the main process (``--workers 1``) or in worker processes. Between batches it checks
whether it should stop (Ctrl+C, ``--max-errors``); a batch is always committed whole, so
stopping never leaves a partial batch behind.
"""

from __future__ import annotations

import bisect
import gc
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import psycopg

from docshift._gc import collector_paused
from docshift.errors import DocshiftError
from docshift.sources import SourceDocument, open_source
from docshift.spec.model import Mapping
from docshift.target.connect import connect
from docshift.target.load import load_batch, table_copies
from docshift.target.state import (
    Checkpoint,
    Unit,
    doc_id,
    load_checkpoint,
    save_checkpoint,
    set_estimate,
    take_unit_lease,
)
from docshift.transform.columnar import (
    COLUMNAR_ITEM,
    COLUMNAR_ROWS,
    ColumnarDecoder,
    ColumnarPart,
    NotColumnar,
    compile_columnar,
    imported,
)
from docshift.transform.convert import adapt_connection, convert_options
from docshift.transform.rows import StreamPlan, compile_streams


@dataclass
class Progress:
    """One progress report from a stream."""

    stream: str
    kind: str  # start | batch | done | stopped
    docs: int = 0
    rows: dict[str, int] | None = None
    rejected: int = 0
    estimate: int | None = None
    reject_classes: dict[str, int] | None = None
    path: str | None = None
    """With ``start``: how the unit's rows are built (``columnar``, or why not)."""
    columnar_docs: int = 0
    """With ``batch``: how many of its documents the columnar path built."""


Report = Callable[[Progress], None]

FULL_GC_EVERY = 20
"""Batches between full garbage collections while loading (see run_unit)."""


def run_unit(m: Mapping, dsn: str, run_id: int, unit: Unit, batch_size: int,
             should_stop: Callable[[], bool], report: Report,
             on_wait: Callable[[str], None] | None = None,
             plans: dict[str, StreamPlan] | None = None, columnar: bool | None = None) -> bool:
    """Load ``unit`` from its checkpoint to its end; False if stopped before the end.

    The unit is loaded under its lease (held on the loading connection for as long as it
    lives) and every batch moves the checkpoint by compare-and-set, so no two processes can
    ever commit batches of the same unit, whoever started them.

    Only the plan of the unit's stream is compiled; ``plans`` (stream → plan, for one
    mapping) keeps it for the next unit of the same stream that this process loads.
    ``columnar``: True, load through the columnar path where it applies
    (:mod:`docshift.transform.columnar`); False, every document through the row path; None,
    the columnar path for a unit of at least :data:`COLUMNAR_MIN_DOCS` documents.
    """
    # the collector is paused while loading and run every FULL_GC_EVERY batches instead
    with collector_paused():
        return _run_unit(m, dsn, run_id, unit, batch_size, should_stop, report, on_wait,
                         {} if plans is None else plans, columnar)


def _run_unit(m: Mapping, dsn: str, run_id: int, unit: Unit, batch_size: int,
              should_stop: Callable[[], bool], report: Report,
              on_wait: Callable[[str], None] | None, plans: dict[str, StreamPlan],
              columnar: bool | None) -> bool:
    stream = unit.name
    plan = stream_plan(m, unit.source_stream, plans)
    copies = table_copies(m, plan)
    source = open_source(m.source, dsn)
    try:
        with connect(dsn) as conn:
            # Safe for exactly-once: a commit lost in a server crash loses the batch and its
            # checkpoint together, and the resumed run loads the batch again.
            adapt_connection(conn)
            conn.execute("SET synchronous_commit = off")
            take_unit_lease(conn, run_id, stream, on_wait)
            cp = load_checkpoint(conn, run_id, stream)
            if cp.done:
                report(Progress(stream, "done"))
                return True
            s = source.stream(unit.source_stream)
            estimate = unit.estimate
            if estimate is None:
                estimate = s.estimate_count() if unit.start is None and unit.end is None else (
                    unit_estimate(s, unit))
                set_estimate(conn, run_id, stream, estimate)
            decoder, path = _row_building(m, plan, s, columnar, estimate)
            columnar_here = decoder is not None
            report(Progress(stream, "start", docs=cp.docs_read, estimate=estimate,
                            rows=dict(cp.rows_written or {}), rejected=cp.docs_rejected,
                            path=path))
            started = time.perf_counter()
            after = cp.position if cp.position is not None else unit.start
            end = unit.end
            past = getattr(s, "past", None)
            if end is not None and after is not None and past(after, end):
                raise DocshiftError(f"work unit {stream}: checkpoint {after!r} lies beyond "
                                    f"the unit's end {end!r}; the source changed",
                                    hint="Re-run with --restart.")
            if columnar_here:
                batches = _columnar_batches(s, decoder, plan, unit, cp, after, end, batch_size)
            else:
                batches = _row_batches(s, plan, unit, cp, after, end, batch_size)
            for batch, part, last in batches:
                # the unit's last batch also marks it done, in the same transaction
                cp.done = last
                _flush(conn, m, run_id, unit, batch, copies, cp, started, report, part)
                started = time.perf_counter()
                if last:
                    break
                if should_stop():
                    report(Progress(stream, "stopped"))
                    return False
            if not cp.done:
                finished = Checkpoint(**{**cp.__dict__, "done": True})
                save_checkpoint(conn, run_id, finished, cp)
                cp.done = True
            report(Progress(stream, "done"))
            return True
    finally:
        source.close()


Batch = tuple[list[Any], ColumnarPart | None, bool]
"""One batch to commit: its documents in order (``load.Item``), the rows the columnar path
built for some of them (their items are placeholders), and whether it ends the unit."""


def _row_batches(s: Any, plan: StreamPlan, unit: Unit, cp: Checkpoint, after: str | None,
                 end: str | None, batch_size: int) -> Iterator[Batch]:
    """The unit's batches, every document built by the row path (``StreamPlan.build``)."""
    past = getattr(s, "past", None)
    batch: list[Any] = []
    for sdoc in s.read(after=after):
        if end is not None and past(sdoc.position, end):
            # the end document vanished from a live source: never read into the next
            # unit's range
            break
        batch.append((sdoc, plan.build(sdoc, doc_id(unit.number, cp.docs_read + len(batch)))))
        last = end is not None and sdoc.position == end
        if len(batch) >= batch_size or last:
            yield batch, None, last
            batch = []
            if last:
                return
    if batch:
        yield batch, None, True


def _columnar_batches(s: Any, decoder: ColumnarDecoder, plan: StreamPlan, unit: Unit,
                      cp: Checkpoint, after: str | None, end: str | None,
                      batch_size: int) -> Iterator[Batch]:
    """The unit's batches, its documents read in runs of raw BSON: the columnar path
    builds the rows of those it can, the row path the others (see ``ColumnarPart``)."""
    end_at = None if end is None else int(end)
    batch: list[Any] = []
    part = ColumnarPart(decoder)

    def ready() -> tuple[list[Any], ColumnarPart]:
        """The batch so far, its columnar rows built; a new one begins."""
        nonlocal batch, part
        part.finish(batch, plan, doc_id(unit.number, cp.docs_read))
        out = (batch, part)
        batch, part = [], ColumnarPart(decoder)
        return out

    for piece in s.read_runs(after=after):
        if type(piece) is SourceDocument:  # a damaged region: the row path quarantines it
            at = int(piece.position)
            if end_at is not None and at > end_at:
                break
            batch.append((piece, plan.build(piece, doc_id(unit.number,
                                                          cp.docs_read + len(batch)))))
            last = end_at is not None and at == end_at
            if len(batch) >= batch_size or last:
                b, p = ready()
                yield b, p, last
                if last:
                    return
            continue
        ends = piece.ends
        count = len(ends)
        last_here = False
        if end_at is not None:
            count = bisect.bisect_right(ends, end_at - piece.base)
            last_here = count > 0 and piece.base + ends[count - 1] == end_at
        i = 0
        while i < count:
            j = min(count, i + batch_size - len(batch))
            part.add(piece, i, j, len(batch))
            batch.extend(repeat(COLUMNAR_ITEM, j - i - 1))
            batch.append((SourceDocument("", None, piece.position(j - 1)), COLUMNAR_ROWS))
            i = j
            last = last_here and i == count
            if len(batch) >= batch_size or last:
                b, p = ready()
                yield b, p, last
                if last:
                    return
        if count < len(ends):
            break  # past the unit's end
    if batch:
        b, p = ready()
        yield b, p, True


COLUMNAR_MIN_DOCS = 20_000
"""Fewest documents in a unit for which the columnar path is chosen by default: its
libraries take about 0.4 s of CPU to import in each process, which it wins back only on
some ten thousand documents (unless they are imported already)."""


def _row_building(m: Mapping, plan: StreamPlan, s: Any, columnar: bool | None,
                  estimate: int | None) -> tuple[ColumnarDecoder | None, str]:
    """The unit's columnar decoder (None: the row path) and, for --verbose, which it is."""
    if columnar is False:
        return None, "--no-columnar"
    if not hasattr(s, "read_runs"):
        return None, f"{m.source.kind} sources are read one document at a time"
    if (columnar is None and not imported() and estimate is not None
            and estimate < COLUMNAR_MIN_DOCS):
        return None, (f"fewer than {COLUMNAR_MIN_DOCS:,} documents; --columnar builds them "
                      "in columns")
    decoder = columnar_decoder(m, plan)
    return decoder, "columnar" if decoder is not None else str(plan.columnar_reason)


def columnar_decoder(m: Mapping, plan: StreamPlan) -> ColumnarDecoder | None:
    """The columnar decoder of ``plan``'s stream (kept on the plan), or None where the
    columnar path does not apply (``plan.columnar_reason`` says why)."""
    if plan.columnar is None:
        try:
            plan.columnar = ColumnarDecoder(compile_columnar(m, plan), convert_options(m.options))
        except NotColumnar as exc:
            plan.columnar, plan.columnar_reason = False, str(exc)
    return plan.columnar or None


def stream_plan(m: Mapping, stream: str, plans: dict[str, StreamPlan]) -> StreamPlan:
    """The compiled plan of ``stream``, from ``plans`` or compiled (alone) into it.

    A plan can serve unit after unit: besides the compiled feeds it keeps only memos of
    what it has worked out from document shapes, which hold for any document of the
    stream, whichever unit or run it is read in.
    """
    plan = plans.get(stream)
    if plan is None:
        plan = plans[stream] = compile_streams(m, streams=[stream])[stream]
    return plan


def unit_estimate(s: object, unit: Unit) -> int | None:
    """Documents in a key range, when the stream can say; else None."""
    count = getattr(s, "count_between", None)
    return count(unit.start, unit.end) if count else None


def _flush(conn: psycopg.Connection, m: Mapping, run_id: int, unit: Unit, batch: list,
           copies: dict, cp, started: float, report: Report,
           part: ColumnarPart | None = None) -> None:
    stream = unit.name
    result = load_batch(conn, run_id, unit, batch, copies, cp,
                        time.perf_counter() - started, part)
    report(Progress(stream, "batch", docs=len(batch), rows=result.rows,
                    rejected=result.rejected, reject_classes=result.reject_classes,
                    columnar_docs=part.built if part is not None else 0))
    n = len(batch)
    # Freed first to last, the order they were made in: list.clear() frees last to first,
    # which walks memory backwards and costs a third more (a batch is megabytes of objects).
    for i in range(n):
        batch[i] = None
    batch.clear()
    # rows are freed by reference counting; cycles (rare) are collected now and then
    if (cp.docs_read // max(n, 1)) % FULL_GC_EVERY == 0:
        gc.collect()


PARENT_CHECK_SECONDS = 0.5
"""How often a worker checks that the process that started it is still there."""


def exit_with_parent(parent_pid: int) -> None:
    """End this worker the moment its parent dies, so it never loads on without it.

    On Linux the kernel sends SIGKILL when the parent goes (PR_SET_PDEATHSIG); elsewhere,
    and as a second line, a thread watches the parent's pid. The server rolls back the
    batch in flight, exactly as when the whole process group is killed.
    """
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    except (OSError, AttributeError):
        pass

    def orphaned() -> bool:
        return os.getppid() != parent_pid

    if orphaned():
        os._exit(1)

    def watch() -> None:
        while not orphaned():
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="docshift-parent-watch", daemon=True).start()


def worker_main(m: Mapping, dsn: str, batch_size: int, tasks: Any, reports: Any,
                 stop: Any, parent_pid: int, columnar: bool | None = None) -> None:
    """The body of a ``--workers`` process: load units from ``tasks`` until told to stop.

    It lives here rather than in ``run.migrate`` so that a worker imports only the load
    path (spawned processes import the module of their target)."""
    exit_with_parent(parent_pid)
    # Ctrl+C reaches every process of the group; the parent decides, and tells us via stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def message(text: str) -> None:
        reports.put(("message", text))

    plans: dict[str, StreamPlan] = {}  # the mapping is the same for every task

    while not stop.is_set():
        task = tasks.get()
        if task is None:
            return
        run_id, unit = task
        try:
            run_unit(m, dsn, run_id, unit, batch_size, stop.is_set, reports.put,
                     on_wait=message, plans=plans, columnar=columnar)
        except DocshiftError as exc:
            reports.put(("error", unit.name, exc.message, exc.hint))
            return
        except Exception:
            reports.put(("error", unit.name, traceback.format_exc(), None))
            return
