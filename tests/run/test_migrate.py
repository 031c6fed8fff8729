"""End-to-end runs through the CLI against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import EXPECTED_REJECTS, expected_rows, write_dump, write_mapping

runner = CliRunner()


@pytest.fixture
def mapping(tmp_path: Path, dsn: str) -> Path:
    dump = write_dump(tmp_path / "dump")
    return write_mapping(tmp_path / "docshift.yaml", dump, dsn)


def counts(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def test_run_loads_exact_rows_and_quarantines_bad_documents(mapping: Path, conn) -> None:
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 3, res.output
    want = expected_rows()
    assert counts(conn, list(want)) == want
    got = {tuple(r) for r in conn.execute(
        "SELECT table_name, field, error_class FROM docshift.rejects")}
    assert got == EXPECTED_REJECTS
    # every reject keeps its source key and original document
    assert conn.execute("SELECT count(*) FROM docshift.rejects WHERE source_key IS NULL "
                        "OR document IS NULL").fetchone()[0] == 0


def test_values_are_converted_and_keys_built(mapping: Path, conn) -> None:
    runner.invoke(app, ["run", "-c", str(mapping)])
    row = conn.execute("SELECT status, created_at, tags, prefs FROM users "
                       "WHERE email = 'user0@example.com'").fetchone()
    assert row[0] == "active"
    assert row[1].year == 2024 and row[1].tzinfo is not None
    assert row[2] == ["vip", "new", "vip"]
    assert row[3] == {"theme": "dark", "lang": "en"}
    # the value map applied: suspended → inactive
    assert conn.execute("SELECT count(*) FROM users WHERE status = 'inactive'").fetchone()[0] \
        == sum(1 for i in range(40) if i % 3 != 0)
    # ISO-string dates converted like BSON dates
    assert conn.execute("SELECT count(*) FROM users WHERE created_at IS NULL").fetchone()[0] == 0
    # constraints and indexes exist, the hidden key column is gone
    kinds = {r[0] for r in conn.execute(
        "SELECT contype FROM pg_constraint WHERE conrelid = 'account_watchers'::regclass "
        "AND contype <> 'n'")}
    assert kinds == {"p", "f"}
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'accounts' "
                        "AND indexname = 'accounts_owner_id_idx'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE column_name "
                        "= '__docshift_key'").fetchone()[0] == 0


def test_references_point_at_the_same_uuid_without_lookup(mapping: Path, conn) -> None:
    runner.invoke(app, ["run", "-c", str(mapping)])
    n = conn.execute("SELECT count(*) FROM accounts a JOIN users u ON u.id = a.owner_id"
                     ).fetchone()[0]
    assert n == 30


def test_two_sided_junction_is_deduplicated(mapping: Path, conn) -> None:
    runner.invoke(app, ["run", "-c", str(mapping)])
    dup = conn.execute("SELECT count(*) FROM (SELECT account_id, user_id FROM account_watchers "
                       "GROUP BY 1, 2 HAVING count(*) > 1) d").fetchone()[0]
    assert dup == 0
    assert counts(conn, ["account_watchers"])["account_watchers"] == \
        expected_rows()["account_watchers"]


def test_rerun_of_completed_run_says_so_and_exits_0(mapping: Path, conn) -> None:
    runner.invoke(app, ["run", "-c", str(mapping)])
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 0, res.output
    assert "already complete" in res.output
    assert counts(conn, ["users"])["users"] == 40


def test_restart_starts_over_with_same_result(mapping: Path, conn) -> None:
    runner.invoke(app, ["run", "-c", str(mapping)])
    res = runner.invoke(app, ["run", "-c", str(mapping), "--restart"])
    assert res.exit_code == 3, res.output
    want = expected_rows()
    assert counts(conn, list(want)) == want
    assert conn.execute("SELECT count(*) FROM docshift.rejects").fetchone()[0] == \
        len(EXPECTED_REJECTS)


def test_small_batches_and_two_workers_give_the_same_rows(mapping: Path, conn) -> None:
    res = runner.invoke(app, ["run", "-c", str(mapping), "--batch-size", "7", "--workers", "2"])
    assert res.exit_code == 3, res.output
    want = expected_rows()
    assert counts(conn, list(want)) == want


def test_large_streams_split_into_key_ranges_give_the_same_rows(mapping: Path, conn) -> None:
    res = runner.invoke(app, ["run", "-c", str(mapping), "--batch-size", "4", "--workers", "2",
                              "--split-min-docs", "10"])
    assert res.exit_code == 3, res.output
    units = [r[0] for r in conn.execute("SELECT stream FROM docshift.checkpoints")]
    assert sorted(units) == ["Accounts#1", "Accounts#2", "Users#1", "Users#2"]
    read = conn.execute("SELECT source_stream, sum(docs_read) FROM docshift.checkpoints "
                        "GROUP BY 1 ORDER BY 1").fetchall()
    assert read == [("Accounts", 34), ("Users", 46)]
    want = expected_rows()
    assert counts(conn, list(want)) == want


def test_max_errors_aborts_with_exit_1(mapping: Path, conn) -> None:
    res = runner.invoke(app, ["run", "-c", str(mapping), "--max-errors", "0",
                              "--batch-size", "5"])
    assert res.exit_code == 1, res.output
    assert "max-errors" in res.output
    assert conn.execute("SELECT status FROM docshift.runs").fetchone()[0] == "aborted"


def test_dry_run_writes_nothing_and_reports_rejects(mapping: Path, conn) -> None:
    res = runner.invoke(app, ["run", "-c", str(mapping), "--dry-run"])
    assert res.exit_code == 3, res.output
    assert "bad_date" in res.output and "not_in_enum" in res.output
    assert conn.execute("SELECT to_regclass('users') IS NULL AND "
                        "to_regclass('docshift.runs') IS NULL").fetchone()[0]


def test_rollback_refuses_without_yes_then_drops(mapping: Path, conn) -> None:
    runner.invoke(app, ["run", "-c", str(mapping)])
    res = runner.invoke(app, ["rollback", "-c", str(mapping)])
    assert res.exit_code == 2
    assert conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()[0]
    res = runner.invoke(app, ["rollback", "-c", str(mapping), "--yes"])
    assert res.exit_code == 0, res.output
    assert conn.execute("SELECT to_regclass('users') IS NULL AND to_regclass('account_items') "
                        "IS NULL AND to_regclass('docshift.runs') IS NULL").fetchone()[0]
    # and the source is untouched: a fresh run works again
    assert runner.invoke(app, ["run", "-c", str(mapping)]).exit_code == 3


def test_status_and_rejects_commands(mapping: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["status", "-c", str(mapping)])
    assert "No run yet" in res.output
    runner.invoke(app, ["run", "-c", str(mapping)])
    res = runner.invoke(app, ["status", "-c", str(mapping)])
    assert res.exit_code == 0 and "completed" in res.output
    res = runner.invoke(app, ["rejects", "-c", str(mapping)])
    assert "duplicate_key" in res.output and "orphan" in res.output
    out = tmp_path / "rejects.jsonl"
    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--export", str(out)])
    assert res.exit_code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == len(EXPECTED_REJECTS)
    assert '"createdAt":"yesterday"' in "".join(lines)


def test_summary_json(mapping: Path, tmp_path: Path) -> None:
    import json

    out = tmp_path / "run.json"
    runner.invoke(app, ["run", "-c", str(mapping), "--summary", str(out)])
    data = json.loads(out.read_text())
    rows = {t["table"]: t["rows"] for t in data["tables"]}
    assert rows == expected_rows()
    assert data["quarantined"] == len(EXPECTED_REJECTS)


def test_passwords_in_the_dsn_are_never_printed(tmp_path: Path, dsn: str) -> None:
    dump = write_dump(tmp_path / "dump", 5, 5, bad=False)
    secret = dsn + " password=hunter2-secret"
    mapping = write_mapping(tmp_path / "m.yaml", dump, secret)
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 0, res.output
    assert "hunter2" not in res.output and "password=***" in res.output
