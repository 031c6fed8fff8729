"""The source read by several processes, one work unit of the run each, gives the report
one process gives; faults are still found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bson
import psycopg
import pytest
from bson import ObjectId

from docshift.run.migrate import RunOptions, migrate
from docshift.spec import load_mapping
from docshift.verify import VerifyReport
from tests.verify.helpers import run_verify

MAPPING = """\
source: {{kind: mongodump, path: {path}}}
target: {{mode: create, schema: public}}
tables:
  things:
    from: things
    primary_key: id
    columns:
      id: {{type: uuid, from: _id}}
      email: {{type: text, nullable: false, unique: true}}
      n: integer
  thing_tags:
    from: things
    unnest: tags
    primary_key: [thing_id, position]
    columns:
      thing_id: {{type: uuid, from: _id, references: things}}
      position: {{type: integer, from: $index}}
      tag: {{type: text, from: $item}}
"""


def _doc(i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": ObjectId(i.to_bytes(12, "big")), "email": f"u{i}@x.org",
                           "n": i, "tags": [f"t{k}" for k in range(i % 3)]}
    if i % 50 == 7:
        doc["n"] = "not a number"  # quarantined
    if i % 90 == 11:
        doc["email"] = "u1@x.org"  # a later duplicate of a unique key: quarantined
    return doc


def _migrated(tmp: Path, dsn: str) -> Any:
    dump = tmp / "dump"
    dump.mkdir()
    (dump / "things.bson").write_bytes(b"".join(bson.encode(_doc(i)) for i in range(600)))
    (tmp / "docshift.yaml").write_text(MAPPING.format(path=dump))
    migrate(load_mapping(tmp / "docshift.yaml"), dsn,
            RunOptions(workers=2, batch_size=50, split_min_docs=100))
    return load_mapping(tmp / "docshift.yaml")


def _stable(rep: VerifyReport) -> dict[str, Any]:
    out = rep.as_json()
    out.pop("seconds")
    out.pop("phases")  # timings, as seconds
    out["environment"].pop("verified_at")
    out["options"].pop("workers")
    return out


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_worker_processes_give_the_same_report(dsn: str, tmp_path: Path) -> None:
    m = _migrated(tmp_path, dsn)
    with psycopg.connect(dsn) as conn:
        units = conn.execute("SELECT count(*) FROM docshift.checkpoints").fetchone()
        quarantined = conn.execute("SELECT count(*) FROM docshift.rejects").fetchone()
    assert units is not None and units[0] >= 2  # the run split the stream
    assert quarantined is not None and quarantined[0] > 10
    alone = run_verify(m, dsn, sample=40, workers=1)
    assert alone.ok, [c for c in alone.checks if c.status == "fail"]
    together = run_verify(m, dsn, sample=40, workers=2)
    assert _stable(together) == _stable(alone)
    (led,) = together.streams
    assert led.documents == 600 and led.balanced and led.quarantined == quarantined[0]


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_worker_processes_find_faults(dsn: str, tmp_path: Path) -> None:
    m = _migrated(tmp_path, dsn)
    with psycopg.connect(dsn) as conn:
        key = conn.execute("DELETE FROM docshift.rejects WHERE id = (SELECT max(id) FROM "
                           "docshift.rejects) RETURNING source_key").fetchone()
        conn.execute("UPDATE things SET n = n + 1 WHERE n = 599")
    rep = run_verify(m, dsn, full=True, workers=2)
    assert not rep.ok
    failing = {(c.layer, d.key, d.field) for c in rep.checks if c.status == "fail"
               for d in c.differences}
    assert ("content", str(ObjectId((599).to_bytes(12, "big"))), "n") in failing
    assert key is not None and any(k == key[0] for layer, k, _ in failing
                                   if layer == "reconciliation")
