"""`docshift run --verify`: the migration is checked against the source right after it."""

from __future__ import annotations

from pathlib import Path

import psycopg
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import write_dump, write_mapping

runner = CliRunner()


def test_run_verify_passes_on_a_clean_run_and_fails_once_a_row_is_gone(
        tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    mapping = write_mapping(tmp_path / "docshift.yaml", write_dump(tmp_path / "dump"), dsn)
    res = runner.invoke(app, ["run", "-c", str(mapping), "--verify"])
    # the sample has bad documents: quarantined (exit 3), and the verification passes
    assert res.exit_code == 3, res.output
    assert "verification pass" in res.output or "verification warn" in res.output
    conn.execute("DELETE FROM account_items WHERE line = 1")
    res = runner.invoke(app, ["run", "-c", str(mapping), "--verify"])
    assert res.exit_code == 1, res.output
    assert "already complete" in res.output
    assert "verification fail" in res.output
    assert "account_items" in res.output
