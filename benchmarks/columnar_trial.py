"""A columnar load of the throughput benchmark's dataset, stage by stage: a trial, not docshift.

    pip install pymongoarrow pyarrow adbc-driver-postgresql   # not docshift dependencies
    python benchmarks/columnar_trial.py --docs 1000000

BSON → Arrow with pymongoarrow's decoder (one schema per collection), conversions and
unnesting with pyarrow compute and numpy (ObjectId → UUID is a byte permutation, done on
whole columns), then ADBC's PostgreSQL bulk ingest (binary COPY) into the same tables as
``reference_load.py``, then the same keys and indexes. Single process, single thread, one
stage after the other: it prints wall and CPU seconds per stage and the server's CPU.

It then loads the same dump with ``reference_load.py`` into a second database and compares
every table row for row (an md5 over the ordered rows), so the figures are for an exact
load of this clean dataset. The script probes, too, which wrongly typed values the decoder
refuses (it raises) and which it converts silently.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bson
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_load import CONSTRAINTS, DDL, TABLES  # noqa: E402
from reference_load import chunks as whole_documents  # noqa: E402
from throughput import REFERENCE, Server, drop_database, write_dump  # noqa: E402

with warnings.catch_warnings():
    # pymongoarrow's compiled module warns about pyarrow struct sizes on import
    warnings.simplefilter("ignore", RuntimeWarning)
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pymongoarrow.api import Schema
    from pymongoarrow.context import PyMongoArrowContext
    from pymongoarrow.types import ObjectIdType

CHUNK = 16 << 20
"""Bytes of BSON handed to the decoder at a time."""

USERS = Schema({
    "_id": ObjectIdType(), "email": pa.string(), "name": pa.string(), "age": pa.int32(),
    "score": pa.float64(), "active": pa.bool_(), "status": pa.string(),
    "createdAt": pa.timestamp("ms"),
    "profile": pa.struct([("city", pa.string()), ("bio", pa.string())]),
    "manager": ObjectIdType(), "tags": pa.list_(pa.string()),
    "addresses": pa.list_(pa.struct([("street", pa.string()), ("zip", pa.string()),
                                     ("primary", pa.bool_())])),
})
ACCOUNTS = Schema({
    "_id": ObjectIdType(), "name": pa.string(),
    "billing": pa.struct([("street", pa.string()), ("city", pa.string()),
                          ("country", pa.string())]),
    "revenue": pa.string(), "owner": ObjectIdType(), "members": pa.list_(ObjectIdType()),
    "createdAt": pa.timestamp("ms"),
})


def decode(path: Path, schema: Schema) -> pa.Table:
    ctx = PyMongoArrowContext(schema)
    for chunk in whole_documents(path, CHUNK):
        ctx.process_bson_stream(chunk)
    return ctx.finish()


def oid_to_uuid(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """ObjectId column (12 bytes) → UUID column, docshift's version 8 layout, vectorised."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    storage = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    n = len(storage)
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8,
                        count=12 * (n + storage.offset))[12 * storage.offset:].reshape(n, 12)
    hi = raw[:, :8].copy().view(">u8").ravel().astype(np.uint64)
    lo = raw[:, 8:].copy().view(">u4").ravel().astype(np.uint64)
    top = ((hi >> np.uint64(16)) << np.uint64(16)) | np.uint64(0x8000) \
        | ((hi >> np.uint64(4)) & np.uint64(0xFFF))
    bottom = (np.uint64(2) << np.uint64(62)) \
        | ((((hi & np.uint64(0xF)) << np.uint64(32)) | lo) << np.uint64(26))
    out = np.empty((n, 2), dtype=">u8")
    out[:, 0], out[:, 1] = top, bottom
    validity = storage.buffers()[0]
    if storage.offset and validity is not None:
        validity = pa.array(storage.is_valid()).buffers()[1]
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [validity, pa.py_buffer(out.tobytes())],
        null_count=storage.null_count)
    return pa.ExtensionArray.from_storage(pa.uuid(), fixed)


def utc(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.cast(col, pa.timestamp("us", tz="UTC"))


def children(parent_ids: pa.Array, lists: pa.ChunkedArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(parent id, position, item) for every item of a list column."""
    arr = lists.combine_chunks()
    parents = pc.list_parent_indices(arr)
    offsets = arr.offsets.to_numpy()[:-1] if len(arr) else np.empty(0, np.int32)
    idx = parents.to_numpy()
    position = np.arange(len(idx), dtype=np.int64) - (offsets[idx] - offsets[0])
    return (parent_ids.take(parents), pa.array(position.astype(np.int32)),
            pc.list_flatten(arr))


def convert_users(t: pa.Table) -> dict[str, pa.Table]:
    uid = oid_to_uuid(t["_id"])
    profile = t["profile"].combine_chunks()
    users = pa.table({
        "id": uid, "email": t["email"], "name": t["name"], "age": t["age"],
        "score": t["score"], "active": t["active"], "status": t["status"],
        "created_at": utc(t["createdAt"]), "city": profile.field("city"),
        "bio": profile.field("bio"), "manager_id": oid_to_uuid(t["manager"]),
    })
    p, pos, tag = children(uid, t["tags"])
    tags = pa.table({"user_id": p, "position": pos, "tag": tag})
    p, pos, addr = children(uid, t["addresses"])
    addresses = pa.table({"user_id": p, "position": pos, "street": addr.field("street"),
                          "zip": addr.field("zip"), "primary": addr.field("primary")})
    return {"users": users, "user_tags": tags, "user_addresses": addresses}


def convert_accounts(t: pa.Table) -> dict[str, pa.Table]:
    aid = oid_to_uuid(t["_id"])
    billing = t["billing"].combine_chunks()
    accounts = pa.table({
        "id": aid, "name": t["name"], "billing_street": billing.field("street"),
        "billing_city": billing.field("city"), "billing_country": billing.field("country"),
        # a string that is not a number with at most 2 decimals makes this raise
        "revenue": pc.cast(t["revenue"], pa.decimal128(14, 2)),
        "owner_id": oid_to_uuid(t["owner"]), "created_at": utc(t["createdAt"]),
    })
    p, _, member = children(aid, t["members"])
    members = pa.table({"account_id": p, "user_id": oid_to_uuid(member)})
    return {"accounts": accounts, "account_members": members}


class Stages:
    """Wall and CPU seconds (this process, all threads) per stage, and the server's CPU."""

    def __init__(self, server: Server) -> None:
        self.server, self.rows = server, []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        w, c, s = time.perf_counter(), time.process_time(), self.server.cpu()
        out = fn()
        self.server.settle()
        s1 = self.server.cpu()
        self.rows.append((name, time.perf_counter() - w, time.process_time() - c,
                          None if s is None else s1 - s))  # type: ignore[operator]
        return out

    def print(self) -> None:
        print(f"{'stage':<28} {'wall':>8} {'client CPU':>11} {'server CPU':>11}")
        for name, w, c, s in [*self.rows, ("total", *(sum(r[i] or 0 for r in self.rows)
                                                        for i in (1, 2, 3)))]:
            srv = "—" if s is None else f"{s:.2f} s"
            print(f"{name:<28} {w:>6.2f} s {c:>9.2f} s {srv:>11}")


def fingerprints(dsn: str) -> dict[str, tuple[int, str]]:
    """Per table: rows and an md5 over all rows in a fixed order."""
    out = {}
    with psycopg.connect(dsn) as c:
        for t in TABLES:
            q = sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' "
                        "ORDER BY x::text), '')) FROM {} x").format(sql.Identifier(t))
            n, h = c.execute(q).fetchone()  # type: ignore[misc]
            out[t] = (int(n), str(h))
    return out


def probe() -> None:
    """Which wrongly typed values the decoder refuses, and which it converts silently."""
    from bson import Decimal128, Int64

    cases = [
        ("1.5 (double) into int64", pa.int64(), 1.5),
        ("true into int64", pa.int64(), True),
        ("2**40 into int32", pa.int32(), Int64(2**40)),
        ("5 (int) into string", pa.string(), 5),
        ("1 (int) into bool", pa.bool_(), 1),
        ("a string into list<string>", pa.list_(pa.string()), "x"),
        ("a string into a struct", pa.struct([("c", pa.string())]), "x"),
        ("'a\\x00b' into string", pa.string(), "a\x00b"),
        ("Decimal128 into double", pa.float64(), Decimal128("1.1")),
        ("a hex string into ObjectId", ObjectIdType(), "5f1d7f0e2c3b4a5d6e7f8091"),
        ("year 9999 into timestamp", pa.timestamp("ms"), dt.datetime(9999, 1, 1)),
    ]
    print("decoder on a wrongly typed value (pymongoarrow, allow_invalid=False):")
    for what, typ, value in cases:
        ctx = PyMongoArrowContext(Schema({"v": typ}))
        try:
            ctx.process_bson_stream(bson.encode({"v": value}))
            print(f"  {what:<30} silently → {ctx.finish().column(0).to_pylist()[0]!r}")
        except (TypeError, OverflowError, ValueError) as exc:
            print(f"  {what:<30} raises {type(exc).__name__}: {exc}")
    # Without a schema the decoder infers one, a field's type from its first value: does a
    # later value of another type come out as NULL (which a second pass could compare)?
    first = {"int64": 7, "list<string>": ["y"], "struct": {"c": "y"}}
    later = [("1.5 (double)", "int64", 1.5), ("true", "int64", True),
             ("a string", "list<string>", "x"), ("a string", "struct", "x"),
             ("null", "struct", None)]
    print("decoder inferring the schema (no schema given), first value of the right type:")
    for what, kind, value in later:
        ctx = PyMongoArrowContext(None)
        ctx.process_bson_stream(bson.encode({"v": first[kind]}) + bson.encode({"v": value}))
        got = ctx.finish().column("v").to_pylist()[1]
        print(f"  {what + ' into ' + kind:<30} → {got!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--no-compare", action="store_true",
                    help="skip the reference load and the row-for-row comparison")
    args = ap.parse_args()

    import adbc_driver_postgresql.dbapi as adbc

    from docshift.target.connect import recreate_database

    server_dsn_ = os.environ.get("DOCSHIFT_DSN")
    if not server_dsn_:
        from docshift.target.embedded import server_dsn

        server_dsn_ = server_dsn()
    server = Server(server_dsn_)
    with tempfile.TemporaryDirectory(prefix="docshift-columnar-") as d:
        dump = write_dump(Path(d), args.docs) / "bench"
        dsn = recreate_database(server_dsn_, "docshift_columnar")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(DDL)
        st = Stages(server)
        users = st.run("decode Users (pymongoarrow)", lambda: decode(dump / "Users.bson", USERS))
        accounts = st.run("decode Accounts", lambda: decode(dump / "Accounts.bson", ACCOUNTS))
        tables = st.run("convert + unnest (pyarrow)",
                        lambda: {**convert_users(users), **convert_accounts(accounts)})

        def ingest() -> None:
            with adbc.connect(dsn) as conn:
                with conn.cursor() as cur:
                    for name, table in tables.items():
                        cur.adbc_ingest(name, table, mode="append")
                conn.commit()

        st.run("write (ADBC bulk ingest)", ingest)

        def build() -> None:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SET maintenance_work_mem = '256MB'")
                for statement in CONSTRAINTS:
                    c.execute(statement)  # type: ignore[arg-type]
                for t in TABLES:
                    c.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t)))

        st.run("keys, indexes, ANALYZE", build)
        rows = sum(len(t) for t in tables.values())
        print(f"{args.docs:,} documents, {rows:,} rows")
        st.print()
        if not args.no_compare:
            ref_dsn = recreate_database(server_dsn_, "docshift_columnar_reference")
            import subprocess

            subprocess.run([sys.executable, str(REFERENCE), str(dump), ref_dsn], check=True)
            mine, theirs = fingerprints(dsn), fingerprints(ref_dsn)
            for t in TABLES:
                same = "identical" if mine[t] == theirs[t] else "DIFFERENT"
                print(f"  {t:<16} {mine[t][0]:>10,} rows, {same} to the reference load")
            drop_database(server_dsn_, "docshift_columnar_reference")
        drop_database(server_dsn_, "docshift_columnar")
    probe()


if __name__ == "__main__":
    main()
