"""Exactly-once under process death, concurrent loaders and planning failures.

These tests kill real ``docshift run`` processes (the main process alone, or the whole
process group), run two loaders against one unit, and interrupt planning, then check that
every table ends exactly as an uninterrupted run leaves it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from docshift.cli import app
from docshift.errors import LeaseLost
from docshift.run import migrate as migrate_module
from docshift.run.migrate import RunOptions, migrate
from docshift.run.worker import run_unit
from docshift.spec import load_mapping
from docshift.target import state
from docshift.target.state import Checkpoint, load_checkpoint, save_checkpoint, units
from tests.run.sample import (
    MAPPING,
    expected_rows,
    interrupt_after_first_batch,
    write_dump,
    write_mapping,
)

runner = CliRunner()

# a table without a primary key: a batch loaded twice shows as extra rows, not as
# duplicate_key rejects
NO_KEY_TABLE = """
  user_tag_events:
    from: Users
    unnest: tags
    columns:
      user_id: {type: uuid, from: _id}
      tag: {type: text, from: $item}
"""
TABLES = [*expected_rows(), "user_tag_events"]
POLL = 0.005
WAIT_LIMIT = 120.0


def docshift(*args: str, dsn: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DOCSHIFT_DSN": dsn}
    return subprocess.Popen([sys.executable, "-m", "docshift", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def query(dsn: str, sql: str) -> int:
    """One integer from ``sql``, or -1 while docshift's state does not exist yet."""
    with psycopg.connect(dsn, autocommit=True) as c:
        if not c.execute("SELECT to_regclass('docshift.steps') IS NOT NULL").fetchone()[0]:
            return -1
        return int(c.execute(sql).fetchone()[0] or 0)


def checkpointed(dsn: str) -> int:
    return query(dsn, "SELECT sum(docs_read) FROM docshift.checkpoints")


def steps_done(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM docshift.steps")


def wait_until(cond: Callable[[], bool], proc: subprocess.Popen[bytes]) -> bool:
    """Poll ``cond`` while ``proc`` runs; False if the process ended first."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if cond():
            return True
        time.sleep(POLL)
    raise AssertionError("docshift made no progress")


def snapshot(dsn: str) -> dict[str, object]:
    """Row count and digest of every table, the quarantine, and the loader's row counters."""
    out: dict[str, object] = {}
    with psycopg.connect(dsn, autocommit=True) as c:
        for t in TABLES:
            out[t] = c.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
                f" FROM {t} t").fetchone()
        out["rejects"] = c.execute(
            "SELECT count(*), md5(string_agg(concat_ws('|', source_key, table_name, field, "
            "error_class), ',' ORDER BY source_key, table_name, field, error_class)) "
            "FROM docshift.rejects").fetchone()
        out["rows_written"] = dict(c.execute(
            "SELECT key, sum(value::bigint) FROM docshift.checkpoints, "
            "jsonb_each_text(rows_written) GROUP BY key").fetchall())
    return out


def write(tmp_path: Path, name: str, dump: Path, dsn: str) -> Path:
    return write_mapping(tmp_path / name, dump, dsn, MAPPING + NO_KEY_TABLE)


def finish(mapping: Path, dsn: str, *args: str) -> str:
    proc = docshift("run", "-c", str(mapping), *args, dsn=dsn)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 3, out.decode()
    return out.decode()


def worker_pids(proc: subprocess.Popen[bytes], n: int) -> list[int]:
    """The pids of the ``n`` worker processes of a running docshift (spawned children)."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        kids = [p for p in psutil.Process(proc.pid).children()
                if "multiprocessing" in " ".join(p.cmdline())]
        if len(kids) >= n:
            return [p.pid for p in kids]
        time.sleep(POLL)
    raise AssertionError("the workers did not start")


def gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids):
            return True
        time.sleep(POLL)
    return False


# --- workers never outlive their parent ----------------------------------------------------

N_BIG = 20_000  # users and accounts each: the load takes seconds with two workers
N_HUGE = 50_000  # for the kill loop: 100,000 documents


def reference_of(dump: Path, tmp: Path, server_dsn: str) -> dict[str, object]:
    """The snapshot an uninterrupted run of ``dump`` leaves."""
    from docshift.target.connect import recreate_database

    name = f"dsref_{os.getpid()}_{dump.parent.name}"
    dsn = recreate_database(server_dsn, name)
    mapping = write(tmp, "ref.yaml", dump, dsn)
    finish(mapping, dsn, "--batch-size", "500")
    snap = snapshot(dsn)
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return snap


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dump(tmp_path_factory.mktemp("big") / "dump", N_BIG, N_BIG)


@pytest.fixture(scope="module")
def big_reference(big_dump: Path, tmp_path_factory: pytest.TempPathFactory,
                  server_dsn: str) -> dict[str, object]:
    return reference_of(big_dump, tmp_path_factory.mktemp("ref"), server_dsn)


@pytest.fixture(scope="module")
def huge_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dump(tmp_path_factory.mktemp("huge") / "dump", N_HUGE, N_HUGE)


@pytest.fixture(scope="module")
def huge_reference(huge_dump: Path, tmp_path_factory: pytest.TempPathFactory,
                   server_dsn: str) -> dict[str, object]:
    return reference_of(huge_dump, tmp_path_factory.mktemp("ref"), server_dsn)


@pytest.mark.slow  # a real kill of a process tree on a large dataset; CI runs it with --slow
def test_killing_the_main_process_stops_its_workers_and_a_rerun_loads_nothing_twice(
        tmp_path: Path, big_dump: Path, big_reference: dict[str, object], dsn: str) -> None:
    mapping = write(tmp_path, "docshift.yaml", big_dump, dsn)
    proc = docshift("run", "-c", str(mapping), "--workers", "2", "--batch-size", "500",
                    "--split-min-docs", "1000", dsn=dsn)
    pids = worker_pids(proc, 2)
    assert wait_until(lambda: checkpointed(dsn) >= 4_000, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, not its group
    proc.wait()
    assert gone(pids, within=5.0), "worker processes outlived their parent"
    at_kill = checkpointed(dsn)
    assert at_kill < 2 * N_BIG  # they were still working when the parent died
    # the run is recognisably interrupted, not running
    res = runner.invoke(app, ["status", "-c", str(mapping), "--dsn", dsn])
    assert "interrupted" in res.output, res.output
    assert checkpointed(dsn) == at_kill  # nothing moved after the parent's death
    finish(mapping, dsn, "--workers", "2", "--batch-size", "500")
    assert snapshot(dsn) == big_reference


@pytest.mark.slow  # a real kill of a process tree on a large dataset; CI runs it with --slow
@pytest.mark.parametrize(("phase", "sig"), [("finalize", signal.SIGINT),
                                            ("load", signal.SIGTERM)])
def test_ctrl_c_in_finalization_and_sigterm_interrupt_and_resume(
        tmp_path: Path, big_dump: Path, big_reference: dict[str, object], dsn: str,
        phase: str, sig: signal.Signals) -> None:
    mapping = write(tmp_path, "docshift.yaml", big_dump, dsn)
    proc = docshift("run", "-c", str(mapping), "--batch-size", "500", dsn=dsn)
    if phase == "finalize":
        assert wait_until(lambda: steps_done(dsn) >= 1, proc)
    else:
        assert wait_until(lambda: checkpointed(dsn) >= 5_000, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out.decode()
    assert b"re-run the same command to resume" in out
    assert b"Traceback" not in out
    res = runner.invoke(app, ["status", "-c", str(mapping), "--dsn", dsn])
    assert "interrupted" in res.output, res.output
    finish(mapping, dsn, "--batch-size", "500")
    assert snapshot(dsn) == big_reference


def test_a_second_loader_of_the_same_unit_waits_for_the_lease_then_gives_up(
        tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = write_dump(tmp_path / "dump", 200, 100)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    interrupt_after_first_batch(m, dsn)
    monkeypatch.setattr(state, "LEASE_WAIT_SECONDS", 1)
    with psycopg.connect(dsn, autocommit=True) as holder:
        run_id = holder.execute("SELECT max(run_id) FROM docshift.runs").fetchone()[0]
        unit = next(u for u in units(holder, run_id) if u.source_stream == "Users")
        state.take_unit_lease(holder, run_id, unit.name)
        before = load_checkpoint(holder, run_id, unit.name)
        waits: list[str] = []
        with pytest.raises(LeaseLost, match=f"work unit {unit.name} is being loaded"):
            run_unit(m, dsn, run_id, unit, 50, lambda: False, lambda p: None,
                     on_wait=waits.append)
        assert waits and f"backend pid {holder.info.backend_pid}" in waits[0]
        assert load_checkpoint(holder, run_id, unit.name) == before


def test_a_batch_whose_checkpoint_moved_meanwhile_rolls_back(
        tmp_path: Path, dsn: str) -> None:
    dump = write_dump(tmp_path / "dump", 200, 100)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    interrupt_after_first_batch(m, dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        run_id = c.execute("SELECT max(run_id) FROM docshift.runs").fetchone()[0]
        unit = next(u for u in units(c, run_id) if u.source_stream == "Users")
        stale = load_checkpoint(c, run_id, unit.name)
        # another process commits a batch of this unit first
        moved = Checkpoint(**{**stale.__dict__, "position": "999", "docs_read": 99})
        save_checkpoint(c, run_id, moved, stale)
        with pytest.raises(LeaseLost), c.transaction():
            c.execute("INSERT INTO user_tag_events (tag) VALUES ('from the stale batch')")
            save_checkpoint(c, run_id, Checkpoint(**{**stale.__dict__, "docs_read": 50}),
                            stale)
        assert c.execute("SELECT count(*) FROM user_tag_events WHERE tag = "
                         "'from the stale batch'").fetchone()[0] == 0
        assert load_checkpoint(c, run_id, unit.name).docs_read == 99


# --- a run is born complete or not at all -----------------------------------------------


KV_MAPPING = """
source: {kind: postgres_kv, table: kv_later}
target: {dsn: "%(dsn)s"}
tables:
  clients:
    keys: "client:{id}"
    primary_key: id
    columns:
      id: {type: uuid, from: $key.id}
      name: {type: text, nullable: false}
"""


def test_a_planning_error_leaves_no_run_and_the_fixed_rerun_loads_everything(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(KV_MAPPING % {"dsn": dsn})
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 1, res.output
    assert "kv_later" in res.output
    assert conn.execute("SELECT count(*) FROM docshift.runs").fetchone()[0] == 0
    # the user does what the error says: the table now exists
    conn.execute("CREATE TABLE kv_later (key text PRIMARY KEY, value jsonb)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kv_later VALUES (%s, %s)",
                        [(f"client:c{i}", Jsonb({"name": f"Client {i}"})) for i in range(25)])
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 25


def test_an_interruption_while_planning_leaves_no_run_behind(
        tmp_path: Path, dsn: str, conn: psycopg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dump = write_dump(tmp_path / "dump", 40, 30)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    real = migrate_module.plan_units

    def interrupted(*args: object, **kw: object) -> object:
        real(*args, **kw)  # the source is read, then Ctrl+C arrives
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate_module, "plan_units", interrupted)
    with pytest.raises(KeyboardInterrupt):
        migrate(m, dsn, RunOptions())
    assert conn.execute("SELECT count(*) FROM docshift.runs").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM docshift.checkpoints").fetchone()[0] == 0
    monkeypatch.setattr(migrate_module, "plan_units", real)
    res = migrate(m, dsn, RunOptions())
    assert {t.table: t.rows for t in res.tables if t.table in expected_rows()} == \
        expected_rows()


# --- identity, limits ---------------------------------------------------------------------


def test_changing_only_the_password_resumes_the_run(tmp_path: Path, dsn: str) -> None:
    dump = write_dump(tmp_path / "dump", 200, 100)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    interrupt_after_first_batch(m, f"{dsn} password=old-secret")
    res = migrate(m, f"{dsn} password=new-secret", RunOptions(batch_size=50))
    assert not res.already_complete
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM docshift.runs").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM users").fetchone()[0] == 200


def test_workers_are_capped_with_a_message(tmp_path: Path, dsn: str,
                                           conn: psycopg.Connection) -> None:
    dump = write_dump(tmp_path / "dump", 40, 30)
    mapping = write(tmp_path, "docshift.yaml", dump, dsn)
    res = runner.invoke(app, ["run", "-c", str(mapping), "--workers", "64"])
    assert res.exit_code == 3, res.output
    cap = (os.cpu_count() or 1) * migrate_module.MAX_WORKERS_PER_CPU
    assert f"--workers 64 is more than this machine can use; using {cap}" in res.output
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 40


# --- kill at random moments across prepare, load and finalize ---------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "group"), [("1", True), ("2", True), ("2", False)])
def test_kill_at_random_moments_then_resume_gives_identical_tables(
        tmp_path: Path, huge_dump: Path, huge_reference: dict[str, object], dsn: str,
        workers: str, group: bool) -> None:
    mapping = write(tmp_path, "docshift.yaml", huge_dump, dsn)
    rng = random.Random(f"{workers}-{group}")
    total = 2 * N_HUGE
    # moments: two while preparing, seven while loading, two while finalizing
    moments: list[tuple[str, int]] = [("prepare", 0), ("planned", 0)]
    moments += [("load", n) for n in sorted(rng.sample(range(1, total), 7))]
    moments += [("finalize", 1), ("finalize", rng.randint(2, 12))]
    kills = 0
    for phase, target in moments:
        proc = docshift("run", "-c", str(mapping), "--batch-size", "500", "--workers",
                        workers, "--split-min-docs", "1000", dsn=dsn)
        if phase == "prepare":
            cond = lambda: query(dsn, "SELECT 1") >= 0  # noqa: E731 - state exists
        elif phase == "planned":
            cond = lambda: query(dsn, "SELECT count(*) FROM docshift.runs") > 0  # noqa: E731
        elif phase == "load":
            cond = lambda t=target: checkpointed(dsn) >= t  # noqa: E731
        else:
            before = steps_done(dsn)
            cond = lambda b=before + target - 1: steps_done(dsn) > b  # noqa: E731
        if wait_until(cond, proc):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 8
    finish(mapping, dsn, "--batch-size", "500", "--workers", workers)
    assert snapshot(dsn) == huge_reference
