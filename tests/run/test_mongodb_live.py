"""A live MongoDB source, end to end. No MongoDB server can run here: the client is mongomock
(its cursor logic is what the reader pages through), the target a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import mongomock
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import accounts, users

runner = CliRunner()

MAPPING = """
source: {kind: mongodb, uri: "mongodb://example.invalid:27017", database: crm}
target: {dsn: "%(dsn)s"}
options: {unmapped: ignore}
tables:
  users:
    from: Users
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, unique: true}
      created_at: {type: timestamptz, from: createdAt}
  accounts:
    from: Accounts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      owner_id: {type: uuid, from: owner, references: users}
"""


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> mongomock.MongoClient:
    shared = mongomock.MongoClient()
    db = shared["crm"]
    db["Users"].insert_many(users(25))
    db["Accounts"].insert_many(accounts(12, 25))
    monkeypatch.setattr("docshift.sources.mongodb.pymongo.MongoClient",
                        lambda *a, **kw: shared)
    return shared


def test_live_mongodb_collections_migrate_in_id_pages(client, tmp_path: Path, dsn: str,
                                                      conn) -> None:
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(MAPPING % {"dsn": dsn})
    res = runner.invoke(app, ["run", "-c", str(mapping), "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 25
    assert conn.execute("SELECT count(*) FROM accounts a JOIN users u ON u.id = a.owner_id"
                        ).fetchone()[0] == 12
    # the checkpoint holds the last _id read, as canonical Extended JSON
    pos = conn.execute("SELECT position FROM docshift.checkpoints WHERE stream = 'Users'"
                       ).fetchone()[0]
    assert pos.startswith('{"$oid"')
    # nothing was written to the source
    assert client["crm"]["Users"].count_documents({}) == 25
    assert sorted(client["crm"].list_collection_names()) == ["Accounts", "Users"]
