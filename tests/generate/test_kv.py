"""The key-value generator: deterministic output, a real kv_store table, messy keys, defects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bson import json_util

from docshift.errors import TargetError
from docshift.generate import LARGE_SCALE, Manifest, generate_kv
from docshift.generate.kv import TABLES, entity_counts
from docshift.spec import load_mapping
from docshift.spec.model import pattern_regex
from tests.generate.strings import strings as all_strings

REPO = Path(__file__).resolve().parents[2]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # split on newlines only: values hold U+2028, which str.splitlines() also splits on
    return [json_util.loads(line) for line in path.read_bytes().split(b"\n") if line]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, dict[str, Any]]:
    path = tmp_path_factory.mktemp("kvedge") / "kv.jsonl"
    m = generate_kv(str(path), scale=1, seed=8, edge_cases=True)
    return m, {r["key"]: r["value"] for r in read_jsonl(path)}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, dict[str, Any]]:
    path = tmp_path_factory.mktemp("kvbad") / "kv.jsonl"
    m = generate_kv(str(path), scale=0.5, seed=6, bad_rate=0.2)
    return m, {r["key"]: r["value"] for r in read_jsonl(path)}


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    a = generate_kv(str(tmp_path / "a" / "kv.jsonl"), scale=0.3, seed=1, edge_cases=True,
                    bad_rate=0.1)
    b = generate_kv(str(tmp_path / "b" / "kv.jsonl"), scale=0.3, seed=1, edge_cases=True,
                    bad_rate=0.1)

    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert sha(tmp_path / "a" / "kv.jsonl") == sha(tmp_path / "b" / "kv.jsonl")
    assert a.to_json() == b.to_json()
    assert (tmp_path / "a" / "manifest.json").read_text() == a.to_json()
    generate_kv(str(tmp_path / "c" / "kv.jsonl"), scale=0.3, seed=2, edge_cases=True,
                bad_rate=0.1)
    assert sha(tmp_path / "a" / "kv.jsonl") != sha(tmp_path / "c" / "kv.jsonl")


def test_worker_processes_change_no_byte(tmp_path: Path) -> None:
    opts: dict[str, Any] = {"scale": 0.3, "seed": 5, "edge_cases": True, "bad_rate": 0.1}
    one = generate_kv(str(tmp_path / "one" / "kv.jsonl"), workers=1, **opts)
    three = generate_kv(str(tmp_path / "three" / "kv.jsonl"), workers=3, **opts)
    assert ((tmp_path / "one" / "kv.jsonl").read_bytes()
            == (tmp_path / "three" / "kv.jsonl").read_bytes())
    assert one.to_json() == three.to_json()
    assert not list((tmp_path / "three").glob(".docshift-kv-*"))  # part files are gone


def test_lines_decode_and_keys_are_unique(tmp_path: Path) -> None:
    m = generate_kv(str(tmp_path / "kv.jsonl"), scale=0.3, seed=0)
    rows = read_jsonl(tmp_path / "kv.jsonl")
    assert all(set(r) == {"key", "value"} for r in rows)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == m.total_documents
    assert list(m.expected_rows) == TABLES


def test_scale_presets() -> None:
    small = entity_counts(1)
    assert 1_500 <= sum(small.values()) <= 5_000
    assert entity_counts(LARGE_SCALE)["order"] == 50 * small["order"]


def test_key_space_is_messy(edge: tuple[Manifest, dict[str, Any]]) -> None:
    m, kv = edge
    keys = list(kv)
    assert any(k.startswith("client:production:client-") for k in keys)
    assert any(k.startswith("client:staging:") for k in keys)
    legacy = [k.split(":", 1)[1] for k in keys if k.startswith("clients:")]
    assert legacy and any(f"client:production:{cid}" in kv for cid in legacy)
    assert any(f"client:production:{cid}" not in kv for cid in legacy)  # legacy only
    assert any(k.startswith("client_by_domain:") for k in keys)
    assert isinstance(kv["gifts:all"], list) and kv["gifts:all"]
    for gift in kv["gifts:all"]:
        assert kv[f"gift:{gift['id']}"] == gift  # duplicates a record kept elsewhere
    index = next(v for k, v in kv.items() if k.startswith("catalog_gifts:") and v)
    assert all(isinstance(g, str) and g.startswith("gift-") for g in index)
    order = next(v for k, v in kv.items() if k.startswith("order:ORD-"))
    assert "siteId" in order and "createdAt" in order  # camelCase
    statuses = {v["status"] for k, v in kv.items() if k.startswith("client:production:")}
    assert "suspended" in statuses  # outside the target's list: mapped to inactive
    assert {v["status"] for k, v in kv.items() if k.startswith("order:")} >= {"complete",
                                                                               "canceled"}
    assert m.expected_nulled["orders.employee_id"] > 0


def test_unmatched_keys_follow_the_mapping(edge: tuple[Manifest, dict[str, Any]]) -> None:
    m, kv = edge
    mapping = load_mapping(REPO / "examples/kv/docshift.yaml")
    patterns = [pattern_regex(p) for t in mapping.tables.values() for f in t.feeds or []
                for p in f.keys or []]
    ignored = [pattern_regex(p) for p in mapping.ignore_keys]
    unmatched = [k for k in kv if not any(p.match(k) for p in patterns + ignored)]
    assert len(unmatched) == m.expected_unmatched_keys > 0




def test_edge_cases_are_present(edge: tuple[Manifest, dict[str, Any]]) -> None:
    m, kv = edge
    assert m.expected_quarantined == []
    strings = [s for v in kv.values() for s in all_strings(v)] + list(kv)
    assert any(len(s) == 1 << 20 for s in strings)
    assert any("🎉" in s for s in strings)
    assert any("\u05e9" in s for s in strings)
    assert any("\u0301" in s for s in strings)
    assert any(s.startswith("1900-01-01") for s in strings)
    assert any(s.startswith("9999-12-31") for s in strings)
    assert any("🎁" in k for k in kv)  # unicode inside a key
    assert any(v is None for v in kv.values())  # a JSON null value
    assert any(v == [] for k, v in kv.items() if k.startswith("catalog_gifts:"))
    for prefix, field, values in [
        ("client:production:", "status", ["active", "inactive", "trial", "suspended"]),
        ("order:", "status", ["pending", "processing", "shipped", "delivered", "cancelled",
                              "complete", "canceled"]),
        ("gift:", "category", ["electronics", "home", "food", "experiences", "apparel",
                               "wellness", "charity"]),
        ("admin_user:", "role", ["owner", "admin", "viewer", "superadmin"]),
    ]:
        seen = {v.get(field) for k, v in kv.items() if k.startswith(prefix)}
        assert set(values) <= seen, prefix
    employees = [v for k, v in kv.items() if k.startswith("employee:")]
    assert any(v.get("managerId", 0) is None for v in employees)
    assert any("managerId" not in v for v in employees)
    assert any(isinstance(v.get("managerId"), str) for v in employees)


def test_every_defect_kind_is_present_and_real(bad: tuple[Manifest, dict[str, Any]]) -> None:
    m, kv = bad
    classes = {r.error_class for r in m.expected_quarantined}
    assert classes >= {"bad_date", "not_in_enum", "too_long", "wrong_type", "bad_number",
                       "missing_required", "not_boolean", "orphan", "duplicate_key"}
    sites = {k: v for k, v in kv.items() if k.startswith("site:production:")}
    for r in m.expected_quarantined:
        value = kv[r.source_key]
        if r.table == "catalog_gifts":
            assert any("deleted" in g for g in value)
        elif r.error_class == "orphan":
            assert f"site:production:{value['siteId']}" not in kv
        elif r.error_class == "duplicate_key":
            same = [k for k, v in sites.items() if v["domain"] == value["domain"]]
            assert len(same) == 2 and min(same) != r.source_key
        elif r.field == "$item.quantity":
            assert any(i["quantity"] == "two" for i in value["items"])
        elif r.error_class == "missing_required":
            assert r.field not in value
        elif r.error_class == "too_long":
            assert len(value[r.field]) >= 1000
        else:
            assert isinstance(value[r.field], str)


def test_manifest_totals(bad: tuple[Manifest, dict[str, Any]]) -> None:
    m, kv = bad
    assert m.total_documents == len(kv)
    orders = [k for k in kv if k.startswith("order:")]
    bad_orders = sum(r.source == "order" for r in m.expected_quarantined)
    assert m.expected_rows["orders"] == len(orders) - bad_orders
    assert m.expected_rows["order_items"] <= sum(len(kv[k]["items"]) for k in orders)
    gifts = [k for k in kv if k.startswith("gift:")]
    assert m.expected_rows["gifts"] == len(gifts) - sum(r.source == "gift"
                                                        for r in m.expected_quarantined)


def test_writes_a_kv_store_table(dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "kv.jsonl"
    expected = generate_kv(str(path), scale=0.2, seed=3, edge_cases=True)
    m = generate_kv(dsn, scale=0.2, seed=3, edge_cases=True, table="kv_store_5f2c1d8e",
                    manifest_path=str(tmp_path / "m.json"))
    assert m.to_dict() | {"options": {}} == expected.to_dict() | {"options": {}}
    assert m.options["table"] == "kv_store_5f2c1d8e"
    lines = {r["key"]: r["value"] for r in read_jsonl(path)}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT key, value, created_at, updated_at "
                            "FROM kv_store_5f2c1d8e").fetchall()
        pk = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                          "WHERE conrelid = 'kv_store_5f2c1d8e'::regclass "
                          "AND contype = 'p'").fetchone()
    assert pk == ("PRIMARY KEY (key)",)
    assert len(rows) == m.total_documents == len(lines)
    assert {k: v for k, v, _, _ in rows} == lines
    assert all(c is not None and u >= c for _, _, c, u in rows)
    # one second per key, in the order of the .jsonl file
    assert [k for k, _, _, _ in sorted(rows, key=lambda r: r[2])] == list(lines)
    assert len({c for _, _, c, _ in rows}) == len(rows)


def test_worker_processes_load_the_same_table(dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "kv.jsonl"
    generate_kv(str(path), scale=0.2, seed=4, bad_rate=0.1)
    generate_kv(dsn, scale=0.2, seed=4, bad_rate=0.1, table="kv_store_workers", workers=2,
                manifest_path=str(tmp_path / "m.json"))
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT key, value FROM kv_store_workers "
                            "ORDER BY created_at").fetchall()
    assert [(k, v) for k, v in rows] == [(r["key"], r["value"]) for r in read_jsonl(path)]


def test_refuses_to_overwrite_a_table_unless_asked(dsn: str, tmp_path: Path) -> None:
    generate_kv(dsn, scale=0.05, seed=1, manifest_path=str(tmp_path / "a.json"))
    with pytest.raises(TargetError, match="already exists"):
        generate_kv(dsn, scale=0.05, seed=1, manifest_path=str(tmp_path / "b.json"))
    m = generate_kv(dsn, scale=0.05, seed=2, replace=True,
                    manifest_path=str(tmp_path / "c.json"))
    with psycopg.connect(dsn) as conn:
        n = conn.execute("SELECT count(*) FROM kv_store_demo").fetchone()
    assert n == (m.total_documents,)
    assert json.loads((tmp_path / "c.json").read_text())["seed"] == 2
