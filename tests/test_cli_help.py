"""`--help` is where a user looks first: the exit codes on the main page, an example on
every command's."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.test_cli_docs import commands

runner = CliRunner()


def help_text(*args: str) -> str:
    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    return res.output


def test_the_main_help_lists_every_exit_code() -> None:
    text = help_text()
    codes = dict(re.findall(r"^\s+(\d+)\s+(\S.*)$", text, re.M))
    assert set(codes) == {"0", "1", "2", "3", "130"}, text
    assert "success" in codes["0"] and "interrupted" in codes["130"], codes


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_shows_an_example(name: str) -> None:
    text = help_text(*name.split())
    examples = re.findall(r"^\s*Example: (docshift .+|psql .+)$", text, re.M)
    assert examples, f"docshift {name} --help shows no example:\n{text}"
    # the example runs this very command (server start's runs inside psql "$(…)")
    assert f"docshift {name}" in examples[0], examples

