"""A small, deterministic MongoDB-shaped dataset written as a real mongodump, and its mapping.

Shapes covered: ObjectId ids and references (one dangling), a two-sided many-to-many link
that disagrees on some pairs, an array of scalars with repeats, an array of objects, a map
object, an enum with a value map, dates as BSON dates and ISO strings, and a few bad
documents. ``expected_rows`` states the exact outcome.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import bson
from bson import Decimal128, ObjectId

from docshift.spec.model import Mapping

UTC = dt.UTC


def oid(kind: int, i: int) -> ObjectId:
    """Deterministic ObjectId: kind in the top byte, counter below."""
    return ObjectId(bytes([kind]) + i.to_bytes(11, "big"))


def users(n: int) -> list[dict]:
    docs = []
    for i in range(n):
        d = {
            "_id": oid(1, i),
            "email": f"user{i}@example.com",
            "name": f"User {i}",
            "status": ["active", "inactive", "suspended"][i % 3],
            "createdAt": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i),
            "tags": ["vip", "new", "vip"] if i % 4 == 0 else [],
            "prefs": {"theme": "dark", "lang": "en"} if i % 5 == 0 else None,
            "__v": 0,
        }
        if i % 7 == 3:
            d["createdAt"] = d["createdAt"].isoformat()  # some dates arrive as ISO strings
        docs.append(d)
    return docs


def accounts(n: int, n_users: int) -> list[dict]:
    docs = []
    for i in range(n):
        docs.append({
            "_id": oid(2, i),
            "name": f"Account {i}",
            "owner": oid(1, i % n_users),
            # two-sided link: accounts list watchers, users list watched accounts
            "watchers": [oid(1, (i + k) % n_users) for k in range(2)],
            "items": [{"sku": f"SKU-{i}-{k}", "qty": k + 1} for k in range(i % 3)],
            "limits": {"daily": i, "monthly": i * 30},
        })
    return docs


def write_dump(root: Path, n_users: int = 40, n_accounts: int = 30, bad: bool = True) -> Path:
    """Write ``root/crm/{Users,Accounts}.bson`` and return ``root``."""
    db = root / "crm"
    db.mkdir(parents=True, exist_ok=True)
    us = users(n_users)
    acc = accounts(n_accounts, n_users)
    # users watch the accounts that list them, except every 5th pair (one-sided)
    for a_i, a in enumerate(acc):
        for w in a["watchers"]:
            u = us[int.from_bytes(w.binary[1:], "big")]
            if a_i % 5:
                u.setdefault("watching", []).append(a["_id"])
    if bad:
        us.append({"_id": oid(1, 10**6), "email": "bad-date@example.com", "status": "active",
                   "createdAt": "yesterday"})
        us.append({"_id": oid(1, 10**6 + 1), "email": "user1@example.com", "status": "active"})
        us.append({"_id": oid(1, 10**6 + 2), "email": "enum@example.com", "status": "deleted"})
        us.append({"_id": oid(1, 10**6 + 3), "status": "active"})  # email is required
        us.append({"_id": oid(1, 10**6 + 4), "email": "nul@example.com", "status": "active",
                   "name": "bad\x00name"})
        acc.append({"_id": oid(2, 10**6), "name": "Orphan", "owner": oid(1, 10**7)})
        acc.append({"_id": oid(2, 10**6 + 1), "name": "Long sku", "owner": oid(1, 0),
                    "items": [{"sku": "S" * 41, "qty": 1}]})
        acc.append({"_id": oid(2, 10**6 + 2), "name": "Wrong type", "owner": oid(1, 0),
                    "items": [{"sku": "ok", "qty": "many"}]})
        acc.append({"_id": oid(2, 10**6 + 3), "name": "Too big", "owner": oid(1, 0),
                    "limits": {"daily": Decimal128("1E+30")}})
    for name, docs in (("Users", us), ("Accounts", acc)):
        with (db / f"{name}.bson").open("wb") as f:
            for d in docs:
                f.write(bson.encode(d))
            if bad and name == "Users":
                f.write(_invalid_utf8_user())
    return root


def _invalid_utf8_user() -> bytes:
    """A BSON document whose name is not valid UTF-8 (as old drivers sometimes wrote)."""
    raw = bson.encode({"_id": oid(1, 10**6 + 5), "email": "utf8@example.com",
                       "status": "active", "name": "caf\u00e9"})
    # "é" is two bytes in UTF-8; a lone Latin-1 byte plus "!" keeps the length
    return raw.replace("caf\u00e9".encode(), b"caf\xe9!")


MAPPING = """
source: {kind: mongodump, path: "%(path)s"}
target: {dsn: "%(dsn)s"}
tables:
  users:
    from: Users
    primary_key: id
    ignore: [__v, watching]
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, nullable: false, unique: true}
      name: text
      status: {type: text, map: {suspended: inactive}, enum: [active, inactive]}
      created_at: {type: timestamptz, from: createdAt}
      tags: text[]
      prefs: jsonb
  user_tags:
    from: Users
    unnest: tags
    primary_key: [user_id, tag]
    on_duplicate: keep_first
    columns:
      user_id: {type: uuid, from: _id, references: users}
      tag: {type: text, from: $item}
  accounts:
    from: Accounts
    primary_key: id
    ignore: [watchers]
    columns:
      id: {type: uuid, from: _id}
      name: text
      owner_id: {type: uuid, from: owner, references: users}
  account_items:
    from: Accounts
    unnest: items
    primary_key: [account_id, line]
    columns:
      account_id: {type: uuid, from: _id, references: accounts}
      line: {type: integer, from: $index}
      sku: {type: varchar(40), nullable: false}
      qty: integer
  account_limits:
    from: Accounts
    unnest: limits
    primary_key: [account_id, period]
    columns:
      account_id: {type: uuid, from: _id, references: accounts}
      period: {type: text, from: $key}
      amount: {type: bigint, from: $item}
  account_watchers:
    feeds:
      - from: Accounts
        unnest: watchers
        columns: {account_id: _id, user_id: $item}
      - from: Users
        unnest: watching
        columns: {account_id: $item, user_id: _id}
    primary_key: [account_id, user_id]
    on_duplicate: keep_first
    columns:
      account_id: {type: uuid, references: accounts}
      user_id: {type: uuid, references: users}
"""


def write_mapping(path: Path, dump: Path, dsn: str, text: str = MAPPING) -> Path:
    path.write_text(text % {"path": dump, "dsn": dsn})
    return path


def expected_rows(n_users: int = 40, n_accounts: int = 30) -> dict[str, int]:
    """Row counts after a run of MAPPING over ``write_dump(..., bad=True)``."""
    tags = sum(2 for i in range(n_users) if i % 4 == 0)  # "vip","new" after de-duplication
    items = sum(i % 3 for i in range(n_accounts))
    pairs = {(a, (a + k) % n_users) for a in range(n_accounts) for k in range(2)}
    return {
        "users": n_users,
        "user_tags": tags,
        "accounts": n_accounts,
        "account_items": items,
        "account_limits": 2 * n_accounts,
        "account_watchers": len(pairs),
    }


EXPECTED_REJECTS = {
    # (table, field, error_class)
    ("users", "createdAt", "bad_date"),
    ("users", "email", "duplicate_key"),
    ("users", "status", "not_in_enum"),
    ("users", "email", "missing_required"),
    ("accounts", "owner_id", "orphan"),
    ("users", "name", "nul_byte"),
    ("users", "name", "invalid_utf8"),
    ("account_items", "$item.sku", "too_long"),
    ("account_items", "$item.qty", "bad_number"),
    ("account_limits", "$item", "out_of_range"),
}


def interrupt_after_first_batch(m: Mapping, dsn: str, batch_size: int = 50) -> None:
    """Start migrating ``m`` and stop it after its first committed batch (as Ctrl+C does)."""
    import threading

    import pytest

    from docshift.errors import DocshiftError
    from docshift.run.migrate import UI, RunOptions, migrate
    from docshift.run.worker import Progress

    stop = threading.Event()

    class StopAfterFirstBatch(UI):
        def progress(self, p: Progress) -> None:
            if p.kind == "batch":
                stop.set()

    with pytest.raises(DocshiftError, match="interrupted"):
        migrate(m, dsn, RunOptions(batch_size=batch_size), StopAfterFirstBatch(), stop)
