"""The catch-all (`extra`) column is compared by value: the document's unmapped fields in a
table that is not unnested, each element's in an unnested one."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from docshift.run.migrate import RunOptions, migrate
from docshift.spec import load_mapping
from tests.verify.helpers import problems, run_verify

MAPPING = """\
source: {{kind: json, path: {path}}}
target: {{mode: create, schema: public}}
tables:
  orders:
    from: orders
    primary_key: id
    extra: extra
    columns:
      id: {{type: text, from: _id}}
      at: {{type: text, from: meta.at}}
  order_lines:
    from: orders
    unnest: items
    primary_key: [order_id, line]
    extra: extra
    columns:
      order_id: {{type: text, from: _id, references: orders}}
      line: {{type: integer, from: $index}}
      sku: {{type: text, from: $item.sku}}
"""

DOCS = [
    {"_id": "o1", "meta": {"at": "x", "by": "ann"}, "note": "n1",
     "items": [{"sku": "a", "discount": 5}, {"sku": "b"}, "loose"]},
    {"_id": "o2", "meta": {"at": "y"}, "items": []},
]


def _migrated(tmp: Path, dsn: str) -> object:
    src = tmp / "src"
    src.mkdir()
    (src / "orders.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tmp / "docshift.yaml").write_text(MAPPING.format(path=src))
    migrate(load_mapping(tmp / "docshift.yaml"), dsn, RunOptions(batch_size=10))
    return load_mapping(tmp / "docshift.yaml")


def test_catch_all_values_verify_clean(dsn: str, tmp_path: Path) -> None:
    m = _migrated(tmp_path, dsn)
    with psycopg.connect(dsn) as conn:
        extras = dict(conn.execute("SELECT id, extra FROM orders").fetchall())
        lines = conn.execute("SELECT line, extra FROM order_lines ORDER BY line").fetchall()
    # what the loader kept, as docs/mapping.md describes it
    assert extras == {"o1": {"meta.by": "ann", "note": "n1"}, "o2": None}
    assert lines == [(0, {"discount": 5}), (1, None), (2, {"$item": "loose"})]
    rep = run_verify(m, dsn, full=True)  # type: ignore[arg-type]
    assert problems(rep) == []
    assert any(c.layer == "content" and c.table == "order_lines" and c.expected == 3
               for c in rep.checks)


def test_a_changed_catch_all_value_is_reported(dsn: str, tmp_path: Path) -> None:
    m = _migrated(tmp_path, dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE orders SET extra = extra - 'note' WHERE id = 'o1'")
        conn.execute("UPDATE order_lines SET extra = '{\"discount\": 6}' WHERE line = 0")
    rep = run_verify(m, dsn, full=True)  # type: ignore[arg-type]
    found = {(c.table, d.key, d.field) for c in rep.checks if c.status == "fail"
             and c.layer == "content" for d in c.differences}
    assert found == {("orders", "o1", "extra"), ("order_lines", "o1", "extra")}
    assert not rep.ok
