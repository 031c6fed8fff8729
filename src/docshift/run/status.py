"""Where the current or last run stands, read from docshift's state in the target."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from docshift.spec.model import Mapping
from docshift.target.ddl import constraints, qualified
from docshift.target.state import latest_run, run_lock_held


def table_rows(conn: psycopg.Connection, m: Mapping) -> dict[str, int]:
    """Exact row count of every mapped table that exists (two round trips in all)."""
    schema = m.target.schema_
    present = [r[0] for r in conn.execute(
        "SELECT t FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) "
        "WHERE to_regclass(format('%%I.%%I', %s::text, t)) IS NOT NULL ORDER BY n",
        (list(m.tables), schema))]
    if not present:
        return {}
    counts = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("(SELECT count(*) FROM {})").format(qualified(schema, t))
        for t in present))).fetchone()
    assert counts is not None
    return dict(zip(present, counts, strict=True))


PHASES = ("prepare", "load", "keys", "foreign keys", "cleanup", "indexes", "analyze")
"""A run's phases in the order they happen; the last five are finalization's."""

_KIND_PHASE = {"primary_key": "keys", "unique": "keys", "foreign_key": "foreign keys",
               "index": "indexes"}


def step_phases(m: Mapping) -> dict[str, str]:
    """The phase of every ``add:<table>.<name>`` finalization step of ``m``."""
    return {f"add:{c.table}.{c.name}": _KIND_PHASE[c.kind]
            for t in m.tables for c in constraints(m, t) if c.kind in _KIND_PHASE}


def phase_of_step(step: str, phases: dict[str, str]) -> str | None:
    """The phase a finalization step belongs to (None: a message such as a lock wait).

    ``recreate:`` steps (existing mode) rebuild keys first and foreign keys later; they are
    reported as keys, and the caller keeps the later phase once it has been reached.
    """
    if ": waiting for a lock" in step:
        return None
    if step in phases:
        return phases[step]
    for prefix, phase in (("dedupe:", "keys"), ("recreate:", "keys"), ("add:", "keys"),
                          ("orphans:", "foreign keys"), ("add foreign keys", "foreign keys"),
                          ("drop-key-column:", "cleanup"), ("compact:", "cleanup"),
                          ("analyze:", "analyze")):
        if step.startswith(prefix):
            return phase
    return None


@dataclass
class PhaseClock:
    """Wall-clock seconds spent in each phase of a run; phases only move forward."""

    seconds: dict[str, float] = field(default_factory=dict)
    current: str | None = None
    _since: float = 0.0

    def enter(self, phase: str) -> bool:
        """Start ``phase`` (closing the current one); False if it is not a new phase."""
        if phase == self.current or (self.current in PHASES and phase in PHASES
                                     and PHASES.index(phase) < PHASES.index(self.current)):
            return False
        self.stop()
        self.current, self._since = phase, time.perf_counter()
        return True

    def stop(self) -> None:
        """Close the current phase."""
        if self.current is not None:
            spent = time.perf_counter() - self._since
            self.seconds[self.current] = self.seconds.get(self.current, 0.0) + spent
            self.current = None


def recorded_phases(conn: psycopg.Connection, m: Mapping, run_id: int) -> dict[str, float]:
    """Phase times of a finished run, rebuilt from its state (for a run already complete).

    The load runs from the run's start to its last checkpoint (preparation is counted in
    it); a finalization step is recorded with the time it started, so each one lasts until
    the next one starts, the last one until the run finished.
    """
    row = conn.execute(
        "SELECT r.started_at, r.finished_at, max(c.updated_at) FROM docshift.runs r "
        "LEFT JOIN docshift.checkpoints c USING (run_id) WHERE r.run_id = %s GROUP BY 1, 2",
        (run_id,)).fetchone()
    if row is None or row[2] is None:
        return {}
    started, finished, loaded = row
    out = {"load": max(0.0, (loaded - started).total_seconds())}
    kinds = step_phases(m)
    steps = conn.execute("SELECT step, done_at FROM docshift.steps WHERE run_id = %s "
                         "ORDER BY done_at, step", (run_id,)).fetchall()
    phase, since = None, loaded
    for step, at in [*steps, ("", finished or loaded)]:
        if phase is not None:
            out[phase] = out.get(phase, 0.0) + max(0.0, (at - since).total_seconds())
        p = phase_of_step(step, kinds) if step else None
        if p is not None and (phase is None or PHASES.index(p) > PHASES.index(phase)):
            phase = p
        since = max(since, at)
    return out


@dataclass
class StreamStatus:
    """One work unit: a source stream, or a key range of one (``stream#2``)."""

    stream: str
    docs_read: int
    estimate: int | None
    rejected: int
    done: bool
    rows: dict[str, int]
    estimated: bool = False
    """``estimate`` is the stream's size shared among its key ranges, not a count."""


@dataclass
class Status:
    run_id: int | None
    status: str
    started_at: Any = None
    finished_at: Any = None
    streams: list[StreamStatus] | None = None
    quarantined: int = 0
    phase: str | None = None
    """Where the run stands: ``load``, ``finalize`` or ``done``."""
    steps_done: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    """Rows in each mapped table now (final counts once the run is completed)."""
    next_step: str = ""

    def as_json(self) -> dict[str, Any]:
        """What ``docshift status --json`` prints (docs/operations.md)."""
        def when(t: Any) -> str | None:
            return t.isoformat() if t is not None else None

        return {
            "run_id": self.run_id, "status": self.status, "phase": self.phase,
            "started_at": when(self.started_at), "finished_at": when(self.finished_at),
            "quarantined": self.quarantined, "finalization_steps_done": self.steps_done,
            "units": [{"unit": u.stream, "documents_read": u.docs_read,
                       "estimate": u.estimate, "estimate_is_share": u.estimated,
                       "quarantined": u.rejected, "done": u.done, "rows_loaded": u.rows}
                      for u in self.streams or []],
            "tables": self.tables, "final": self.status == "completed",
            "next": self.next_step,
        }


NEXT_STEP = {
    "none": "Start one with `docshift run`.",
    "running": "A docshift process holds the run's lock and is working on it; wait for it, "
               "or stop it with Ctrl+C (it resumes where it stopped).",
    "interrupted": "Nothing is running it: re-run `docshift run` (same mapping) to resume "
                   "from the last checkpoint.",
    "aborted": "It stopped at --max-errors: see `docshift rejects`, fix the mapping or the "
               "data, then re-run `docshift run` to continue.",
    "failed": "Finalization could not build some keys or indexes (see the run's output); "
              "fix the cause, then re-run `docshift run` to retry them.",
    "completed": "Check it with `docshift verify`.",
}


def run_status(conn: psycopg.Connection, m: Mapping | None = None,
               dsn: str | None = None) -> Status:
    """The latest run and its per-unit progress (``status='none'`` if never run).

    A run recorded as ``running`` whose process is gone (nobody holds the run lock: it was
    killed, or its machine went down) is reported as ``interrupted``. With the mapping,
    the row count of every mapped table is included, and key ranges whose size is unknown
    get a share of their stream's estimate (``dsn``: the target, for a key-value source
    without a DSN of its own).
    """
    run = latest_run(conn)
    if run is None:
        return Status(None, "none", next_step=NEXT_STEP["none"])
    if run.status == "running" and not run_lock_held(conn):
        run.status = "interrupted"
    row = conn.execute("SELECT started_at, finished_at FROM docshift.runs WHERE run_id = %s",
                       (run.run_id,)).fetchone()
    assert row is not None
    streams = [StreamStatus(*r) for r in conn.execute(
        "SELECT stream, docs_read, estimate, docs_rejected, done, rows_written "
        "FROM docshift.checkpoints WHERE run_id = %s ORDER BY stream", (run.run_id,))]
    q = conn.execute("SELECT count(*) FROM docshift.rejects WHERE run_id = %s",
                     (run.run_id,)).fetchone()[0]  # type: ignore[index]
    steps = conn.execute("SELECT count(*) FROM docshift.steps WHERE run_id = %s",
                         (run.run_id,)).fetchone()[0]  # type: ignore[index]
    phase = ("done" if run.status == "completed" else
             "finalize" if streams and all(u.done for u in streams) else "load")
    st = Status(run.run_id, run.status, row[0], row[1], streams, q, phase, steps)
    st.next_step = NEXT_STEP.get(run.status, "")
    if run.status == "completed" and q:
        st.next_step += f" {q:,} document(s) were quarantined: see `docshift rejects`."
    if m is not None:
        st.tables = table_rows(conn, m)
        _share_estimates(conn, m, dsn, run.run_id, streams)
    return st


def _share_estimates(conn: psycopg.Connection, m: Mapping, dsn: str | None, run_id: int,
                     units: list[StreamStatus]) -> None:
    """Key ranges without a count of their own get their stream's estimate shared out."""
    missing = [u for u in units if u.estimate is None and not u.done]
    if not missing:
        return
    of = dict(conn.execute("SELECT stream, source_stream FROM docshift.checkpoints "
                           "WHERE run_id = %s", (run_id,)).fetchall())
    parts: dict[str, int] = {}
    for u in units:
        parts[of[u.stream]] = parts.get(of[u.stream], 0) + 1
    try:
        from docshift.sources import open_source

        src = open_source(m.source, dsn)
    except Exception:  # noqa: BLE001 - the source may be gone; then the size stays unknown
        return
    try:
        for u in missing:
            try:
                n = src.stream(of[u.stream]).estimate_count()
            except Exception:  # noqa: BLE001 - as above
                continue
            if n:
                u.estimate, u.estimated = -(-n // parts[of[u.stream]]), True
    finally:
        src.close()
