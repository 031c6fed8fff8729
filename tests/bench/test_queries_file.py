"""Queries-file errors name the file, the line, the entry and what to do; exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.bench import parse_queries
from docshift.cli import app
from docshift.errors import MappingError

runner = CliRunner()


def _problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as info:
        parse_queries(text, "q.yaml")
    return info.value.problems


def test_problems_name_file_line_and_entry() -> None:
    problems = _problems("""queries:
  - name: first
    sql: SELECT 1
  - name: second
    sql: SELECT 2
    expect_ms: fast
  - name: third
    sql: SELECT 3
    params: {values: [{a: 1}], sql: SELECT 1}
  - name: fourth
    sql: SELECT 4
    source:
      kv:
        - {get: "a:{x}", limit: 3}
  - name: fifth
    sql: SELECT 5
    colour: red
""")
    assert any(p.startswith("q.yaml:6: query 'second', expect_ms:") for p in problems), problems
    assert any(p.startswith("q.yaml:9: query 'third', params:") and "either" in p
               for p in problems), problems
    assert any(p.startswith("q.yaml:14: query 'fourth', kv step 1") and "one thing" in p
               for p in problems), problems
    assert any(p.startswith("q.yaml:17: query 'fifth': unknown key 'colour'")
               for p in problems), problems


def test_missing_sql_and_duplicate_names() -> None:
    assert any("query 'a': 'sql' is required" in p
               for p in _problems("queries:\n  - name: a\n"))
    assert any("two queries are named 'a'" in p for p in _problems(
        "queries:\n  - {name: a, sql: SELECT 1}\n  - {name: a, sql: SELECT 2}\n"))


def test_cli_exit_2_for_a_bad_or_missing_queries_file(tmp_path: Path) -> None:
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text("source: {kind: json, path: x}\ntarget: {dsn: 'dbname=nowhere'}\n"
                       "tables:\n  t:\n    from: t\n    columns: {id: text}\n")
    r = runner.invoke(app, ["bench", "-c", str(mapping), "--queries", str(tmp_path / "no.yaml")])
    assert r.exit_code == 2
    assert "no such queries file" in r.output and "Traceback" not in r.output
    bad = tmp_path / "q.yaml"
    bad.write_text("queries:\n  - name: x\n    sql: [\n")
    r = runner.invoke(app, ["bench", "-c", str(mapping), "--queries", str(bad)])
    assert r.exit_code == 2
    assert "q.yaml:" in r.output and "not valid YAML" in r.output
