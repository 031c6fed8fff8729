"""Speed of `docshift verify --full` next to the migration it checks.

    python benchmarks/verify_speed.py --docs 500000 --workers 2

Writes the same mongodump as `throughput.py` (users with nested fields, tags and addresses:
three tables, four rows per document), migrates it into a fresh database of the embedded
server (or $DOCSHIFT_DSN's server), then verifies it with every document compared
(`--full`). Prints documents/s of both and whether verification passed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import MAPPING, write_dump  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=500_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=5000)
    args = ap.parse_args()

    from docshift.run.migrate import RunOptions, migrate
    from docshift.spec import parse_mapping
    from docshift.target.connect import recreate_database
    from docshift.verify import VerifyOptions, verify

    server = os.environ.get("DOCSHIFT_DSN")
    if not server:
        from docshift.target.embedded import server_dsn

        server = server_dsn()
    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as d:
        tmp = Path(d)
        write_dump(tmp / "dump", args.docs)
        dsn = recreate_database(server, "docshift_bench_verify")
        m = parse_mapping(MAPPING % {"path": tmp / "dump", "dsn": dsn}, "bench.yaml")
        start = time.perf_counter()
        migrate(m, dsn, RunOptions(workers=args.workers, batch_size=args.batch_size))
        took = time.perf_counter() - start
        m = parse_mapping(MAPPING % {"path": tmp / "dump", "dsn": dsn}, "bench.yaml")
        start = time.perf_counter()
        rep = verify(m, dsn, VerifyOptions(full=True))
        checked = time.perf_counter() - start
    print(f"documents:        {args.docs:,}")
    print(f"migrate:          {took:.2f}s, {args.docs / took:,.0f} docs/s "
          f"(--workers {args.workers})")
    print(f"verify --full:    {checked:.2f}s, {args.docs / checked:,.0f} docs/s "
          f"({len(rep.checks)} checks, status {rep.status})")
    print(f"ratio:            {checked / took:.2f}x the migration's time")


if __name__ == "__main__":
    main()
