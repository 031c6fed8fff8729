"""The CRM generator: deterministic bytes, real formats, edge cases, defects, exact manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import ObjectId, json_util
from bson.codec_options import CodecOptions

from docshift.generate import LARGE_SCALE, Manifest, generate_crm
from docshift.generate.crm import BASE_COUNTS, TABLES, collection_counts
from docshift.spec import load_mapping
from tests.generate.strings import strings as all_strings

REPO = Path(__file__).resolve().parents[2]
CODEC = CodecOptions(tz_aware=True)
MAIN = ["Users", "crm_Accounts", "crm_Contacts", "crm_Leads", "crm_Opportunities",
        "crm_Contracts", "Documents", "Tasks", "Invoices"]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_dump(folder: Path) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for f in sorted((folder / "crm").iterdir()):
        if f.name.endswith(".bson"):
            out[f.name[:-5]] = bson.decode_all(f.read_bytes(), CODEC)
        elif f.name.endswith(".bson.gz"):
            out[f.name[:-8]] = bson.decode_all(gzip.decompress(f.read_bytes()), CODEC)
    return out


@pytest.fixture(scope="module")
def edge_dump(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, dict]:
    out = tmp_path_factory.mktemp("edge")
    m = generate_crm(str(out), scale=1, seed=11, edge_cases=True)
    return m, read_dump(out)


@pytest.fixture(scope="module")
def bad_dump(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, dict]:
    out = tmp_path_factory.mktemp("bad")
    m = generate_crm(str(out), scale=0.5, seed=5, bad_rate=0.25)
    return m, read_dump(out)


@pytest.mark.parametrize("fmt", ["mongodump", "mongodump-gz", "mongoexport"])
def test_same_seed_gives_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ma = generate_crm(str(a), scale=0.2, seed=3, bad_rate=0.1, edge_cases=True, fmt=fmt)
    mb = generate_crm(str(b), scale=0.2, seed=3, bad_rate=0.1, edge_cases=True, fmt=fmt)
    assert digest(a) == digest(b)
    assert ma.to_json() == mb.to_json()


@pytest.mark.parametrize("fmt", ["mongodump", "mongodump-gz", "mongoexport"])
def test_worker_processes_change_no_byte(tmp_path: Path, fmt: str) -> None:
    opts: dict[str, Any] = {"scale": 0.3, "seed": 7, "bad_rate": 0.1, "edge_cases": True,
                            "fmt": fmt}
    one = generate_crm(str(tmp_path / "one"), workers=1, **opts)
    three = generate_crm(str(tmp_path / "three"), workers=3, **opts)
    assert digest(tmp_path / "one") == digest(tmp_path / "three")
    assert one.to_json() == three.to_json()


def test_export_lines_read_like_mongoexport_output(tmp_path: Path) -> None:
    from docshift.sources.bsonvalues import ejson_loads, ejson_loads_slow

    generate_crm(str(tmp_path), scale=0.2, seed=4, edge_cases=True, fmt="mongoexport")
    for name in ("Users", "crm_Contacts", "Invoices"):
        for line in (tmp_path / f"{name}.json").read_bytes().split(b"\n")[:-1]:
            assert ejson_loads(line) == ejson_loads_slow(line)
    # as mongoexport writes them: compact, ids as $oid, dates as $date ISO strings (UTC,
    # milliseconds) from 1970 on and as $numberLong milliseconds before
    lines = (tmp_path / "crm_Contacts.json").read_bytes().split(b"\n")[:-1]
    assert all(line.startswith(b'{"_id":{"$oid":"') for line in lines)
    docs = [json.loads(line) for line in lines]
    assert all(set(d["_id"]) == {"$oid"} for d in docs)
    dates = [d["created_on"]["$date"] for d in docs if isinstance(d["created_on"], dict)]
    assert any(isinstance(v, dict) and int(v["$numberLong"]) < 0 for v in dates)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", v)
               for v in dates if isinstance(v, str))


def test_different_seeds_differ(tmp_path: Path) -> None:
    generate_crm(str(tmp_path / "a"), scale=0.2, seed=1)
    generate_crm(str(tmp_path / "b"), scale=0.2, seed=2)
    da, db = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert da.keys() == db.keys()
    assert da["crm/Users.bson"] != db["crm/Users.bson"]
    assert da["crm/crm_Contacts.bson"] != db["crm/crm_Contacts.bson"]


def test_mongodump_layout_decodes_and_matches_manifest(tmp_path: Path) -> None:
    m = generate_crm(str(tmp_path), scale=0.3, seed=0)
    docs = read_dump(tmp_path)
    assert len(docs) >= 20
    assert {n: len(d) for n, d in docs.items()} == m.documents
    for name in docs:
        meta = json_util.loads((tmp_path / "crm" / f"{name}.metadata.json").read_text())
        assert meta["collectionName"] == name
        assert meta["indexes"][0]["name"] == "_id_"
    user = docs["Users"][0]
    assert isinstance(user["_id"], ObjectId) and "__v" in user
    # ids sort like the generation order, and never repeat across collections
    ids = [d["_id"] for d in docs["crm_Contacts"]]
    assert ids == sorted(ids)
    everything = [d["_id"] for c in docs.values() for d in c]
    assert len(everything) == len(set(everything))
    assert Manifest.load(tmp_path / "manifest.json").to_dict() == m.to_dict()


def test_gzip_and_export_formats_hold_the_same_documents(tmp_path: Path) -> None:
    opts: dict[str, Any] = {"scale": 0.2, "seed": 4, "edge_cases": True}
    generate_crm(str(tmp_path / "d"), **opts)
    generate_crm(str(tmp_path / "g"), fmt="mongodump-gz", **opts)
    m = generate_crm(str(tmp_path / "e"), fmt="mongoexport", **opts)
    plain, gz = read_dump(tmp_path / "d"), read_dump(tmp_path / "g")
    assert plain == gz
    assert (tmp_path / "g" / "crm" / "Users.metadata.json.gz").exists()
    for name, expected in plain.items():
        lines = (tmp_path / "e" / f"{name}.json").read_bytes().split(b"\n")[:-1]
        assert len(lines) == m.documents[name]
        decoded = [json_util.loads(line, json_options=json_util.JSONOptions(tz_aware=True))
                   for line in lines]
        assert decoded == expected


def test_scale_presets() -> None:
    large = collection_counts(LARGE_SCALE)
    assert large["Users"] == 1000
    assert large["crm_Accounts"] == 10_000
    assert large["crm_Contacts"] == 25_000
    assert large["crm_Leads"] == 5_000
    assert large["crm_Opportunities"] == 15_000
    assert large["Documents"] == 10_000
    assert large["Tasks"] == 20_000
    small = collection_counts(1)
    assert 2_000 <= sum(small.values()) <= 5_000
    assert all(small[n] == c for n, c in BASE_COUNTS.items())


def test_clean_manifest_counts_every_document(tmp_path: Path) -> None:
    m = generate_crm(str(tmp_path), scale=0.3, seed=9)
    assert list(m.expected_rows) == TABLES
    assert m.expected_quarantined == []
    one_row = {"users": "Users", "accounts": "crm_Accounts", "contacts": "crm_Contacts",
               "tasks": "Tasks", "invoices": "Invoices", "industry_types": "crm_Industry_Type"}
    for table, coll in one_row.items():
        assert m.expected_rows[table] == m.documents[coll]
    docs = read_dump(tmp_path)
    items = sum(len(d.get("invoice_items") or []) for d in docs["Invoices"])
    assert m.expected_rows["invoice_items"] == items
    tags = sum(len(d.get("tags") or []) for d in docs["crm_Opportunities"])
    assert m.expected_rows["opportunity_tags"] == tags
    # the junction holds the union of both sides' pairs
    pairs = {(d["_id"], a) for d in docs["Documents"] for a in d.get("accountsIDs") or []}
    pairs |= {(d, a["_id"]) for a in docs["crm_Accounts"] for d in a.get("documentsIDs") or []}
    assert m.expected_rows["document_accounts"] == len(pairs)
    watch = {(u["_id"], a) for u in docs["Users"] for a in u.get("watching_accountsIDs") or []}
    watch |= {(u, a["_id"]) for a in docs["crm_Accounts"] for u in a.get("watchers") or []}
    assert m.expected_rows["account_watchers"] == len(watch)


def test_two_sided_links_mostly_agree(tmp_path: Path) -> None:
    generate_crm(str(tmp_path), scale=1, seed=2)
    docs = read_dump(tmp_path)
    left = {(d["_id"], a) for d in docs["Documents"] for a in d.get("accountsIDs") or []}
    right = {(d, a["_id"]) for a in docs["crm_Accounts"] for d in a.get("documentsIDs") or []}
    one_sided = len(left ^ right) / len(left | right)
    assert 0.03 < one_sided < 0.2


# --------------------------------------------------------------------------- edge cases




def _dates(value: Any) -> Any:
    if isinstance(value, datetime):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _dates(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dates(v)


def test_edge_cases_are_present(edge_dump: tuple[Manifest, dict]) -> None:
    m, docs = edge_dump
    assert m.expected_quarantined == []
    strings = [s for c in docs.values() for d in c for s in all_strings(d)]
    assert any(len(s) == 1 << 20 for s in strings)
    assert any("🎉" in s for s in strings)
    assert any("\u05e9" in s for s in strings)  # Hebrew (right-to-left)
    assert any("\u0645" in s for s in strings)  # Arabic (right-to-left)
    assert any("\u0301" in s for s in strings)  # combining mark
    assert any("'" in s and "\\" in s and "\n" in s for s in strings)
    years = {d.year for c in docs.values() for doc in c for d in _dates(doc)}
    assert 1900 in years and 9999 in years
    ints = {v for c in docs.values() for doc in c for v in doc.values()
            if isinstance(v, int) and not isinstance(v, bool)}
    assert 2**31 - 1 in ints and 2**63 - 1 in ints


@pytest.mark.parametrize(("coll", "field", "values"), [
    ("Users", "userStatus", ["ACTIVE", "INACTIVE", "PENDING"]),
    ("Users", "userLanguage", ["en", "cz", "de", "uk"]),
    ("crm_Accounts", "type", ["Customer", "Partner", "Vendor", "Prospect"]),
    ("crm_Leads", "status", ["NEW", "CONTACTED", "QUALIFIED", "LOST"]),
    ("crm_Opportunities", "status", ["ACTIVE", "INACTIVE", "PENDING", "CLOSED"]),
    ("Tasks", "priority", ["low", "normal", "high"]),
    ("Invoices", "payment_status", ["UNPAID", "PAID", "OVERDUE"]),
])
def test_edge_cases_cover_every_enum_value(edge_dump: tuple[Manifest, dict], coll: str,
                                           field: str, values: list[str]) -> None:
    seen = {d.get(field) for d in edge_dump[1][coll]}
    assert set(values) <= seen


def test_edge_cases_have_null_missing_and_set_references(
        edge_dump: tuple[Manifest, dict]) -> None:
    contacts = edge_dump[1]["crm_Contacts"]
    assert any(d.get("account", 0) is None for d in contacts)
    assert any("account" not in d for d in contacts)
    assert any(isinstance(d.get("account"), ObjectId) for d in contacts)
    assert any(d.get("tags") == [] for d in contacts)
    assert any(d.get("tags", 0) is None for d in contacts)
    assert any(isinstance(d.get("created_on"), str) for d in contacts)  # ISO string dates


# --------------------------------------------------------------------------- defects


def _columns_by_path() -> dict[tuple[str, str], tuple[str, Any]]:
    """(collection, source path) → (column name, column spec), from the example mapping."""
    from docshift.spec.check import source_path

    m = load_mapping(REPO / "examples/crm/docshift.yaml")
    out = {}
    for table in m.tables.values():
        for feed in table.feeds or []:
            for cname in table.columns:
                out[(feed.from_, source_path(m, table, feed, cname))] = (cname, table.column(cname))
    return out


def test_every_defect_kind_is_present_and_listed(bad_dump: tuple[Manifest, dict]) -> None:
    m, docs = bad_dump
    classes = {r.error_class for r in m.expected_quarantined}
    assert classes >= {"bad_date", "not_in_enum", "too_long", "wrong_type", "bad_number",
                       "missing_required", "nul_byte", "orphan", "duplicate_key"}
    assert {r.source for r in m.expected_quarantined} == set(MAIN)
    keys = [r.source_key for r in m.expected_quarantined]
    assert len(keys) == len(set(keys))  # one defect per document
    for coll in MAIN:
        bad = sum(r.source == coll for r in m.expected_quarantined)
        assert bad == pytest.approx(len(docs[coll]) * 0.25, abs=1.01)


def test_each_listed_defect_is_really_in_the_document(bad_dump: tuple[Manifest, dict]) -> None:
    m, docs = bad_dump
    by_id = {str(d["_id"]): (c, d) for c, ds in docs.items() for d in ds}
    all_ids = {d["_id"] for ds in docs.values() for d in ds}
    columns = _columns_by_path()
    for r in m.expected_quarantined:
        coll, doc = by_id[r.source_key]
        assert coll == r.source
        if r.field == "$item.quantity":
            assert any(i["quantity"] == "two" for i in doc["invoice_items"])
            continue
        if r.error_class == "orphan":
            path = next(p for (c, p), (name, col) in columns.items()
                        if c == coll and col.references and name == r.field)
            assert doc[path] not in all_ids
            continue
        if r.error_class == "duplicate_key":
            earlier = [d for d in docs[coll] if d["_id"] < doc["_id"]]
            assert any(d.get(r.field) == doc[r.field] for d in earlier)
            continue
        value = doc.get(r.field)
        col = columns[(coll, r.field)][1] if (coll, r.field) in columns else None
        if r.error_class == "missing_required":
            assert value is None and col.nullable is False
        elif r.error_class == "nul_byte":
            assert "\x00" in value
        elif r.error_class == "bad_date":
            assert isinstance(value, str)
            with pytest.raises(ValueError):
                datetime.fromisoformat(value)
        elif r.error_class == "not_in_enum":
            assert value not in col.enum
        elif r.error_class == "too_long":
            assert len(value) > col.max_length
        elif r.error_class == "bad_number":
            assert isinstance(value, str) and not value.replace(".", "").isdigit()
        elif r.error_class == "wrong_type":
            assert isinstance(value, (list, dict, str))
        else:
            pytest.fail(f"unexpected class {r.error_class}")


def test_bad_documents_lose_their_rows_and_nothing_points_at_them(
        bad_dump: tuple[Manifest, dict]) -> None:
    m, docs = bad_dump
    bad_ids = {r.source_key for r in m.expected_quarantined}
    for table, coll in [("users", "Users"), ("accounts", "crm_Accounts"),
                        ("contacts", "crm_Contacts"), ("tasks", "Tasks")]:
        bad = sum(r.source == coll for r in m.expected_quarantined)
        assert m.expected_rows[table] == len(docs[coll]) - bad
    refs = ("account", "assigned_to", "user", "task", "contact", "createdBy",
            "created_by_user", "accountsIDs", "documentsIDs", "watchers",
            "watching_accountsIDs", "connected_contacts")
    for ds in docs.values():
        for d in ds:
            for name in refs:
                value = d.get(name)
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, ObjectId) and str(d["_id"]) not in bad_ids:
                        assert str(v) not in bad_ids


def test_live_mongodb_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mongomock = pytest.importorskip("mongomock")
    import pymongo

    client = mongomock.MongoClient()
    monkeypatch.setattr(pymongo, "MongoClient", lambda *a, **k: client)
    m = generate_crm("mongodb://localhost:27017/crmtest", scale=0.1, seed=1,
                     manifest_path=str(tmp_path / "manifest.json"))
    db = client["crmtest"]
    assert {n: db[n].count_documents({}) for n in m.documents} == m.documents
    assert json.loads((tmp_path / "manifest.json").read_text())["options"]["format"] == "mongodb"


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad_rate"):
        generate_crm(str(tmp_path), bad_rate=1.5)
    with pytest.raises(ValueError, match="scale"):
        generate_crm(str(tmp_path), scale=0)
    with pytest.raises(ValueError, match="format"):
        generate_crm(str(tmp_path), fmt="csv")  # type: ignore[arg-type]
