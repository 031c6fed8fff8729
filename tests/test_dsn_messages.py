"""A DSN that cannot be read is shown back with only its password masked, with what is wrong
and the shape a DSN takes; a database that does not exist gets the `createdb` command."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from docshift.cli import app
from docshift.dsn import mask, secrets

runner = CliRunner()

KV_MAPPING = """\
source: {kind: postgres_kv, table: kv_store_demo}
tables:
  clients:
    keys: "client:{id}"
    primary_key: id
    columns: {id: text, name: text}
"""


@pytest.fixture
def mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)
    monkeypatch.setenv("DOCSHIFT_HOME", str(tmp_path / "home"))
    path = tmp_path / "m.yaml"
    path.write_text(KV_MAPPING)
    return path


def error_and_hint(args: list[str]) -> tuple[str, str]:
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    hints = [line for line in lines if line.startswith("hint:")]
    assert len(errors) == 1 and len(hints) == 1, res.output
    return errors[0], hints[0]


@pytest.mark.parametrize(("dsn", "shown", "password"), [
    ("postgres//oops", "postgres//oops", None),
    ("oops", "oops", None),
    ("postgres//alice:Kx9vQ2mLp@db/crm", "postgres//alice:***@db/crm", "Kx9vQ2mLp"),
    # what follows a password may be the rest of it: hidden too
    ("host=db password=Kx9vQ2mLp xyz", "host=db password=*** ***", "Kx9vQ2mLp"),
    ("host=db user=alice password='Kx9vQ2mLp", "host=db user=alice password=***",
     "Kx9vQ2mLp"),
    ("host=db dbname", "host=db dbname", None),
    ("host=db foo=bar password=Kx9vQ2mLp", "host=db foo=*** password=***", "Kx9vQ2mLp"),
])
def test_malformed_dsn_is_shown_masked_with_the_expected_shape(
        mapping: Path, dsn: str, shown: str, password: str | None) -> None:
    for command in (["status"], ["run"]):
        error, hint = error_and_hint([*command, "-c", str(mapping), "--dsn", dsn])
        assert error.startswith("error: the target DSN (--dsn) cannot be read: "), error
        assert shown in error, error
        assert "postgresql://user@host:5432/db" in error and "host=… dbname=…" in error
        assert "dbname" in hint and "postgresql://" in hint, hint
        if password:
            assert password not in error + hint
    assert not (mapping.parent / "home").exists()


@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgres//oops", "postgres//oops"),
    ("host=db user=alice password='hunter2", "host=db user=alice password=***"),
    ("host=db password=hunter2 x", "host=db password=*** ***"),
    ("host=db x password=hunter2", "host=db ***"),
    ("pg//alice:hunter2@db", "pg//alice:***@db"),
])
def test_mask_of_an_unreadable_key_value_string(dsn: str, masked: str) -> None:
    assert mask(dsn) == masked
    shown = set(masked.replace("***", " ").split())
    # what mask shows is no secret; what it hides is
    assert not any(s in shown for s in secrets(dsn)), secrets(dsn)
    if "hunter2" in dsn:
        assert "hunter2" in " ".join(secrets(dsn))


def test_database_that_does_not_exist_gets_the_createdb_command(
        mapping: Path, dsn: str) -> None:
    params = conninfo_to_dict(dsn)
    params.update(dbname="docshift_no_such_db", password="Kx9vQ2mLp")
    wrong = make_conninfo(**params)
    for command in (["status"], ["rejects"], ["run"], ["verify"]):
        error, hint = error_and_hint([*command, "-c", str(mapping), "--dsn", wrong])
        assert "database docshift_no_such_db does not exist" in error, error
        expected = ["createdb"]
        for key, flag in (("host", "-h"), ("port", "-p"), ("user", "-U")):
            if params.get(key):
                expected += [flag, str(params[key])]
        expected.append("docshift_no_such_db")
        assert f"hint: Create it with `{shlex.join(expected)}`" in hint, hint
        assert "Kx9vQ2mLp" not in error + hint
