"""Throughput of `docshift run` against the physical limit of this machine.

    python benchmarks/throughput.py --docs 500000 --workers 2 --repeat 3

1. Writes a mongodump of N documents (users with nested fields, tags and an array of
   addresses: three target tables with primary keys, a foreign key and an index).
2. Migrates it with docshift into a fresh database on the embedded server (or
   $DOCSHIFT_DSN's server), sampling the resident memory of docshift and its workers.
3. Measures the limit: the very same final rows, dumped to files by the server, are loaded
   again with a server-side binary COPY into empty tables, followed by the same key, foreign
   key and index builds.
Prints documents/s, rows/s, peak memory and the ratio docshift time / limit time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import bson
import psutil
import psycopg
from bson import ObjectId
from psycopg import sql

MAPPING = """
source: {kind: mongodump, path: "%(path)s"}
target: {dsn: "%(dsn)s"}
options: {unmapped: report}
tables:
  users:
    from: Users
    primary_key: id
    ignore: [__v]
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, nullable: false}
      name: text
      age: integer
      score: double precision
      active: boolean
      status: {type: text, enum: [active, inactive, pending]}
      created_at: {type: timestamptz, from: createdAt}
      city: {type: text, from: profile.city}
      bio: {type: text, from: profile.bio}
      manager_id: {type: uuid, from: manager, references: users, on_orphan: keep}
    indexes: [[email]]
  user_tags:
    from: Users
    unnest: tags
    primary_key: [user_id, position]
    columns:
      user_id: {type: uuid, from: _id, references: users}
      position: {type: integer, from: $index}
      tag: {type: text, from: $item}
  user_addresses:
    from: Users
    unnest: addresses
    primary_key: [user_id, position]
    columns:
      user_id: {type: uuid, from: _id, references: users}
      position: {type: integer, from: $index}
      street: text
      zip: varchar(10)
      primary: boolean
"""

BASE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def write_dump(root: Path, n: int) -> Path:
    db = root / "bench"
    db.mkdir(parents=True, exist_ok=True)
    statuses = ["active", "inactive", "pending"]
    with (db / "Users.bson").open("wb") as f:
        for i in range(n):
            f.write(bson.encode({
                "_id": ObjectId(i.to_bytes(12, "big")),
                "email": f"user{i}@example.com",
                "name": f"User Number {i}",
                "age": 18 + i % 60,
                "score": i * 0.37,
                "active": i % 2 == 0,
                "status": statuses[i % 3],
                "createdAt": BASE + dt.timedelta(minutes=i),
                "profile": {"city": f"City {i % 500}", "bio": "lorem ipsum " * (i % 8)},
                "manager": ObjectId((i // 10).to_bytes(12, "big")) if i % 10 else None,
                "tags": [f"t{(i + k) % 50}" for k in range(i % 4)],
                "addresses": [{"street": f"{i} Main St", "zip": f"{i % 99999:05d}",
                               "primary": k == 0} for k in range(1 + i % 2)],
                "__v": 0,
            }))
    return root


class PeakMemory:
    """Samples the RSS of this process tree (docshift and its workers) in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                procs = [me, *me.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def physical_limit(src_dsn: str, dst_dsn: str, m, tmp: Path) -> float:
    """Server-side binary COPY of the final rows into empty tables + the same builds."""
    from docshift.target.ddl import constraints, create_table

    files = {}
    with psycopg.connect(src_dsn, autocommit=True) as c:
        for t in m.tables:
            f = tmp / f"{t}.bin"
            c.execute(sql.SQL("COPY {} TO {} (FORMAT binary)").format(
                sql.Identifier(t), sql.Literal(str(f))))
            files[t] = f
    with psycopg.connect(dst_dsn, autocommit=True) as c:
        for t in m.tables:
            c.execute(create_table(m, t))
            c.execute(sql.SQL("ALTER TABLE {} DROP COLUMN __docshift_key").format(
                sql.Identifier(t)))
        start = time.perf_counter()
        for t in m.tables_in_load_order():
            c.execute(sql.SQL("COPY {} FROM {} (FORMAT binary)").format(
                sql.Identifier(t), sql.Literal(str(files[t]))))
        for kind in ("primary_key", "unique", "foreign_key", "index"):
            for t in m.tables_in_load_order():
                for con in constraints(m, t):
                    if con.kind == kind:
                        c.execute(con.statement)
        for t in m.tables:
            c.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t)))
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=500_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run both measurements this many times; report best and median")
    args = ap.parse_args()

    from docshift.run.migrate import RunOptions, migrate
    from docshift.spec import parse_mapping
    from docshift.target.connect import recreate_database

    server = os.environ.get("DOCSHIFT_DSN")
    if not server:
        from docshift.target.embedded import server_dsn

        server = server_dsn()
    runs: list[float] = []
    limits: list[float] = []
    peak = rows = 0
    with tempfile.TemporaryDirectory(prefix="docshift-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o777)  # the server process writes the COPY files here
        t0 = time.perf_counter()
        write_dump(tmp / "dump", args.docs)
        print(f"wrote {args.docs:,} documents in {time.perf_counter() - t0:.1f}s")
        for i in range(args.repeat):
            dsn = recreate_database(server, "docshift_bench")
            m = parse_mapping(MAPPING % {"path": tmp / "dump", "dsn": dsn}, "bench.yaml")
            with PeakMemory() as mem:
                start = time.perf_counter()
                res = migrate(m, dsn, RunOptions(workers=args.workers,
                                                 batch_size=args.batch_size))
                runs.append(time.perf_counter() - start)
            peak = max(peak, mem.peak)
            rows = sum(t.rows for t in res.tables)
            limit_dsn = recreate_database(server, "docshift_bench_limit")
            limits.append(physical_limit(dsn, limit_dsn, m, tmp))
            print(f"  run {i + 1}: docshift {runs[-1]:.2f}s, limit {limits[-1]:.2f}s")
    took, limit = min(runs), min(limits)
    print(f"docshift run: {took:.2f}s  {args.docs / took:,.0f} documents/s  "
          f"{rows / took:,.0f} rows/s  ({rows:,} rows, workers={args.workers}, "
          f"batch={args.batch_size}; best of {len(runs)}, median {statistics.median(runs):.2f}s)")
    print(f"peak memory (docshift + workers): {peak / 2**20:,.0f} MiB")
    print(f"physical limit (server-side COPY of the same rows + same builds): {limit:.2f}s "
          f"(best of {len(limits)}, median {statistics.median(limits):.2f}s)")
    print(f"ratio docshift / limit: {took / limit:.2f}x (best against best), "
          f"{statistics.median(runs) / statistics.median(limits):.2f}x (median against median)")


if __name__ == "__main__":
    main()
