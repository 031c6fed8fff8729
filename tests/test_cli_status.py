"""`docshift status`: running or interrupted (the run lock), what to do next, final row
counts, estimates for units without a count of their own, `--json`."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.generate import Manifest, generate_crm
from docshift.target.state import hold_run_lock

CRM = Path(__file__).resolve().parents[1] / "examples" / "crm" / "docshift.yaml"
runner = CliRunner()


@pytest.fixture
def crm(tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Manifest:
    out = tmp_path / "crm"
    manifest = generate_crm(str(out), scale=0.2, seed=4)
    monkeypatch.setenv("DOCSHIFT_SOURCE", str(out))
    monkeypatch.setenv("DOCSHIFT_DSN", dsn)
    res = runner.invoke(app, ["run", "-c", str(CRM), "--quiet"])
    assert res.exit_code == 0, res.output
    return manifest


def _status(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["status", "-c", str(CRM), *args])
    return res.exit_code, res.output


def test_completed_run_shows_final_counts(crm: Manifest) -> None:
    code, out = _status("--json")
    assert code == 0, out
    st = json.loads(out)
    assert st["status"] == "completed" and st["final"] is True and st["phase"] == "done"
    assert st["tables"] == crm.expected_rows
    assert "docshift verify" in st["next"]
    code, text = _status()
    assert code == 0
    assert "completed" in text and "docshift verify" in text
    assert "so far" not in text


def test_running_and_interrupted_are_told_apart(crm: Manifest, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # as if the process had been killed mid-run: recorded as running
        conn.execute("UPDATE docshift.runs SET status = 'running', finished_at = NULL")
        st = json.loads(_status("--json")[1])
        assert st["status"] == "interrupted"
        assert "re-run `docshift run`" in st["next"]
        assert "resume" in _status()[1]
        with psycopg.connect(dsn, autocommit=True) as holder:
            assert hold_run_lock(holder)
            st = json.loads(_status("--json")[1])
            assert st["status"] == "running"
            assert "holds the run's lock" in st["next"]


def test_a_unit_without_a_count_gets_its_streams_estimate(crm: Manifest, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE docshift.runs SET status = 'running', finished_at = NULL")
        conn.execute("UPDATE docshift.checkpoints SET estimate = NULL, done = false "
                     "WHERE stream = 'crm_Contacts'")
    st = json.loads(_status("--json")[1])
    (unit,) = [u for u in st["units"] if u["unit"] == "crm_Contacts"]
    assert unit["estimate"] == crm.documents["crm_Contacts"]
    assert unit["estimate_is_share"] is True
    assert st["phase"] == "load"
    assert f"~{crm.documents['crm_Contacts']:,}" in _status()[1]
