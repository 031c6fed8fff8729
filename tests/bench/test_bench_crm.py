"""`docshift bench` with the CRM example queries on a generated, migrated CRM dump; and a live
MongoDB source (mongomock: no MongoDB server can run here) timed with find and aggregate."""

from __future__ import annotations

import json
from pathlib import Path

import mongomock
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.generate import generate_crm

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_crm_example_queries_and_index_proposals(dsn: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump"
    generate_crm(str(dump), scale=1, seed=1)
    env = {"DOCSHIFT_SOURCE": str(dump)}
    mapping = str(EXAMPLES / "crm" / "docshift.yaml")
    r = runner.invoke(app, ["run", "-c", mapping, "--dsn", dsn, "-q"], env=env)
    assert r.exit_code in (0, 3), r.output
    out = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "-c", mapping, "--dsn", dsn, "--queries",
                            str(EXAMPLES / "crm" / "queries.yaml"), "--runs", "2",
                            "--seq-scan-rows", "1", "--report", str(out)], env=env)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert all(q["status"] == "ok" and q["rows"] >= 0 for q in report["queries"])
    ddl = [a["ddl"] or "" for a in report["advice"] if a["kind"] == "seq_scan"]
    # text search and jsonb containment get GIN proposals of their own kind
    assert "CREATE INDEX ON \"public\".\"accounts\" USING gin (to_tsvector('simple', name));" \
        in ddl
    assert 'CREATE INDEX ON "public"."accounts" USING gin ("social");' in ddl
    assert 'CREATE INDEX ON "public"."invoice_items" ("sku");' in ddl
    by_name = {q["name"]: q for q in report["queries"]}
    assert "accounts_pkey" in by_name["an account by id"]["plan"]["indexes"]


MAPPING = """
source: {kind: mongodb, uri: "mongodb://example.invalid:27017", database: crm}
target: {dsn: "%(dsn)s"}
tables:
  users:
    from: Users
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      email: text
      status: text
"""

QUERIES = """
queries:
  - name: a user by id
    sql: SELECT * FROM users WHERE id = %(user)s
    params: {sql: SELECT id AS user FROM users, objectid: [user]}
    source:
      mongodb: {find: Users, filter: {_id: "{user}"}, limit: 1}
  - name: users per status
    sql: SELECT status, count(*) FROM users GROUP BY status
    source:
      mongodb:
        aggregate: Users
        pipeline: [{$group: {_id: "$status", n: {$sum: 1}}}]
"""


def test_live_mongodb_source_is_timed_with_find_and_aggregate(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bson import ObjectId

    shared = mongomock.MongoClient()
    shared["crm"]["Users"].insert_many(
        [{"_id": ObjectId(f"{i:024x}"), "email": f"u{i}@x.example",
          "status": ["active", "inactive"][i % 2]} for i in range(1, 31)])
    monkeypatch.setattr("docshift.sources.mongodb.pymongo.MongoClient", lambda *a, **kw: shared)
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(MAPPING % {"dsn": dsn})
    r = runner.invoke(app, ["run", "-c", str(mapping), "-q"])
    assert r.exit_code == 0, r.output
    queries = tmp_path / "q.yaml"
    queries.write_text(QUERIES)
    out = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "-c", str(mapping), "--queries", str(queries), "--runs",
                            "4", "--report", str(out)])
    assert r.exit_code == 0, r.output
    report = {q["name"]: q for q in json.loads(out.read_text())["queries"]}
    # the UUID drawn from the target was turned back into its ObjectId: one document found
    assert report["a user by id"]["source"]["rows_read_per_run"] == 1
    assert report["a user by id"]["rows"] == 1
    assert report["users per status"]["source"]["rows_read_per_run"] == 2
    assert report["users per status"]["speedup"] is not None
