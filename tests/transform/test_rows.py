"""Row builders: one document → rows for every table, or one rejection."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec import parse_mapping
from docshift.transform.ids import objectid_to_uuid
from docshift.transform.rows import column_types, compile_streams

MAPPING = """
source: {kind: json, path: x}
tables:
  orders:
    from: orders
    primary_key: id
    extra: leftovers
    ignore: [__v]
    columns:
      id: {type: uuid, from: _id}
      total: numeric(10,2)
      placed: {type: date, from: meta.placed}
      status: {type: text, map: {cancelled: void}, enum: [open, void], default: open}
  order_lines:
    from: orders
    unnest: lines
    columns:
      order_id: {type: uuid, from: _id}
      n: {type: integer, from: $index}
      sku: {type: text, nullable: false}
  order_attrs:
    from: orders
    unnest: attrs
    columns:
      order_id: {type: uuid, from: _id}
      name: {type: text, from: $key}
      value: {type: text, from: $item}
"""


def doc(**kw):
    base = {"_id": ObjectId(b"\x01" * 12), "total": "12.5",
            "meta": {"placed": dt.datetime(2024, 5, 1, tzinfo=dt.UTC), "by": "web"},
            "lines": [{"sku": "A"}, {"sku": "B"}], "attrs": {"color": "red", "size": "L"},
            "__v": 3, "note": "hi"}
    base.update(kw)
    return SourceDocument(str(base["_id"]), base, "1")


def plan():
    return compile_streams(parse_mapping(MAPPING))["orders"]


def test_document_gives_rows_for_every_table():
    res = plan().build(doc(), 7)
    assert res.rejection is None
    oid = objectid_to_uuid(ObjectId(b"\x01" * 12)).bytes  # as the loader copies a uuid
    (order,) = res.rows["orders"]
    assert order[0] == oid and str(order[1]) == "12.50" and order[2] == dt.date(2024, 5, 1)
    assert order[3] == "open"  # default when missing
    assert order[4] == {"note": "hi", "meta.by": "web"} or order[4] == {"note": "hi",
                                                                        "meta": {"by": "web"}}
    assert [r[:3] for r in res.rows["order_lines"]] == [(oid, 0, "A"), (oid, 1, "B")]
    assert [r[:3] for r in res.rows["order_attrs"]] == [(oid, "color", "red"),
                                                        (oid, "size", "L")]
    # every row ends with its source key and document number (the hidden columns)
    assert all(r[-2:] == (str(ObjectId(b"\x01" * 12)), 7) for rows in res.rows.values()
               for r in rows)


def test_unmapped_fields_kept_in_the_catch_all_are_not_reported():
    res = plan().build(doc())
    assert res.unmapped == []


def test_unmapped_fields_are_reported_but_ignored_ones_are_not():
    text = MAPPING.replace("    extra: leftovers\n", "")
    res = compile_streams(parse_mapping(text))["orders"].build(doc())
    assert sorted(res.unmapped) == ["meta.by", "note"]


def test_value_map_then_enum():
    assert plan().build(doc(status="cancelled")).rows["orders"][0][3] == "void"
    res = plan().build(doc(status="shipped"))
    assert res.rejection.error_class == "not_in_enum" and res.rejection.field == "status"


def test_one_bad_item_rejects_the_whole_document():
    res = plan().build(doc(lines=[{"sku": "A"}, {"qty": 1}]))
    assert res.rows == {}
    assert res.rejection.error_class == "missing_required"
    assert res.rejection.field == "$item.sku" and res.rejection.table == "order_lines"


def test_unnest_of_a_scalar_is_a_wrong_type():
    res = plan().build(doc(lines="A,B"))
    assert res.rejection.error_class == "wrong_type" and res.rejection.field == "lines"


def test_missing_or_empty_array_gives_no_child_rows():
    p = plan()
    assert p.build(doc(lines=[])).rows["order_lines"] == []
    d = doc()
    del d.doc["lines"]
    assert p.build(d).rows["order_lines"] == []


def test_unreadable_document_is_rejected():
    res = plan().build(SourceDocument("f:3", UnreadableDocument("{oops", "bad JSON"), "3"))
    assert res.rejection.error_class == "unreadable"


def test_a_shared_parent_id_is_converted_once_per_document():
    p = plan()
    a, b = p.build(doc()), p.build(doc(_id=ObjectId(b"\x02" * 12)))
    assert a.rows["order_lines"][0][0] != b.rows["order_lines"][0][0]
    assert b.rows["order_lines"][0][0] == b.rows["orders"][0][0]


def test_a_reference_takes_its_type_through_a_chain_of_untyped_keys():
    text = """
source: {kind: json, path: "."}
tables:
  sites:
    from: sites
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
  site_configs:
    from: configs
    primary_key: id
    columns:
      id: {from: site, references: sites}
  config_items:
    from: items
    columns:
      config_id: {from: config, references: site_configs}
"""
    m = parse_mapping(text)
    assert column_types(m, m.tables["config_items"])["config_id"].sql == "uuid"


def test_max_text_chars_in_the_options_rejects_longer_text():
    text = """
source: {kind: json, path: "."}
options: {max_text_chars: 5}
tables:
  notes:
    from: notes
    columns:
      body: text
"""
    plan = compile_streams(parse_mapping(text))["notes"]
    ok = plan.build(SourceDocument("a", {"body": "short"}, "1"))
    assert ok.rejection is None
    res = plan.build(SourceDocument("b", {"body": "too long"}, "2"))
    assert res.rejection is not None and res.rejection.error_class == "too_long"
