"""Rollback: exactly what the migration loaded or created goes, nothing else."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.errors import DocshiftError
from docshift.run.migrate import RunOptions, migrate
from docshift.run.rollback import rollback
from docshift.spec import load_mapping
from docshift.target.state import RUN_LOCK
from docshift.transform.ids import objectid_to_uuid
from tests.run.sample import oid, write_dump, write_mapping

runner = CliRunner()

# an ORM-made schema: unique *indexes* (Prisma's @unique, and _AB_unique on its implicit
# many-to-many table) rather than constraints
SCHEMA = """
CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text
);
CREATE UNIQUE INDEX "users_email_key" ON users (email);
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    owner_id uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE TABLE "_AccountToUser" (
    "A" uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    "B" uuid NOT NULL
);
CREATE UNIQUE INDEX "_AccountToUser_AB_unique" ON "_AccountToUser" ("A", "B");
CREATE INDEX "_AccountToUser_B_index" ON "_AccountToUser" ("B");
"""

OLD_USER = "0a000000-0000-4000-8000-000000000001"
OLD_ACCOUNT = "0a000000-0000-4000-8000-000000000002"
SEED = f"""
INSERT INTO users VALUES ('{OLD_USER}', 'user3@example.com', 'Already here');
INSERT INTO accounts VALUES ('{OLD_ACCOUNT}', 'Old account', '{OLD_USER}');
INSERT INTO "_AccountToUser" VALUES ('{OLD_ACCOUNT}', '{OLD_USER}');
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
      email: {}
      name: {}
  accounts:
    from: Accounts
    primary_key: id
    columns:
      id: {from: _id}
      name: {}
      owner_id: {from: owner, references: users, on_orphan: "null"}
  _AccountToUser:
    from: Accounts
    unnest: watchers
    columns:
      A: {from: _id, references: accounts}
      B: {from: $item}
"""


def snapshot(conn: psycopg.Connection) -> dict[str, object]:
    """Every table's contents and every constraint and index definition."""
    out: dict[str, object] = {}
    for t in ("users", "accounts", "_AccountToUser"):
        out[t] = sorted(map(str, conn.execute(f'SELECT * FROM "{t}"').fetchall()))
    out["constraints"] = sorted(conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM "
        "pg_constraint WHERE connamespace = 'public'::regnamespace").fetchall())
    out["indexes"] = sorted(conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid::regclass::text IN ('users', 'accounts', '\"_AccountToUser\"')"
    ).fetchall())
    out["columns"] = sorted(conn.execute(
        "SELECT attrelid::regclass::text, attname FROM pg_attribute WHERE attnum > 0 AND "
        "NOT attisdropped AND attrelid::regclass::text IN "
        "('users', 'accounts', '\"_AccountToUser\"')").fetchall())
    return out


@pytest.fixture
def existing(tmp_path: Path, dsn: str, conn: psycopg.Connection) -> Path:
    conn.execute(SCHEMA)
    conn.execute(SEED)
    dump = write_dump(tmp_path / "dump", 10, 6, bad=False)
    return write_mapping(tmp_path / "docshift.yaml", dump, dsn, MAPPING)


def test_existing_mode_quarantines_the_newcomer_and_rollback_restores_everything(
        existing: Path, dsn: str, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    m = load_mapping(existing)
    res = migrate(m, dsn, RunOptions(batch_size=4))
    assert res.finalize is not None and not res.finalize.failures, res.finalize.failures
    # the migrated user 3 collides with the pre-existing row on the unique index: it is the
    # one quarantined, and the row that was there is intact
    rej = conn.execute("SELECT source_key, error_class, message FROM docshift.rejects"
                       ).fetchall()
    assert [(r[0], r[1]) for r in rej] == [(str(oid(1, 3)), "duplicate_key")]
    assert "held by a row that was in the table before the run" in rej[0][2]
    assert conn.execute("SELECT name FROM users WHERE email = 'user3@example.com'"
                        ).fetchall() == [("Already here",)]
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 10
    # account 3 was owned by the quarantined user: its owner is NULL, and that is recorded
    assert conn.execute("SELECT owner_id FROM accounts WHERE id = %s",
                        (objectid_to_uuid(oid(2, 3)),)).fetchone()[0] is None
    assert conn.execute("SELECT kind, column_name FROM docshift.removals").fetchall() == \
        [("reference_nulled", "owner_id")]
    # the unique indexes are back, with the constraints
    assert snapshot(conn)["indexes"] == before["indexes"]
    assert snapshot(conn)["constraints"] == before["constraints"]

    lines = rollback(m, dsn)
    assert any("1 quarantined document" in line for line in lines), lines
    assert snapshot(conn) == before


def test_rollback_before_finalization_removes_only_loaded_rows(
        existing: Path, dsn: str, conn: psycopg.Connection) -> None:
    before = snapshot(conn)
    m = load_mapping(existing)
    from docshift.run import migrate as migrate_mod

    def stop(*args, **kwargs):
        raise DocshiftError("stopped before finalization")

    mp = pytest.MonkeyPatch()
    mp.setattr(migrate_mod, "finalize", stop)
    try:
        with pytest.raises(DocshiftError):
            migrate(m, dsn, RunOptions())
    finally:
        mp.undo()
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 11
    rollback(m, dsn)
    assert snapshot(conn) == before


@pytest.mark.parametrize("when", ["before the run", "after the run"])
@pytest.mark.parametrize("action", ["ON DELETE CASCADE", "ON DELETE SET NULL", ""])
def test_rollback_never_takes_a_users_row_along_through_a_foreign_key(
        existing: Path, dsn: str, conn: psycopg.Connection, when: str, action: str) -> None:
    # a table of the user's references a user docshift loads: deleting the loaded user
    # would delete or change the user's row (or fail on the foreign key)
    loaded_user = objectid_to_uuid(oid(1, 5))
    conn.execute("CREATE TABLE notes (id int PRIMARY KEY, user_id uuid, text text)")
    note = ("INSERT INTO notes VALUES (1, %s, 'mine')", (loaded_user,))
    if when == "before the run":
        conn.execute(*note)
    conn.execute(f"ALTER TABLE notes ADD FOREIGN KEY (user_id) REFERENCES users (id) {action}"
                 " NOT VALID")
    m = load_mapping(existing)
    migrate(m, dsn, RunOptions())
    if when == "after the run":
        conn.execute(*note)
    users = sorted(conn.execute("SELECT * FROM users").fetchall())
    res = runner.invoke(app, ["rollback", "-c", str(existing), "--dsn", dsn, "--yes"])
    assert res.exit_code == 1, res.output
    assert "notes" in res.output and "Nothing was removed" in res.output, res.output
    assert "Traceback" not in res.output
    assert conn.execute("SELECT user_id, text FROM notes").fetchall() == [(loaded_user, "mine")]
    assert sorted(conn.execute("SELECT * FROM users").fetchall()) == users
    # once the user deals with the row, rollback restores the target as it was
    conn.execute("DELETE FROM notes")
    res = runner.invoke(app, ["rollback", "-c", str(existing), "--dsn", dsn, "--yes"])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1


def test_restart_in_existing_mode_keeps_rows_docshift_did_not_load(
        existing: Path, dsn: str, conn: psycopg.Connection) -> None:
    m = load_mapping(existing)
    migrate(m, dsn, RunOptions())
    res = migrate(m, dsn, RunOptions(restart=True))
    assert res.quarantined == 1
    assert conn.execute("SELECT name FROM users WHERE id = %s", (OLD_USER,)).fetchone()[0] \
        == "Already here"
    assert conn.execute('SELECT count(*) FROM "_AccountToUser" WHERE "A" = %s',
                        (OLD_ACCOUNT,)).fetchone()[0] == 1


@pytest.mark.slow  # waits out RUN_LOCK_WAIT_SECONDS
def test_rollback_refuses_while_a_run_holds_the_lock(existing: Path, dsn: str) -> None:
    m = load_mapping(existing)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (RUN_LOCK,))
        with pytest.raises(DocshiftError, match="in progress"):
            rollback(m, dsn)


def test_create_mode_rollback_refuses_when_other_objects_depend_on_its_tables(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    dump = write_dump(tmp_path / "dump", 5, 5, bad=False)
    mapping = write_mapping(tmp_path / "docshift.yaml", dump, dsn)
    assert runner.invoke(app, ["run", "-c", str(mapping)]).exit_code == 0
    conn.execute("CREATE VIEW active_users AS SELECT id FROM users")
    conn.execute("CREATE TABLE notes (user_id uuid REFERENCES users (id))")
    res = runner.invoke(app, ["rollback", "-c", str(mapping), "--yes"])
    assert res.exit_code == 1, res.output
    assert "active_users" in res.output and "notes" in res.output
    # nothing was dropped
    assert conn.execute("SELECT to_regclass('users') IS NOT NULL AND "
                        "to_regclass('docshift.runs') IS NOT NULL").fetchone()[0]
    conn.execute("DROP VIEW active_users")
    conn.execute("DROP TABLE notes")
    res = runner.invoke(app, ["rollback", "-c", str(mapping), "--yes"])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT to_regclass('users') IS NULL").fetchone()[0]
