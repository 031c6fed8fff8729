"""docshift's own state, kept in the target database in schema ``docshift``.

Tables:
  runs            one row per migration run: mapping hash, status, settings, times
  checkpoints     per run and work unit: the last committed position and counters;
                  written in the *same transaction* as the rows of each batch, which is
                  what makes a run exactly-once across any interruption; also the unit's
                  number (``unit_no``) and a fingerprint of the source it reads
  batches         per committed batch: the number of its first document and the position
                  the batch was read after, so any loaded document can be read again
                  cheaply (to quarantine it whole when it is rejected after loading)
  rejects         the quarantine: every document (or row) that was not loaded, and why
  unmatched_keys  key-value keys that no table took and no ignore pattern named
  unmapped        source paths that no column reads, with counts and an example key
  steps           finalization steps already done (keys, constraints, indexes)
  removals        rows that a policy removed or changed without quarantining a document:
                  duplicates dropped by ``keep_first``, references set to NULL, link
                  elements dropped by ``on_orphan: drop`` — with source key and value
  objects         what docshift created (create mode) or dropped to re-create later
                  (existing mode), so rollback and finalization know exactly what to touch
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from docshift.errors import LeaseLost

STATE_SCHEMA = "docshift"

_DDL = """
CREATE SCHEMA IF NOT EXISTS docshift;
CREATE TABLE IF NOT EXISTS docshift.runs (
    run_id       bigserial PRIMARY KEY,
    mapping_hash text NOT NULL,
    mapping_path text NOT NULL,
    status       text NOT NULL DEFAULT 'running',
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    settings     jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS docshift.checkpoints (
    run_id        bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    stream        text NOT NULL,  -- a work unit: a source stream, or a key range of one
    source_stream text NOT NULL,
    unit_start    text,           -- the unit reads after this position (NULL: the start)
    unit_end      text,           -- up to and including this one (NULL: the end)
    position      text,
    docs_read     bigint NOT NULL DEFAULT 0,
    docs_rejected bigint NOT NULL DEFAULT 0,
    rows_written  jsonb NOT NULL DEFAULT '{}',
    estimate      bigint,
    done          boolean NOT NULL DEFAULT false,
    seconds       double precision NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, stream)
);
ALTER TABLE docshift.checkpoints ADD COLUMN IF NOT EXISTS unit_no integer;
ALTER TABLE docshift.checkpoints ADD COLUMN IF NOT EXISTS fingerprint jsonb;
CREATE TABLE IF NOT EXISTS docshift.batches (
    run_id         bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    stream         text NOT NULL,
    first_doc      bigint NOT NULL,  -- doc_id of the batch's first document
    after_position text,             -- the batch was read after this position (NULL: start)
    PRIMARY KEY (run_id, stream, first_doc)
);
CREATE TABLE IF NOT EXISTS docshift.rejects (
    id           bigserial PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    source       text NOT NULL,
    source_key   text,
    table_name   text,
    stage        text NOT NULL,
    field        text,
    error_class  text NOT NULL,
    message      text NOT NULL,
    document     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE docshift.rejects ADD COLUMN IF NOT EXISTS doc_id bigint;
CREATE TABLE IF NOT EXISTS docshift.removals (
    id           bigserial PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    table_name   text NOT NULL,
    kind         text NOT NULL,  -- duplicate_dropped | reference_nulled | orphan_dropped
    source       text,
    source_key   text,
    doc_id       bigint,
    column_name  text,
    value        text,           -- the value in the target (e.g. the converted UUID)
    source_value text,           -- the value in the source document, when known
    message      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS docshift.unmatched_keys (
    run_id bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    stream text NOT NULL,
    key    text NOT NULL,
    PRIMARY KEY (run_id, stream, key)
);
CREATE TABLE IF NOT EXISTS docshift.unmapped (
    run_id      bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    stream      text NOT NULL,
    path        text NOT NULL,
    count       bigint NOT NULL,
    example_key text,
    PRIMARY KEY (run_id, stream, path)
);
CREATE TABLE IF NOT EXISTS docshift.steps (
    run_id  bigint NOT NULL REFERENCES docshift.runs ON DELETE CASCADE,
    step    text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}',
    done_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS docshift.objects (
    kind       text NOT NULL,
    table_name text NOT NULL,
    name       text NOT NULL,
    definition text,
    PRIMARY KEY (kind, table_name, name)
);
"""


STATE_VERSION = "docshift state " + hashlib.sha256(_DDL.encode()).hexdigest()[:16]
"""The comment on schema ``docshift`` once the state tables are exactly as ``_DDL`` makes
them: a run that finds it skips the DDL (about 0.1 s of server time per run)."""


def ensure_state(conn: psycopg.Connection) -> None:
    """Create the state schema and tables if they do not exist (or miss a column)."""
    row = conn.execute("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                       "WHERE nspname = %s", (STATE_SCHEMA,)).fetchone()
    if row is not None and row[0] == STATE_VERSION:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('docshift.state'))")
        conn.execute(_DDL)
        conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
            sql.Identifier(STATE_SCHEMA), sql.Literal(STATE_VERSION)))


def state_exists(conn: psycopg.Connection) -> bool:
    return conn.execute(
        "SELECT to_regclass('docshift.runs') IS NOT NULL").fetchone()[0]  # type: ignore[index]


@dataclass
class Run:
    run_id: int
    mapping_hash: str
    status: str
    settings: dict[str, Any]


def latest_run(conn: psycopg.Connection) -> Run | None:
    """The most recent run, or None when docshift never ran against this database."""
    if not state_exists(conn):
        return None
    row = conn.execute(
        "SELECT run_id, mapping_hash, status, settings FROM docshift.runs "
        "ORDER BY run_id DESC LIMIT 1").fetchone()
    return Run(*row) if row else None


def start_run(conn: psycopg.Connection, mapping_hash: str, mapping_path: str,
              settings: dict[str, Any]) -> int:
    row = conn.execute(
        "INSERT INTO docshift.runs (mapping_hash, mapping_path, settings) "
        "VALUES (%s, %s, %s) RETURNING run_id",
        (mapping_hash, mapping_path, Jsonb(settings))).fetchone()
    assert row is not None
    return int(row[0])


def set_run_status(conn: psycopg.Connection, run_id: int, status: str) -> None:
    conn.execute(
        "UPDATE docshift.runs SET status = %s, "
        "finished_at = CASE WHEN %s IN ('completed', 'aborted') THEN now() END "
        "WHERE run_id = %s", (status, status, run_id))


@dataclass
class Checkpoint:
    """Where one work unit (a stream, or a key range of one) stands in one run."""

    stream: str
    position: str | None = None
    docs_read: int = 0
    docs_rejected: int = 0
    rows_written: dict[str, int] | None = None
    done: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Unit:
    """A piece of work: documents of ``source_stream`` after ``start`` up to ``end``.

    ``number`` is unique in the run and follows source order (streams in mapping order, the
    key ranges of one stream in key order); it is the high part of each document's doc_id.
    """

    name: str
    source_stream: str
    start: str | None = None
    end: str | None = None
    estimate: int | None = None
    number: int = 0
    fingerprint: dict[str, Any] | None = None


DOC_ORDINAL_BITS = 40
"""A doc_id is ``unit number << 40 | ordinal``: up to 2**40 documents per unit, in order."""


def doc_id(unit_number: int, ordinal: int) -> int:
    """The run-wide number of the ``ordinal``-th (0-based) document of a unit."""
    return (unit_number << DOC_ORDINAL_BITS) | ordinal


def split_doc_id(value: int) -> tuple[int, int]:
    """(unit number, ordinal) of a doc_id."""
    return value >> DOC_ORDINAL_BITS, value & ((1 << DOC_ORDINAL_BITS) - 1)


def add_units(conn: psycopg.Connection, run_id: int, units: list[Unit]) -> None:
    """Register the run's work units (once, when the run starts)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO docshift.checkpoints (run_id, stream, source_stream, unit_start, "
            "unit_end, estimate, unit_no, fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, u.name, u.source_stream, u.start, u.end, u.estimate, u.number,
              Jsonb(u.fingerprint) if u.fingerprint is not None else None) for u in units])


def units(conn: psycopg.Connection, run_id: int) -> list[Unit]:
    """The run's work units, in the order they were registered."""
    return [Unit(*r) for r in conn.execute(
        "SELECT stream, source_stream, unit_start, unit_end, estimate, unit_no, fingerprint "
        "FROM docshift.checkpoints WHERE run_id = %s ORDER BY ctid", (run_id,))]


def load_checkpoint(conn: psycopg.Connection, run_id: int, unit: str) -> Checkpoint:
    row = conn.execute(
        "SELECT position, docs_read, docs_rejected, rows_written, done, seconds "
        "FROM docshift.checkpoints WHERE run_id = %s AND stream = %s",
        (run_id, unit)).fetchone()
    if row is None:
        raise KeyError(unit)
    return Checkpoint(unit, row[0], row[1], row[2], dict(row[3]), row[4], row[5])


def save_checkpoint(conn: psycopg.Connection, run_id: int, cp: Checkpoint,
                    previous: Checkpoint) -> None:
    """Move the unit from ``previous`` to ``cp``; call inside the batch's transaction.

    Compare-and-set: the update only applies while the stored checkpoint is still
    ``previous`` (same position and count, not done). If anyone else has moved it — a
    second process loading the same unit — :class:`LeaseLost` is raised and the caller's
    transaction, with the batch's rows, must roll back.
    """
    cur = conn.execute(
        "UPDATE docshift.checkpoints SET position = %s, docs_read = %s, docs_rejected = %s, "
        "rows_written = %s, done = %s, seconds = %s, updated_at = now() "
        "WHERE run_id = %s AND stream = %s AND position IS NOT DISTINCT FROM %s "
        "AND docs_read = %s AND NOT done",
        (cp.position, cp.docs_read, cp.docs_rejected, Jsonb(cp.rows_written or {}), cp.done,
         cp.seconds, run_id, cp.stream, previous.position, previous.docs_read))
    if cur.rowcount != 1:
        raise LeaseLost(f"work unit {cp.stream}: its checkpoint was moved by another process "
                        "while this one was loading it; this batch was rolled back",
                        hint="Only one docshift run may load a database at a time; re-run "
                        "once the other one has stopped.")


def record_batch(conn: psycopg.Connection, run_id: int, stream: str, first_doc: int,
                 after_position: str | None) -> None:
    """Remember where a batch started (in the batch's transaction), to re-read it later."""
    conn.execute("INSERT INTO docshift.batches VALUES (%s, %s, %s, %s) "
                 "ON CONFLICT DO NOTHING", (run_id, stream, first_doc, after_position))


def set_estimate(conn: psycopg.Connection, run_id: int, stream: str, n: int | None) -> None:
    conn.execute("UPDATE docshift.checkpoints SET estimate = %s WHERE run_id = %s AND "
                 "stream = %s", (n, run_id, stream))


REJECT_COLUMNS = ("run_id", "source", "source_key", "table_name", "stage", "field",
                  "error_class", "message", "document", "doc_id")


def write_rejects(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert quarantine rows (tuples in REJECT_COLUMNS order; document as JSON text)."""
    if not rows:
        return
    with conn.cursor().copy(sql.SQL("COPY docshift.rejects ({}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, REJECT_COLUMNS)))) as copy:
        for r in rows:
            copy.write_row(r)


def write_unmatched(conn: psycopg.Connection, run_id: int, stream: str,
                    keys: list[str]) -> None:
    if keys:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO docshift.unmatched_keys VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(run_id, stream, k) for k in keys])


def add_unmapped(conn: psycopg.Connection, run_id: int, stream: str,
                 counts: dict[str, tuple[int, str]]) -> None:
    """Add unmapped-path counts ({path: (count, example key)}) for one batch."""
    if counts:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO docshift.unmapped VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id, stream, path) DO UPDATE "
                "SET count = docshift.unmapped.count + EXCLUDED.count",
                [(run_id, stream, p, n, k) for p, (n, k) in counts.items()])


def step_done(conn: psycopg.Connection, run_id: int, step: str) -> bool:
    return conn.execute("SELECT 1 FROM docshift.steps WHERE run_id = %s AND step = %s",
                        (run_id, step)).fetchone() is not None


def mark_step(conn: psycopg.Connection, run_id: int, step: str,
              detail: dict[str, Any] | None = None) -> None:
    conn.execute("INSERT INTO docshift.steps (run_id, step, detail) VALUES (%s, %s, %s) "
                 "ON CONFLICT DO NOTHING", (run_id, step, Jsonb(detail or {})))


def record_object(conn: psycopg.Connection, kind: str, table: str, name: str,
                  definition: str | None = None) -> None:
    conn.execute("INSERT INTO docshift.objects VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                 (kind, table, name, definition))


def objects(conn: psycopg.Connection, kind: str) -> list[tuple[str, str, str | None]]:
    """(table, name, definition) of recorded objects of ``kind``."""
    if not state_exists(conn):
        return []
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT table_name, name, definition FROM docshift.objects WHERE kind = %s "
        "ORDER BY table_name, name", (kind,))]


def drop_state(conn: psycopg.Connection) -> None:
    conn.execute("DROP SCHEMA IF EXISTS docshift CASCADE")


def json_text(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


RUN_LOCK = "docshift.run"
"""Advisory lock held by the process that runs a migration: one run per database at a time."""

UNIT_LOCK_CLASS = "docshift.unit"
"""First key of the per-unit advisory locks (the lease); the second is the unit's name."""

LEASE_WAIT_SECONDS = 30
"""How long a loader waits for a unit's lease held by another session before giving up.

A worker whose parent died exits at once and its session ends with it, so the usual wait is
a fraction of a second."""


RUN_LOCK_WAIT_SECONDS = 10
"""How long a run waits for the run lock before refusing. A client killed with kill -9
leaves its server session holding the lock until the statement it was running ends (an
index build, a commit); an immediate re-run waits for that instead of refusing."""


def hold_run_lock(conn: psycopg.Connection, wait: float = 0) -> bool:
    """Take the run lock on ``conn`` (a session lock: a crash or kill -9 releases it),
    waiting up to ``wait`` seconds for another session to release it."""
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (RUN_LOCK,)).fetchone()
    if (got and got[0]) or wait <= 0:
        return bool(got and got[0])
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(f"{int(wait * 1000)}ms")))
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (RUN_LOCK,))
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def run_lock_held(conn: psycopg.Connection) -> bool:
    """Whether another session holds the run lock (that is, a run is in progress)."""
    if not hold_run_lock(conn):
        return True
    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (RUN_LOCK,))
    return False


def take_unit_lease(conn: psycopg.Connection, run_id: int, unit: str,
                    on_wait: Any = None) -> None:
    """Hold the lease of ``unit`` on ``conn`` for as long as the connection lives.

    The lease is a session advisory lock: only one session can hold it, and it ends with the
    session, however the process dies. Together with the compare-and-set checkpoint it makes
    loading a unit exclusive, whoever started the loader. Raises LeaseLost if another session
    keeps it for longer than LEASE_WAIT_SECONDS.
    """
    key = (UNIT_LOCK_CLASS, f"{run_id}:{unit}")
    got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
                       key).fetchone()
    if got and got[0]:
        return
    holder = _unit_lease_holder(conn, key)
    if on_wait is not None:
        on_wait(f"work unit {unit} is held by another session ({holder}); waiting for it")
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(f"{LEASE_WAIT_SECONDS}s")))
            conn.execute("SELECT pg_advisory_lock(hashtext(%s), hashtext(%s))", key)
    except psycopg.errors.LockNotAvailable:
        raise LeaseLost(
            f"work unit {unit} is being loaded by another session ({holder})",
            hint="Another docshift process is still loading this database: stop it, or wait "
            "for it to finish, then re-run.") from None


def _unit_lease_holder(conn: psycopg.Connection, key: tuple[str, str]) -> str:
    row = conn.execute(
        "SELECT a.pid, a.application_name, a.client_addr, a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
        "AND l.classid = hashtext(%s)::oid AND l.objid = hashtext(%s)::oid LIMIT 1",
        key).fetchone()
    if row is None:
        return "a session that has just ended"
    pid, app, addr, started = row
    return f"backend pid {pid}, application {app or '?'}, from {addr or 'local socket'}, " \
           f"connected {started:%Y-%m-%d %H:%M:%S}"
