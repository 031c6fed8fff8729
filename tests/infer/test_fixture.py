"""A small hand-made export: natural-key references (integers and codes), a map with dynamic
keys, and a collection without ``_id`` — inferred, planned unedited, and migrated."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.run.migrate import RunOptions, migrate
from docshift.spec import load_mapping

runner = CliRunner()


def _oid(n: int) -> dict[str, str]:
    return {"$oid": f"65a000000000000000{n:06x}"}


def write_fixture(folder: Path) -> None:
    folder.mkdir()
    accounts = [{"_id": _oid(i), "account_id": 1000 + i, "name": f"Account {i}",
                 "tiers": {f"tier-{t}": {"price": 10 * t, "seats": t + i}
                           for t in range(1, 2 + i % 4)}}
                for i in range(12)]
    # no _id at all: the unique code is the key; account_ids are integer natural keys
    customers = [{"code": f"C-{i:03d}", "name": f"Customer {i}",
                  "account_ids": [1000 + i % 12, 1000 + (i + 5) % 12]}
                 for i in range(30)]
    orders = [{"_id": _oid(100 + i), "customer_code": f"C-{i % 30:03d}",
               "placed_at": f"2024-01-{1 + i % 28:02d}T10:00:00Z", "total": f"{i}.50"}
              for i in range(40)]
    orders[-1]["customer_code"] = "C-999"  # dangling, in a field every order has
    for name, rows in (("accounts", accounts), ("customers", customers), ("orders", orders)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def inferred(tmp_path: Path) -> Path:
    src = tmp_path / "export"
    write_fixture(src)
    out = tmp_path / "docshift.yaml"
    res = runner.invoke(app, ["infer", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_natural_keys_maps_and_no_id(inferred: Path) -> None:
    m = load_mapping(inferred)
    customers = m.tables["customers"]
    assert customers.primary_key == ["code"]                 # no _id: the unique code
    junction = m.tables["customer_account_ids"]
    assert junction.columns["account_id"].references == "accounts.account_id"
    assert m.tables["accounts"].columns["account_id"].unique is True
    assert m.tables["orders"].columns["customer_code"].references == "customers.code"
    tiers = m.tables["account_tiers"]
    assert tiers.feeds[0].unnest == "tiers"
    assert tiers.columns["key"].from_ == "$key"
    assert {"price", "seats"} <= set(tiers.columns)
    text = inferred.read_text()
    assert "12/12 distinct values (100%) found in accounts.account_id" in text
    # a required reference with a dangling value keeps on_orphan reject (null cannot apply)
    code = m.tables["orders"].columns["customer_code"]
    assert code.nullable is False and code.on_orphan is None


def test_the_inferred_mapping_migrates(inferred: Path, dsn: str) -> None:
    res = runner.invoke(app, ["plan", "-c", str(inferred)])
    assert res.exit_code == 0, res.output
    migrate(load_mapping(inferred), dsn, RunOptions())
    with psycopg.connect(dsn) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0]
                  for t in ("accounts", "customers", "orders", "customer_account_ids",
                            "account_tiers")}
        fks = set(conn.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = 'public'::regnamespace").fetchall())
    # every account has 1 + i % 4 tiers: 3 × (1 + 2 + 3 + 4)
    assert counts == {"accounts": 12, "customers": 30, "orders": 39,
                      "customer_account_ids": 60, "account_tiers": 30}
    assert {("customer_account_ids", "accounts"), ("customer_account_ids", "customers"),
            ("orders", "customers"), ("account_tiers", "accounts")} <= fks
