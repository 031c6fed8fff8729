"""Speed of `docshift verify --full` next to the migration it checks.

    python benchmarks/verify_speed.py --docs 500000 --workers 2 [--phases]

Writes the same mongodump as `throughput.py` (users with nested fields, tags and addresses;
accounts with a billing subdocument and members: five tables), migrates it into a fresh
database of the embedded server (or $DOCSHIFT_DSN's server) with `--workers`, then verifies
it with every document compared (`--full`, reading the source with as many processes), in
the same script run so that both meet the same machine. With `--repeat N` the pair runs N
times and medians are printed too.

Per step it prints wall time, documents/s, client CPU seconds (this process and its worker
processes) and server CPU seconds (every PostgreSQL process, when the server runs on this
machine): on a shared machine, CPU seconds are steadier than wall time. With `--phases`,
verify's wall time per phase too (reading the source, copying into its tables, the
comparisons and integrity checks, which run side by side on as many connections as processes
read, and inside that each table's comparisons and integrity, which overlap).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import MAPPING, Server, write_dump  # noqa: E402


@dataclass
class Took:
    wall: float
    client_cpu: float
    server_cpu: float | None


def _client_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _measure(server: Server, step: object) -> tuple[Took, object]:
    server.settle()
    s0, c0, t0 = server.cpu(), _client_cpu(), time.perf_counter()
    out = step()  # type: ignore[operator]
    wall = time.perf_counter() - t0
    server.settle()
    s1, c1 = server.cpu(), _client_cpu()
    return Took(wall, c1 - c0, None if s0 is None or s1 is None else s1 - s0), out


def _line(name: str, docs: int, t: Took, extra: str = "") -> str:
    server = "" if t.server_cpu is None else f", server CPU {t.server_cpu:.1f}s"
    return (f"{name:<16}{t.wall:7.2f}s, {docs / t.wall:9,.0f} docs/s, client CPU "
            f"{t.client_cpu:.1f}s{server}{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=500_000)
    ap.add_argument("--workers", type=int, default=2, help="migration workers")
    ap.add_argument("--verify-workers", type=int, default=None,
                    help="processes reading the source for verify (default: automatic)")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--phases", action="store_true",
                    help="print verify's wall time per phase (reading, copying, each table)")
    args = ap.parse_args()

    from docshift.run.migrate import RunOptions, migrate
    from docshift.spec import parse_mapping
    from docshift.target.connect import recreate_database
    from docshift.verify import VerifyOptions, verify

    server_dsn = os.environ.get("DOCSHIFT_DSN")
    if not server_dsn:
        from docshift.target.embedded import server_dsn as embedded

        server_dsn = embedded()
    runs: list[tuple[Took, Took]] = []
    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as d:
        tmp = Path(d)
        write_dump(tmp / "dump", args.docs)
        for n in range(args.repeat):
            dsn = recreate_database(server_dsn, "docshift_bench_verify")
            server = Server(dsn)
            text = MAPPING % {"path": tmp / "dump", "dsn": dsn}
            m = parse_mapping(text, "bench.yaml")
            took, _ = _measure(server, lambda m=m, dsn=dsn: migrate(
                m, dsn, RunOptions(workers=args.workers, batch_size=args.batch_size)))
            m = parse_mapping(text, "bench.yaml")
            checked, rep = _measure(server, lambda m=m, dsn=dsn: verify(
                m, dsn, VerifyOptions(full=True, workers=args.verify_workers)))
            runs.append((took, checked))
            print(f"run {n + 1} of {args.repeat}, {args.docs:,} documents")
            print(_line("  migrate", args.docs, took, f" (--workers {args.workers})"))
            print(_line("  verify --full", args.docs, checked,
                        f" ({len(rep.checks)} checks, status {rep.status})"))  # type: ignore
            print(f"  ratio           {checked.wall / took.wall:.2f}x the migration's wall "
                  f"time, {checked.client_cpu / took.client_cpu:.2f}x its client CPU")
            if args.phases:
                for name, seconds in rep.phases.items():  # type: ignore[attr-defined]
                    print(f"    {name:<44}{seconds:7.2f}s")
    if args.repeat > 1:
        med = statistics.median
        mw, vw = med(t.wall for t, _ in runs), med(c.wall for _, c in runs)
        print(f"median: migrate {mw:.2f}s, verify --full {vw:.2f}s, ratio {vw / mw:.2f}x; "
              f"median ratio of runs {med(c.wall / t.wall for t, c in runs):.2f}x")


if __name__ == "__main__":
    main()
