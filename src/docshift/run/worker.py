"""Migrate one source stream: read → build rows → load in batches, resuming at the checkpoint.

Runs in the main process (``--workers 1``) or in worker processes. Between batches it checks
whether it should stop (Ctrl+C, ``--max-errors``); a batch is always committed whole, so
stopping never leaves a partial batch behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from docshift.sources import open_source
from docshift.spec.model import Mapping
from docshift.target.load import load_batch, table_copies
from docshift.target.state import load_checkpoint, save_checkpoint, set_estimate
from docshift.transform.convert import install_json_dumps
from docshift.transform.rows import compile_streams


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


Report = Callable[[Progress], None]


def run_stream(m: Mapping, dsn: str, run_id: int, stream: str, batch_size: int,
               should_stop: Callable[[], bool], report: Report) -> bool:
    """Load ``stream`` from its checkpoint to its end; False if stopped before the end."""
    install_json_dumps()
    plan = compile_streams(m)[stream]
    copies = table_copies(m, plan)
    source = open_source(m.source, dsn)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cp = load_checkpoint(conn, run_id, stream)
            if cp.done:
                report(Progress(stream, "done"))
                return True
            s = source.stream(stream)
            estimate = s.estimate_count()
            set_estimate(conn, run_id, stream, estimate)
            report(Progress(stream, "start", docs=cp.docs_read, estimate=estimate,
                            rows=dict(cp.rows_written or {}), rejected=cp.docs_rejected))
            batch = []
            started = time.perf_counter()
            for sdoc in s.read(after=cp.position):
                batch.append((sdoc, plan.build(sdoc)))
                if len(batch) >= batch_size:
                    _flush(conn, m, run_id, stream, batch, copies, cp, started, report)
                    batch = []
                    started = time.perf_counter()
                    if should_stop():
                        report(Progress(stream, "stopped"))
                        return False
            if batch:
                _flush(conn, m, run_id, stream, batch, copies, cp, started, report)
            cp.done = True
            save_checkpoint(conn, run_id, cp)
            report(Progress(stream, "done"))
            return True
    finally:
        source.close()


def _flush(conn: psycopg.Connection, m: Mapping, run_id: int, stream: str, batch: list,
           copies: dict, cp, started: float, report: Report) -> None:
    result = load_batch(conn, run_id, stream, batch, copies, cp,
                        time.perf_counter() - started)
    report(Progress(stream, "batch", docs=len(batch), rows=result.rows,
                    rejected=result.rejected, reject_classes=result.reject_classes))
