"""The fixed cost of a run: what a small run does not pay for, and what it still gets right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from docshift.errors import DocshiftError
from docshift.run import executors
from docshift.run import migrate as migrate_module
from docshift.run.migrate import IN_PROCESS_MAX_DOCS, RunOptions, local_processes, migrate
from docshift.spec import load_mapping
from docshift.target.state import STATE_VERSION, ensure_state
from tests.run.sample import expected_rows, interrupt_after_first_batch, write_dump, write_mapping


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of worker processes of every LocalPool started (the real pool runs)."""
    started: list[int] = []
    real_init = executors.LocalPool.__init__

    def init(self: executors.LocalPool, m: object, dsn: str, opts: RunOptions,
             workers: int) -> None:
        started.append(workers)
        real_init(self, m, dsn, opts, workers)  # type: ignore[arg-type]

    monkeypatch.setattr(executors.LocalPool, "__init__", init)
    return started


def loaded(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in expected_rows()}


def test_a_small_run_with_two_workers_loads_in_this_process(
        tmp_path: Path, dsn: str, conn: psycopg.Connection, pools: list[int]) -> None:
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", write_dump(tmp_path / "d"), dsn))
    res = migrate(m, dsn, RunOptions(workers=2, batch_size=7))
    assert pools == []
    assert loaded(conn) == expected_rows()
    assert res.quarantined > 0  # the sample's bad documents, as with workers


def test_a_run_split_into_key_ranges_still_loads_in_worker_processes(
        tmp_path: Path, dsn: str, conn: psycopg.Connection, pools: list[int]) -> None:
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", write_dump(tmp_path / "d"), dsn))
    migrate(m, dsn, RunOptions(workers=2, batch_size=4, split_min_docs=10))
    assert pools == [2]
    units = sorted(r[0] for r in conn.execute("SELECT stream FROM docshift.checkpoints"))
    assert units == ["Accounts#1", "Accounts#2", "Users#1", "Users#2"]
    assert loaded(conn) == expected_rows()


def test_a_resumed_small_run_finishes_in_this_process(
        tmp_path: Path, dsn: str, conn: psycopg.Connection, pools: list[int]) -> None:
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", write_dump(tmp_path / "d"), dsn))
    interrupt_after_first_batch(m, dsn, batch_size=20)
    migrate(m, dsn, RunOptions(workers=2, batch_size=20))
    assert pools == []
    assert loaded(conn) == expected_rows()
    assert conn.execute("SELECT status FROM docshift.runs").fetchone()[0] == "completed"


@pytest.mark.parametrize(("workers", "docs", "units", "split_min", "processes"), [
    (2, 5_000, 2, None, 1),                       # small: this process
    (2, IN_PROCESS_MAX_DOCS - 1, 4, None, 1),
    (2, IN_PROCESS_MAX_DOCS, 2, None, 2),         # large enough for workers
    (4, 1_000_000, 2, None, 2),                   # never more processes than units
    (4, 1_000_000, 1, None, 1),
    (2, None, 2, None, 2),                        # a source that cannot count: workers
    (2, 80, 4, 10, 2),                            # asked to split small streams: workers
    (1, 1_000_000, 8, None, 1),
])
def test_how_many_processes_load_a_run(workers: int, docs: int | None, units: int,
                                       split_min: int | None, processes: int) -> None:
    opts = RunOptions(workers=workers, split_min_docs=split_min)
    assert local_processes(workers, docs, units, opts) == processes


def test_planning_sizes_the_run_once_before_splitting(tmp_path: Path, dsn: str) -> None:
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", write_dump(tmp_path / "d"), dsn))
    sized: list[tuple[int | None, int]] = []
    small, _ = migrate_module.plan_units(m, dsn, RunOptions(workers=2),
                                         on_sized=lambda d, u: sized.append((d, u)))
    # small: every stream counted, none split
    assert sized == [(sum(u.estimate or 0 for u in small), len(small))] == [(80, 2)]
    sized.clear()
    split, _ = migrate_module.plan_units(m, dsn, RunOptions(workers=2, split_min_docs=10),
                                         on_sized=lambda d, u: sized.append((d, u)))
    # not small from the first stream on (Users, 46 documents): sized then, with the most
    # units the run can have (Users in two ranges, Accounts perhaps in two)
    assert sized == [(46, 4)]
    assert len(split) == 4


def test_a_scheduler_without_dask_is_refused_before_anything_is_written(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", write_dump(tmp_path / "d"), dsn))
    with pytest.raises(DocshiftError, match="--scheduler is only used with --executor dask"):
        migrate(m, dsn, RunOptions(workers=2, scheduler="tcp://nowhere:8786"))
    assert conn.execute("SELECT count(*) FROM docshift.runs").fetchone()[0] == 0


# --- state tables -----------------------------------------------------------------------------


def test_up_to_date_state_is_not_created_again(conn: psycopg.Connection, dsn: str) -> None:
    ensure_state(conn)
    with psycopg.connect(dsn, autocommit=True) as other:
        # another session creating the state would make ensure_state wait for it
        other.execute("SELECT pg_advisory_lock(hashtext('docshift.state'))")
        conn.execute("SET lock_timeout = '200ms'")
        ensure_state(conn)  # returns without the lock: the state is current
        conn.execute("RESET lock_timeout")


def test_state_left_by_an_older_docshift_is_upgraded(conn: psycopg.Connection) -> None:
    ensure_state(conn)
    # as an older docshift left it: no version comment, a column that came later missing
    conn.execute("COMMENT ON SCHEMA docshift IS NULL")
    conn.execute("ALTER TABLE docshift.rejects DROP COLUMN doc_id")
    ensure_state(conn)
    assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                        "'docshift.rejects'::regclass AND attname = 'doc_id'").fetchone()[0] == 1
    assert conn.execute("SELECT obj_description('docshift'::regnamespace, 'pg_namespace')"
                        ).fetchone()[0] == STATE_VERSION


# --- imports ----------------------------------------------------------------------------------


def imported_after(code: str, modules: list[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\n"
         f"print(','.join(m for m in {modules!r} if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def test_a_worker_process_does_not_import_the_mapping_file_reader() -> None:
    # a spawned worker imports its target's module and unpickles its Mapping
    assert imported_after("import docshift.run.executors, docshift.spec.model",
                          ["yaml", "docshift.spec.load"]) == []


def test_loading_in_this_process_does_not_import_multiprocessing() -> None:
    assert imported_after("import docshift.run.migrate", ["multiprocessing"]) == []


def test_python_m_docshift_runs_the_command_line() -> None:
    from docshift import __version__

    out = subprocess.run([sys.executable, "-m", "docshift", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"docshift {__version__}"
