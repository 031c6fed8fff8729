"""Several source documents share a key: the first in source order stays, every later one is
quarantined whole; verify accounts for each document as the run did, and stays strict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bson
import psycopg
from bson import Int64, ObjectId

from docshift.run.migrate import RunOptions, migrate
from docshift.spec import Mapping, load_mapping
from tests.verify.helpers import problems, run_verify

OID1, OID2, OID3 = ("65f000000000000000000001", "65f000000000000000000002",
                    "65f000000000000000000003")

MAPPING = """\
version: 1
source:
  kind: {kind}
  path: {path}
target:
  mode: create
  schema: public
options:
  unmapped: report
tables:
  things:
    from: things
    primary_key: id
    extra: extra
    columns:
      id: {{type: {id_type}, from: _id}}
      email: {{type: text, nullable: false, unique: true}}
      name: text
      n: integer
"""


def _json_source(tmp: Path, docs: list[dict[str, Any]]) -> Mapping:
    src = tmp / "src"
    src.mkdir()
    (src / "things.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    path = tmp / "docshift.yaml"
    path.write_text(MAPPING.format(kind="json", path=src, id_type="uuid"))
    return load_mapping(path)


def _bson_source(tmp: Path, docs: list[dict[str, Any]], id_type: str = "uuid") -> Mapping:
    src = tmp / "dump"
    src.mkdir()
    (src / "things.bson").write_bytes(b"".join(bson.encode(d) for d in docs))
    path = tmp / "docshift.yaml"
    path.write_text(MAPPING.format(kind="mongodump", path=src, id_type=id_type))
    return load_mapping(path)


def _migrate(m: Mapping, dsn: str, **kw: Any) -> None:
    migrate(m, dsn, RunOptions(**kw))


def _target(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT email, n FROM things ORDER BY n").fetchall()


def _quarantine(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT source_key, error_class, stage, doc_id IS NOT NULL "
                         "FROM docshift.rejects ORDER BY doc_id").fetchall()


def _assert_passes(m: Mapping, dsn: str, loaded: int, quarantined: int) -> None:
    for full in (False, True):
        rep = run_verify(m, dsn, full=full)
        assert problems(rep) == []
        (s,) = rep.streams
        assert (s.documents, s.loaded, s.quarantined, s.unaccounted) == (
            loaded + quarantined, loaded, quarantined, 0)
        assert s.balanced


JSON_DOCS = [
    {"_id": {"$oid": OID1}, "email": "a@x", "n": 1},
    {"_id": {"$oid": OID2}, "email": "b@x", "n": 2},
    {"_id": {"$oid": OID1}, "email": "c@x", "n": 3},
]


def test_json_duplicate_id_verifies(dsn: str, tmp_path: Path) -> None:
    m = _json_source(tmp_path, JSON_DOCS)
    _migrate(m, dsn)
    assert _target(dsn) == [("a@x", 1), ("b@x", 2)]
    assert _quarantine(dsn) == [(OID1, "duplicate_key", "finalize", True)]
    _assert_passes(m, dsn, loaded=2, quarantined=1)


def test_json_duplicate_id_through_the_cli(dsn: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from docshift.cli import app

    m = _json_source(tmp_path, JSON_DOCS)
    _migrate(m, dsn)
    res = CliRunner().invoke(app, ["verify", "-c", str(tmp_path / "docshift.yaml"),
                                   "--dsn", dsn, "--full"])
    assert res.exit_code == 0, res.output


def test_json_three_documents_one_id_in_small_batches(dsn: str, tmp_path: Path) -> None:
    docs = [{"_id": {"$oid": OID1}, "email": f"{i}@x", "n": i} for i in range(1, 4)]
    docs.insert(1, {"_id": {"$oid": OID2}, "email": "b@x", "n": 10})
    m = _json_source(tmp_path, docs)
    _migrate(m, dsn, batch_size=1)
    assert _target(dsn) == [("1@x", 1), ("b@x", 10)]
    _assert_passes(m, dsn, loaded=2, quarantined=2)


def test_bson_duplicate_object_id_verifies(dsn: str, tmp_path: Path) -> None:
    m = _bson_source(tmp_path, [
        {"_id": ObjectId(OID1), "email": "a@x", "n": 1},
        {"_id": ObjectId(OID2), "email": "b@x", "n": 2},
        {"_id": ObjectId(OID1), "email": "c@x", "n": 3},
    ])
    _migrate(m, dsn)
    assert _target(dsn) == [("a@x", 1), ("b@x", 2)]
    _assert_passes(m, dsn, loaded=2, quarantined=1)


def test_bson_int_and_int64_ids_verify(dsn: str, tmp_path: Path) -> None:
    m = _bson_source(tmp_path, [
        {"_id": 42, "email": "a@x", "n": 1},
        {"_id": 7, "email": "b@x", "n": 2},
        {"_id": Int64(42), "email": "c@x", "n": 3},
    ], id_type="bigint")
    _migrate(m, dsn)
    assert _target(dsn) == [("a@x", 1), ("b@x", 2)]
    _assert_passes(m, dsn, loaded=2, quarantined=1)


def test_unique_email_across_ids_verifies(dsn: str, tmp_path: Path) -> None:
    m = _json_source(tmp_path, [
        {"_id": {"$oid": OID1}, "email": "a@x", "n": 1},
        {"_id": {"$oid": OID2}, "email": "a@x", "n": 2},
        {"_id": {"$oid": OID3}, "email": "c@x", "n": 3},
        # its id is free again once the document above is quarantined, its email is not
        {"_id": {"$oid": OID2}, "email": "c@x", "n": 4},
    ])
    _migrate(m, dsn)
    assert _target(dsn) == [("a@x", 1), ("c@x", 3)]
    _assert_passes(m, dsn, loaded=2, quarantined=2)


def test_email_and_id_duplicates_in_one_source_verify(dsn: str, tmp_path: Path) -> None:
    m = _json_source(tmp_path, [
        {"_id": {"$oid": OID1}, "email": "a@x", "n": 1},
        {"_id": {"$oid": OID2}, "email": "a@x", "n": 2},
        {"_id": {"$oid": OID1}, "email": "c@x", "n": 3},
    ])
    _migrate(m, dsn)
    assert _target(dsn) == [("a@x", 1)]
    assert sorted(_quarantine(dsn)) == [(OID1, "duplicate_key", "finalize", True),
                                        (OID2, "duplicate_key", "finalize", True)]
    _assert_passes(m, dsn, loaded=1, quarantined=2)
    # without its entry, the email duplicate is unaccounted for
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DELETE FROM docshift.rejects WHERE source_key = %s", (OID2,))
    rep = run_verify(m, dsn, full=True)
    (stream,) = [c for c in rep.checks if c.table == "stream things"
                 and c.name == "every document accounted for"]
    assert stream.status == "fail"
    assert [d.key for d in stream.differences] == [OID2]


def test_id_duplicate_after_an_email_duplicate_verifies(dsn: str, tmp_path: Path) -> None:
    # the first document of OID2 is quarantined for its email; the second keeps the id
    m = _json_source(tmp_path, [
        {"_id": {"$oid": OID1}, "email": "a@x", "n": 1},
        {"_id": {"$oid": OID2}, "email": "a@x", "n": 2},
        {"_id": {"$oid": OID2}, "email": "b@x", "n": 3},
    ])
    _migrate(m, dsn)
    loaded = _target(dsn)
    assert ("a@x", 1) in loaded and ("a@x", 2) not in loaded
    _assert_passes(m, dsn, loaded=len(loaded), quarantined=3 - len(loaded))


def test_quarantined_duplicate_whose_row_is_in_the_target_fails(dsn: str,
                                                                 tmp_path: Path) -> None:
    m = _json_source(tmp_path, JSON_DOCS)
    _migrate(m, dsn)
    # the row now holds what the quarantined third document gives
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE things SET email = 'c@x', n = 3 WHERE n = 1")
    rep = run_verify(m, dsn, full=True)
    assert not rep.ok
    assert any(c.layer == "content" and c.table == "things" and c.status == "fail"
               for c in rep.checks), problems(rep)


def test_deleted_duplicate_quarantine_entry_is_caught(dsn: str, tmp_path: Path) -> None:
    m = _json_source(tmp_path, JSON_DOCS)
    _migrate(m, dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DELETE FROM docshift.rejects")
    rep = run_verify(m, dsn, full=True)
    assert not rep.ok
    stream = [c for c in rep.checks if c.table == "stream things"
              and c.name == "every document accounted for"]
    assert stream and stream[0].status == "fail", problems(rep)
    assert [d.key for d in stream[0].differences] == [OID1]


def test_duplicates_across_key_ranges_verify(dsn: str, tmp_path: Path) -> None:
    # the stream is split into several units; each id appears once in the first half and
    # again in the second, so the run's numbering must be followed across unit boundaries
    ids = [f"65f0000000000000000001{i:02x}" for i in range(20)]
    docs = [{"_id": {"$oid": oid}, "email": f"{i}@x", "n": i} for i, oid in enumerate(ids)]
    docs += [{"_id": {"$oid": oid}, "email": f"{i}@y", "n": 100 + i}
             for i, oid in enumerate(ids)]
    m = _json_source(tmp_path, docs)
    _migrate(m, dsn, workers=2, split_min_docs=1, batch_size=3)
    with psycopg.connect(dsn) as c:
        units = c.execute("SELECT count(*) FROM docshift.checkpoints").fetchone()
    assert units is not None and units[0] > 1
    assert _target(dsn) == [(f"{i}@x", i) for i in range(20)]
    _assert_passes(m, dsn, loaded=20, quarantined=20)
