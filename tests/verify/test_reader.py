"""The verifier's own reading of documents, checked against hand-written expectations."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bson import ObjectId

from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec import parse_mapping
from docshift.transform.ids import objectid_to_uuid, to_uuid
from docshift.verify.expect import (
    FILTERED,
    IGNORED,
    LOADED,
    REJECTED,
    UNMATCHED,
    StreamReader,
    read_path,
)

KV = """
source: {kind: postgres_kv, table: kv}
options: {naming: camelCase}
ignore_keys: ["session:*"]
tables:
  clients:
    keys: "client:{env}:{id}"
    where: {env: production}
    primary_key: id
    columns:
      id: {type: uuid, from: $key.id}
      name: {type: text, nullable: false, max_length: 5}
      status: {type: text, map: {suspended: inactive}, enum: [active, inactive]}
      plan: {type: text, default: free}
      created_at: timestamptz
  client_tags:
    keys: "client:{env}:{id}"
    where: {env: production}
    unnest: tags
    primary_key: [client_id, position]
    columns:
      client_id: {type: uuid, from: $key.id}
      position: {type: integer, from: $index}
      tag: {type: text, from: $item}
"""


def doc(key: str, value: object) -> SourceDocument:
    return SourceDocument(key, value, key)


def test_read_path_follows_objects_and_positions() -> None:
    d = {"a": {"b": [{"c": 1}, {"c": 2}]}, "n": None}
    assert read_path(d, "a.b.1.c") == 2
    assert read_path(d, "a.b.5.c") is None
    assert read_path(d, "a.b.x") is None
    assert read_path(d, "n.x") is None


def test_kv_rows_maps_defaults_and_unnest() -> None:
    r = StreamReader(parse_mapping(KV, "m.yaml"), "kv")
    e = r.read(doc("client:production:c-1", {"name": "Acme", "status": "suspended",
                                             "createdAt": "2024-01-02T03:04:05Z",
                                             "tags": ["x", "y"]}))
    assert e.outcome == LOADED
    (row,) = e.rows["clients"]
    assert row[0] == to_uuid("c-1").bytes  # a uuid as binary COPY carries it
    assert row[1:] == ("Acme", "inactive", "free", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert [t[1:] for t in e.rows["client_tags"]] == [(0, "x"), (1, "y")]
    assert {t[0] for t in e.rows["client_tags"]} == {row[0]}


def test_kv_outcomes() -> None:
    r = StreamReader(parse_mapping(KV, "m.yaml"), "kv")
    assert r.read(doc("client:staging:c-2", {"name": "S"})).outcome == FILTERED
    assert r.read(doc("session:1", {})).outcome == IGNORED
    assert r.read(doc("other:1", {})).outcome == UNMATCHED
    too_long = r.read(doc("client:production:c-3", {"name": "Too long"}))
    assert (too_long.outcome, too_long.error_class, too_long.field) == (REJECTED, "too_long",
                                                                         "name")
    bad = r.read(doc("client:production:c-4", {"name": "A", "status": "gone"}))
    assert (bad.outcome, bad.error_class) == (REJECTED, "not_in_enum")
    missing = r.read(doc("client:production:c-5", {}))
    assert (missing.error_class, missing.field) == ("missing_required", "name")
    scalar = r.read(doc("client:production:c-6", {"name": "A", "tags": 3}))
    assert (scalar.error_class, scalar.table) == ("wrong_type", "client_tags")
    unreadable = r.read(SourceDocument("k", UnreadableDocument(raw=b"x", reason="bad json"), "k"))
    assert unreadable.error_class == "unreadable"


CRM = """
source: {kind: mongodump, path: ./dump}
tables:
  invoices:
    from: Invoices
    primary_key: id
    ignore: [__v]
    columns:
      id: {type: uuid, from: _id}
      amount: numeric(14,2)
      city: {type: text, from: address.city}
  items:
    from: Invoices
    unnest: items
    primary_key: [invoice_id, line]
    columns:
      invoice_id: {type: uuid, from: _id}
      line: {type: integer, from: $index}
      sku: text
"""


def test_collection_rows_and_unmapped_paths() -> None:
    r = StreamReader(parse_mapping(CRM, "m.yaml"), "Invoices")
    oid = ObjectId()
    d = doc(str(oid), {"_id": oid, "__v": 0, "amount": "12.50",
                       "address": {"city": "Brno", "zip": "60200"},
                       "items": [{"sku": "A", "discount": 1}], "note": "n"})
    e = r.read(d)
    uid = objectid_to_uuid(oid).bytes  # a uuid as binary COPY carries it
    assert e.rows["invoices"] == [(uid, Decimal("12.50"), "Brno")]
    assert e.rows["items"] == [(uid, 0, "A")]
    assert r.unmapped(d, ["invoices", "items"]) == {"address.zip", "note",
                                                    "items[].discount"}


def test_float_sums_agree_whatever_the_order_of_their_terms() -> None:
    from docshift.verify.engine import _close

    forward, backward = 0.1 + 0.2 + 0.3, 0.3 + 0.2 + 0.1
    assert forward != backward  # a float sum depends on the order of its terms
    assert _close(forward, backward)
    assert not _close(0.6, 0.61)
    assert _close(float("nan"), float("nan"))


NESTED_UNNEST = """
source: {kind: json, path: ./x}
tables:
  tags:
    from: c
    unnest: items.tags
    columns:
      tag: {type: text, from: $item}
"""


def test_an_unnest_path_through_an_array_is_rejected_as_the_loader_rejects_it() -> None:
    from docshift.transform.rows import compile_streams

    m = parse_mapping(NESTED_UNNEST, "m.yaml")
    through = doc("1", {"_id": 1, "items": [{"tags": ["a", "b"]}]})
    loaded = compile_streams(m)["c"].build(through)
    assert loaded.rejection is not None
    assert (loaded.rejection.error_class, loaded.rejection.field) == ("wrong_type",
                                                                      "items.tags")
    fine = doc("2", {"_id": 2, "items": {"tags": ["a", "b"]}})
    absent = doc("3", {"_id": 3, "other": 1})
    for compiled in (True, False):
        r = StreamReader(m, "c", compiled=compiled)
        got = r.read(through)
        assert (got.outcome, got.error_class, got.field) == (REJECTED, "wrong_type",
                                                             "items.tags"), compiled
        assert r.read(fine).rows == {"tags": [("a",), ("b",)]}
        assert (r.read(absent).outcome, r.read(absent).rows) == (LOADED, {"tags": []})
