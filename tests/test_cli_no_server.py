"""Commands that only read docshift's state never start an embedded server."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app

runner = CliRunner()

MAPPING = """
source: {kind: json, path: "."}
tables:
  notes:
    from: notes
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
"""


@pytest.mark.parametrize("command", ["status", "rejects"])
def test_reading_state_without_a_server_says_so_and_starts_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DOCSHIFT_HOME", str(home))
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(MAPPING)
    res = runner.invoke(app, [command, "-c", str(mapping)])
    assert res.exit_code == 1, res.output
    assert "embedded PostgreSQL server" in res.output and "not running" in res.output
    assert "hint:" in res.output
    assert not (home / "pgdata").exists()


def test_a_missing_dump_is_an_error_before_any_server_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DOCSHIFT_HOME", str(home))
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(MAPPING.replace('kind: json, path: "."',
                                       f'kind: mongodump, path: "{tmp_path / "nowhere"}"'))
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 1, res.output
    assert "nowhere" in res.output and "Traceback" not in res.output
    assert not (home / "pgdata").exists()
