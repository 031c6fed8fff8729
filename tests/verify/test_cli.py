"""`docshift verify` exit codes for usage errors and an unmigrated target."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from docshift.cli import app

runner = CliRunner()

MAPPING = """
source: {kind: json, path: ./data}
tables:
  users:
    from: users
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
"""


def test_sample_and_full_together_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "docshift.yaml").write_text(MAPPING)
    res = runner.invoke(app, ["verify", "-c", str(tmp_path / "docshift.yaml"), "--sample",
                              "5", "--full"])
    assert res.exit_code == 2
    assert "--sample N or --full" in res.output


def test_missing_mapping_file_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["verify", "-c", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2, res.output


def test_target_never_migrated_fails_with_a_hint(tmp_path: Path, dsn: str) -> None:
    (tmp_path / "docshift.yaml").write_text(MAPPING)
    res = runner.invoke(app, ["verify", "-c", str(tmp_path / "docshift.yaml"), "--dsn", dsn])
    assert res.exit_code == 1
    assert "nothing to verify" in res.output and "docshift run" in res.output
    assert "Traceback" not in res.output
