"""`docshift bench` on the generated key-value dataset, migrated with the example mapping."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from docshift.cli import app
from docshift.generate import generate_kv
from docshift.target.connect import recreate_database

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KV_TABLE = "kv_store_bench"


@pytest.fixture(scope="module")
def kv_dsn(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database holding a small generated key-value table and its migration (example
    mapping), shared by this module's tests: none of them writes to it."""
    name = f"dsbench_{os.getpid()}"
    dsn = recreate_database(server_dsn, name)
    work = tmp_path_factory.mktemp("kv")
    generate_kv(dsn, scale=2, seed=3, table=KV_TABLE, manifest_path=str(work / "m.json"))
    env = {"DOCSHIFT_KV_TABLE": KV_TABLE}
    r = runner.invoke(app, ["run", "-c", str(EXAMPLES / "kv" / "docshift.yaml"), "--dsn", dsn,
                            "-q"], env=env)
    assert r.exit_code in (0, 3), r.output
    yield dsn
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _bench(dsn: str, queries: Path, tmp_path: Path, *extra: str) -> tuple[int, dict, str]:
    out = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "-c", str(EXAMPLES / "kv" / "docshift.yaml"), "--dsn", dsn,
                            "--queries", str(queries), "--runs", "3", "--warmup", "1",
                            "--report", str(out), *extra],
                      env={"DOCSHIFT_KV_TABLE": KV_TABLE})
    report = json.loads(out.read_text()) if out.exists() else {}
    return r.exit_code, report, r.output


def _query(report: dict, name: str) -> dict:
    return next(q for q in report["queries"] if q["name"] == name)


def test_example_queries_run_and_time_the_key_value_table(kv_dsn: str, tmp_path: Path) -> None:
    code, report, output = _bench(kv_dsn, EXAMPLES / "kv" / "queries.yaml", tmp_path,
                                  "--markdown", str(tmp_path / "b.md"),
                                  "--html", str(tmp_path / "b.html"))
    assert code == 0, output
    with psycopg.connect(kv_dsn) as c:
        orders = c.execute(sql.SQL("SELECT count(*) FROM {} WHERE key LIKE 'order:%'")
                           .format(sql.Identifier(KV_TABLE))).fetchone()[0]
        gifts_in_catalogs = c.execute("SELECT count(*) FROM catalog_gifts").fetchone()[0]
    assert orders > 0
    # a prefix scan really reads every order row of the key-value table, each run
    per_status = _query(report, "orders per status")
    assert per_status["source"]["rows_read_per_run"] == orders
    assert per_status["source"]["rows_read"] == orders * 3
    assert per_status["speedup"] is not None
    # get one key: one row, one round trip
    gift = _query(report, "a gift by id")
    assert gift["source"]["rows_read_per_run"] == 1 and gift["rows"] == 1
    assert gift["source"]["round_trips_per_run"] == 1
    # index key, then every id in one mget
    listing = _query(report, "list 100 products of a catalog")
    assert listing["source"]["round_trips_per_run"] == 2
    assert listing["source"]["rows_read_per_run"] > 1 and listing["rows"] > 0
    assert gifts_in_catalogs > 0
    # the primary key lookups use their index
    assert "gifts_pkey" in gift["plan"]["indexes"]
    assert _query(report, "orders per client and status")["source"] is None
    assert "×" in output and "speed-up" in output
    assert "<svg" in (tmp_path / "b.html").read_text() or \
        "class='bar t'" in (tmp_path / "b.html").read_text()
    assert "| orders per status |" in (tmp_path / "b.md").read_text()


def test_unindexed_column_is_a_seq_scan_with_an_index_proposal(kv_dsn: str,
                                                              tmp_path: Path) -> None:
    queries = tmp_path / "q.yaml"
    queries.write_text("""
queries:
  - name: orders by total
    sql: SELECT id FROM orders WHERE total_cents = %(total)s
    params:
      sql: SELECT total_cents AS total FROM orders
  - name: gifts by name
    sql: SELECT id FROM gifts WHERE name ILIKE '%%blue%%'
""")
    code, report, output = _bench(kv_dsn, queries, tmp_path, "--seq-scan-rows", "10")
    assert code == 0, output
    q = _query(report, "orders by total")
    scans = q["plan"]["seq_scans"]
    assert [s["table"] for s in scans] == ["orders"]
    assert scans[0]["filter_columns"] == ["total_cents"]
    assert q["plan"]["indexes"] == []
    ddl = [a["ddl"] for a in report["advice"] if a["kind"] == "seq_scan"]
    assert 'CREATE INDEX ON "public"."orders" ("total_cents");' in ddl
    assert any("gin_trgm_ops" in (d or "") and '"gifts"' in d for d in ddl)
    assert "CREATE INDEX ON" in output


def test_missing_foreign_key_index_is_flagged(kv_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(kv_dsn, autocommit=True) as c:
        indexes = [r[0] for r in c.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' "
            "AND indexdef LIKE '%(employee_id)%'")]
        assert indexes, "the example mapping indexes every foreign key"
        try:
            for name in indexes:
                c.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            queries = tmp_path / "q.yaml"
            queries.write_text("queries:\n  - {name: one, sql: SELECT 1}\n")
            code, report, output = _bench(kv_dsn, queries, tmp_path)
        finally:
            c.execute("CREATE INDEX ON orders (employee_id)")
    assert code == 0, output
    fk = [a for a in report["advice"] if a["kind"] == "missing_fk_index"]
    assert [(a["table"], a["ddl"]) for a in fk] == [
        ("orders", 'CREATE INDEX ON "public"."orders" ("employee_id");')]


def test_a_query_over_its_expect_ms_exits_1(kv_dsn: str, tmp_path: Path) -> None:
    queries = tmp_path / "q.yaml"
    queries.write_text("""
queries:
  - name: slow on purpose
    sql: SELECT pg_sleep(0.03)
    expect_ms: 5
  - name: fast
    sql: SELECT 1
    expect_ms: 1000
""")
    code, report, output = _bench(kv_dsn, queries, tmp_path)
    assert code == 1, output
    assert _query(report, "slow on purpose")["status"] == "slow"
    assert _query(report, "slow on purpose")["target"]["median_ms"] >= 30
    assert _query(report, "fast")["status"] == "ok"
    assert report["ok"] is False


def test_a_query_error_exits_1_and_the_bench_never_writes(kv_dsn: str, tmp_path: Path) -> None:
    queries = tmp_path / "q.yaml"
    queries.write_text("""
queries:
  - {name: no such table, sql: SELECT * FROM nowhere}
  - {name: a write, sql: "DELETE FROM orders"}
""")
    code, report, output = _bench(kv_dsn, queries, tmp_path)
    assert code == 1, output
    assert "nowhere" in _query(report, "no such table")["error"]
    assert "read-only" in _query(report, "a write")["error"]
    with psycopg.connect(kv_dsn) as c:
        assert c.execute("SELECT count(*) FROM orders").fetchone()[0] > 0
