"""Every example mapping loads, matches its dataset's manifest, and schema.sql applies."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from docshift.generate import crm, kv
from docshift.spec import load_mapping

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAPPINGS = {
    "crm": crm.TABLES,
    "kv": kv.TABLES,
    "kv-existing": kv.TABLES,
}


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_example_mapping_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DOCSHIFT_SOURCE", "DOCSHIFT_KV_TABLE"):
        monkeypatch.delenv(var, raising=False)
    m = load_mapping(EXAMPLES / name / "docshift.yaml")
    # the manifest's expected_rows name exactly the mapping's tables
    assert sorted(m.tables) == sorted(MAPPINGS[name])


def test_every_crm_collection_is_mapped() -> None:
    m = load_mapping(EXAMPLES / "crm" / "docshift.yaml")
    fed = {f.from_ for t in m.tables.values() for f in t.feeds or []}
    assert fed == set(crm.collection_counts(1))
    assert len(fed) >= 20


def test_schema_sql_applies_to_a_fresh_database(conn: psycopg.Connection) -> None:
    conn.execute((EXAMPLES / "kv-existing" / "schema.sql").read_text())
    m = load_mapping(EXAMPLES / "kv-existing" / "docshift.yaml")
    assert m.target.mode == "existing"
    for tname, table in m.tables.items():
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s", (m.target.schema_, tname))}
        assert set(table.columns) <= cols, tname
    kinds = dict(conn.execute(
        "SELECT contype, count(*) FROM pg_constraint c JOIN pg_namespace n "
        "ON n.oid = c.connamespace WHERE n.nspname = 'gifting' GROUP BY contype").fetchall())
    assert kinds["c"] >= 5 and kinds["f"] >= 8 and kinds["p"] == 11
    indexes = {r[0] for r in conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'gifting'")}
    assert any("gin_trgm_ops" in d for d in indexes)
    assert any(" WHERE " in d for d in indexes)
    assert conn.execute("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        "WHERE c.relname = 'employees' AND NOT t.tgisinternal").fetchone() == (1,)
