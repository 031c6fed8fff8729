"""``docshift init`` and ``docshift plan`` through the command line, as a new user meets them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.spec import load_mapping

GOOD = """\
version: 1
source: {kind: mongodump, path: ./dump}
tables:
  accounts:
    from: crm_Accounts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      name: {type: text, nullable: false}
  contacts:
    from: crm_Contacts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      email: {type: text, unique: true}
      account_id: {type: uuid, from: account, references: accounts}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_plan_of_a_good_mapping(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = runner.invoke(app, ["plan", "-c", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "load order" in out
    assert "crm_Accounts → accounts" in out
    assert "crm_Contacts → contacts" in out
    assert 'CREATE TABLE IF NOT EXISTS "public"."accounts"' in out
    # parents are created before the tables that reference them
    assert out.index('"public"."accounts" (') < out.index('"public"."contacts" (')
    assert "FOREIGN KEY" in out


def test_plan_of_a_bad_mapping_exits_2_with_every_problem(runner: CliRunner,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("email: {type: text,", "email: {type: strng,")
                    .replace("references: accounts}", "references: acounts}")
                    .replace("    primary_key: id\n    columns:\n      id: {type: uuid, from: _id}"
                             "\n      name:", "    primay_key: id\n    columns:\n      id: "
                             "{type: uuid, from: _id}\n      name:"))
    result = runner.invoke(app, ["plan", "-c", str(path)])
    assert result.exit_code == 2, result.output
    err = " ".join(result.stderr.split())  # rich wraps long lines
    assert "bad.yaml: 1 problem in the mapping file" in err
    assert "bad.yaml:6: table 'accounts': unknown key 'primay_key'" in err
    assert "did you mean 'primary_key'" in err
    assert "CREATE TABLE" not in result.stdout
    # with the key fixed, the cross-reference problems come out, all at once
    path.write_text(path.read_text().replace("primay_key", "primary_key"))
    result = runner.invoke(app, ["plan", "-c", str(path)])
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "bad.yaml: 2 problems in the mapping file" in err
    assert "bad.yaml:15: table 'contacts', column 'email': unknown type 'strng'" in err
    assert ("bad.yaml:16: table 'contacts', column 'account_id': references table 'acounts'"
            in err)


def test_plan_without_a_mapping_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "-c", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "no such mapping file" in err
    assert "docshift init" in err


def test_init_writes_a_starter_that_loads_and_plans(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"
    result = runner.invoke(app, ["init", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
    m = load_mapping(out)
    assert m.tables
    result = runner.invoke(app, ["plan", "-c", str(out)])
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE" in result.stdout


def test_init_refuses_to_overwrite_without_force(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "x.yaml"
    out.write_text("# mine\n")
    result = runner.invoke(app, ["init", "-o", str(out)])
    assert result.exit_code == 2
    assert "--force" in result.stderr
    assert out.read_text() == "# mine\n"
    result = runner.invoke(app, ["init", "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_text() != "# mine\n"
    load_mapping(out)
