"""Finalization: duplicates and orphans resolved deterministically, whole documents
quarantined with their original, every policy's action recorded, locks waited for."""

from __future__ import annotations

from pathlib import Path

import bson
import psycopg
import pytest

from docshift.errors import DocshiftError
from docshift.run import finalize as finalize_mod
from docshift.run.migrate import UI, RunOptions, migrate
from docshift.spec import load_mapping
from docshift.transform.ids import objectid_to_uuid
from tests.run.sample import oid, write_dump, write_mapping


def write_bson(root: Path, name: str, docs: list[dict]) -> None:
    db = root / "crm"
    db.mkdir(parents=True, exist_ok=True)
    with (db / f"{name}.bson").open("wb") as f:
        for d in docs:
            f.write(bson.encode(d))


MAPPING = """
source: {kind: mongodump, path: "%(path)s"}
target: {dsn: "%(dsn)s"}
options: {unmapped: ignore}
tables:
  users:
    from: Users
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, unique: true}
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
    columns:
      id: {type: uuid, from: _id}
      owner_id: {type: uuid, from: owner, references: users}
      helper_id: {type: uuid, from: helper, references: users, on_orphan: "null"}
  account_items:
    from: Accounts
    unnest: items
    primary_key: [account_id, line]
    columns:
      account_id: {type: uuid, from: _id, references: accounts}
      line: {type: integer, from: $index}
      sku: text
"""


def run(tmp_path: Path, dsn: str, users: list[dict], accounts: list[dict],
        text: str = MAPPING, ui: UI | None = None):
    write_bson(tmp_path / "dump", "Users", users)
    write_bson(tmp_path / "dump", "Accounts", accounts)
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", tmp_path / "dump", dsn, text))
    return m, migrate(m, dsn, RunOptions(batch_size=2), ui)


def test_first_document_in_source_order_keeps_the_key_and_the_other_is_quarantined_whole(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    # the later document has the *smaller* _id: source order, not key order, decides
    first = {"_id": oid(1, 99), "email": "a@x", "tags": ["t1"]}
    later = {"_id": oid(1, 5), "email": "a@x", "tags": ["t1", "t2"]}
    _, res = run(tmp_path, dsn, [{"_id": oid(1, 1), "email": "b@x"}, first, later], [])
    assert conn.execute("SELECT id FROM users WHERE email = 'a@x'").fetchone()[0] == \
        objectid_to_uuid(oid(1, 99))
    rows = conn.execute("SELECT source_key, table_name, error_class, message, document, doc_id "
                        "FROM docshift.rejects").fetchall()
    assert len(rows) == 1, rows
    key, table, ec, msg, doc, doc_id = rows[0]
    assert (key, table, ec) == (str(oid(1, 5)), "users", "duplicate_key")
    assert f"duplicate of email 'a@x' held by document {oid(1, 99)}" in msg
    # the original source document, re-read from the source, not the row
    assert doc == {"_id": {"$oid": str(oid(1, 5))}, "email": "a@x", "tags": ["t1", "t2"]}
    assert doc_id is not None
    # every row of the quarantined document is gone, in every table its stream feeds
    assert conn.execute("SELECT count(*) FROM user_tags WHERE user_id = %s",
                        (objectid_to_uuid(oid(1, 5)),)).fetchone()[0] == 0
    assert res.finalize.duplicates == {"users": 1}


def test_orphan_rejection_quarantines_the_document_and_cascades_to_a_fixpoint(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    users = [{"_id": oid(1, 1), "email": "a@x"}, {"_id": oid(1, 2), "email": "a@x"}]
    accounts = [
        {"_id": oid(2, 1), "owner": oid(1, 1), "items": [{"sku": "ok"}]},
        # owned by the duplicate user: an orphan only once that user is quarantined
        {"_id": oid(2, 2), "owner": oid(1, 2), "items": [{"sku": "a"}, {"sku": "b"}]},
        {"_id": oid(2, 3), "owner": oid(1, 1), "helper": oid(1, 77)},
    ]
    _, res = run(tmp_path, dsn, users, accounts)
    got = {(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT source_key, table_name, error_class FROM docshift.rejects")}
    assert got == {(str(oid(1, 2)), "users", "duplicate_key"),
                   (str(oid(2, 2)), "accounts", "orphan")}
    # the orphan account's items went with it (no row-level reject for them)
    assert conn.execute("SELECT count(*) FROM account_items").fetchone()[0] == 1
    msg = conn.execute("SELECT message FROM docshift.rejects WHERE error_class = 'orphan'"
                       ).fetchone()[0]
    assert msg == (f"owner_id references users.id = {objectid_to_uuid(oid(1, 2))} "
                   f"(source value ObjectId('{oid(1, 2)}')), which does not exist")
    doc = conn.execute("SELECT document FROM docshift.rejects WHERE error_class = 'orphan'"
                       ).fetchone()[0]
    assert doc["items"] == [{"sku": "a"}, {"sku": "b"}]
    assert res.finalize.orphans_rejected == {"accounts": 1}
    # the NULL policy says what it did, with the source value
    rem = conn.execute("SELECT table_name, kind, source_key, column_name, value, source_value "
                       "FROM docshift.removals").fetchall()
    assert rem == [("accounts", "reference_nulled", str(oid(2, 3)), "helper_id",
                    str(objectid_to_uuid(oid(1, 77))), f"ObjectId('{oid(1, 77)}')")]
    assert res.finalize.orphans_nulled == {"accounts": 1}


def test_keep_first_removals_are_recorded(tmp_path: Path, dsn: str,
                                          conn: psycopg.Connection) -> None:
    users = [{"_id": oid(1, 1), "email": "a@x", "tags": ["t", "u", "t"]}]
    _, res = run(tmp_path, dsn, users, [])
    assert conn.execute("SELECT count(*) FROM docshift.rejects").fetchone()[0] == 0
    rem = conn.execute("SELECT table_name, kind, source_key, column_name, value "
                       "FROM docshift.removals").fetchall()
    assert rem == [("user_tags", "duplicate_dropped", str(oid(1, 1)), "user_id,tag",
                    f"({objectid_to_uuid(oid(1, 1))}, t)")]
    assert res.finalize.duplicates_dropped == {"user_tags": 1}


def test_orphan_drop_policy_drops_rows_and_records_them(tmp_path: Path, dsn: str,
                                                       conn: psycopg.Connection) -> None:
    text = MAPPING.replace("references: accounts}", "references: accounts, on_orphan: drop}")
    text = text.replace("owner_id: {type: uuid, from: owner, references: users}",
                        "owner_id: {type: uuid, from: owner}")
    text = text.replace("account_id: {type: uuid, from: _id, references: accounts",
                        "account_id: {type: uuid, from: $.acc, references: accounts")
    accounts = [{"_id": oid(2, 1), "acc": oid(2, 9), "items": [{"sku": "x"}, {"sku": "y"}]}]
    _, res = run(tmp_path, dsn, [], accounts, text)
    assert conn.execute("SELECT count(*) FROM account_items").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 1
    rem = conn.execute("SELECT kind, source_key, column_name, source_value FROM "
                       "docshift.removals ORDER BY id").fetchall()
    assert rem == [("orphan_dropped", str(oid(2, 1)), "account_id",
                    f"ObjectId('{oid(2, 9)}')")] * 2
    assert res.finalize.orphans_dropped == {"account_items": 2}


def test_steps_are_named_by_table_and_object(tmp_path: Path, dsn: str,
                                             conn: psycopg.Connection) -> None:
    run(tmp_path, dsn, [{"_id": oid(1, 1), "email": "a@x"}], [])
    steps = {r[0] for r in conn.execute("SELECT step FROM docshift.steps")}
    assert {"add:users.users_pkey", "add:users.users_email_key",
            "add:accounts.accounts_owner_id_fkey", "drop-key-column:users"} <= steps


def test_all_null_column_is_a_warning(tmp_path: Path, dsn: str) -> None:
    text = MAPPING.replace("email: {type: text, unique: true}",
                           "email: {type: text, unique: true}\n      nick: {type: text, "
                           "from: profile.nick}")
    _, res = run(tmp_path, dsn, [{"_id": oid(1, 1), "email": "a@x"},
                                 {"_id": oid(1, 2), "email": "b@x"}], [], text)
    assert any("users.nick" in w and "profile.nick" in w and "NULL in every row" in w
               for w in res.finalize.warnings), res.finalize.warnings
    assert not any("users.email" in w for w in res.finalize.warnings)


class StepUI(UI):
    def __init__(self, on_first_step) -> None:
        self.steps: list[str] = []
        self.on_first_step = on_first_step

    def step(self, name: str) -> None:
        if not self.steps:
            self.on_first_step()
        self.steps.append(name)


def test_a_blocking_session_is_named_and_the_wait_is_bounded(
        tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finalize_mod, "LOCK_TIMEOUT", "50ms")
    monkeypatch.setattr(finalize_mod, "LOCK_WAIT_TOTAL", 0.3)
    blocker = psycopg.connect(dsn + " application_name=report-job")
    try:
        def hold() -> None:
            blocker.execute("LOCK TABLE users IN ACCESS SHARE MODE")  # opens a transaction

        ui = StepUI(hold)
        with pytest.raises(DocshiftError) as exc:
            run(tmp_path, dsn, [{"_id": oid(1, 1), "email": "a@x"}], [], ui=ui)
        pid = blocker.info.backend_pid
        assert f"pid {pid}" in exc.value.message and "report-job" in exc.value.message
        assert exc.value.hint and "pg_terminate_backend" in exc.value.hint
        assert any(f"pid {pid}" in s and "waiting" in s for s in ui.steps), ui.steps
    finally:
        blocker.rollback()
        blocker.close()
    # the lock is gone: the same run resumes and finishes
    m = load_mapping(tmp_path / "docshift.yaml")
    res = migrate(m, dsn, RunOptions(batch_size=2))
    assert res.finalize is not None and not res.finalize.failures


def test_sample_dump_still_gives_one_reject_per_document(tmp_path: Path, dsn: str,
                                                         conn: psycopg.Connection) -> None:
    dump = write_dump(tmp_path / "dump")
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", dump, dsn))
    migrate(m, dsn, RunOptions())
    assert conn.execute("SELECT count(*) FROM docshift.rejects WHERE doc_id IS NULL "
                        "OR document IS NULL").fetchone()[0] == 0
    assert conn.execute("SELECT count(*), count(DISTINCT doc_id) FROM docshift.rejects"
                        ).fetchone() in [(10, 10)]


def test_create_mode_tables_keep_no_dead_hidden_columns(tmp_path: Path, dsn: str,
                                                        conn: psycopg.Connection) -> None:
    # enough rows that the hidden columns' bytes show in the page count
    users = [{"_id": oid(1, i), "email": f"u{i}@x", "tags": ["a", "b"]} for i in range(6000)]
    accounts = [{"_id": oid(2, i), "owner": oid(1, i), "items": [{"sku": f"s{i}"}]}
                for i in range(3000)]
    m = load_mapping(write_mapping(tmp_path / "docshift.yaml", tmp_path / "dump", dsn, MAPPING))
    write_bson(tmp_path / "dump", "Users", users)
    write_bson(tmp_path / "dump", "Accounts", accounts)
    migrate(m, dsn, RunOptions(batch_size=500))
    for t in ("users", "user_tags", "accounts", "account_items"):
        # a table written once with only its final columns is the yardstick
        conn.execute(f"CREATE TEMP TABLE fresh_{t} AS SELECT * FROM {t}")
        size, fresh = conn.execute(
            "SELECT pg_relation_size(%s::regclass), pg_relation_size(%s::regclass)",
            (t, f"fresh_{t}")).fetchone()
        assert size <= fresh * 1.05, (t, size, fresh)
        # and the rows are all there, under the final columns only
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped", (t,))]
        assert not [c for c in cols if c.startswith("__docshift")], (t, cols)
