"""``docshift run --executor dask``: the same work units on a Dask cluster.

A LocalCluster of worker processes (``--scheduler local:N``) stands in for a real cluster:
the tasks, the scheduler's retries and the workers' deaths are the same. The tests check
that every table ends exactly as an uninterrupted local run leaves it.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import mongomock
import psutil
import psycopg
import pytest
from bson import Int64, ObjectId
from typer.testing import CliRunner

from docshift.cli import app
from docshift.errors import DocshiftError
from docshift.run.executors import DASK_EXTRA, local_cluster_size
from docshift.run.migrate import RunOptions, migrate
from docshift.sources.mongodb import MongoSource, MongoStream
from docshift.spec import load_mapping
from tests.run import test_exactly_once as exactly_once
from tests.run.sample import accounts, expected_rows, users, write_dump
from tests.run.test_exactly_once import (
    N_BIG,
    POLL,
    WAIT_LIMIT,
    checkpointed,
    docshift,
    finish,
    gone,
    query,
    snapshot,
    wait_until,
    write,
)

runner = CliRunner()
# the large dump and the outcome of its uninterrupted local run, shared with those tests
big_dump = exactly_once.big_dump
big_reference = exactly_once.big_reference


# --- without the extra ---------------------------------------------------------------------


def test_without_dask_the_error_names_the_extra(tmp_path: Path, dsn: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_distributed(name: str, *args: object, **kw: object) -> object:
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    dump = write_dump(tmp_path / "dump", 40, 30)
    mapping = write(tmp_path, "docshift.yaml", dump, dsn)
    res = runner.invoke(app, ["run", "-c", str(mapping), "--executor", "dask",
                              "--scheduler", "local:2"])
    assert res.exit_code == 1, res.output
    assert DASK_EXTRA in res.output
    assert "Traceback" not in res.output
    with psycopg.connect(dsn, autocommit=True) as c:
        # refused before anything was planned or prepared
        assert c.execute("SELECT to_regclass('users')").fetchone()[0] is None


def test_an_unknown_executor_or_a_stray_scheduler_is_a_usage_error(
        tmp_path: Path, dsn: str) -> None:
    dump = write_dump(tmp_path / "dump", 40, 30)
    mapping = write(tmp_path, "docshift.yaml", dump, dsn)
    res = runner.invoke(app, ["run", "-c", str(mapping), "--executor", "spark"])
    assert res.exit_code == 2, res.output
    assert "'spark' is not one of local, dask" in res.output
    res = runner.invoke(app, ["run", "-c", str(mapping), "--scheduler", "local:2"])
    assert res.exit_code == 1, res.output
    assert "--scheduler is only used with --executor dask" in res.output


@pytest.mark.parametrize("bad", ["local:", "local:0", "local:two"])
def test_a_malformed_local_scheduler_is_refused(bad: str) -> None:
    with pytest.raises(DocshiftError, match="N in local:N must be a whole number"):
        local_cluster_size(bad)


def test_a_scheduler_address_is_not_a_local_cluster() -> None:
    assert local_cluster_size("tcp://scheduler:8786") is None
    assert local_cluster_size("local:3") == 3


# --- on a LocalCluster -----------------------------------------------------------------------

@pytest.fixture
def distributed() -> object:
    return pytest.importorskip("distributed")


def tables(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in expected_rows()}


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_a_run_on_a_local_cluster_loads_every_unit_once_and_finalizes(
        tmp_path: Path, dsn: str, distributed: object) -> None:
    dump = write_dump(tmp_path / "dump", 400, 300)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    seen: list[str] = []

    from docshift.run.migrate import UI
    from docshift.run.worker import Progress

    class Record(UI):
        def progress(self, p: Progress) -> None:
            seen.append(p.kind)

    res = migrate(m, dsn, RunOptions(executor="dask", scheduler="local:2", batch_size=50,
                                     split_min_docs=100), Record())
    assert tables(dsn) == expected_rows(400, 300)
    assert res.quarantined > 0
    with psycopg.connect(dsn, autocommit=True) as c:
        units = c.execute("SELECT stream, done FROM docshift.checkpoints").fetchall()
        # both streams were split into as many ranges as the cluster has workers
        assert sorted(u for u, _ in units) == ["Accounts#1", "Accounts#2", "Users#1",
                                               "Users#2"]
        assert all(done for _, done in units)
        # finalization ran once, from the client: the hidden columns are gone
        assert c.execute("SELECT count(*) FROM information_schema.columns WHERE "
                         "column_name LIKE '__docshift%'").fetchone()[0] == 0
        status = c.execute("SELECT status FROM docshift.runs").fetchone()[0]
    assert status == "completed"
    # progress came back per batch, and each unit reported its end
    assert seen.count("done") == 4
    assert seen.count("batch") >= 700 // 50


# --- live MongoDB collections are split into _id ranges ------------------------------------

MIXED_IDS: list[object] = [
    -3, 5, 1.5, Int64(2**40), float("nan"), "a", "b", "é", ObjectId("65f000000000000000000001"),
    ObjectId("65f000000000000000000002"), False, True,
    dt.datetime(2020, 1, 1, tzinfo=dt.UTC), None,
] + [ObjectId(f"66{i:022x}") for i in range(40)] + [f"s{i:03d}" for i in range(30)]


def mongo_stream(ids: list[object]) -> MongoStream:
    client = mongomock.MongoClient()
    client["crm"]["things"].insert_many([{"_id": i, "n": k} for k, i in enumerate(ids)])
    return MongoSource(None, "crm", client=client, page_size=7).stream("things")


def ranges(stream: MongoStream, bounds: list[str]) -> list[list[str]]:
    """The positions each unit (start, end] reads, the way run_unit reads a unit."""
    edges = [None, *bounds, None]
    out = []
    for start, end in zip(edges, edges[1:], strict=False):
        got = []
        for d in stream.read(after=start):
            if end is not None and stream.past(d.position, end):
                break
            got.append(d.position)
        out.append(got)
    return out


@pytest.mark.parametrize("parts", [2, 3, 5, 8])
def test_a_live_collection_splits_into_id_ranges_that_cover_it_once(parts: int) -> None:
    stream = mongo_stream(MIXED_IDS)
    everything = [d.position for d in stream.read()]
    assert len(everything) == len(MIXED_IDS)
    bounds = stream.split(parts)
    assert 1 <= len(bounds) <= parts - 1
    assert all(b in everything for b in bounds)  # each boundary is an existing _id
    cut = ranges(stream, bounds)
    # the ranges, one after the other, are the collection in _id order, each document once
    assert [p for r in cut for p in r] == everything
    assert all(r for r in cut[:-1])
    edges = [None, *bounds, None]
    counted = [stream.count_between(s, e) for s, e in zip(edges, edges[1:], strict=False)]
    assert counted == [len(r) for r in cut]


def test_only_ids_of_an_orderable_type_become_boundaries() -> None:
    stream = mongo_stream([{"k": i} for i in range(20)])  # objects: no order known here
    assert stream.split(4) == []


def test_a_live_mongodb_run_loads_its_id_ranges_exactly_once(
        tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from docshift.run import migrate as migrate_module
    from docshift.run.executors import InProcess

    shared = mongomock.MongoClient()
    shared["crm"]["Users"].insert_many(users(90))
    shared["crm"]["Accounts"].insert_many(accounts(60, 90))
    monkeypatch.setattr("docshift.sources.mongodb.pymongo.MongoClient",
                        lambda *a, **kw: shared)
    # units planned for three loaders, loaded in this process (mongomock lives here only)
    monkeypatch.setattr(migrate_module, "open_executor",
                        lambda m, dsn, opts, workers: InProcess(m, dsn, opts))
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(LIVE_MAPPING % {"dsn": dsn})
    res = migrate(load_mapping(mapping), dsn, RunOptions(workers=3, batch_size=8,
                                                         split_min_docs=20))
    assert {t.table: t.rows for t in res.tables} == {"users": 90, "accounts": 60}
    with psycopg.connect(dsn, autocommit=True) as c:
        units = c.execute("SELECT stream, unit_start, unit_end, docs_read FROM "
                          "docshift.checkpoints ORDER BY stream").fetchall()
        ids = c.execute("SELECT count(DISTINCT id) FROM users").fetchone()[0]
    assert [u[0] for u in units] == ["Accounts#1", "Accounts#2", "Accounts#3", "Users#1",
                                     "Users#2", "Users#3"]
    assert all(u[2].startswith('{"$oid"') for u in units if u[0].endswith(("#1", "#2")))
    assert sum(u[3] for u in units if u[0].startswith("Users")) == 90
    assert ids == 90


LIVE_MAPPING = """
source: {kind: mongodb, uri: "mongodb://example.invalid:27017", database: crm}
target: {dsn: "%(dsn)s"}
options: {unmapped: ignore}
tables:
  users:
    from: Users
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, unique: true}
  accounts:
    from: Accounts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      owner_id: {type: uuid, from: owner, references: users}
"""


# --- deaths: a Dask worker, the client -------------------------------------------------------


def dask_worker_pids(proc: subprocess.Popen[bytes], n: int) -> list[int]:
    """The pids of the ``n`` worker processes of a LocalCluster a docshift run started."""
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        kids = [p for p in psutil.Process(proc.pid).children()
                if "spawn_main" in " ".join(p.cmdline())]
        if len(kids) >= n:
            return [p.pid for p in kids]
        time.sleep(POLL)
    raise AssertionError("the Dask workers did not start")


def units_loading(dsn: str) -> int:
    """Units started but not finished (the killed worker must be in the middle of one)."""
    return query(dsn, "SELECT count(*) FROM docshift.checkpoints WHERE docs_read > 0 "
                      "AND NOT done")


DASK_RUN = ("--batch-size", "500", "--split-min-docs", "1000", "--executor", "dask",
            "--scheduler", "local:2")


@pytest.mark.slow  # a real kill of a process tree on a large dataset; CI runs it with --slow
def test_a_dask_worker_killed_mid_unit_is_replaced_and_nothing_is_loaded_twice(
        tmp_path: Path, big_dump: Path, big_reference: dict[str, object], dsn: str,
        distributed: object) -> None:
    mapping = write(tmp_path, "docshift.yaml", big_dump, dsn)
    proc = docshift("run", "-c", str(mapping), *DASK_RUN, dsn=dsn)
    pids = dask_worker_pids(proc, 2)
    assert wait_until(lambda: checkpointed(dsn) >= 6_000 and units_loading(dsn) >= 2, proc)
    os.kill(pids[0], signal.SIGKILL)
    at_kill = checkpointed(dsn)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 3, out.decode()
    assert at_kill < 2 * N_BIG  # the worker was still loading when it died
    assert snapshot(dsn) == big_reference


@pytest.mark.slow  # a real kill of a process tree on a large dataset; CI runs it with --slow
def test_killing_the_client_stops_its_dask_workers_and_a_rerun_loads_nothing_twice(
        tmp_path: Path, big_dump: Path, big_reference: dict[str, object], dsn: str,
        distributed: object) -> None:
    mapping = write(tmp_path, "docshift.yaml", big_dump, dsn)
    proc = docshift("run", "-c", str(mapping), *DASK_RUN, dsn=dsn)
    pids = dask_worker_pids(proc, 2)
    assert wait_until(lambda: checkpointed(dsn) >= 6_000, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the client only, not its process group
    proc.wait()
    assert gone(pids, within=5.0), "Dask workers outlived the client that started them"
    at_kill = checkpointed(dsn)
    assert at_kill < 2 * N_BIG
    assert checkpointed(dsn) == at_kill  # nothing moved after the client's death
    finish(mapping, dsn, *DASK_RUN)
    assert snapshot(dsn) == big_reference


def test_a_task_that_cannot_take_its_lease_fails_cleanly_and_its_retry_loads_the_unit(
        tmp_path: Path, dsn: str, distributed: object,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from docshift.run.migrate import UI
    from docshift.target import state
    from tests.run.sample import interrupt_after_first_batch

    dump = write_dump(tmp_path / "dump", 200, 100)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    interrupt_after_first_batch(m, dsn)
    # worker threads in this process, so that they wait only a moment for a lease
    monkeypatch.setattr(state, "LEASE_WAIT_SECONDS", 1)
    holder = psycopg.connect(dsn, autocommit=True)
    run_id = holder.execute("SELECT max(run_id) FROM docshift.runs").fetchone()[0]
    state.take_unit_lease(holder, run_id, "Users")
    waits: list[str] = []

    class ReleaseOnRetry(UI):
        def message(self, text: str) -> None:
            waits.append(text)
            if len(waits) == 2:  # the first attempt gave up; the scheduler retried it
                holder.close()

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        migrate(m, dsn, RunOptions(executor="dask", scheduler=cluster.scheduler_address,
                                   batch_size=50), ReleaseOnRetry())
    assert len(waits) == 2 and all("work unit Users is held by another session" in w
                                   for w in waits)
    assert tables(dsn) == expected_rows(200, 100)


def test_a_unit_whose_lease_stays_taken_fails_the_run_without_loading_it(
        tmp_path: Path, dsn: str, distributed: object,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from docshift.target import state
    from tests.run.sample import interrupt_after_first_batch

    dump = write_dump(tmp_path / "dump", 200, 100)
    m = load_mapping(write(tmp_path, "docshift.yaml", dump, dsn))
    interrupt_after_first_batch(m, dsn)
    monkeypatch.setattr(state, "LEASE_WAIT_SECONDS", 0.2)
    with psycopg.connect(dsn, autocommit=True) as holder, LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False,
            dashboard_address=None) as cluster:
        run_id = holder.execute("SELECT max(run_id) FROM docshift.runs").fetchone()[0]
        state.take_unit_lease(holder, run_id, "Users")
        before = state.load_checkpoint(holder, run_id, "Users")
        with pytest.raises(DocshiftError, match="work unit Users is being loaded by another "
                                                "session"):
            migrate(m, dsn, RunOptions(executor="dask", scheduler=cluster.scheduler_address,
                                       batch_size=50))
        assert state.load_checkpoint(holder, run_id, "Users") == before
        status = holder.execute("SELECT status FROM docshift.runs").fetchone()[0]
    assert status == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("group", [True, False])
def test_kill_the_client_or_a_worker_at_random_moments_then_resume_gives_identical_tables(
        tmp_path: Path, big_dump: Path, big_reference: dict[str, object], dsn: str,
        distributed: object, group: bool) -> None:
    import random

    mapping = write(tmp_path, "docshift.yaml", big_dump, dsn)
    rng = random.Random(f"dask-{group}")
    moments = sorted(rng.sample(range(1, 2 * N_BIG), 6))
    kills = 0
    for i, target in enumerate(moments):
        proc = docshift("run", "-c", str(mapping), *DASK_RUN, dsn=dsn)
        workers = dask_worker_pids(proc, 2)
        # a moment while this run loads (not while its cluster starts)
        at = max(target, checkpointed(dsn) + 1_500)
        if not wait_until(lambda t=at: checkpointed(dsn) >= t, proc):
            continue
        if i % 3 == 2:
            os.kill(workers[0], signal.SIGKILL)  # a worker; the client carries on
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 3, out.decode()  # the run finished all the same
            kills += 1
            break
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        kills += 1
        proc.wait()
        assert gone(workers, within=5.0)
    assert kills >= 3
    if query(dsn, "SELECT count(*) FROM docshift.runs WHERE status = 'completed'") == 0:
        finish(mapping, dsn, *DASK_RUN)
    assert snapshot(dsn) == big_reference
