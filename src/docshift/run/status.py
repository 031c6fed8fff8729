"""Where the current or last run stands, read from docshift's state in the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from docshift.spec.model import Mapping
from docshift.target.ddl import qualified
from docshift.target.state import latest_run, run_lock_held


def table_rows(conn: psycopg.Connection, m: Mapping) -> dict[str, int]:
    """Exact row count of every mapped table that exists."""
    out = {}
    for t in m.tables:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                              (f'"{m.target.schema_}"."{t}"',)).fetchone()[0]  # type: ignore[index]
        if exists:
            out[t] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                qualified(m.target.schema_, t))).fetchone()[0]  # type: ignore[index]
    return out


@dataclass
class StreamStatus:
    stream: str
    docs_read: int
    estimate: int | None
    rejected: int
    done: bool
    rows: dict[str, int]


@dataclass
class Status:
    run_id: int | None
    status: str
    started_at: Any = None
    finished_at: Any = None
    streams: list[StreamStatus] | None = None
    quarantined: int = 0


def run_status(conn: psycopg.Connection) -> Status:
    """The latest run and its per-stream progress (``status='none'`` if never run).

    A run recorded as ``running`` whose process is gone (nobody holds the run lock: it was
    killed, or its machine went down) is reported as ``interrupted``.
    """
    run = latest_run(conn)
    if run is None:
        return Status(None, "none")
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
    return Status(run.run_id, run.status, row[0], row[1], streams, q)
