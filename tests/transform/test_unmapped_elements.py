"""No silent field loss inside unnested arrays and maps; typed value maps."""

from __future__ import annotations

from bson import ObjectId

from docshift.sources.base import SourceDocument
from docshift.spec import parse_mapping
from docshift.transform.rows import compile_streams

ORDERS = """
source: {kind: json, path: x}
tables:
  orders:
    from: orders
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
  order_items:
    from: orders
    unnest: items
    EXTRA
    columns:
      order_id: {type: uuid, from: _id}
      sku: text
      qty: integer
  order_attrs:
    from: orders
    unnest: attrs
    columns:
      order_id: {type: uuid, from: _id}
      name: {type: text, from: $key}
      size: {type: text, from: $item.size}
"""


def build(doc: dict, extra: bool = False):
    text = ORDERS.replace("EXTRA", "extra: leftovers" if extra else "")
    p = compile_streams(parse_mapping(text))["orders"]
    return p.build(SourceDocument("k", {"_id": ObjectId(b"\x01" * 12), **doc}, "1"))


def test_unmapped_fields_of_array_elements_are_reported() -> None:
    res = build({"items": [{"sku": "A", "qty": 1, "discount": 5},
                           {"sku": "B", "discount": 2, "note": "gift"}]})
    assert res.rejection is None
    assert sorted(res.unmapped) == ["items[].discount", "items[].note"]


def test_unmapped_fields_of_map_entries_are_reported() -> None:
    res = build({"attrs": {"a": {"size": "L", "color": "red"}, "b": {"size": "M"}}})
    assert sorted(res.unmapped) == ["attrs{}.color"]


def test_scalar_element_no_column_reads_is_reported() -> None:
    res = build({"items": [{"sku": "A"}, "loose"]})
    assert res.unmapped == ["items[]"]


def test_fully_read_elements_report_nothing() -> None:
    res = build({"items": [{"sku": "A", "qty": 1}], "attrs": {"a": {"size": "L"}}})
    assert res.unmapped == []


def test_catch_all_of_an_unnested_table_keeps_each_elements_fields() -> None:
    res = build({"items": [{"sku": "A", "qty": 1, "discount": 5}, {"sku": "B"}]}, extra=True)
    assert res.rejection is None
    rows = res.rows["order_items"]
    assert [r[3] for r in rows] == [{"discount": 5}, None]
    assert res.unmapped == []


def test_catch_all_of_an_unnested_table_rejects_what_jsonb_cannot_hold() -> None:
    res = build({"items": [{"sku": "A", "note": "x\x00"}]}, extra=True)
    assert res.rejection is not None and res.rejection.error_class == "nul_byte"
    assert res.rejection.field == "items[].note"
    assert res.rejection.table == "order_items"


TYPED_MAP = """
source: {kind: json, path: x}
tables:
  t:
    from: s
    columns:
      state: {type: text, map: MAP}
"""


def state(mapping: str, value):
    p = compile_streams(parse_mapping(TYPED_MAP.replace("MAP", mapping)))["s"]
    res = p.build(SourceDocument("k", {"state": value}, "1"))
    assert res.rejection is None, res.rejection
    return res.rows["t"][0][0]


def test_map_keys_match_by_yaml_type() -> None:
    m = "{1: active, '2': pending, true: yes_flag}"
    assert state(m, 1) == "active"
    assert state(m, 1.0) == "active"  # numbers match numbers
    assert state(m, "1") == "1"  # the text "1" is not the number 1
    assert state(m, True) == "yes_flag"  # true is not 1
    assert state(m, "2") == "pending"
    assert state(m, 2) == "2"


def test_map_holds_keys_python_would_merge() -> None:
    m = "{1: one, true: yes_flag, 0: zero, false: no_flag}"
    assert [state(m, v) for v in (1, True, 0, False)] == ["one", "yes_flag", "zero", "no_flag"]
