"""`--quiet` and `--verbose` on every command: quiet keeps a one-line result (errors still
print), verbose adds context on standard error and leaves standard output as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import write_dump, write_mapping
from tests.test_cli_docs import commands

runner = CliRunner()


@pytest.fixture
def mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsn: str) -> Path:
    monkeypatch.setenv("DOCSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)
    monkeypatch.chdir(tmp_path)
    dump = write_dump(tmp_path / "dump", 3, 3, bad=True)
    return write_mapping(tmp_path / "m.yaml", dump, dsn)


def invoke(*args: str) -> tuple[str, str]:
    res = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return res.stdout, res.stderr


def migrate(mapping: Path, *more: str) -> None:
    """A run of the sample, which quarantines some documents (exit 3)."""
    res = runner.invoke(app, ["run", "-c", str(mapping), "--quiet", *more])
    assert res.exit_code == 3, res.output


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_takes_quiet_and_verbose(name: str) -> None:
    res = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert "--quiet" in res.output and "--verbose" in res.output, res.output
    required = {"bench": ["--queries", "q.yaml"], "generate": ["crm", "--out", "x"],
                "infer": ["./x"]}.get(name, [])
    both = runner.invoke(app, [*name.split(), *required, "--quiet", "--verbose"])
    assert both.exit_code == 2, both.output
    assert "not both" in both.output


def test_plan(mapping: Path) -> None:
    out, err = invoke("plan", "-c", str(mapping))
    assert "CREATE TABLE" in out and not err
    quiet, err = invoke("plan", "-c", str(mapping), "--quiet")
    assert quiet.splitlines() == [f"plan ok: 6 table(s) in {mapping}"] and not err
    verbose, err = invoke("plan", "-c", str(mapping), "--verbose")
    assert verbose == out  # standard output stays the DDL
    assert f"mapping {mapping}: mongodump source, 6 table(s)" in err
    assert "load order: users, " in err


@pytest.mark.parametrize("command", [["status"], ["rejects"], ["rollback", "--yes"]])
def test_state_commands(mapping: Path, dsn: str, command: list[str]) -> None:
    migrate(mapping)
    out, _ = invoke(*command, "-c", str(mapping))
    quiet, err = invoke(*command, "-c", str(mapping), "--quiet")
    assert len(quiet.splitlines()) == 1 and not err, quiet
    assert len(out.splitlines()) > 1
    migrate(mapping, "--restart")
    verbose, err = invoke(*command, "-c", str(mapping), "--verbose")
    assert "target " in err and "mapping " in err, err
    if command[0] == "rollback":
        # each table dropped is listed under --verbose only; the default counts them
        assert "rolled back 6 table(s) and index(es)" in out, out
        assert "dropped table" not in out and err.count("dropped table") == 6, err


def test_status_quiet_line(mapping: Path) -> None:
    migrate(mapping)
    quiet, _ = invoke("status", "-c", str(mapping), "-q")
    assert re.fullmatch(r"run \d+: completed \([1-9][\d,]* quarantined\)\n", quiet), quiet


def test_init_and_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out, err = invoke("init", "-o", "a.yaml", "--quiet")
    assert out == "wrote a.yaml\n" and not err
    out, err = invoke("generate", "kv", "--out", "kv.jsonl", "--scale", "0.1", "-q")
    assert len(out.splitlines()) == 1 and out.startswith("generated kv dataset: ")
    assert not err
    out, err = invoke("generate", "kv", "--out", "kv2.jsonl", "--scale", "0.1", "-v")
    assert out.startswith("generated kv dataset: ")
    assert len(err.splitlines()) > 3 and "document(s)" in err


def test_rollback_without_yes_names_the_target_and_the_tables(mapping: Path, dsn: str) -> None:
    res = runner.invoke(app, ["rollback", "-c", str(mapping)], env={"COLUMNS": "80"})
    assert res.exit_code == 2, res.output
    assert "dbname=" in res.stderr or "postgresql://" in res.stderr, res.stderr
    assert dsn.split("dbname=")[1].split()[0] in res.stderr  # the database's name
    assert "public.users, public.user_tags, public.accounts" in res.stderr, res.stderr
    assert "Refusing without --yes." in res.stderr
