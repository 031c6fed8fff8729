"""The quality bar: on the generated datasets the inferred mapping passes `docshift plan`
unedited, migrates, and reproduces every relation of the example mappings — the same
foreign keys and the same junction and child tables with the same rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.generate import generate_crm, generate_kv
from docshift.run.migrate import RunOptions, migrate
from docshift.spec import Mapping, load_mapping
from tests.infer.relations import count, fanout_tables, foreign_keys, table_map

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def infer(source: str, out: Path) -> Mapping:
    res = runner.invoke(app, ["infer", source, "-o", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["plan", "-c", str(out)])
    assert res.exit_code == 0, res.output
    return load_mapping(out)


def compare(example: Mapping, example_dsn: str, inferred: Mapping, inferred_dsn: str,
            bad_data: bool = False) -> None:
    """Same foreign keys; same junction and child rows. With bad data the example's business
    rules (enums, max_length, required fields) quarantine documents that inference, which
    proposes no such rule, loads: then no row of the example may be missing."""
    names = table_map(example, inferred)
    assert set(names) == set(example.tables), "every example table has an inferred twin"
    have = foreign_keys(inferred)
    missing = [(t, p) for t, p in foreign_keys(example) if (names[t], names[p]) not in have]
    assert missing == []
    for t in fanout_tables(example):
        mine, theirs = count(inferred_dsn, names[t]), count(example_dsn, t)
        if bad_data:
            assert mine >= theirs, (t, names[t], mine, theirs)
        else:
            assert mine == theirs, (t, names[t], mine, theirs)


def check_crm(tmp_path: Path, make_dsn, monkeypatch: pytest.MonkeyPatch, scale: float,
              bad_rate: float) -> None:
    out = tmp_path / "crm"
    generate_crm(str(out), scale=scale, seed=7, bad_rate=bad_rate)
    inferred = infer(str(out), tmp_path / "docshift.yaml")
    monkeypatch.setenv("DOCSHIFT_SOURCE", str(out))
    example = load_mapping(EXAMPLES / "crm" / "docshift.yaml")
    a, b = make_dsn(), make_dsn()
    migrate(example, a, RunOptions())
    migrate(inferred, b, RunOptions())
    compare(example, a, inferred, b, bad_data=bad_rate > 0)


def check_kv(tmp_path: Path, make_dsn, monkeypatch: pytest.MonkeyPatch, scale: float,
             bad_rate: float) -> None:
    a, b = make_dsn(), make_dsn()
    generate_kv(a, scale=scale, seed=7, bad_rate=bad_rate, table="kv_store_demo",
                manifest_path=str(tmp_path / "manifest.json"))
    inferred = infer(a, tmp_path / "docshift.yaml")
    assert inferred.source.table == "kv_store_demo"
    monkeypatch.setenv("DOCSHIFT_KV_TABLE", "kv_store_demo")
    example = load_mapping(EXAMPLES / "kv" / "docshift.yaml")
    migrate(example, a, RunOptions())
    migrate(inferred, b, RunOptions())
    compare(example, a, inferred, b, bad_data=bad_rate > 0)


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_crm_relations_match_the_example(tmp_path: Path, make_dsn,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    check_crm(tmp_path, make_dsn, monkeypatch, 0.5, 0.0)


def test_kv_relations_match_the_example(tmp_path: Path, make_dsn,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    check_kv(tmp_path, make_dsn, monkeypatch, 0.5, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize(("scale", "bad_rate"), [(1, 0.0), (1, 0.05), (5, 0.0), (5, 0.05)])
def test_crm_relations_at_scale(tmp_path: Path, make_dsn, monkeypatch: pytest.MonkeyPatch,
                                scale: float, bad_rate: float) -> None:
    check_crm(tmp_path, make_dsn, monkeypatch, scale, bad_rate)


@pytest.mark.slow
@pytest.mark.parametrize(("scale", "bad_rate"), [(1, 0.0), (1, 0.05), (5, 0.0), (5, 0.05)])
def test_kv_relations_at_scale(tmp_path: Path, make_dsn, monkeypatch: pytest.MonkeyPatch,
                               scale: float, bad_rate: float) -> None:
    check_kv(tmp_path, make_dsn, monkeypatch, scale, bad_rate)
