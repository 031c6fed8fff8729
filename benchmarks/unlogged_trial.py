"""A trial, not docshift: load unlogged and SET LOGGED at the end, against the logged load.

    python benchmarks/unlogged_trial.py --rows 2000000 --repeat 2 [--dsn DSN]

docshift loads every table with two hidden columns and rewrites it once at the end
(``VACUUM (FULL)``) so that the dropped columns leave no bytes behind. Would an ``UNLOGGED``
table, which writes no WAL while it is loaded, be cheaper, when ``ALTER TABLE … SET LOGGED``
does that rewrite? Server side only: a binary COPY of ``--rows`` rows of six columns (two of
them dropped afterwards, like the hidden ones) into a logged table then ``VACUUM (FULL)``,
against the same COPY into an unlogged table then ``SET LOGGED``; a ``CHECKPOINT`` before
each, the order alternating between repeats. Without ``--dsn``, the embedded server.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg

SOURCE = ("SELECT g AS id, md5(g::text) AS a, 'lorem ipsum dolor ' || g AS b, g * 1.5 AS c, "
          "repeat('k', 24) AS k, g::bigint AS d FROM generate_series(1, %s) g")
COLUMNS = "(id int, a text, b text, c numeric, k text, d bigint)"


def timed(c: psycopg.Connection, statement: str) -> float:
    t0 = time.perf_counter()
    c.execute(statement)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def one(c: psycopg.Connection, unlogged: bool, data: Path) -> tuple[float, float]:
    """(COPY seconds, rewrite seconds) for one table."""
    name = "trial_unlogged" if unlogged else "trial_logged"
    c.execute(f"DROP TABLE IF EXISTS {name}")
    c.execute("CHECKPOINT")
    c.execute(f"CREATE {'UNLOGGED ' if unlogged else ''}TABLE {name} {COLUMNS}")
    copy = timed(c, f"COPY {name} FROM '{data}' (FORMAT binary)")
    c.execute(f"ALTER TABLE {name} DROP COLUMN k, DROP COLUMN d")
    rewrite = timed(c, f"ALTER TABLE {name} SET LOGGED" if unlogged
                    else f"VACUUM (FULL) {name}")
    c.execute(f"DROP TABLE {name}")
    return copy, rewrite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dsn", help="a PostgreSQL DSN (default: the embedded server)")
    args = ap.parse_args()
    dsn = args.dsn
    if dsn is None:
        from docshift.target.embedded import server_dsn

        dsn = server_dsn()
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with psycopg.connect(dsn, autocommit=True) as c, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.bin"
        Path(tmp).chmod(0o777)  # the server may run as another user
        c.execute(f"CREATE TEMP TABLE trial_source AS {SOURCE}", (args.rows,))
        c.execute(f"COPY trial_source TO '{data}' (FORMAT binary)")
        for n in range(args.repeat):
            for unlogged in ((False, True) if n % 2 == 0 else (True, False)):
                results[unlogged].append(one(c, unlogged, data))
    print(f"{args.rows:,} rows, {args.repeat} repeat(s), seconds (COPY + rewrite):")
    for unlogged, label in ((False, "logged, VACUUM (FULL)  "), (True, "unlogged, SET LOGGED   ")):
        runs = results[unlogged]
        cells = ", ".join(f"{a:.2f} + {b:.2f} = {a + b:.2f}" for a, b in runs)
        print(f"  {label} {cells}")


if __name__ == "__main__":
    main()
