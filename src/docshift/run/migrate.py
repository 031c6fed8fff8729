"""Orchestrate a migration run: prepare, load every stream (in parallel), finalize.

A run is identified by a row in ``docshift.runs``. Running again with the same mapping
resumes the unfinished run from its checkpoints; a finished run is reported as complete;
``restart=True`` undoes the previous run's effect on the target and starts over.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from docshift.errors import DocshiftError, RunAborted
from docshift.run.finalize import FinalizeReport, finalize
from docshift.run.worker import Progress, run_unit
from docshift.spec.model import Mapping
from docshift.target.connect import connect
from docshift.target.prepare import (
    empty_target,
    prepare_create,
    prepare_existing,
    resolve_existing_types,
)
from docshift.target.state import (
    Unit,
    add_units,
    ensure_state,
    latest_run,
    set_run_status,
    start_run,
    units,
)
from docshift.transform.rows import compile_streams


class Interrupted(DocshiftError):
    """The run stopped at a batch boundary on request (Ctrl+C); re-running resumes it."""


@dataclass
class RunOptions:
    workers: int = 1
    batch_size: int = 5000
    restart: bool = False
    max_errors: int | None = None
    split_min_docs: int | None = None


@dataclass
class TableSummary:
    table: str
    documents: int
    rows: int
    quarantined: int
    seconds: float


@dataclass
class RunResult:
    run_id: int
    already_complete: bool = False
    tables: list[TableSummary] = field(default_factory=list)
    quarantined: int = 0
    unmatched_keys: int = 0
    unmapped: list[tuple[str, str, int]] = field(default_factory=list)
    finalize: FinalizeReport | None = None
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "already_complete": self.already_complete,
            "seconds": round(self.seconds, 3),
            "quarantined": self.quarantined,
            "unmatched_keys": self.unmatched_keys,
            "tables": [t.__dict__ for t in self.tables],
            "unmapped": [{"stream": s, "path": p, "count": n} for s, p, n in self.unmapped],
            "warnings": self.finalize.warnings if self.finalize else [],
            "failures": self.finalize.failures if self.finalize else [],
        }


class UI:
    """Callbacks for progress display; the default does nothing."""

    def progress(self, p: Progress) -> None: ...
    def step(self, name: str) -> None: ...
    def message(self, text: str) -> None: ...


def mapping_hash(m: Mapping) -> str:
    return hashlib.sha256(m.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def migrate(m: Mapping, dsn: str, opts: RunOptions, ui: UI | None = None) -> RunResult:
    """Run (or resume) the migration described by ``m`` into ``dsn``."""
    ui = ui or UI()
    started = time.perf_counter()
    with connect(dsn) as conn:
        ensure_state(conn)
        _lock_run(conn)
        if m.target.mode == "existing":
            resolve_existing_types(conn, m)
        h = mapping_hash(m)
        run = latest_run(conn)
        if run and opts.restart:
            for line in empty_target(conn, m):
                ui.message(line)
            ensure_state(conn)
            run = None
        if run and run.mapping_hash != h:
            state = "finished" if run.status == "completed" else "unfinished"
            raise DocshiftError(
                f"the {state} run {run.run_id} in this database used a different mapping",
                hint="Re-run with --restart to undo it and start over with this mapping.")
        if run and run.status == "completed":
            return _summarize(conn, m, run.run_id, started, already=True)
        pool = WorkerPool(m, dsn, opts) if opts.workers > 1 else None
        try:
            run_id = _prepare(conn, m, dsn, opts, run, h)
            try:
                _load_streams(m, dsn, run_id, units(conn, run_id), opts, ui, conn, pool)
            except Interrupted:
                set_run_status(conn, run_id, "interrupted")
                raise
            except RunAborted:
                set_run_status(conn, run_id, "aborted")
                raise
        finally:
            if pool is not None:
                pool.shutdown()
        pending = conn.execute("SELECT stream FROM docshift.checkpoints WHERE run_id = %s "
                               "AND NOT done ORDER BY stream", (run_id,)).fetchall()
        if pending:
            set_run_status(conn, run_id, "interrupted")
            raise DocshiftError(
                "not every work unit finished: " + ", ".join(r[0] for r in pending),
                hint="Re-run to resume from the checkpoints.")
        rep = finalize(conn, m, run_id, log=ui.step, dsn=dsn, parallel=opts.workers)
        set_run_status(conn, run_id, "completed")
        result = _summarize(conn, m, run_id, started)
        result.finalize = rep
        return result


def _prepare(conn: psycopg.Connection, m: Mapping, dsn: str, opts: RunOptions,
             run: Any, mapping_hash_: str) -> int:
    """Start a new run (target prepared, work units planned) or resume ``run``."""
    if run is not None:
        set_run_status(conn, run.run_id, "running")
        return int(run.run_id)
    if m.target.mode == "create":
        prepare_create(conn, m)
    else:
        prepare_existing(conn, m)
    run_id = start_run(conn, mapping_hash_, m.path, {"workers": opts.workers,
                                                     "batch_size": opts.batch_size})
    add_units(conn, run_id, plan_units(m, dsn, opts))
    return run_id


RUN_LOCK = "docshift.run"
"""Advisory lock held by the process that runs a migration: one run per database at a time."""


def _lock_run(conn: psycopg.Connection) -> None:
    # a session lock: released when this connection closes, also by a crash or kill -9
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (RUN_LOCK,)).fetchone()
    if not got or not got[0]:
        raise DocshiftError(
            "another docshift run is in progress against this database",
            hint="Wait for it to finish, or stop it (Ctrl+C) and re-run to resume.")


def _rejected_so_far(conn: psycopg.Connection, run_id: int) -> int:
    return conn.execute("SELECT count(*) FROM docshift.rejects WHERE run_id = %s",
                        (run_id,)).fetchone()[0]  # type: ignore[index]


SPLIT_MIN_DOCS = 50_000
"""A stream is split into key ranges for parallel workers only from this size on."""


def plan_units(m: Mapping, dsn: str, opts: RunOptions) -> list[Unit]:
    """The run's work units, largest streams first; large ones split into key ranges.

    Units are decided once, when the run starts, and stored with the checkpoints, so a
    resumed run reads exactly the same ranges whatever ``--workers`` it is given.
    """
    from docshift.sources import open_source

    src = open_source(m.source, dsn)
    try:
        sized = []
        for name in compile_streams(m):
            stream = src.stream(name)
            n = stream.estimate_count() or 0
            split = getattr(stream, "split", None)
            split_min = opts.split_min_docs or SPLIT_MIN_DOCS
            if opts.workers > 1 and split is not None and n >= split_min:
                bounds = [None, *split(opts.workers), None]
                count = getattr(stream, "count_between", None)
                parts = [Unit(f"{name}#{i + 1}", name, bounds[i], bounds[i + 1],
                              count(bounds[i], bounds[i + 1]) if count else None)
                         for i in range(len(bounds) - 1)]
                sized += [(u.estimate or n / len(parts), u) for u in parts]
            else:
                sized.append((n, Unit(name, name, estimate=n or None)))
    finally:
        src.close()
    # numbers follow source order (doc_ids order documents by them); the load order is
    # largest first
    numbered = {u.name: replace(u, number=i) for i, (_, u) in enumerate(sized, start=1)}
    return [numbered[u.name] for _, u in sorted(sized, key=lambda su: -su[0])]


def _load_streams(m: Mapping, dsn: str, run_id: int, streams: list[Unit], opts: RunOptions,
                  ui: UI, conn: psycopg.Connection, pool: WorkerPool | None) -> None:
    stop = threading.Event()
    errors = [_rejected_so_far(conn, run_id)]
    aborted: list[str] = []

    def on_progress(p: Progress) -> None:
        ui.progress(p)
        errors[0] += p.rejected if p.kind == "batch" else 0
        if opts.max_errors is not None and errors[0] > opts.max_errors and not aborted:
            aborted.append(f"{errors[0]} documents quarantined, more than --max-errors "
                           f"{opts.max_errors}")
            stop.set()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        ui.message("Stopping after the current batch… (Ctrl+C again to stop at once)")
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if pool is None:
            for s in streams:
                if not run_unit(m, dsn, run_id, s, opts.batch_size, stop.is_set, on_progress):
                    break
        else:
            pool.run(run_id, streams, on_progress, stop)
    finally:
        signal.signal(signal.SIGINT, previous)
    if aborted:
        raise RunAborted(f"run aborted: {aborted[0]}",
                         hint="See them with `docshift rejects`; re-run to continue.")
    if stop.is_set():
        raise Interrupted("interrupted; re-run the same command to resume")


def _worker_main(m: Mapping, dsn: str, batch_size: int, tasks: Any, reports: Any,
                 stop: Any) -> None:
    local = threading.Event()
    # Ctrl+C reaches every process of the group: finish the batch, then stop
    signal.signal(signal.SIGINT, lambda *_: local.set())

    def should_stop() -> bool:
        return local.is_set() or stop.is_set()

    while not should_stop():
        task = tasks.get()
        if task is None:
            return
        run_id, unit = task
        try:
            run_unit(m, dsn, run_id, unit, batch_size, should_stop, reports.put)
        except Exception:
            reports.put(("error", unit.name, traceback.format_exc()))
            return


class WorkerPool:
    """Worker processes for ``--workers N``.

    They are started before the run is prepared, so that their start-up (a new interpreter
    importing docshift) overlaps the preparation instead of delaying the load.
    """

    def __init__(self, m: Mapping, dsn: str, opts: RunOptions) -> None:
        ctx = mp.get_context("spawn")
        self.tasks = ctx.Queue()
        self.reports = ctx.Queue()
        self.stop = ctx.Event()
        self.procs = [ctx.Process(target=_worker_main, daemon=True,
                                  args=(m, dsn, opts.batch_size, self.tasks, self.reports,
                                        self.stop))
                      for _ in range(opts.workers)]
        for p in self.procs:
            p.start()
        self._closed = False

    def run(self, run_id: int, units: list[Unit], on_progress: Callable[[Progress], None],
            stop: threading.Event) -> None:
        """Load ``units`` on the workers; returns when every worker has finished."""
        for u in units:
            self.tasks.put((run_id, u))
        self.close()
        failure = None
        while True:
            try:
                msg = self.reports.get(timeout=0.2)
            except queue.Empty:
                if stop.is_set():
                    self.stop.set()
                if not any(p.is_alive() for p in self.procs):
                    break
                continue
            if isinstance(msg, tuple):
                failure = failure or msg
                self.stop.set()
            else:
                on_progress(msg)
            if stop.is_set():
                self.stop.set()
        for p in self.procs:
            p.join()
        # drain what the last batches reported
        while True:
            try:
                msg = self.reports.get_nowait()
            except queue.Empty:
                break
            if not isinstance(msg, tuple):
                on_progress(msg)
        if failure:
            raise DocshiftError(f"work unit {failure[1]!r} failed:\n{failure[2]}")
        crashed = [p.exitcode for p in self.procs if p.exitcode not in (0, None)]
        if crashed and not stop.is_set():
            raise DocshiftError(
                f"{len(crashed)} worker process(es) ended unexpectedly (exit codes "
                f"{', '.join(map(str, crashed))})",
                hint="Nothing committed is lost: re-run to resume from the checkpoints.")

    def close(self) -> None:
        """No more work: each worker exits once the queue is empty."""
        if not self._closed:
            for _ in self.procs:
                self.tasks.put(None)
            self._closed = True

    def shutdown(self) -> None:
        """Stop the workers (after an error before or during the load)."""
        self.close()
        self.stop.set()
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


def _summarize(conn: psycopg.Connection, m: Mapping, run_id: int, started: float,
               already: bool = False) -> RunResult:
    from docshift.run.status import table_rows

    res = RunResult(run_id, already_complete=already)
    cps = conn.execute("SELECT source_stream, sum(docs_read), max(seconds) "
                       "FROM docshift.checkpoints WHERE run_id = %s GROUP BY 1",
                       (run_id,)).fetchall()
    docs = {s: (int(n), sec) for s, n, sec in cps}
    rejects = dict(conn.execute(
        "SELECT coalesce(table_name, source), count(*) FROM docshift.rejects WHERE run_id = %s "
        "GROUP BY 1", (run_id,)).fetchall())
    counts = table_rows(conn, m)
    plans = compile_streams(m)
    for t in m.tables:
        feeds = [s for s, p in plans.items() if t in p.tables]
        n = sum(docs.get(s, (0, 0))[0] for s in feeds)
        sec = sum(docs.get(s, (0, 0.0))[1] for s in feeds)
        res.tables.append(TableSummary(t, n, counts.get(t, 0), rejects.get(t, 0), sec))
    res.quarantined = sum(rejects.values())
    res.unmatched_keys = conn.execute(
        "SELECT count(*) FROM docshift.unmatched_keys WHERE run_id = %s",
        (run_id,)).fetchone()[0]  # type: ignore[index]
    res.unmapped = [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT stream, path, count FROM docshift.unmapped WHERE run_id = %s "
        "ORDER BY count DESC, path", (run_id,))]
    res.seconds = time.perf_counter() - started
    return res
