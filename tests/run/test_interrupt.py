"""Exactly-once: kill a real `docshift run` at random moments, resume, compare every table.

Each test runs the same migration twice: once uninterrupted into one database, once into
another while being SIGKILLed (or Ctrl+C'd) at random points — chosen by watching the
checkpoint table, not by sleeping — and resumed until it completes. Every table must hold
exactly the same rows, and the quarantine the same documents.
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

import psycopg
import pytest

from tests.run.sample import expected_rows, write_dump, write_mapping

N_USERS, N_ACCOUNTS = 1500, 1500
BATCH = "100"
POLL = 0.005  # seconds between looks at the checkpoint table
WAIT_LIMIT = 60.0


def docshift(*args: str, dsn: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DOCSHIFT_DSN": dsn}
    return subprocess.Popen([sys.executable, "-m", "docshift", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def progress(dsn: str) -> tuple[int, int]:
    """(documents checkpointed, finalize steps done) so far, (0, 0) before the state exists."""
    with psycopg.connect(dsn, autocommit=True) as c:
        if not c.execute("SELECT to_regclass('docshift.steps') IS NOT NULL").fetchone()[0]:
            return 0, 0
        docs = c.execute("SELECT coalesce(sum(docs_read), 0) FROM docshift.checkpoints"
                         ).fetchone()[0]
        steps = c.execute("SELECT count(*) FROM docshift.steps").fetchone()[0]
        return int(docs), int(steps)


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


def snapshot(dsn: str) -> dict[str, tuple[int, str]]:
    """(row count, digest of all rows) per table, plus the quarantine."""
    out = {}
    with psycopg.connect(dsn, autocommit=True) as c:
        for t in expected_rows():
            out[t] = c.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                f"FROM {t} t").fetchone()
        out["rejects"] = c.execute(
            "SELECT count(*), md5(string_agg(concat_ws('|', source_key, table_name, field, "
            "error_class), ',' ORDER BY source_key, table_name, field, error_class)) "
            "FROM docshift.rejects").fetchone()
    return out


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    return write_dump(tmp_path / "dump", N_USERS, N_ACCOUNTS)


def reference(tmp_path: Path, dump: Path, dsn: str) -> dict[str, tuple[int, str]]:
    mapping = write_mapping(tmp_path / "ref.yaml", dump, dsn)
    proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out.decode()
    snap = snapshot(dsn)
    assert {t: snap[t][0] for t in expected_rows()} == expected_rows(N_USERS, N_ACCOUNTS)
    return snap


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkill_at_random_points_then_resume_gives_identical_tables(
        tmp_path: Path, dump: Path, make_dsn: Callable[[], str], workers: str) -> None:
    ref = reference(tmp_path, dump, make_dsn())
    dsn = make_dsn()
    mapping = write_mapping(tmp_path / "docshift.yaml", dump, dsn)
    total = N_USERS + N_ACCOUNTS
    rng = random.Random(int(workers))
    # kill points: during loading (by documents checkpointed) and during finalization
    points = sorted(rng.sample(range(1, total), 3))
    kills = 0
    for target in [*points, None, None]:
        # with two workers, both collections are also split into key ranges
        proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH,
                        "--workers", workers, "--split-min-docs", "500", dsn=dsn)
        if target is not None:
            hit = wait_until(lambda t=target: progress(dsn)[0] >= t, proc)
        else:
            steps_before = progress(dsn)[1]
            hit = wait_until(lambda s=steps_before: progress(dsn)[1] > s, proc)
        if hit:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            proc.wait()
    assert kills >= 3
    proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode in (0, 3), out.decode()
    assert snapshot(dsn) == ref


@pytest.mark.slow  # a real interrupted run and its resume; CI runs it with --slow
def test_ctrl_c_stops_at_batch_boundary_exits_130_and_resumes(
        tmp_path: Path, dump: Path, make_dsn: Callable[[], str]) -> None:
    ref = reference(tmp_path, dump, make_dsn())
    dsn = make_dsn()
    mapping = write_mapping(tmp_path / "docshift.yaml", dump, dsn)
    proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    assert wait_until(lambda: progress(dsn)[0] >= 500, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out.decode()
    assert b"re-run" in out
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT status FROM docshift.runs").fetchone()[0] == "interrupted"
        done = c.execute("SELECT sum(docs_read) FROM docshift.checkpoints").fetchone()[0]
    assert 0 < done < N_USERS + N_ACCOUNTS + 5
    proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out.decode()
    assert snapshot(dsn) == ref


@pytest.mark.slow  # a real dropped connection and its resume; CI runs it with --slow
def test_dropped_connection_fails_cleanly_and_resumes(
        tmp_path: Path, dump: Path, make_dsn: Callable[[], str]) -> None:
    ref = reference(tmp_path, dump, make_dsn())
    dsn = make_dsn()
    mapping = write_mapping(tmp_path / "docshift.yaml", dump, dsn)
    proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    assert wait_until(lambda: progress(dsn)[0] >= 700, proc)
    with psycopg.connect(dsn, autocommit=True) as c:
        killed = c.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'docshift' AND datname = current_database()"
        ).fetchone()[0]
    assert killed >= 1
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out.decode()
    proc = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out.decode()
    assert snapshot(dsn) == ref


@pytest.mark.slow  # waits out RUN_LOCK_WAIT_SECONDS
def test_a_second_run_against_the_same_database_is_refused(
        tmp_path: Path, dump: Path, dsn: str) -> None:
    mapping = write_mapping(tmp_path / "docshift.yaml", dump, dsn)
    with psycopg.connect(dsn, autocommit=True) as holder:
        # hold the run lock as a running docshift does
        holder.execute("SELECT pg_advisory_lock(hashtext('docshift.run'))")
        second = docshift("run", "-c", str(mapping), dsn=dsn)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 1
        assert b"another docshift run is in progress" in out
    first = docshift("run", "-c", str(mapping), "--batch-size", BATCH, dsn=dsn)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 3, out.decode()
