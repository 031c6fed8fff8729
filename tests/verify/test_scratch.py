"""The verifier's scratch schema: its tables are shared by the connections that compare side
by side, and it is dropped at the end whatever happens (a failing part, an interruption)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from docshift.errors import DocshiftError
from docshift.verify import engine
from tests.verify.helpers import run_verify
from tests.verify.test_parallel import _migrated

SCRATCH = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'docshift\\_verify\\_%'"


def _scratch_schemas(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(SCRATCH).fetchall()]


def _watch_compare(monkeypatch: pytest.MonkeyPatch, dsn: str, first: Any = None
                   ) -> dict[str, Any]:
    """Record, per compared table, the backend that compared it and the scratch schemas
    there were meanwhile; ``first()`` runs as the first comparison starts."""
    seen: dict[str, Any] = {}
    compare = engine._Verifier._compare

    def watched(self: Any, t: Any) -> None:
        seen[t.name] = (self.conn.info.backend_pid, _scratch_schemas(dsn))
        if first is not None and len(seen) == 1:
            first()
        compare(self, t)

    monkeypatch.setattr(engine._Verifier, "_compare", watched)
    return seen


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_compared_side_by_side_in_a_scratch_schema_dropped_after(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _migrated(tmp_path, dsn)
    seen = _watch_compare(monkeypatch, dsn)
    rep = run_verify(m, dsn, full=True, workers=2)
    assert rep.ok, [c for c in rep.checks if c.status == "fail"]
    assert set(seen) == {"things", "thing_tags"}
    pids = {pid for pid, _ in seen.values()}
    assert len(pids) == 2  # two connections, one table each
    for _, schemas in seen.values():
        assert len(schemas) == 1 and schemas[0].startswith("docshift_verify_")
    assert _scratch_schemas(dsn) == []


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_scratch_schema_dropped_when_a_part_fails(dsn: str, tmp_path: Path) -> None:
    m = _migrated(tmp_path, dsn)
    bson_file = tmp_path / "dump" / "things.bson"
    data = bson_file.read_bytes()
    # the file is cut before the second work unit starts: that part cannot be read
    bson_file.write_bytes(data[:len(data) // 4])
    with pytest.raises(DocshiftError, match="beyond the end of the file"):
        run_verify(m, dsn, full=True, workers=2)
    assert _scratch_schemas(dsn) == []


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_scratch_schema_dropped_when_a_comparison_fails(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _migrated(tmp_path, dsn)

    def fail() -> None:
        # a table goes from under the verifier: its next statement on it fails in PostgreSQL
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE thing_tags RENAME TO thing_tags_gone")

    _watch_compare(monkeypatch, dsn, first=fail)
    with pytest.raises(psycopg.errors.UndefinedTable):
        run_verify(m, dsn, full=True, workers=2)
    assert _scratch_schemas(dsn) == []


@pytest.fixture
def ctrl_c() -> Any:
    """Ctrl+C raises KeyboardInterrupt here, also where the tests were started with it
    ignored (a shell's background job)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_scratch_schema_dropped_when_interrupted(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctrl_c: None) -> None:
    m = _migrated(tmp_path, dsn)
    # Ctrl+C while the comparisons run in their threads: the main thread is interrupted
    _watch_compare(monkeypatch, dsn, first=lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        run_verify(m, dsn, full=True, workers=2)
    assert _scratch_schemas(dsn) == []


@pytest.fixture
def reader_dsn(dsn: str) -> Any:
    """A role that may read the target and docshift's state but create no schema."""
    role = f"verify_reader_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))

    def grant() -> str:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in ("public", "docshift"):
                conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT SELECT ON ALL "
                                     "TABLES IN SCHEMA {s} TO {r}").format(
                    s=sql.Identifier(schema), r=sql.Identifier(role)))
        return make_conninfo(dsn, user=role)

    yield grant
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role)))


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_without_create_privilege_temporary_tables_serve(
        dsn: str, tmp_path: Path, reader_dsn: Any) -> None:
    m = _migrated(tmp_path, dsn)
    reader = reader_dsn()
    with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE SCHEMA docshift_verify_probe")
    rep = run_verify(m, reader, full=True, workers=2)
    assert rep.ok, [c for c in rep.checks if c.status == "fail"]
    alone = run_verify(m, dsn, full=True, workers=1)
    assert [(c.layer, c.table, c.name, c.status, c.actual) for c in rep.checks] == [
        (c.layer, c.table, c.name, c.status, c.actual) for c in alone.checks]


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_scratch_schema_dropped_when_interrupted_while_reading(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctrl_c: None) -> None:
    m = _migrated(tmp_path, dsn)
    scan_parallel = engine.scan.scan_parallel
    seen: list[list[str]] = []

    def interrupted(*args: Any) -> Any:
        # the worker processes copy their rows into the scratch schema themselves: Ctrl+C
        # comes once the first rows are there, most often as the others are still read
        def watch() -> None:
            deadline = time.monotonic() + 60
            with psycopg.connect(dsn, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    schemas = [r[0] for r in conn.execute(SCRATCH).fetchall()]
                    found = [conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(
                        sql.Identifier(s, "exp_0"))).fetchone() for s in schemas]
                    if any(found):
                        seen.append(schemas)
                        os.kill(os.getpid(), signal.SIGINT)
                        return
                    time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            return scan_parallel(*args)
        finally:
            watcher.join()  # a small source may be read before the rows are seen

    monkeypatch.setattr(engine.scan, "scan_parallel", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_verify(m, dsn, full=True, workers=2)
    assert len(seen) == 1 and len(seen[0]) == 1
    assert _scratch_schemas(dsn) == []
