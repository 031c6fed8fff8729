"""The verifier's worker processes never outlive it: killed outright, it takes them along,
instead of leaving them reading the source and copying into its scratch schema."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.run.sample import write_dump
from tests.run.test_exactly_once import docshift, finish, gone, wait_until, write

N = 100_000  # users and accounts each: reading them takes each worker several seconds


@pytest.mark.slow  # a real kill on a large dataset; CI runs it with --slow
def test_killing_verify_stops_its_worker_processes(tmp_path: Path, dsn: str) -> None:
    dump = write_dump(tmp_path / "dump", N, N)
    mapping = write(tmp_path, "docshift.yaml", dump, dsn)
    finish(mapping, dsn, "--workers", "2")
    proc = docshift("verify", "-c", str(mapping), "--full", dsn=dsn)
    workers: list[psutil.Process] = []

    def reading() -> bool:
        # both worker processes (not the resource tracker) started and read for a while
        workers[:] = [p for p in psutil.Process(proc.pid).children()
                      if "spawn_main" in " ".join(p.cmdline())]
        return len(workers) == 2 and all(sum(w.cpu_times()[:2]) > 2.0 for w in workers)

    assert wait_until(reading, proc)
    pids = [w.pid for w in workers]
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, not its group
    proc.wait()
    alive = [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert gone(pids, within=3.0), f"worker processes outlived the verifier: {alive}"
