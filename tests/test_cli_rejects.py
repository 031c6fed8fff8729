"""`docshift rejects --json`: the quarantine's groups (and with --all, the removals) as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import EXPECTED_REJECTS, write_dump, write_mapping

runner = CliRunner()
N_USERS, N_ACCOUNTS = 40, 30


@pytest.fixture
def mapping(tmp_path: Path, dsn: str) -> Path:
    dump = write_dump(tmp_path / "dump", N_USERS, N_ACCOUNTS)
    return write_mapping(tmp_path / "docshift.yaml", dump, dsn)


def test_rejects_json_before_any_run_is_empty(mapping: Path) -> None:
    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--json", "--all"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"quarantined": 0, "groups": [], "removed": 0,
                                      "removals": []}


def test_rejects_json_groups_and_removals(mapping: Path) -> None:
    assert runner.invoke(app, ["run", "-c", str(mapping)]).exit_code == 3

    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert "removals" not in data
    assert {(g["table"], g["field"], g["error_class"]) for g in data["groups"]} \
        == EXPECTED_REJECTS
    assert data["quarantined"] == len(EXPECTED_REJECTS)  # one bad document per cause
    bad_date = next(g for g in data["groups"] if g["error_class"] == "bad_date")
    assert bad_date["source"] == "Users" and bad_date["count"] == 1
    assert bad_date["example_key"] and "yesterday" in bad_date["example_message"]

    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--json", "--all"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    removed = {(r["table"], r["kind"]): r["count"] for r in data["removals"]}
    # keep_first on user_tags: every 4th user lists "vip" twice
    assert removed[("user_tags", "duplicate_dropped")] == len(range(0, N_USERS, 4))
    assert data["removed"] == sum(removed.values())


def test_rejects_json_and_export_together_is_a_usage_error(mapping: Path,
                                                           tmp_path: Path) -> None:
    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--json", "--export",
                              str(tmp_path / "r.jsonl")])
    assert res.exit_code == 2
    assert "error: give --json or --export, not both" in res.output
    assert not (tmp_path / "r.jsonl").exists()


def test_export_keeps_a_number_too_large_for_64_bits_as_it_is(tmp_path: Path, dsn: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = "123456789012345678901234567890"
    (src / "things.jsonl").write_text(
        '{"_id": {"$oid": "5f0000000000000000000001"}, "n": 1}\n'
        f'{{"_id": {{"$oid": "5f0000000000000000000002"}}, "n": {big}}}\n'
        '{"_id": {"$oid": "5f0000000000000000000003"}, "n": "x"}\n')
    mapping = tmp_path / "docshift.yaml"
    mapping.write_text(f'source: {{kind: json, path: "{src}"}}\ntarget: {{dsn: "{dsn}"}}\n'
                       "tables:\n  things:\n    from: things\n    primary_key: id\n"
                       "    columns:\n      id: {type: uuid, from: _id}\n      n: bigint\n")
    assert runner.invoke(app, ["run", "-c", str(mapping)]).exit_code == 3
    out = tmp_path / "r.jsonl"
    res = runner.invoke(app, ["rejects", "-c", str(mapping), "--export", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    assert f'"n":{big}' in lines[0].replace(" ", "")
    assert json.loads(lines[0])["document"]["n"] == int(big)
