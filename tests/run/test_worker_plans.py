"""A process compiles only the stream of the unit it loads, once for all its units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from docshift.run import worker
from docshift.run.worker import Progress, run_unit
from docshift.spec.load import parse_mapping
from docshift.target.prepare import prepare_create
from docshift.target.state import Unit, add_units, ensure_state, start_run
from docshift.transform.rows import StreamPlan

MAPPING = """
source: {kind: json, path: "%(path)s"}
target: {dsn: "%(dsn)s"}
tables:
  people:
    from: people
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      name: text
  notes:
    from: notes
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      body: text
      person_id: {type: uuid, from: person, references: people}
"""


def oid(i: int) -> dict[str, str]:
    return {"$oid": f"{i:024x}"}


def test_each_unit_compiles_its_own_stream_once_per_process(
        conn: psycopg.Connection, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "people.jsonl").write_text("".join(
        json.dumps({"_id": oid(i), "name": f"P{i}"}) + "\n" for i in range(3)))
    (tmp_path / "notes.jsonl").write_text("".join(
        json.dumps({"_id": oid(100 + i), "body": f"note {i}", "person": oid(i % 3)}) + "\n"
        for i in range(7)))
    m = parse_mapping(MAPPING % {"path": tmp_path, "dsn": dsn}, "docshift.yaml")
    ensure_state(conn)
    prepare_create(conn, m)
    run_id = start_run(conn, "h", "docshift.yaml", {})
    units = [Unit("notes", "notes", number=1), Unit("people", "people", number=2)]
    add_units(conn, run_id, units)

    compiled: list[list[str] | None] = []
    real = worker.compile_streams

    def counting(mapping: Any, streams: Any = None) -> dict[str, StreamPlan]:
        compiled.append(None if streams is None else sorted(streams))
        return real(mapping, streams=streams)

    monkeypatch.setattr(worker, "compile_streams", counting)
    reports: list[Progress] = []
    plans: dict[str, StreamPlan] = {}
    # the notes unit again at the end: done already, and its plan is not compiled again
    for unit in [*units, units[0]]:
        assert run_unit(m, dsn, run_id, unit, 4, lambda: False, reports.append, plans=plans)
    assert compiled == [["notes"], ["people"]]
    assert sorted(plans) == ["notes", "people"]
    assert plans["notes"].tables == ["notes"] and plans["people"].tables == ["people"]
    assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 7
    assert conn.execute("SELECT count(*) FROM people").fetchone()[0] == 3
    assert conn.execute("SELECT body FROM notes ORDER BY body DESC LIMIT 1").fetchone()[0] == (
        "note 6")
    assert [(p.stream, p.docs) for p in reports if p.kind == "batch"] == [
        ("notes", 4), ("notes", 3), ("people", 3)]


def test_without_a_plan_memo_a_unit_still_compiles_only_its_stream(
        conn: psycopg.Connection, dsn: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "people.jsonl").write_text(json.dumps({"_id": oid(1), "name": "P"}) + "\n")
    (tmp_path / "notes.jsonl").write_text("")
    m = parse_mapping(MAPPING % {"path": tmp_path, "dsn": dsn}, "docshift.yaml")
    ensure_state(conn)
    prepare_create(conn, m)
    run_id = start_run(conn, "h", "docshift.yaml", {})
    unit = Unit("people", "people", number=1)
    add_units(conn, run_id, [unit])
    compiled: list[list[str] | None] = []
    real = worker.compile_streams

    def counting(mapping: Any, streams: Any = None) -> dict[str, StreamPlan]:
        compiled.append(None if streams is None else sorted(streams))
        return real(mapping, streams=streams)

    monkeypatch.setattr(worker, "compile_streams", counting)
    assert run_unit(m, dsn, run_id, unit, 10, lambda: False, lambda p: None)
    assert compiled == [["people"]]
    assert conn.execute("SELECT name FROM people").fetchall() == [("P",)]
