"""Existing mode: load into tables an ORM made, with their own keys, checks and defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import write_dump, write_mapping

runner = CliRunner()

SCHEMA = """
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text,
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz,
    -- stricter than the mapping: PostgreSQL refuses these rows, docshift isolates them
    CONSTRAINT users_name_check CHECK (name NOT LIKE '%%7')
);
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    owner_id uuid REFERENCES users (id),
    name_upper text GENERATED ALWAYS AS (upper(name)) STORED,
    imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_owner_idx ON accounts (owner_id);
"""

MAPPING = """
source: {kind: mongodump, path: "%(path)s"}
target: {dsn: "%(dsn)s", mode: existing}
options: {unmapped: ignore}
tables:
  users:
    from: Users
    primary_key: id
    columns:
      id: {from: _id}
      email: {nullable: false, unique: true}
      name: {}
      created_at: {from: createdAt}
  accounts:
    from: Accounts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      name: text
      owner_id: {type: uuid, from: owner, references: users, on_orphan: "null"}
"""


@pytest.fixture
def mapping(tmp_path: Path, dsn: str, conn) -> Path:
    conn.execute(SCHEMA.replace("%%", "%"))
    dump = write_dump(tmp_path / "dump", 40, 30)
    return write_mapping(tmp_path / "docshift.yaml", dump, dsn, MAPPING)


def test_existing_tables_load_mapped_columns_and_keep_their_constraints(mapping, conn):
    before = {r[0] for r in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid IN "
        "('users'::regclass, 'accounts'::regclass)")}
    res = runner.invoke(app, ["run", "-c", str(mapping), "--batch-size", "8"])
    assert res.exit_code == 3, res.output
    # users whose name ends in 7 (User 7, 17, 27, 37) were refused by the CHECK and isolated
    refused = conn.execute("SELECT source_key FROM docshift.rejects WHERE stage = 'load'"
                           ).fetchall()
    assert len(refused) == 4
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 40 - 4 + 1
    # unmapped columns took their defaults; the generated column was computed
    row = conn.execute("SELECT status, name_upper, imported_at FROM accounts a JOIN users u "
                       "ON u.id = a.owner_id LIMIT 1").fetchone()
    assert row[0] == "active" and row[1].startswith("ACCOUNT") and row[2] is not None
    # every constraint that existed before exists again, validated
    after = {r[0] for r in conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid IN "
        "('users'::regclass, 'accounts'::regclass)")}
    assert after == before
    assert conn.execute("SELECT bool_and(convalidated) FROM pg_constraint WHERE conrelid = "
                        "'accounts'::regclass").fetchone()[0]
    # on_orphan: null → accounts owned by refused users (and the dangling one) lost their owner
    assert conn.execute("SELECT count(*) FROM accounts WHERE owner_id IS NULL").fetchone()[0] \
        == 1 + sum(1 for i in range(30) if i % 40 in (7, 17, 27, 37))
    assert "orphan reference(s) set to NULL" in res.output


def test_existing_mode_rollback_empties_tables_and_keeps_them(mapping, conn):
    runner.invoke(app, ["run", "-c", str(mapping)])
    res = runner.invoke(app, ["rollback", "-c", str(mapping), "--yes"])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    assert conn.execute("SELECT to_regclass('accounts') IS NOT NULL").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = "
                        "'accounts_owner_id_fkey'").fetchone()[0] == 1


def test_existing_mode_reports_missing_tables(tmp_path, dsn):
    dump = write_dump(tmp_path / "dump", 5, 5)
    mapping = write_mapping(tmp_path / "m.yaml", dump, dsn, MAPPING)
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 1
    assert "users does not exist" in res.output


def test_rejects_all_lists_and_exports_policy_removals(mapping, conn, tmp_path):
    runner.invoke(app, ["run", "-c", str(mapping), "--batch-size", "8"])
    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--all"])
    assert res.exit_code == 0, res.output
    assert "reference_nulled" in res.output and "accounts.owner_id" in res.output
    out = tmp_path / "all.jsonl"
    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--all", "--export", str(out)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    removals = [r for r in lines if "removal" in r]
    nulled = conn.execute("SELECT count(*) FROM accounts WHERE owner_id IS NULL").fetchone()[0]
    assert len(removals) == nulled
    assert all(r["removal"] == "reference_nulled" and r["source_value"].startswith("ObjectId(")
               for r in removals)
    # quarantined documents are documents: none of them is a row-level entry
    assert all(r["document"] and "_id" in r["document"] for r in lines if "removal" not in r)


def test_a_key_that_cannot_be_re_created_is_a_failure_with_the_rows_counted(
        tmp_path, dsn, conn):
    conn.execute(SCHEMA.replace("%%", "%"))
    dump = write_dump(tmp_path / "dump", 40, 30)
    text = MAPPING.replace('on_orphan: "null"', "on_orphan: keep")
    mapping = write_mapping(tmp_path / "docshift.yaml", dump, dsn, text)
    res = runner.invoke(app, ["run", "-c", str(mapping), "--batch-size", "8"])
    assert res.exit_code == 1, res.output
    orphans = 1 + sum(1 for i in range(30) if i % 40 in (7, 17, 27, 37))
    assert "accounts_owner_id_fkey" in res.output
    assert f"{orphans} row(s) point at no parent" in res.output
    # the hidden columns stay, so that a re-run can retry and rollback still knows the rows
    assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE "
                        "column_name = '__docshift_doc'").fetchone()[0] == 2
