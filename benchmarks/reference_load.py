"""A hand-written, single-process load of the throughput benchmark's dump: the reference.

    python benchmarks/reference_load.py DUMP_DIR DSN

What a careful engineer would write for this one dataset, without docshift: decode the
BSON in chunks, build tuples, stream them with psycopg's binary COPY (one connection per
table of a collection, all COPYs of that collection open at once), then add the keys,
foreign keys and indexes, and ANALYZE — one statement after the other, with the same
``maintenance_work_mem`` docshift's finalization uses. No bad-data handling, no resume.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import bson
import psycopg
from bson.codec_options import CodecOptions

DDL = """
CREATE TABLE users (id uuid NOT NULL, email text NOT NULL, name text, age integer,
  score double precision, active boolean, status text, created_at timestamptz, city text,
  bio text, manager_id uuid,
  CONSTRAINT users_status_check CHECK (status IN ('active', 'inactive', 'pending')));
CREATE TABLE user_tags (user_id uuid NOT NULL, position integer NOT NULL, tag text);
CREATE TABLE user_addresses (user_id uuid NOT NULL, position integer NOT NULL, street text,
  zip varchar(10), "primary" boolean);
CREATE TABLE accounts (id uuid NOT NULL, name text NOT NULL, billing_street text,
  billing_city text, billing_country text, revenue numeric(14,2), owner_id uuid,
  created_at timestamptz);
CREATE TABLE account_members (account_id uuid NOT NULL, user_id uuid NOT NULL);
"""

CONSTRAINTS = [
    "ALTER TABLE users ADD PRIMARY KEY (id)",
    "ALTER TABLE user_tags ADD PRIMARY KEY (user_id, position)",
    "ALTER TABLE user_addresses ADD PRIMARY KEY (user_id, position)",
    "ALTER TABLE accounts ADD PRIMARY KEY (id)",
    "ALTER TABLE account_members ADD PRIMARY KEY (account_id, user_id)",
    "ALTER TABLE users ADD FOREIGN KEY (manager_id) REFERENCES users (id) NOT VALID",
    "ALTER TABLE user_tags ADD FOREIGN KEY (user_id) REFERENCES users (id)",
    "ALTER TABLE user_addresses ADD FOREIGN KEY (user_id) REFERENCES users (id)",
    "ALTER TABLE accounts ADD FOREIGN KEY (owner_id) REFERENCES users (id)",
    "ALTER TABLE account_members ADD FOREIGN KEY (account_id) REFERENCES accounts (id)",
    "ALTER TABLE account_members ADD FOREIGN KEY (user_id) REFERENCES users (id)",
    "CREATE INDEX ON users (email)",
    "CREATE INDEX ON accounts (owner_id)",
    # docshift indexes a foreign key that no index leads with; so does this script
    "CREATE INDEX ON users (manager_id)",
    "CREATE INDEX ON account_members (user_id)",
]

TABLES = ["users", "user_tags", "user_addresses", "accounts", "account_members"]

CHUNK = 4 << 20
"""Bytes of BSON read and decoded at a time."""

OPTIONS = CodecOptions(tz_aware=True)

_M12, _M36 = (1 << 12) - 1, (1 << 36) - 1
_FIXED = (0x8 << 76) | (0b10 << 62)  # version 8, RFC variant


def oid_uuid(oid: bson.ObjectId) -> uuid.UUID:
    """docshift's ObjectId → UUID layout: the 96 bits around the version and variant."""
    o = int.from_bytes(oid.binary, "big")
    return uuid.UUID(int=((o >> 48) << 80) | _FIXED | (((o >> 36) & _M12) << 64)
                     | ((o & _M36) << 26))


def chunks(path: Path, size: int = CHUNK) -> Iterator[bytes]:
    """The file in pieces of whole documents, about ``size`` bytes each."""
    with path.open("rb") as f:
        rest = b""
        while True:
            data = rest + f.read(size)
            if not data:
                return
            end = 0
            while end + 4 <= len(data):
                n = int.from_bytes(data[end:end + 4], "little")
                if end + n > len(data):
                    break
                end += n
            if end == 0:
                raise ValueError(f"{path}: truncated document")
            yield data[:end]
            rest = data[end:]


def documents(path: Path) -> Iterator[dict]:
    """Every document of a .bson file, decoded a few megabytes at a time."""
    for chunk in chunks(path):
        yield from bson.decode_all(chunk, OPTIONS)


def copy_sql(table: str, cols: str) -> str:
    return f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)"


def load_users(conns: list[psycopg.Connection], path: Path) -> None:
    u, t, a = (c.cursor() for c in conns)
    with u.copy(copy_sql("users", "id, email, name, age, score, active, status, created_at, "
                                  "city, bio, manager_id")) as cu, \
            t.copy(copy_sql("user_tags", "user_id, position, tag")) as ct, \
            a.copy(copy_sql("user_addresses", 'user_id, position, street, zip, "primary"')) as ca:
        cu.set_types(["uuid", "text", "text", "int4", "float8", "bool", "text", "timestamptz",
                      "text", "text", "uuid"])
        ct.set_types(["uuid", "int4", "text"])
        ca.set_types(["uuid", "int4", "text", "varchar", "bool"])
        for d in documents(path):
            uid = oid_uuid(d["_id"])
            profile = d.get("profile") or {}
            manager = d.get("manager")
            cu.write_row((uid, d["email"], d.get("name"), d.get("age"), d.get("score"),
                          d.get("active"), d.get("status"), d.get("createdAt"),
                          profile.get("city"), profile.get("bio"),
                          None if manager is None else oid_uuid(manager)))
            for i, tag in enumerate(d.get("tags") or ()):
                ct.write_row((uid, i, tag))
            for i, ad in enumerate(d.get("addresses") or ()):
                ca.write_row((uid, i, ad.get("street"), ad.get("zip"), ad.get("primary")))


def load_accounts(conns: list[psycopg.Connection], path: Path) -> None:
    a, m = (c.cursor() for c in conns[:2])
    with a.copy(copy_sql("accounts", "id, name, billing_street, billing_city, billing_country, "
                                     "revenue, owner_id, created_at")) as ca, \
            m.copy(copy_sql("account_members", "account_id, user_id")) as cm:
        ca.set_types(["uuid", "text", "text", "text", "text", "numeric", "uuid", "timestamptz"])
        cm.set_types(["uuid", "uuid"])
        for d in documents(path):
            aid = oid_uuid(d["_id"])
            billing = d.get("billing") or {}
            owner = d.get("owner")
            revenue = d.get("revenue")
            ca.write_row((aid, d["name"], billing.get("street"), billing.get("city"),
                          billing.get("country"), None if revenue is None else Decimal(revenue),
                          None if owner is None else oid_uuid(owner), d.get("createdAt")))
            for member in d.get("members") or ():
                cm.write_row((aid, oid_uuid(member)))


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print("usage: python benchmarks/reference_load.py DUMP_DB_FOLDER DSN", file=sys.stderr)
        raise SystemExit(2)
    dump, dsn = Path(sys.argv[1]), sys.argv[2]
    conns = [psycopg.connect(dsn) for _ in range(3)]
    try:
        main_conn = conns[0]
        main_conn.execute(DDL)
        main_conn.commit()
        load_users(conns, dump / "Users.bson")
        load_accounts(conns, dump / "Accounts.bson")
        for c in conns:
            c.commit()
        main_conn.autocommit = True
        main_conn.execute("SET maintenance_work_mem = '256MB'")
        for statement in CONSTRAINTS:
            main_conn.execute(statement)
        for t in TABLES:
            main_conn.execute(f"ANALYZE {t}")
    finally:
        for c in conns:
            c.close()


if __name__ == "__main__":
    main()
