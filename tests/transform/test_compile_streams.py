"""Compiling some streams of a mapping gives exactly their plans from the full compilation."""

from __future__ import annotations

from pathlib import Path

import pytest

from docshift.generate import generate_crm
from docshift.sources import open_source
from docshift.spec import parse_mapping
from docshift.transform.rows import compile_streams

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TWO_STREAMS = """
source: {kind: json, path: "."}
tables:
  people:
    from: people
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      name: text
  people_tags:
    from: people
    unnest: tags
    primary_key: [person_id, position]
    columns:
      person_id: {type: uuid, from: _id, references: people}
      position: {type: integer, from: $index}
      tag: {type: text, from: $item}
  notes:
    from: notes
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      body: text
"""


def test_only_the_streams_asked_for_are_compiled() -> None:
    m = parse_mapping(TWO_STREAMS, "docshift.yaml")
    assert list(compile_streams(m)) == ["people", "notes"]
    people = compile_streams(m, streams=["people"])
    assert list(people) == ["people"]
    assert people["people"].tables == ["people", "people_tags"]
    assert list(compile_streams(m, streams={"notes"})) == ["notes"]
    assert compile_streams(m, streams=[]) == {}


def test_a_stream_compiled_alone_builds_the_same_rows_as_in_the_full_compilation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the CRM example: 23 streams, unnesting, two-sided links, enums, unmapped fields
    out = tmp_path / "crm"
    generate_crm(str(out), scale=0.2, seed=7, edge_cases=True, bad_rate=0.1)
    monkeypatch.setenv("DOCSHIFT_SOURCE", str(out))
    m = parse_mapping((EXAMPLES / "crm" / "docshift.yaml").read_text(), "crm.yaml")
    full = compile_streams(m)
    assert len(full) > 20
    source = open_source(m.source)
    compared = rejected = 0
    try:
        for name, whole in full.items():
            alone = compile_streams(m, streams=[name])[name]
            assert alone.tables == whole.tables
            for n, sdoc in enumerate(source.stream(name).read()):
                a, b = alone.build(sdoc, n), whole.build(sdoc, n)
                assert (a.rows, a.rejection, a.matched, a.unmapped) == (
                    b.rows, b.rejection, b.matched, b.unmapped), (name, sdoc.key)
                compared += 1
                rejected += a.rejection is not None
    finally:
        source.close()
    assert compared > 500 and rejected > 10
