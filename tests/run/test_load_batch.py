"""One batch: rows the wire format or PostgreSQL refuse are isolated, the rest commits."""

from __future__ import annotations

import psycopg
from bson import ObjectId

from docshift.sources.base import SourceDocument
from docshift.spec.load import parse_mapping
from docshift.target.load import load_batch, table_copies
from docshift.target.prepare import prepare_create
from docshift.target.state import (
    Checkpoint,
    Unit,
    add_units,
    doc_id,
    ensure_state,
    load_checkpoint,
    start_run,
)
from docshift.transform.rows import compile_streams

MAPPING = """
source: {kind: json, path: "."}
tables:
  notes:
    from: notes
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      body: text
      stars: smallint
"""


def test_a_row_the_wire_format_cannot_carry_is_quarantined_and_the_rest_loads(
        conn: psycopg.Connection) -> None:
    m = parse_mapping(MAPPING, "docshift.yaml")
    plan = compile_streams(m)["notes"]
    ensure_state(conn)
    prepare_create(conn, m)
    unit = Unit("notes", "notes", number=1)
    run_id = start_run(conn, "h", "docshift.yaml", {})
    add_units(conn, run_id, [unit])
    items = []
    for i in range(10):
        sdoc = SourceDocument(f"k{i}", {"_id": ObjectId(), "body": f"note {i}", "stars": i},
                              str(i))
        res = plan.build(sdoc, doc_id(1, i))
        items.append((sdoc, res))
    # a value that passed conversion but cannot be encoded for COPY (a lone surrogate),
    # and one PostgreSQL refuses (a NUL character in text)
    bad_text = list(items[3][1].rows["notes"][0])
    bad_text[1] = "broken \ud800 text"
    items[3][1].rows["notes"][0] = tuple(bad_text)
    bad_nul = list(items[7][1].rows["notes"][0])
    bad_nul[1] = "nul \x00 inside"
    items[7][1].rows["notes"][0] = tuple(bad_nul)
    cp = load_checkpoint(conn, run_id, "notes")
    result = load_batch(conn, run_id, unit, items, table_copies(m, plan), cp, 0.0)
    assert result.rows == {"notes": 8}
    assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 8
    rejected = conn.execute("SELECT source_key, table_name, error_class, doc_id FROM "
                            "docshift.rejects ORDER BY source_key").fetchall()
    assert [(k, t, d) for k, t, _, d in rejected] == [
        ("k3", "notes", doc_id(1, 3)), ("k7", "notes", doc_id(1, 7))]
    assert rejected[0][2] == "copy_format"
    assert rejected[1][2].startswith("pg_")
    # the checkpoint moved past the whole batch, once
    assert load_checkpoint(conn, run_id, "notes") == Checkpoint(
        "notes", "9", 10, 2, {"notes": 8}, False, 0.0)
