"""`docshift demo` and `docshift generate` through the CLI, as a new user runs them."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app

runner = CliRunner()


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch):
    """A docshift home of the test's own; its embedded server is stopped afterwards.

    Outside pytest's temporary tree, as in conftest.py: pytest resets the permissions of
    that tree when another session starts, and the server runs as another user when root.
    """
    from docshift.target.embedded import stop_server

    h = Path(tempfile.mkdtemp(prefix="docshift-demo-home-"))
    monkeypatch.setenv("DOCSHIFT_HOME", str(h))
    yield h
    stop_server(h)
    shutil.rmtree(h, ignore_errors=True)


@pytest.mark.slow  # the whole demo twice; CI runs it with --slow
def test_demo_migrates_both_datasets_exactly_and_can_run_twice(home: Path) -> None:
    for _ in range(2):
        res = runner.invoke(app, ["demo", "--scale", "0.3"])
        assert res.exit_code == 0, res.output
        assert res.output.count("✓ every table holds exactly") == 2
        assert "docshift_demo_crm" in res.output and "docshift_demo_kv" in res.output
        assert "psql" in res.output
        assert "on the source" in res.output  # the key-value queries, timed on both sides


def test_generate_crm_and_kv_files(tmp_path: Path) -> None:
    out = tmp_path / "crm"
    res = runner.invoke(app, ["generate", "crm", "--scale", "0.2", "--seed", "3",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["expected_rows"]
    assert list(out.glob("*/*.bson"))
    kv = tmp_path / "kv.jsonl"
    res = runner.invoke(app, ["generate", "kv", "--scale", "0.2", "--out", str(kv)])
    assert res.exit_code == 0, res.output
    assert kv.stat().st_size > 0


def test_generate_refuses_an_unknown_dataset(tmp_path: Path) -> None:
    res = runner.invoke(app, ["generate", "erp", "--out", str(tmp_path)])
    assert res.exit_code == 2
