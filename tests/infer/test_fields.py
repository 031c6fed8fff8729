"""Type inference and value matching, on hand-written samples."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from bson import Decimal128, Int64, ObjectId

from docshift.infer.fields import FieldStats, column_type, enum_suggestion
from docshift.infer.references import KeySpace, find_reference
from docshift.infer.sample import canonical, snake_case


def stats(*values: object) -> FieldStats:
    fs = FieldStats()
    for v in values:
        fs.add(v)
    return fs


def test_types_from_values() -> None:
    now = datetime(2024, 1, 2, tzinfo=UTC)
    assert column_type(stats(now, "2024-01-02T03:04:05Z"), "at") == ("timestamptz", None)
    assert column_type(stats("2024-01-02", "2023-12-31"), "day") == ("date", None)
    assert column_type(stats(ObjectId(), str(ObjectId())), "x") == ("uuid", None)
    assert column_type(stats(Decimal128("1.5"), "2.25"), "amount") == ("numeric", None)
    assert column_type(stats("12.50", "3"), "total") == ("numeric", None)
    assert column_type(stats("0012", "0042"), "code")[0] == "text"
    assert column_type(stats(1, 2, 3), "n") == ("integer", None)
    assert column_type(stats(1, 2**40), "n") == ("bigint", None)
    assert column_type(stats(Int64(1)), "n") == ("bigint", None)
    assert column_type(stats(True, None), "b") == ("boolean", None)
    type_, check = column_type(stats(1, "one"), "mixed")
    assert type_ == "text" and check is not None and "mixed types" in check


def test_a_few_odd_values_do_not_change_the_type() -> None:
    type_, check = column_type(stats(*([True] * 19 + ["yes"])), "active")
    assert type_ == "boolean"
    assert check is not None and "1 value(s) that are not bool" in check
    assert column_type(stats(*([True] * 10 + ["yes"] * 10)), "active")[0] == "jsonb"


def test_maps_and_records() -> None:
    assert stats({"tier-1": {"p": 1}, "tier-2": {"p": 2}}, {"tier-3": {"p": 3}}).is_map()
    assert not stats({"street": "a", "city": "b"}, {"street": "c", "city": "d"}).is_map()
    assert stats({"street": "a", "city": "b"}, {"street": "c", "city": "d"}).is_flat_record()


def test_enum_suggestion_needs_few_values_often_repeated() -> None:
    assert enum_suggestion(stats(*(["a", "b"] * 20)), 40) == [("a", 20), ("b", 20)]
    assert enum_suggestion(stats(*[str(i) for i in range(40)]), 40) is None


def test_canonical_ids_meet_like_the_uuid_rule() -> None:
    oid = ObjectId()
    assert canonical(oid) == canonical(str(oid).upper())
    assert canonical(42) == canonical("42")
    assert canonical(True) is None and canonical("") is None


def test_snake_case() -> None:
    assert snake_case("watching_accountsIDs") == "watching_accounts_ids"
    assert snake_case("IDNumber") == "id_number"
    assert snake_case("document_file_mimeType") == "document_file_mime_type"
    assert snake_case("1st place!") == "f_1st_place"


def test_references_by_value_not_by_name() -> None:
    users = KeySpace("users", "id", {"a" * 24, "b" * 24})
    values = Counter({"a" * 24: 3, "b" * 24: 1, "c" * 24: 1})
    m = find_reference("owner", values, [users])
    assert m is not None and m.matched == 2 and m.dangling == 1
    assert m.orphan_policy() == "null"
    # small integers only count when the name says they are keys of that table
    stages = KeySpace("stages", "order", {"1", "2", "3"}, natural=True)
    assert find_reference("position", Counter({"1": 1, "2": 1}), [stages]) is None
    accounts = KeySpace("accounts", "account_id", {"1", "2", "3"}, natural=True)
    hit = find_reference("account_ids", Counter({"1": 1, "2": 1}), [accounts])
    assert hit is not None and hit.space.target() == "accounts.account_id"
