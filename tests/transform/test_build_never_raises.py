"""``StreamPlan.build`` turns every per-document failure into a rejection, never an exception.

Each case here is a document whose content once escaped the conversion rules: a NUL, NaN or
lone surrogate in a field kept by the catch-all column, a field *name* that PostgreSQL text
cannot hold, an ``_id`` that is not valid text.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from bson import ObjectId

from docshift.sources.base import SourceDocument
from docshift.spec import parse_mapping
from docshift.transform.ids import NAMESPACE
from docshift.transform.rows import compile_streams

CATCH_ALL = """
source: {kind: json, path: x}
options: {strip_nul: STRIP, replace_invalid_utf8: REPLACE}
tables:
  people:
    from: people
    primary_key: id
    extra: extra
    columns:
      id: {type: uuid, from: _id}
      name: text
"""


def plan(text: str = CATCH_ALL, strip: bool = False, replace: bool = False):
    text = text.replace("STRIP", str(strip).lower()).replace("REPLACE", str(replace).lower())
    return compile_streams(parse_mapping(text))["people"]


def person(**extra):
    doc = {"_id": ObjectId(b"\x01" * 12), "name": "Ada", **extra}
    return SourceDocument(str(doc["_id"]), doc, "1")


def storable_text(text: str) -> bool:
    """Whether PostgreSQL text can hold ``text``: no NUL and no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@pytest.mark.parametrize("value, error_class", [
    ("a\x00b", "nul_byte"),
    ("bad \udcff byte", "invalid_utf8"),
    (float("nan"), "bad_number"),
    (float("inf"), "bad_number"),
    ({"deep": ["x\x00"]}, "nul_byte"),
])
def test_bad_value_in_the_catch_all_is_a_rejection(value, error_class) -> None:
    res = plan().build(person(note=value))
    assert res.rows == {}
    assert res.rejection is not None
    assert res.rejection.error_class == error_class
    assert res.rejection.field == "note"
    assert res.rejection.table == "people"


def test_catch_all_follows_strip_nul_and_replace_invalid_utf8() -> None:
    res = plan(strip=True, replace=True).build(person(note="a\x00b", other="x\udcffy"))
    assert res.rejection is None
    (row,) = res.rows["people"]
    assert row[2] == {"note": "ab", "other": "x\ufffdy"}


def test_bad_field_name_in_the_catch_all_is_a_rejection() -> None:
    res = plan().build(person(**{"we\x00ird": 1}))
    assert res.rejection is not None and res.rejection.error_class == "nul_byte"
    assert res.rejection.field == "we\\u0000ird"
    res = plan(strip=True).build(person(**{"we\x00ird": 1}))
    assert res.rejection is None and res.rows["people"][0][2] == {"weird": 1}


def test_reported_unmapped_names_are_valid_text() -> None:
    text = CATCH_ALL.replace("    extra: extra\n", "")
    res = plan(text).build(person(**{"a\x00b": 1, "c\udcffd": 2, "plain": 3}))
    assert res.rejection is None
    assert sorted(res.unmapped) == ["a\\u0000b", "c\\udcffd", "plain"]


@pytest.mark.parametrize("raw, data", [
    ("id\x00nul", b"id\x00nul"),
    ("bad\udcffbyte", b"bad\xffbyte"),
    ("lone\ud800", "lone\ud800".encode("utf-8", "surrogatepass")),
])
def test_string_id_that_is_not_valid_text_converts_over_its_bytes(raw, data) -> None:
    text = CATCH_ALL.replace("    extra: extra\n", "")
    res = plan(text).build(SourceDocument(raw, {"_id": raw, "name": "x"}, "1"), 5)
    assert res.rejection is None
    (row,) = res.rows["people"]
    digest = bytearray(hashlib.sha1(NAMESPACE.bytes + data).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    assert row[0] == uuid.UUID(bytes=bytes(digest)).bytes  # as the loader copies a uuid
    # the hidden source-key column is text PostgreSQL can store
    assert storable_text(row[-2]) and row[-1] == 5


def test_an_unexpected_failure_is_a_rejection_naming_the_field() -> None:
    class Hostile(str):
        def __str__(self):
            raise RuntimeError("boom")

    text = CATCH_ALL.replace("    extra: extra\n", "")
    res = plan(text).build(SourceDocument("k", {"_id": Hostile("x"), "name": "Ada"}, "1"))
    assert res.rejection is not None
    assert res.rejection.error_class == "unconvertible"
    assert res.rejection.field == "_id" and res.rejection.table == "people"
    assert "boom" in res.rejection.message


def test_an_unexpected_failure_in_the_catch_all_is_a_rejection() -> None:
    class Hostile:
        def __repr__(self):
            return "Hostile()"

    res = plan().build(person(note=Hostile()))
    assert res.rejection is not None and res.rejection.field == "note"
    assert res.rejection.error_class == "wrong_type"


TWO_PATTERNS = """
source: {kind: postgres_kv, table: kv}
tables:
  a:
    keys: 'a:{id}'
    columns:
      id: {type: text, from: $key.id}
  b:
    keys: 'a:{x}:{id}'
    columns:
      id: {type: text, from: $key.id}
"""


def test_tables_with_different_key_patterns_read_their_own_captures() -> None:
    p = compile_streams(parse_mapping(TWO_PATTERNS))["kv"]
    res = p.build(SourceDocument("a:1:2", {}, "a:1:2"))
    assert res.rows["a"][0][0] == "1:2"
    assert res.rows["b"][0][0] == "2"


ARRAY_COLUMN = """
source: {kind: json, path: x}
tables:
  people:
    from: people
    primary_key: id
    columns:
      id: {type: text, from: _id}
      tags: {type: "text[]", from: tags}
"""


def test_a_value_nested_too_deeply_to_show_is_a_rejection() -> None:
    # a value nested near the interpreter's recursion limit: its message cannot repr it
    v: object = "x"
    for _ in range(995):
        v = [v]
    for depth in range(3):  # the same however deep in the stack build is called
        res = _nested_call(depth, lambda: plan(ARRAY_COLUMN).build(
            SourceDocument("k", {"_id": "k", "tags": v}, "1")))
        assert res.rejection is not None
        assert res.rejection.error_class == "wrong_type"
        assert res.rows == {}


def _nested_call(depth: int, fn):
    return fn() if depth == 0 else _nested_call(depth - 1, fn)
