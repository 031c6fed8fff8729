"""Where work units load: in this process, in local worker processes, or on a Dask cluster.

Every executor loads a unit by calling :func:`docshift.run.worker.run_unit`, which takes the
unit's lease and moves its checkpoint by compare-and-set; so however a unit is scheduled,
retried or lost, no batch is ever committed twice. An executor only decides *where* units
run and relays their progress reports and errors to the client.

    InProcess     ``--workers 1``: units one after the other in the client process
    LocalPool     ``--workers N``: N spawned worker processes on this machine
    DaskExecutor  ``--executor dask``: one Dask task per unit on a distributed cluster
                  (``--scheduler tcp://host:8786``, or ``local:N`` for a LocalCluster)
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from docshift.errors import DocshiftError, LeaseLost
from docshift.run.worker import Progress, run_unit, worker_main
from docshift.spec.model import Mapping
from docshift.target.state import Unit

if TYPE_CHECKING:
    from docshift.run.migrate import UI, RunOptions

EXECUTORS = ("local", "dask")
"""Values of ``RunOptions.executor`` (``--executor``)."""

DASK_EXTRA = 'pip install "docshift[dask]"'
"""How to install what ``--executor dask`` needs."""

LOCAL_SCHEDULER_PREFIX = "local:"
"""``--scheduler local:N`` starts a LocalCluster of N worker processes on this machine."""

LEASE_RETRIES = 2
"""Times the Dask scheduler runs a unit's task again after it lost the unit's lease.

A lease is held by the session of whoever loads the unit; the usual holder is a loader on a
worker that has just died, whose session the server ends within moments."""

POLL_SECONDS = 0.2
"""How often the client relays reports and checks for Ctrl+C while units load."""


class Executor(Protocol):
    """Runs a run's work units; ``slots`` is how many it can load at the same time."""

    slots: int

    def run(self, run_id: int, units: list[Unit], on_progress: Callable[[Progress], None],
            stop: threading.Event, ui: UI) -> None:
        """Load ``units``; return once none is loading any more (finished or stopped)."""

    def shutdown(self) -> None:
        """Release what the executor started (idempotent)."""


def open_executor(m: Mapping, dsn: str, opts: RunOptions, workers: int) -> Executor:
    """The executor ``opts`` asks for, started (worker processes up, cluster connected)."""
    if opts.executor == "dask":
        return DaskExecutor(m, dsn, opts)
    if opts.executor != "local":
        raise DocshiftError(f"unknown executor {opts.executor!r}",
                            hint=f"Use one of: {', '.join(EXECUTORS)}.")
    if opts.scheduler is not None:
        raise DocshiftError("--scheduler is only used with --executor dask",
                            hint="Add --executor dask, or leave out --scheduler.")
    if workers > 1:
        return LocalPool(m, dsn, opts, workers)
    return InProcess(m, dsn, opts)


class InProcess:
    """Units one after the other, in the calling process."""

    slots = 1

    def __init__(self, m: Mapping, dsn: str, opts: RunOptions) -> None:
        self.m, self.dsn, self.batch_size = m, dsn, opts.batch_size
        self.columnar = opts.columnar

    def run(self, run_id: int, units: list[Unit], on_progress: Callable[[Progress], None],
            stop: threading.Event, ui: UI) -> None:
        """Load ``units`` in order; stop at the first batch boundary after ``stop`` is set."""
        plans: dict = {}  # the units of one stream share its compiled plan
        for u in units:
            if not run_unit(self.m, self.dsn, run_id, u, self.batch_size, stop.is_set,
                            on_progress, on_wait=ui.message, plans=plans,
                            columnar=self.columnar):
                break

    def shutdown(self) -> None:
        """Nothing to release."""


class LocalPool:
    """Worker processes for ``--workers N``.

    They are started before the run is prepared, so that their start-up (a new interpreter
    importing docshift) overlaps the preparation instead of delaying the load.
    """

    def __init__(self, m: Mapping, dsn: str, opts: RunOptions, workers: int) -> None:
        import multiprocessing as mp  # only a run that starts workers pays for it

        ctx = mp.get_context("spawn")
        self.slots = workers
        self.tasks = ctx.Queue()
        self.reports = ctx.Queue()
        self.stop = ctx.Event()
        self.procs = [ctx.Process(target=_worker_process, daemon=True,
                                  args=(m, dsn, opts.batch_size, self.tasks, self.reports,
                                        self.stop, os.getpid(), opts.columnar))
                      for _ in range(workers)]
        for p in self.procs:
            p.start()
        self._closed = False

    def run(self, run_id: int, units: list[Unit], on_progress: Callable[[Progress], None],
            stop: threading.Event, ui: UI) -> None:
        """Load ``units`` on the workers; returns when every worker has finished."""
        for u in units:
            self.tasks.put((run_id, u))
        self.close()

        def handle(msg: Any) -> Any:
            if not isinstance(msg, tuple):
                on_progress(msg)
            elif msg[0] == "message":
                ui.message(msg[1])
            else:
                return msg
            return None

        failure = None
        while True:
            try:
                msg = self.reports.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if stop.is_set():
                    self.stop.set()
                if not any(p.is_alive() for p in self.procs):
                    break
                continue
            bad = handle(msg)
            if bad is not None:
                failure = failure or bad
                self.stop.set()
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
            failure = failure or handle(msg)
        if failure:
            _, unit, message, hint = failure
            raise DocshiftError(f"work unit {unit}: {message}", hint=hint)
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


def _worker_process(*args: Any) -> None:
    """The body of a local worker process: :func:`docshift.run.worker.worker_main`.

    What the worker imported (while it unpickled its arguments) lives as long as the process:
    the garbage collector is told to leave it alone, so that the full collections between
    batches only look at the batches, and the process exits in milliseconds once its work
    is done instead of spending a quarter second collecting everything one last time.
    """
    gc.freeze()
    try:
        worker_main(*args)
    finally:
        gc.freeze()


# --- Dask ------------------------------------------------------------------------------------


def _import_distributed() -> Any:
    """The ``distributed`` package, or a DocshiftError naming the extra to install."""
    try:
        import distributed
    except ImportError:
        raise DocshiftError(
            "--executor dask needs Dask distributed, which is not installed",
            hint=f"Install it with: {DASK_EXTRA}") from None
    return distributed


def local_cluster_size(scheduler: str) -> int | None:
    """N of ``local:N``; None for the address of a running scheduler."""
    if not scheduler.startswith(LOCAL_SCHEDULER_PREFIX):
        return None
    n = scheduler[len(LOCAL_SCHEDULER_PREFIX):]
    if not n.isdigit() or int(n) < 1:
        raise DocshiftError(f"--scheduler {scheduler}: N in local:N must be a whole number "
                            "of worker processes, at least 1",
                            hint="For example --scheduler local:4, or the address of a running "
                            "scheduler such as tcp://scheduler:8786.")
    return int(n)


class DaskExecutor:
    """One Dask task per work unit, on the cluster behind ``opts.scheduler``.

    A task carries only the unit's description (mapping, target DSN, run, unit); the worker
    that runs it reads the source and writes the target itself. Progress comes back through
    a distributed Queue, one report per committed batch; Ctrl+C (or ``--max-errors``) sets
    a distributed Event that every task checks between batches.
    """

    def __init__(self, m: Mapping, dsn: str, opts: RunOptions) -> None:
        distributed = _import_distributed()
        self.m, self.dsn, self.batch_size = m, dsn, opts.batch_size
        self.columnar = opts.columnar
        scheduler = opts.scheduler or f"{LOCAL_SCHEDULER_PREFIX}{max(1, opts.workers)}"
        n_local = local_cluster_size(scheduler)
        self.cluster = None
        try:
            if n_local is not None:
                # one thread per process: loading a unit is CPU-bound Python
                self.cluster = distributed.LocalCluster(
                    n_workers=n_local, threads_per_worker=1, processes=True,
                    dashboard_address=None)
                self.client = distributed.Client(self.cluster)
                # workers of a cluster started here end with this process and leave Ctrl+C
                # to it, exactly like the local worker processes
                self.client.register_plugin(_client_bound(distributed, os.getpid()),
                                            name="docshift-client")
            else:
                self.client = distributed.Client(scheduler, timeout="20s")
        except RuntimeError as exc:  # "Nanny failed to start": a worker died starting
            self.shutdown()
            raise DocshiftError(f"the local Dask cluster ({scheduler}) did not start: {exc}",
                                hint="Re-run to resume; nothing committed is lost.") from None
        except (OSError, TimeoutError) as exc:
            self.shutdown()
            raise DocshiftError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                hint="Start it with `dask scheduler` (workers: `dask worker ADDRESS "
                "--nthreads 1`), or use --scheduler local:N for a cluster on this "
                "machine.") from None
        threads = sum(w.get("nthreads", 1) for w in
                      self.client.scheduler_info()["workers"].values())
        # streams are split into as many key ranges as the cluster loads at once, unless
        # --workers says otherwise
        self.slots = opts.workers if opts.workers > 1 else max(1, threads)
        self._distributed = distributed

    def run(self, run_id: int, units: list[Unit], on_progress: Callable[[Progress], None],
            stop: threading.Event, ui: UI) -> None:
        """Submit one task per unit (in load order) and relay their reports until all end."""
        d = self._distributed
        channel = f"docshift-{run_id}-{uuid.uuid4().hex[:12]}"
        reports = d.Queue(f"{channel}-reports", client=self.client)
        stopped = d.Event(f"{channel}-stop", client=self.client)
        futures = {
            self.client.submit(load_unit_task, self.m, self.dsn, run_id, u, self.batch_size,
                               channel, self.columnar, key=f"{channel}-{u.name}", pure=False,
                               retries=LEASE_RETRIES): u
            for u in units}

        def relay() -> None:
            for kind, body in reports.get(batch=True):
                if kind == "message":
                    ui.message(body)
                else:
                    on_progress(Progress(**body))

        try:
            pending = list(futures)
            while pending:
                relay()
                if stop.is_set() and not stopped.is_set():
                    stopped.set()
                with contextlib.suppress(TimeoutError):
                    d.wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
                pending = [f for f in pending if not f.done()]
            # every task put its last report before it returned
            relay()
            failures = [_failure(f, futures[f], d) for f in futures]
        finally:
            self.client.cancel(list(futures))
        failure = next((f for f in failures if f is not None), None)
        if failure is not None:
            raise failure

    def shutdown(self) -> None:
        """Close the client, and the LocalCluster if this executor started one."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def _failure(future: Any, unit: Unit, d: Any) -> DocshiftError | None:
    """The error a finished unit task ended with, for the client to raise; None if none."""
    if future.status == "finished":
        result = future.result()
        if isinstance(result, tuple) and result[0] == "error":
            return DocshiftError(f"work unit {unit.name}: {result[1]}", hint=result[2])
        return None
    if future.status == "cancelled":
        return DocshiftError(f"work unit {unit.name}: its Dask task was cancelled",
                             hint="Nothing committed is lost: re-run to resume.")
    exc = future.exception()
    if isinstance(exc, d.KilledWorker):
        return DocshiftError(
            f"work unit {unit.name}: every Dask worker that ran it died ({exc})",
            hint="Look at the workers' logs (memory limit?); nothing committed is lost: re-run "
            "to resume from the checkpoints.")
    if isinstance(exc, UnitLeaseTaken):
        return DocshiftError(exc.args[0], hint=exc.args[1])
    return DocshiftError(f"work unit {unit.name}: {type(exc).__name__}: {exc}",
                         hint="Nothing committed is lost: re-run to resume.")


class UnitLeaseTaken(Exception):
    """A unit task could not hold its unit's lease; raised so that the scheduler retries it.

    Carries (message, hint) in ``args`` so that it survives pickling between processes."""


def load_unit_task(m: Mapping, dsn: str, run_id: int, unit: Unit, batch_size: int,
                   channel: str, columnar: bool | None = None) -> str | tuple[str, str, str | None]:
    """The body of a unit's Dask task: ``run_unit`` with the cluster's stop and reports.

    Returns "done" or "stopped", or ("error", message, hint) for an error a retry cannot
    mend. A task whose future the client released (the client died) stops at the next batch
    boundary too.
    """
    from distributed import Event, Queue, get_worker
    from distributed.worker import thread_state

    worker = get_worker()
    key = thread_state.key
    stopped = Event(f"{channel}-stop")
    reports = Queue(f"{channel}-reports")

    def should_stop() -> bool:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state != "executing" or stopped.is_set()

    if should_stop():
        return "stopped"

    def report(p: Progress) -> None:
        reports.put(["progress", asdict(p)])

    def message(text: str) -> None:
        reports.put(["message", text])

    try:
        done = run_unit(m, dsn, run_id, unit, batch_size, should_stop, report, on_wait=message,
                        columnar=columnar)
    except LeaseLost as exc:
        raise UnitLeaseTaken(exc.message, exc.hint) from None
    except DocshiftError as exc:
        return ("error", exc.message, exc.hint)
    except Exception:
        return ("error", traceback.format_exc(), None)
    return "done" if done else "stopped"


def _client_bound(distributed: Any, client_pid: int) -> Any:
    """Worker plugin for a LocalCluster: its workers ignore Ctrl+C and die with the client.

    Without it a worker of a killed client would load on, unseen, while the unit's lease
    keeps the re-run waiting for it. (Defined here: the plugin base class comes from the
    optional ``distributed``.)"""

    class ClientBound(distributed.WorkerPlugin):
        def setup(self, worker: Any) -> None:
            _bind_to_client(client_pid)

    return ClientBound()


def _bind_to_client(client_pid: int) -> None:
    """In a LocalCluster worker process (and again in each restarted one)."""
    from docshift.run.worker import exit_with_parent

    # outside the main thread (ValueError) Ctrl+C is not ours to handle
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() == client_pid:
        exit_with_parent(client_pid)
