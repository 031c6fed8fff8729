"""Throughput of `docshift run` against the physical limit and a hand-written script.

    python benchmarks/throughput.py --docs 500000 --workers 2 --repeat 3
    python benchmarks/throughput.py --docs 500000 --workers 2 --executor dask --scheduler local:2

1. Writes a mongodump of N documents: half users (nested fields flattened, a scalar array
   of tags → a child table, an array of addresses → a child table, a self-reference), half
   accounts (a flattened billing subdocument, a numeric string, an owner reference, an
   ObjectId array of members → a junction): five tables, five primary keys, six foreign
   keys, two declared indexes and two that docshift adds for foreign keys.
2. Per repeat, round-robin, every approach on the same server:
   - docshift: ``python -m docshift run --workers W`` into a fresh database (the columnar
     path where it applies, as by default);
   - rows: the same with ``--no-columnar`` (every row built one document at a time);
   - the limit: the very same final rows, dumped to files by the server, loaded again with
     a server-side binary COPY into empty tables, then the same keys, foreign keys and
     indexes, and ANALYZE — with docshift's finalization settings
     (``maintenance_work_mem``) and its parallelism (W connections side by side for the
     COPYs, keys, indexes and ANALYZE; foreign keys one after the other, as docshift
     adds them);
   - the reference: ``benchmarks/reference_load.py``, a single-process script (bson →
     tuples → binary COPY with psycopg, constraints after).
3. Prints per run and as medians: wall time, documents/s, rows/s, client CPU seconds
   (the process and all its children), server CPU seconds (every PostgreSQL process, when
   the server runs on this machine), peak resident memory (sum over the process tree),
   the ratio to the limit; then the final size of every table for each approach.

``--approaches`` runs only some of the four (the limit needs docshift's result), e.g.
``--docs 10000000 --approaches docshift`` for peak memory alone; ``--scratch DIR`` puts the
dump under DIR, ``--logs DIR`` keeps every run's output, ``--rss-log FILE`` writes the RSS
samples. ``--prepare DIR`` only writes the dump and docshift's mapping file (for profiling).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
  accounts:
    from: Accounts
    primary_key: id
    ignore: [__v]
    columns:
      id: {type: uuid, from: _id}
      name: {type: text, nullable: false}
      billing_street: {type: text, from: billing.street}
      billing_city: {type: text, from: billing.city}
      billing_country: {type: text, from: billing.country}
      revenue: {type: "numeric(14,2)"}
      owner_id: {type: uuid, from: owner, references: users}
      created_at: {type: timestamptz, from: createdAt}
    indexes: [[owner_id]]
  account_members:
    from: Accounts
    unnest: members
    primary_key: [account_id, user_id]
    columns:
      account_id: {type: uuid, from: _id, references: accounts}
      user_id: {type: uuid, from: $item, references: users}
"""

BASE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
STATUSES = ["active", "inactive", "pending"]
ACCOUNT_ID_PREFIX = 1 << 88
"""Accounts' ObjectIds start with byte 0x01, users' with 0x00: the two never collide."""

SIZE_TOLERANCE = 0.05
"""How far a table's final size may be from the limit's before the script says so."""

APPROACHES = ("docshift", "rows", "limit", "reference")

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference_load.py"


def user_id(i: int) -> ObjectId:
    return ObjectId(i.to_bytes(12, "big"))


def account_id(i: int) -> ObjectId:
    return ObjectId((ACCOUNT_ID_PREFIX | i).to_bytes(12, "big"))


def split(n: int) -> tuple[int, int]:
    """(users, accounts) for ``n`` documents in all."""
    return (n + 1) // 2, n // 2


def write_dump(root: Path, n: int) -> Path:
    """Write ``n`` documents (users and accounts) as a mongodump under ``root/bench``."""
    n_users, n_accounts = split(n)
    db = root / "bench"
    db.mkdir(parents=True, exist_ok=True)
    with (db / "Users.bson").open("wb") as f:
        for i in range(n_users):
            f.write(bson.encode({
                "_id": user_id(i),
                "email": f"user{i}@example.com",
                "name": f"User Number {i}",
                "age": 18 + i % 60,
                "score": i * 0.37,
                "active": i % 2 == 0,
                "status": STATUSES[i % 3],
                "createdAt": BASE + dt.timedelta(minutes=i),
                "profile": {"city": f"City {i % 500}", "bio": "lorem ipsum " * (i % 8)},
                "manager": user_id(i // 10) if i % 10 else None,
                "tags": [f"t{(i + k) % 50}" for k in range(i % 4)],
                "addresses": [{"street": f"{i} Main St", "zip": f"{i % 99999:05d}",
                               "primary": k == 0} for k in range(1 + i % 2)],
                "__v": 0,
            }))
    with (db / "Accounts.bson").open("wb") as f:
        for i in range(n_accounts):
            f.write(bson.encode({
                "_id": account_id(i),
                "name": f"Account {i}",
                "billing": {"street": f"{i} Market St", "city": f"City {i % 700}",
                            "country": ["CZ", "DE", "GB", "US"][i % 4]},
                "revenue": f"{(i * 7919) % 10_000_000 / 100:.2f}",
                "owner": user_id(i % n_users),
                # distinct as long as there are more than 3 * 13 users
                "members": [user_id((i * 7 + k * 13) % n_users) for k in range(i % 4)],
                "createdAt": BASE + dt.timedelta(seconds=17 * i),
                "__v": 0,
            }))
    return root


def mapping_text(dump: Path, dsn: str) -> str:
    return MAPPING % {"path": dump, "dsn": dsn}


# -- measuring a process tree and the server -------------------------------------------


@dataclass
class Measure:
    """One approach's figures for one run."""

    wall: float
    client_cpu: float
    server_cpu: float | None
    peak_rss: int | None
    rows: int = 0
    other_cpu: float = 0.0
    """Server CPU of other databases' backends meanwhile, taken out of ``server_cpu``."""


def _cpu(t: psutil._common.pcputimes) -> float:  # type: ignore[name-defined]
    return float(t.user + t.system)


class Server:
    """CPU seconds of every process of a PostgreSQL server running on this machine."""

    def __init__(self, dsn: str) -> None:
        self.postmaster: psutil.Process | None = None
        with psycopg.connect(dsn) as c:
            host = c.info.host
            if host and not host.startswith("/") and host not in ("localhost", "127.0.0.1",
                                                                 "::1"):
                return
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            # asked while the backend still runs: it ends with the connection
            try:
                parent = psutil.Process(pid).parent()
            except psutil.Error:
                return
        if parent is not None and "postgres" in parent.name():
            self.postmaster = parent

    def others(self) -> dict[int, float]:
        """CPU seconds of each live backend of a database that is not the benchmark's.

        The server may serve other work too; its backends' CPU is taken out of the figure
        (background processes, shared by all, stay in it).
        """
        out: dict[int, float] = {}
        if self.postmaster is None:
            return out
        for p in self.postmaster.children():
            with contextlib.suppress(psutil.Error):
                # "postgres: USER DATABASE HOST STATE" for a client backend
                parts = " ".join(p.cmdline()).split()
                if (len(parts) >= 4 and parts[0] == "postgres:" and parts[3].startswith(("[", "("))
                        and not parts[2].startswith("docshift_bench")):
                    out[p.pid] = _cpu(p.cpu_times())
        return out

    SETTLE_SECONDS = 10.0

    def settle(self) -> None:
        """Wait until the backends of a client that just closed are gone and reaped.

        A backend's CPU is lost to :meth:`cpu` between its exit and the postmaster reaping
        it, so a snapshot is only taken when no benchmark database has a backend left.
        """
        if self.postmaster is None:
            return
        deadline = time.monotonic() + self.SETTLE_SECONDS
        while time.monotonic() < deadline:
            busy = False
            for p in self.postmaster.children():
                with contextlib.suppress(psutil.Error):
                    if p.status() == psutil.STATUS_ZOMBIE or any(
                            "docshift_" in part for part in p.cmdline()):
                        busy = True
                        break
            if not busy:
                return
            time.sleep(0.02)

    def cpu(self) -> float | None:
        """Seconds so far: the postmaster, its reaped children and its live ones."""
        if self.postmaster is None:
            return None
        t = self.postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for p in self.postmaster.children():
            # one that ended in between has its time in children_* now
            with contextlib.suppress(psutil.Error):
                total += _cpu(p.cpu_times())
        return total


class OtherWork:
    """The CPU that other databases' backends spend on the server while it runs."""

    INTERVAL = 0.1

    def __init__(self, server: Server) -> None:
        self.server = server
        self.first = server.others()
        self.last = dict(self.first)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    own_cpu = 0.0
    """CPU seconds of the sampling itself (in this process: not the limit's client CPU)."""

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self.last.update(self.server.others())
        self.own_cpu = time.thread_time()

    def stop(self) -> float:
        """Stop sampling; the seconds spent meanwhile (a backend that came and went within
        one interval is missed)."""
        self._stop.set()
        self._t.join()
        self.last.update(self.server.others())
        return sum(cpu - self.first.get(pid, 0.0) for pid, cpu in self.last.items())


class TreeSampler:
    """Samples a process tree: the peak of its summed RSS, and each process's CPU."""

    INTERVAL = 0.1

    def __init__(self, root: psutil.Process) -> None:
        self.root, self.peak, self.cpu = root, 0, {}
        self.samples: list[tuple[float, int, int]] = []  # (seconds, summed RSS, processes)
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            rss = 0
            for p in procs:
                try:
                    with p.oneshot():
                        rss += p.memory_info().rss
                        self.cpu[p.pid] = _cpu(p.cpu_times())
                except psutil.Error:
                    pass
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter() - self._start, rss, len(procs)))
            self._stop.wait(self.INTERVAL)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def run_process(cmd: list[str], server: Server, log: Path,
                rss_log: Path | None = None) -> Measure:
    """Run ``cmd`` to its end; its wall time, CPU (all descendants) and peak RSS.

    With ``rss_log``, every sample of the tree's summed RSS is appended to that file.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    other = OtherWork(server)
    s0 = server.cpu()
    start = time.perf_counter()
    with log.open("wb") as out:
        p = psutil.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(p)
        rc = p.wait()
        wall = time.perf_counter() - start
        sampler.stop()
    if rss_log is not None:
        with rss_log.open("a") as f:
            f.write(f"# {' '.join(cmd[1:4])} …: seconds, RSS MiB (process tree), processes\n")
            f.writelines(f"{t:.1f} {rss / 2**20:.1f} {n}\n" for t, rss, n in sampler.samples)
    server.settle()
    s1 = server.cpu()
    elsewhere = other.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(f"{' '.join(cmd[:4])} … exited with {rc}:\n{tail}")
    reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # the sampled figure covers a worker its parent did not wait for
    client = max(reaped, sum(sampler.cpu.values()))
    return Measure(wall, client, None if s0 is None else s1 - s0 - elsewhere,  # type: ignore[operator]
                   sampler.peak, other_cpu=elsewhere)


# -- the target tables -----------------------------------------------------------------


def user_tables(c: psycopg.Connection) -> list[str]:
    rows = c.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                     "AND c.relkind = 'r' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def table_sizes(dsn: str) -> dict[str, tuple[int, int, int]]:
    """Per table: (pg_total_relation_size, rows, dropped columns)."""
    out = {}
    with psycopg.connect(dsn) as c:
        for t in user_tables(c):
            ident = sql.Identifier(t)
            size = c.execute("SELECT pg_total_relation_size(%s::regclass)", (t,)).fetchone()
            n = c.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
            dropped = c.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                "%s::regclass AND attisdropped", (t,)).fetchone()
            out[t] = (int(size[0]), int(n[0]), int(dropped[0]))  # type: ignore[index]
    return out


@dataclass
class Schema:
    """The final tables docshift left, read from the catalog (live columns only)."""

    tables: list[str]
    create: dict[str, str] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)  # primary and unique
    foreign: list[str] = field(default_factory=list)
    indexes: dict[str, list[str]] = field(default_factory=dict)


def read_schema(c: psycopg.Connection) -> Schema:
    s = Schema(user_tables(c))
    for t in s.tables:
        cols = c.execute(
            "SELECT quote_ident(attname), format_type(atttypid, atttypmod), attnotnull "
            "FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (t,)).fetchall()
        defs = [f"{n} {ty}{' NOT NULL' if nn else ''}" for n, ty, nn in cols]
        cons = c.execute(
            "SELECT quote_ident(conname), contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY conname", (t,)).fetchall()
        qt = c.execute("SELECT quote_ident(%s)", (t,)).fetchone()[0]  # type: ignore[index]
        defs += [f"CONSTRAINT {n} {d}" for n, k, d in cons if k == "c"]
        s.create[t] = f"CREATE TABLE {qt} ({', '.join(defs)})"
        s.keys[t] = [f"ALTER TABLE {qt} ADD CONSTRAINT {n} {d}" for n, k, d in cons
                     if k in ("p", "u")]
        s.foreign += [f"ALTER TABLE {qt} ADD CONSTRAINT {n} {d}" for n, k, d in cons if k == "f"]
        idx = c.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = "
            "%s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
            "WHERE k.conindid = i.indexrelid) ORDER BY 1", (t,)).fetchall()
        s.indexes[t] = [r[0] for r in idx]
    return s


def _tuned(dsn: str) -> psycopg.Connection:
    from docshift.run.finalize import MAINTENANCE_WORK_MEM

    c = psycopg.connect(dsn, autocommit=True)
    c.execute(sql.SQL("SET maintenance_work_mem = {}").format(
        sql.Literal(MAINTENANCE_WORK_MEM)))
    return c


def physical_limit(src_dsn: str, dst_dsn: str, tmp: Path, workers: int,
                   server: Server) -> Measure:
    """Server-side binary COPY of docshift's final rows into empty tables + the same builds."""
    with psycopg.connect(src_dsn, autocommit=True) as c:
        schema = read_schema(c)
        files = {t: tmp / f"{t}.bin" for t in schema.tables}
        for t, f in files.items():
            c.execute(sql.SQL("COPY {} TO {} (FORMAT binary)").format(
                sql.Identifier(t), sql.Literal(str(f))))
    conns = [_tuned(dst_dsn) for _ in range(max(1, workers))]
    free: list[psycopg.Connection] = list(conns)
    lock = threading.Lock()

    def on_a_connection(statements: list[sql.Composable | str]) -> None:
        with lock:
            c = free.pop()
        try:
            for st in statements:
                c.execute(st)  # type: ignore[arg-type]
        finally:
            with lock:
                free.append(c)

    def side_by_side(groups: Iterable[list[sql.Composable | str]]) -> None:
        with ThreadPoolExecutor(max_workers=len(conns)) as pool:
            for fut in [pool.submit(on_a_connection, g) for g in groups if g]:
                fut.result()

    try:
        for t in schema.tables:
            conns[0].execute(schema.create[t])  # type: ignore[arg-type]
        me = psutil.Process()
        other = OtherWork(server)
        cpu0, s0 = _cpu(me.cpu_times()), server.cpu()
        start = time.perf_counter()
        side_by_side([[sql.SQL("COPY {} FROM {} (FORMAT binary)").format(
            sql.Identifier(t), sql.Literal(str(files[t])))] for t in schema.tables])
        side_by_side([list(schema.keys[t]) for t in schema.tables])
        on_a_connection(list(schema.foreign))
        side_by_side([list(schema.indexes[t]) for t in schema.tables])
        side_by_side([[sql.SQL("ANALYZE {}").format(sql.Identifier(t))]
                      for t in schema.tables])
        wall = time.perf_counter() - start
        s1 = server.cpu()
        elsewhere = other.stop()
        return Measure(wall, max(0.0, _cpu(me.cpu_times()) - cpu0 - other.own_cpu),
                       None if s0 is None else s1 - s0 - elsewhere,  # type: ignore[operator]
                       None, other_cpu=elsewhere)
    finally:
        for c in conns:
            c.close()
        for f in files.values():
            f.unlink(missing_ok=True)


def drop_database(server_dsn_: str, name: str) -> None:
    with psycopg.connect(server_dsn_, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def checkpoint(server_dsn_: str) -> None:
    """Flush what the previous approach left dirty, so that it is not billed to the next."""
    with psycopg.connect(server_dsn_, autocommit=True) as c:
        c.execute("CHECKPOINT")


# -- report ----------------------------------------------------------------------------


def _med(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _fmt(x: float | None, spec: str, unit: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{unit}"


def report(results: dict[str, list[Measure]], docs: int,
           sizes: dict[str, dict[str, tuple[int, int, int]]], say: Callable[[str], None]) -> None:
    first = next(iter(results.values()))
    limit = _med([m.wall for m in results["limit"]]) if "limit" in results else None
    say("")
    say(f"medians of {len(first)} run(s), {docs:,} documents, {first[0].rows:,} rows:")
    head = (f"{'approach':<10} {'wall':>8} {'docs/s':>9} {'rows/s':>10} {'client CPU':>11} "
            f"{'server CPU':>11} {'peak RSS':>9} {'× limit':>8}")
    say(head)
    say("-" * len(head))
    for name, ms in results.items():
        wall = _med([m.wall for m in ms])
        rss = _med([m.peak_rss for m in ms])
        ratio = "—" if limit is None else f"{wall / limit:.2f}×"  # type: ignore[operator]
        say(f"{name:<10} {_fmt(wall, '.2f', ' s'):>8} {docs / wall:>9,.0f} "  # type: ignore[operator]
            f"{ms[0].rows / wall:>10,.0f} "  # type: ignore[operator]
            f"{_fmt(_med([m.client_cpu for m in ms]), '.1f', ' s'):>11} "
            f"{_fmt(_med([m.server_cpu for m in ms]), '.1f', ' s'):>11} "
            f"{_fmt(None if rss is None else rss / 2**20, ',.0f', ' MiB'):>9} "
            f"{ratio:>8}")
    for name in ("docshift", "rows"):
        if name in results and "reference" in results:
            d = _med([m.wall for m in results[name]])
            r = _med([m.wall for m in results["reference"]])
            dc = _med([m.client_cpu for m in results[name]])
            rc = _med([m.client_cpu for m in results["reference"]])
            say(f"{name} / reference script: {d / r:.2f}× the time, "  # type: ignore[operator]
                f"{dc / rc:.2f}× the client CPU")  # type: ignore[operator]
    for name, ms in results.items():
        cpu = _med([m.client_cpu for m in ms])
        if cpu and name != "limit":  # the limit's client only sends statements
            say(f"{name}: {cpu / docs * 1e6:.1f} µs of client CPU per document")
    say("")
    say("final table sizes (pg_total_relation_size, last run):")
    names = list(sizes)
    base = sizes.get("limit")
    tables = list(base or sizes[names[0]])
    say(f"{'table':<16} {'rows':>10} " + " ".join(f"{n:>19}" for n in names))
    problems = []
    for t in tables:
        rows = (base or sizes[names[0]])[t][1]
        cells = []
        for n in names:
            size, nrows, dropped = sizes[n].get(t, (0, 0, 0))
            cells.append(f"{size / 2**20:.1f} MB")
            if nrows != rows:
                problems.append(f"{t}: {n} has {nrows:,} rows, {names[0]} {rows:,}")
            if base is None:
                continue
            off = size / base[t][0] - 1 if base[t][0] else 0.0
            if abs(off) > SIZE_TOLERANCE:
                why = f" ({dropped} dropped column(s) still on disk)" if dropped else ""
                problems.append(f"{t}: {n} is {off:+.0%} the limit's size{why}")
            elif n != "limit":
                cells[-1] += f" ({off:+.1%})"
        say(f"{t:<16} {rows:>10,} " + " ".join(f"{c:>19}" for c in cells))
    for p in problems:
        say(f"  differs: {p}")
    if base is not None and not problems:
        say(f"  every table within {SIZE_TOLERANCE:.0%} of the limit's size")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--docs", type=int, default=500_000,
                    help="documents in all (half users, half accounts)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each approach; medians")
    ap.add_argument("--executor", choices=["local", "dask"], default="local",
                    help="docshift run --executor (dask needs docshift[dask])")
    ap.add_argument("--scheduler", metavar="ADDRESS|local:N",
                    help="docshift run --scheduler, with --executor dask")
    ap.add_argument("--approaches", default=",".join(APPROACHES), metavar="LIST",
                    help="comma-separated, of: " + ", ".join(APPROACHES)
                    + " (the limit reloads docshift's result, so it needs docshift)")
    ap.add_argument("--scratch", type=Path, metavar="DIR",
                    help="where the dump and the COPY files go (a temporary directory in it, "
                    "deleted at the end; default: the system's temporary directory)")
    ap.add_argument("--rss-log", type=Path, metavar="FILE",
                    help="append docshift's RSS samples (every 0.1 s) to FILE")
    ap.add_argument("--logs", type=Path, metavar="DIR",
                    help="keep the output of every docshift and reference run in DIR")
    ap.add_argument("--prepare", type=Path, metavar="DIR",
                    help="only write the dump and the mapping file (DIR/docshift.yaml)")
    args = ap.parse_args()
    if args.docs < 100:
        ap.error("--docs must be at least 100")
    approaches = [a.strip() for a in args.approaches.split(",") if a.strip()]
    unknown = sorted(set(approaches) - set(APPROACHES))
    if unknown or not approaches:
        ap.error(f"--approaches: unknown {', '.join(unknown) or '(none given)'}; "
                 f"choose from {', '.join(APPROACHES)}")
    if "limit" in approaches and "docshift" not in approaches:
        ap.error("--approaches: the limit reloads docshift's result; add docshift")
    if args.scheduler and args.executor != "dask":
        ap.error("--scheduler needs --executor dask")
    executor_args = ["--executor", args.executor]
    if args.scheduler:
        executor_args += ["--scheduler", args.scheduler]

    from docshift.target.connect import recreate_database

    server_dsn_ = os.environ.get("DOCSHIFT_DSN")
    if not server_dsn_:
        from docshift.target.embedded import server_dsn

        server_dsn_ = server_dsn()
    if args.prepare:
        write_dump(args.prepare / "dump", args.docs)
        dsn = recreate_database(server_dsn_, "docshift_bench")
        (args.prepare / "docshift.yaml").write_text(mapping_text(args.prepare / "dump", dsn))
        print(f"wrote {args.prepare / 'docshift.yaml'} and its dump ({args.docs:,} documents)")
        return
    server = Server(server_dsn_)
    if server.postmaster is None:
        print("the server does not run on this machine: no server CPU figures")
    results: dict[str, list[Measure]] = {a: [] for a in APPROACHES if a in approaches}
    sizes: dict[str, dict[str, tuple[int, int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="docshift-bench-", dir=args.scratch) as d:
        tmp = Path(d)
        os.chmod(tmp, 0o777)  # the server process writes the COPY files here
        logs = args.logs or tmp
        logs.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        write_dump(tmp / "dump", args.docs)
        print(f"wrote {args.docs:,} documents in {time.perf_counter() - t0:.1f}s; load average "
              + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs")
        for i in range(args.repeat):
            def docshift(name: str, db: str, *extra: str, rss_log: Path | None = None,
                         run: int = i + 1) -> str:
                """One docshift run into a fresh database ``db``; its DSN."""
                target = recreate_database(server_dsn_, db)
                cfg = tmp / f"{db}.yaml"
                cfg.write_text(mapping_text(tmp / "dump", target))
                checkpoint(server_dsn_)
                m = run_process([sys.executable, "-m", "docshift", "run", "-c", str(cfg),
                                 "--workers", str(args.workers), *extra,
                                 "--batch-size", str(args.batch_size), *executor_args],
                                server, logs / f"{name}-{run}.log", rss_log)
                sizes[name] = table_sizes(target)
                m.rows = sum(n for _, n, _ in sizes[name].values())
                results[name].append(m)
                return target

            if "docshift" in results:
                dsn = docshift("docshift", "docshift_bench", rss_log=args.rss_log)
            if "rows" in results:
                docshift("rows", "docshift_bench_rows", "--no-columnar")

            if "limit" in results:
                limit_dsn = recreate_database(server_dsn_, "docshift_bench_limit")
                checkpoint(server_dsn_)
                lim = physical_limit(dsn, limit_dsn, tmp, args.workers, server)
                sizes["limit"] = table_sizes(limit_dsn)
                lim.rows = sum(n for _, n, _ in sizes["limit"].values())
                results["limit"].append(lim)

            if "reference" in results:
                ref_dsn = recreate_database(server_dsn_, "docshift_bench_reference")
                checkpoint(server_dsn_)
                ref = run_process([sys.executable, str(REFERENCE),
                                   str(tmp / "dump" / "bench"), ref_dsn],
                                  server, logs / f"reference-{i + 1}.log")
                sizes["reference"] = table_sizes(ref_dsn)
                ref.rows = sum(n for _, n, _ in sizes["reference"].values())
                results["reference"].append(ref)
            for name in ("rows", "limit", "reference"):
                drop_database(server_dsn_, f"docshift_bench_{name}")
            print(f"run {i + 1}: " + ", ".join(
                f"{n} {ms[-1].wall:.2f} s (client CPU {ms[-1].client_cpu:.1f} s, server CPU "
                f"{_fmt(ms[-1].server_cpu, '.1f', ' s')}"
                + (f", {ms[-1].other_cpu:.1f} s of other databases' left out"
                   if ms[-1].other_cpu >= 0.05 else "") + ")"
                for n, ms in results.items()), flush=True)
    report(results, args.docs, sizes, print)
    print("load average (1, 5, 15 min) at the end: "
          + ", ".join(f"{x:.1f}" for x in os.getloadavg())
          + f" on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
