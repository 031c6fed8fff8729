"""How long a run's planning takes on a mongodump: counting each collection, cutting it into
key ranges for the workers and counting each range (``docshift.run.migrate.plan_units``).

    python benchmarks/planning_speed.py --docs 1000000 --workers 2 [--repeat 3]

Writes the dump of `throughput.py` (users and accounts) once, then plans a run over it
``--repeat`` times with ``--workers`` (each time with a fresh source, as a run has), and
prints per run the wall time, the client CPU seconds and the bytes read from files (Linux),
then the medians. Planning needs no database.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import MAPPING, write_dump  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _bytes_read() -> int | None:
    io = Path("/proc/self/io")
    if not io.exists():
        return None
    fields = dict(line.split(": ") for line in io.read_text().splitlines())
    return int(fields["rchar"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=1_000_000,
                    help="documents in all (half users, half accounts)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from docshift.run.migrate import RunOptions, plan_units
    from docshift.spec import parse_mapping

    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as d:
        dump = Path(d) / "dump"
        write_dump(dump, args.docs)
        size = sum(p.stat().st_size for p in dump.rglob("*.bson"))
        text = MAPPING % {"path": dump, "dsn": "postgresql://localhost/unused"}
        walls, cpus = [], []
        for n in range(args.repeat):
            m = parse_mapping(text, "bench.yaml")
            read0, cpu0, t0 = _bytes_read(), _cpu(), time.perf_counter()
            units, _ = plan_units(m, "", RunOptions(workers=args.workers))
            wall, cpu, read1 = time.perf_counter() - t0, _cpu() - cpu0, _bytes_read()
            walls.append(wall)
            cpus.append(cpu)
            read = "" if read0 is None or read1 is None else (
                f", read {(read1 - read0) / size:.2f}x the dump's {size / 2**20:,.0f} MiB")
            print(f"run {n + 1} of {args.repeat}: {len(units)} units of "
                  f"{sum(u.estimate or 0 for u in units):,} documents planned in {wall:.2f}s, "
                  f"client CPU {cpu:.2f}s{read}")
        print(f"median: {statistics.median(walls):.2f}s wall, "
              f"{statistics.median(cpus):.2f}s client CPU ({args.docs:,} documents, "
              f"--workers {args.workers})")


if __name__ == "__main__":
    main()
