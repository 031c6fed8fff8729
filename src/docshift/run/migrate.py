"""Orchestrate a migration run: prepare, load every stream (in parallel), finalize.

A run is identified by a row in ``docshift.runs``. Running again with the same mapping
resumes the unfinished run from its checkpoints; a finished run is reported as complete;
``restart=True`` undoes the previous run's effect on the target and starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from docshift.dsn import mask
from docshift.errors import DocshiftError, RunAborted
from docshift.run.executors import Executor, LocalPool, open_executor
from docshift.run.finalize import FinalizeReport, finalize
from docshift.run.worker import Progress
from docshift.spec.model import Mapping
from docshift.target.connect import connect
from docshift.target.prepare import (
    empty_target,
    prepare_create,
    prepare_existing,
    resolve_existing_types,
)
from docshift.target.state import (
    RUN_LOCK_WAIT_SECONDS,
    Unit,
    add_units,
    ensure_state,
    hold_run_lock,
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
    executor: str = "local"
    """Where units load: ``local`` (this process, or ``workers`` processes) or ``dask``.

    Locally, a small run loads in this process whatever ``workers`` says (see
    :func:`local_processes`), and never in more processes than it has work units to load."""
    scheduler: str | None = None
    """With ``executor="dask"``: a scheduler address (``tcp://host:8786``) or ``local:N``
    for a LocalCluster of N worker processes (default ``local:<workers>``)."""
    columnar: bool | None = None
    """True: build rows through the columnar path where it applies (``transform.columnar``);
    False: every document through the row path; None: the columnar path for units large
    enough to repay its imports (``run.worker.COLUMNAR_MIN_DOCS``)."""


@dataclass
class TableSummary:
    """One table's line of the run summary.

    ``documents`` counts the documents this table reads one row from (None for a table fed
    only by unnesting, whose rows come from the documents of another table); ``seconds`` is
    the load time of the streams that feed it. Duplicates removed (``keep_first``),
    references set to NULL and rows dropped (``on_orphan``) come from finalization.
    """

    table: str
    documents: int | None
    rows: int
    quarantined: int
    seconds: float
    duplicates_removed: int = 0
    references_nulled: int = 0
    rows_dropped: int = 0


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
    documents: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds per phase (see ``docshift.run.status.PHASES``); for a run that was
    already complete, those recorded in its state."""

    def as_json(self) -> dict[str, Any]:
        """The summary written by ``docshift run --summary`` (docs/operations.md)."""
        rate = self.documents / self.seconds if self.seconds > 0 else None
        return {
            "run_id": self.run_id,
            "already_complete": self.already_complete,
            "seconds": round(self.seconds, 3),
            "documents": self.documents,
            "documents_per_second": round(rate, 1) if rate is not None else None,
            "rows": sum(t.rows for t in self.tables),
            "quarantined": self.quarantined,
            "unmatched_keys": self.unmatched_keys,
            "tables": [{**t.__dict__, "seconds": round(t.seconds, 3)} for t in self.tables],
            "phases": [{"phase": p, "seconds": round(sec, 3)} for p, sec in self.phases.items()],
            "unmapped": [{"stream": s, "path": p, "count": n} for s, p, n in self.unmapped],
            "warnings": self.finalize.warnings if self.finalize else [],
            "failures": self.finalize.failures if self.finalize else [],
        }


class UI:
    """Callbacks for progress display; the default does nothing.

    ``phase`` announces each phase of the run (``docshift.run.status.PHASES``; ``finalize``
    before the first finalization step); ``units`` gives every work unit of the run when the
    load starts (with its estimate); ``step`` names each finalization step as it starts.
    """

    def progress(self, p: Progress) -> None: ...
    def phase(self, name: str) -> None: ...
    def units(self, planned: list[Unit]) -> None: ...
    def step(self, name: str) -> None: ...
    def message(self, text: str) -> None: ...


def mapping_hash(m: Mapping) -> str:
    """The run's identity: the mapping without any secret and without the target's DSN.

    The run lives in the target database, so the target DSN adds nothing, and a password
    rotated between an interruption and its resume must not look like another mapping.
    """
    data = m.model_dump(mode="json", by_alias=True)
    data.get("target", {}).pop("dsn", None)
    source = data.get("source", {})
    for k in ("dsn", "uri"):
        if source.get(k):
            source[k] = mask(source[k])
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def migrate(m: Mapping, dsn: str, opts: RunOptions, ui: UI | None = None,
            stop: threading.Event | None = None) -> RunResult:
    """Run (or resume) the migration described by ``m`` into ``dsn``.

    Setting ``stop`` (from a signal handler, another thread, …) ends the load at the next
    batch boundary; the run is then *interrupted* and resumes when migrated again. The
    library installs no signal handler: the command line does.
    """
    from docshift.run.status import PHASES, PhaseClock, phase_of_step, step_phases

    ui = ui or UI()
    stop = stop or threading.Event()
    started = time.perf_counter()
    clock = PhaseClock()
    clock.enter("prepare")
    ui.phase("prepare")
    with connect(dsn) as conn:
        ensure_state(conn)
        lock_run(conn)
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
        if run is not None:
            check_source_unchanged(m, dsn, units(conn, run.run_id))
        workers = _capped_workers(opts.workers, ui) if opts.executor == "local" else 1
        pool: Executor | None = None
        planned: tuple[list[Unit], list[str]] | None = None
        try:
            if opts.executor == "local":
                def start_pool(docs: int | None, n_units: int) -> None:
                    # called as soon as the size of the run is known: worker processes
                    # start up (a new interpreter importing docshift) while the rest of the
                    # planning and the preparation of the target go on here
                    nonlocal pool
                    pool = open_executor(m, dsn, opts,
                                         local_processes(workers, docs, n_units, opts))

                if run is None:
                    planned = plan_units(m, dsn, opts, on_sized=start_pool)
                else:
                    start_pool(*_left_to_load(conn, run.run_id))
            else:
                pool = open_executor(m, dsn, opts, workers)
                # units are planned (split) for what the cluster loads at once
                opts = replace(opts, workers=pool.slots)
                workers = _capped_workers(pool.slots, UI())  # finalization's connections
            assert pool is not None
            run_id = _prepare(conn, m, dsn, opts, run, h, ui, planned)
            todo = units(conn, run_id)
            clock.enter("load")
            ui.phase("load")
            ui.units(todo)
            try:
                _load_streams(m, dsn, run_id, todo, opts, ui, conn, pool, stop)
            except Interrupted:
                set_run_status(conn, run_id, "interrupted")
                raise
            except RunAborted:
                set_run_status(conn, run_id, "aborted")
                raise
            except BaseException:
                set_run_status(conn, run_id, "interrupted")
                raise
        finally:
            if pool is not None:
                pool.shutdown()
        pending = conn.execute("SELECT stream FROM docshift.checkpoints WHERE run_id = %s "
                               "AND NOT done ORDER BY stream", (run_id,)).fetchall()
        if pending or not todo:
            set_run_status(conn, run_id, "interrupted")
            raise DocshiftError(
                "not every work unit finished: " + (", ".join(r[0] for r in pending)
                                                    or "the run has no work units"),
                hint="Re-run to resume from the checkpoints.")
        kinds = step_phases(m)
        ui.phase("finalize")

        def step(name: str) -> None:
            # a stop request during finalization takes effect between steps (each step is
            # one transaction, recorded when done, so the resumed run goes on from here)
            if stop.is_set():
                raise Interrupted("interrupted during finalization; re-run the same command "
                                  "to resume")
            p = phase_of_step(name, kinds)
            if p is not None and clock.enter(p):
                ui.phase(p)
            ui.step(name)

        try:
            # a small run's tables are built faster one after the other on this connection
            # than side by side on fresh ones (each a new server process)
            read = conn.execute("SELECT coalesce(sum(docs_read), 0) FROM docshift.checkpoints "
                                "WHERE run_id = %s", (run_id,)).fetchone()[0]  # type: ignore[index]
            parallel = 1 if small_run(int(read), opts) else workers
            rep = finalize(conn, m, run_id, log=step, dsn=dsn, parallel=parallel)
        except BaseException:
            set_run_status(conn, run_id, "interrupted")
            raise
        clock.stop()
        set_run_status(conn, run_id, "failed" if rep.failures else "completed")
        result = _summarize(conn, m, run_id, started)
        result.finalize = rep
        result.phases = {p: clock.seconds[p] for p in PHASES if p in clock.seconds}
        return result


IN_PROCESS_MAX_DOCS = 50_000
"""A local run that plans fewer documents than this (or than ``split_min_docs``, when that is
lower) loads in this process, whatever ``workers`` says. A worker process costs about half a
second of CPU before its first batch (a new interpreter importing docshift), and on a machine
whose CPUs are shared the workers only catch up from about this size on: on the benchmark's
two shared CPUs, one process finished 20,000 and 40,000 documents 1–4 s sooner than two
workers, and 60,000 about as soon."""


def small_run(docs: int | None, opts: RunOptions) -> bool:
    """Whether ``docs`` documents (None: a source could not count them) make a small run:
    fewer than IN_PROCESS_MAX_DOCS, or than ``opts.split_min_docs`` when that is lower."""
    limit = min(IN_PROCESS_MAX_DOCS, opts.split_min_docs or IN_PROCESS_MAX_DOCS)
    return docs is not None and docs < limit


def local_processes(workers: int, docs: int | None, n_units: int, opts: RunOptions) -> int:
    """How many processes load a local run: 1 (this one) or up to ``workers`` workers.

    ``docs`` is the number of documents left to load (None when a source cannot tell),
    ``n_units`` the number of work units left. A small run (:func:`small_run`) loads in
    this process; extra processes beyond the units would have nothing to do.
    """
    if workers <= 1 or n_units <= 1 or small_run(docs, opts):
        return 1
    return min(workers, n_units)


def _total(counts: Iterable[int | None]) -> int | None:
    """The sum of ``counts``; None if any is unknown."""
    total = 0
    for n in counts:
        if n is None:
            return None
        total += n
    return total


def _left_to_load(conn: psycopg.Connection, run_id: int) -> tuple[int | None, int]:
    """(documents, work units) a resumed run has still to load; documents None if unknown."""
    left = conn.execute("SELECT estimate - docs_read FROM docshift.checkpoints "
                        "WHERE run_id = %s AND NOT done", (run_id,)).fetchall()
    return _total(None if n is None else max(0, n) for (n,) in left), len(left)


MAX_WORKERS_PER_CPU = 2
"""Worker processes per CPU at most: each waits on PostgreSQL about half of the time."""


def _capped_workers(asked: int, ui: UI) -> int:
    cap = max(1, (os.cpu_count() or 1) * MAX_WORKERS_PER_CPU)
    if asked > cap:
        ui.message(f"--workers {asked} is more than this machine can use; using {cap} "
                   f"({MAX_WORKERS_PER_CPU} per CPU)")
        return cap
    return asked


def check_source_unchanged(m: Mapping, dsn: str, planned: list[Unit]) -> None:
    """Stop a resume whose source no longer is what the run planned its units on."""
    from docshift.sources import base, open_source

    describe = getattr(base, "describe_change", None)
    src = open_source(m.source, dsn)
    try:
        for u in planned:
            if u.fingerprint is None:
                continue
            stream = src.stream(u.source_stream)
            now = stream.fingerprint(u.start, u.end)  # type: ignore[attr-defined]
            if now == u.fingerprint:
                continue
            what = (describe(u.fingerprint, now) if describe else None) or \
                f"stream {u.source_stream} is not what it was when the run started"
            raise DocshiftError(
                f"the source changed since this run started: {what}",
                hint="Resuming would mix two versions of the source. Re-run with --restart to "
                "undo what this run loaded and migrate the current source from scratch.")
    finally:
        src.close()


def _prepare(conn: psycopg.Connection, m: Mapping, dsn: str, opts: RunOptions,
             run: Any, mapping_hash_: str, ui: UI,
             planned: tuple[list[Unit], list[str]] | None = None) -> int:
    """Start a new run (target prepared, work units planned) or resume ``run``.

    A new run is born complete or not at all: the source is planned first (it may fail,
    or be interrupted), then the target preparation, the run row and all its work units
    are committed in one transaction. ``planned`` is what :func:`plan_units` returned, when
    the caller planned already.
    """
    if run is not None:
        if not units(conn, run.run_id):
            raise DocshiftError(
                f"run {run.run_id} has no work units (it was started by an older docshift "
                "that could be stopped while planning)",
                hint="Re-run with --restart to start over.")
        set_run_status(conn, run.run_id, "running")
        return int(run.run_id)
    units_, warnings = planned if planned is not None else plan_units(m, dsn, opts)
    for w in warnings:
        ui.message(f"warning: {w}")
    with conn.transaction():
        if m.target.mode == "create":
            prepare_create(conn, m)
        else:
            prepare_existing(conn, m)
        run_id = start_run(conn, mapping_hash_, m.path, {"workers": opts.workers,
                                                         "batch_size": opts.batch_size})
        add_units(conn, run_id, units_)
    return run_id


def lock_run(conn: psycopg.Connection) -> None:
    """Hold the run lock on ``conn`` or refuse: one run (or rollback) per database at a time."""
    if not hold_run_lock(conn, wait=RUN_LOCK_WAIT_SECONDS):
        raise DocshiftError(
            "another docshift run is in progress against this database",
            hint="Wait for it to finish, or stop it (Ctrl+C) and re-run to resume.")


def _rejected_so_far(conn: psycopg.Connection, run_id: int) -> int:
    return conn.execute("SELECT count(*) FROM docshift.rejects WHERE run_id = %s",
                        (run_id,)).fetchone()[0]  # type: ignore[index]


SPLIT_MIN_DOCS = 50_000
"""A stream is split into key ranges for parallel workers only from this size on."""


def plan_units(m: Mapping, dsn: str, opts: RunOptions,
               on_sized: Callable[[int | None, int], None] | None = None
               ) -> tuple[list[Unit], list[str]]:
    """The run's work units, largest streams first, and the source's warnings.

    Large streams are split into key ranges. Units are decided once, when the run starts,
    and stored with the checkpoints and a fingerprint of what each reads, so a resumed run
    reads exactly the same ranges whatever ``--workers`` it is given, and notices when the
    source changed underneath it.

    ``on_sized(documents, units)`` is called once, before any stream is split or
    fingerprinted: as soon as the streams counted so far make the run not small
    (:func:`small_run`), or else once every stream is counted. ``documents`` is None when a
    stream cannot count its documents; ``units`` is the most work units the run can have.
    """
    from docshift.sources import open_source

    src = open_source(m.source, dsn)
    try:
        split_min = opts.split_min_docs or SPLIT_MIN_DOCS
        names = list(compile_streams(m))
        counted = []  # (stream name, stream, estimate or None, split into key ranges?)
        for name in names:
            stream = src.stream(name)
            n = stream.estimate_count()
            split = (opts.workers > 1 and getattr(stream, "split", None) is not None
                     and (n or 0) >= split_min)
            counted.append((name, stream, n, split))
            docs = _total(n for _, _, n, _ in counted)
            if on_sized is not None and (len(counted) == len(names)
                                         or not small_run(docs, opts)):
                # the streams not counted yet may each be split
                later = (len(names) - len(counted)) * max(1, opts.workers)
                on_sized(docs, sum(opts.workers if sp else 1 for *_, sp in counted) + later)
                on_sized = None
        sized = []
        for name, stream, estimate, split in counted:
            n = estimate or 0
            if split:
                bounds = [None, *stream.split(opts.workers), None]
                count = getattr(stream, "count_between", None)
                parts = [Unit(f"{name}#{i + 1}", name, bounds[i], bounds[i + 1],
                              count(bounds[i], bounds[i + 1]) if count else None)
                         for i in range(len(bounds) - 1)]
                sized += [(u.estimate or n / len(parts), u) for u in parts]
            else:
                sized.append((n, Unit(name, name, estimate=n or None)))
        fingerprint = {u.name: _fingerprint(src.stream(u.source_stream), u) for _, u in sized}
        warnings = list(getattr(src, "warnings", []))
    finally:
        src.close()
    # numbers follow source order (doc_ids order documents by them); the load order is
    # largest first
    numbered = {u.name: replace(u, number=i, fingerprint=fingerprint[u.name])
                for i, (_, u) in enumerate(sized, start=1)}
    return [numbered[u.name] for _, u in sorted(sized, key=lambda su: -su[0])], warnings


def _fingerprint(stream: object, u: Unit) -> dict[str, Any] | None:
    fp = getattr(stream, "fingerprint", None)
    return fp(u.start, u.end) if fp is not None else None


def _load_streams(m: Mapping, dsn: str, run_id: int, streams: list[Unit], opts: RunOptions,
                  ui: UI, conn: psycopg.Connection, pool: Executor,
                  stop: threading.Event) -> None:
    errors = [_rejected_so_far(conn, run_id)]
    aborted: list[str] = []

    def on_progress(p: Progress) -> None:
        ui.progress(p)
        errors[0] += p.rejected if p.kind == "batch" else 0
        if opts.max_errors is not None and errors[0] > opts.max_errors and not aborted:
            aborted.append(f"{errors[0]} documents quarantined, more than --max-errors "
                           f"{opts.max_errors}")
            stop.set()

    pool.run(run_id, streams, on_progress, stop, ui)
    if aborted:
        raise RunAborted(f"run aborted: {aborted[0]}",
                         hint="See them with `docshift rejects`; fix the source or the "
                         "mapping, or re-run with a higher --max-errors (or without it) to "
                         "continue from the checkpoints.")
    if stop.is_set():
        raise Interrupted("interrupted; re-run the same command to resume")


WorkerPool = LocalPool
"""The local worker processes (``docshift.run.executors.LocalPool``), under their old name."""


def _summarize(conn: psycopg.Connection, m: Mapping, run_id: int, started: float,
               already: bool = False) -> RunResult:
    from docshift.run.status import recorded_phases, table_rows

    res = RunResult(run_id, already_complete=already)
    cps = conn.execute("SELECT source_stream, sum(docs_read), max(seconds) "
                       "FROM docshift.checkpoints WHERE run_id = %s GROUP BY 1",
                       (run_id,)).fetchall()
    docs = {s: (int(n), sec) for s, n, sec in cps}
    loaded: dict[str, int] = {}
    for (written,) in conn.execute("SELECT rows_written FROM docshift.checkpoints "
                                   "WHERE run_id = %s", (run_id,)):
        for t, n in (written or {}).items():
            loaded[t] = loaded.get(t, 0) + int(n)
    rejects: dict[str, int] = {}
    refused: dict[str, int] = {}  # quarantined before any of their rows was loaded
    for table, stage, n in conn.execute(
            "SELECT coalesce(table_name, source), stage, count(*) FROM docshift.rejects "
            "WHERE run_id = %s GROUP BY 1, 2", (run_id,)):
        rejects[table] = rejects.get(table, 0) + n
        if stage != "finalize":
            refused[table] = refused.get(table, 0) + n
    removed = {(t, k): n for t, k, n in conn.execute(
        "SELECT table_name, kind, count(*) FROM docshift.removals WHERE run_id = %s "
        "GROUP BY 1, 2", (run_id,))}
    counts = table_rows(conn, m)
    plans = compile_streams(m)
    for t, spec in m.tables.items():
        feeds = [s for s, p in plans.items() if t in p.tables]
        sec = sum(docs.get(s, (0, 0.0))[1] for s in feeds)
        own = any(f.unnest is None for f in spec.feeds or [])
        res.tables.append(TableSummary(
            t, loaded.get(t, 0) + refused.get(t, 0) if own else None, counts.get(t, 0),
            rejects.get(t, 0), sec, duplicates_removed=removed.get((t, "duplicate_dropped"), 0),
            references_nulled=removed.get((t, "reference_nulled"), 0),
            rows_dropped=removed.get((t, "orphan_dropped"), 0)))
    res.quarantined = sum(rejects.values())
    res.documents = sum(n for n, _ in docs.values())
    res.unmatched_keys = conn.execute(
        "SELECT count(*) FROM docshift.unmatched_keys WHERE run_id = %s",
        (run_id,)).fetchone()[0]  # type: ignore[index]
    res.unmapped = [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT stream, path, count FROM docshift.unmapped WHERE run_id = %s "
        "ORDER BY count DESC, path", (run_id,))]
    res.seconds = time.perf_counter() - started
    if already:
        # the run's own times, not this command's
        res.phases = recorded_phases(conn, m, run_id)
        res.seconds = sum(res.phases.values()) or res.seconds
    return res
