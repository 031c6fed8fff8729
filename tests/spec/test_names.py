"""Names and SQL fragments are checked before anything runs; policies are part of the model."""

from __future__ import annotations

import pytest

from docshift.spec import parse_mapping
from docshift.spec.names import object_name, planned_names
from docshift.target.ddl import constraints
from tests.spec.mappings import MONGO, edit, problems

COLLIDING = """\
source: {kind: json, path: x}
tables:
  p:
    from: p
    primary_key: id
    columns:
      id: uuid
  a_b:
    from: s
    columns:
      c: {type: uuid, references: p}
  a:
    from: s
    columns:
      b_c: {type: uuid, references: p}
"""


def test_generated_names_that_collide_are_refused_naming_both_sources() -> None:
    (line,) = [p for p in problems(COLLIDING) if "a_b_c_fkey" in p]
    assert "table 'a_b', column 'c'" in line and "table 'a', column 'b_c'" in line
    assert "rename" in line


def test_explicit_index_name_over_63_bytes_is_refused() -> None:
    long = "x" * 64
    text = edit(MONGO, "      name: text\n",
                f"      name: text\n    indexes:\n      - {{columns: [name], name: {long}}}\n")
    (line,) = problems(text)
    assert "index 0" in line and "63 bytes" in line


def test_explicit_index_name_equal_to_a_generated_one_is_refused() -> None:
    text = edit(MONGO, "      name: text\n",
                "      name: text\n    indexes:\n      - {columns: [name], name: contacts_pkey}\n")
    (line,) = problems(text)
    assert "contacts_pkey" in line and "table 'contacts'" in line


@pytest.mark.parametrize("setting, needle", [
    ("opclass: 'text_ops); DROP TABLE x'", "opclass"),
    ("where: 'name IS NULL; DROP TABLE x'", "where"),
    ("where: \"name = 'a' -- comment\"", "where"),
    ("where: 'nme IS NULL'", "nme"),
    ("where: 'pg_sleep(10) IS NULL'", "where"),
])
def test_index_sql_fragments_are_validated(setting: str, needle: str) -> None:
    text = edit(MONGO, "      name: text\n",
                f"      name: text\n    indexes:\n      - {{columns: [name], {setting}}}\n")
    (line,) = problems(text)
    assert "index 0" in line and needle in line


def test_sound_index_fragments_load() -> None:
    text = edit(MONGO, "      name: text\n",
                "      name: text\n    indexes:\n"
                "      - {columns: [name], opclass: text_pattern_ops,"
                " where: \"name IS NOT NULL AND (name <> 'x''y' OR id IS NULL)\"}\n")
    parse_mapping(text)


def test_planned_names_agree_with_the_ddl() -> None:
    m = parse_mapping(edit(MONGO, "      name: text\n",
                           "      name: {type: text, unique: true}\n"
                           "    indexes: [[name], {columns: [id], name: by_id}]\n"))
    for t in m.tables:
        want = {c.name for c in constraints(m, t)}
        got = {n.name for n in planned_names(m, t) if n.kind not in ("check", "table")}
        assert got == want


def test_long_generated_names_stay_distinct_within_63_bytes() -> None:
    a = object_name("t" * 60, "column_one", "idx")
    b = object_name("t" * 60, "column_two", "idx")
    assert a != b and len(a.encode()) <= 63 and len(b.encode()) <= 63


NESTED = """\
source: {kind: json, path: x}
tables:
  items:
    from: orders
    unnest: items
    columns:
      sku: text
  item_tags:
    from: orders
    unnest: items.tags
    columns:
      tag: {type: text, from: $item}
"""


def test_unnest_through_an_unnested_array_is_refused_with_a_fix() -> None:
    (line,) = problems(NESTED)
    assert "table 'item_tags'" in line and "items.tags" in line
    assert "table 'items'" in line and "text[]" in line


def test_extra_is_allowed_on_unnested_tables() -> None:
    parse_mapping(NESTED.replace("      tag: {type: text, from: $item}\n",
                                 "      tag: {type: text, from: $item}\n")
                  .replace("    unnest: items.tags\n", "    unnest: items\n    extra: more\n"))


POLICIES = """\
source: {kind: json, path: x}
tables:
  users:
    from: users
    primary_key: id
    on_duplicate: keep_first
    primary_key_on_duplicate: reject
    columns:
      id: uuid
      email: {type: text, unique: true, on_duplicate: reject}
      login: {type: text, unique: true}
      org: {type: uuid, references: users, on_orphan: drop}
    indexes:
      - {columns: [org, login], unique: true, on_duplicate: reject}
"""


def test_duplicate_policy_per_unique_key() -> None:
    t = parse_mapping(POLICIES).tables["users"]
    assert t.duplicate_policy(["id"]) == "reject"
    assert t.duplicate_policy(["email"]) == "reject"
    assert t.duplicate_policy(["login"]) == "keep_first"
    assert t.duplicate_policy(["org", "login"]) == "reject"
    assert t.columns["org"].on_orphan == "drop"


def test_old_spellings_keep_working() -> None:
    t = parse_mapping(MONGO).tables["contacts"]
    assert t.duplicate_policy(["id"]) == "reject"


@pytest.mark.parametrize("old, new, needle", [
    ("login: {type: text, unique: true}", "login: {type: text, on_duplicate: reject}",
     "'on_duplicate' only applies"),
    ("      - {columns: [org, login], unique: true, on_duplicate: reject}",
     "      - {columns: [org, login], on_duplicate: reject}", "'on_duplicate' only applies"),
    ("    primary_key: id\n", "", "'primary_key_on_duplicate' needs a primary_key"),
])
def test_policies_where_they_mean_nothing_are_refused(old: str, new: str, needle: str) -> None:
    lines = problems(edit(POLICIES, old, new))
    assert any(needle in p for p in lines), lines


def test_map_keys_keep_their_yaml_type() -> None:
    m = parse_mapping(edit(MONGO, "      name: text\n",
                           "      name: {type: text, map: {1: one, true: yes_, '1': text_one}}\n"))
    entries = m.tables["accounts"].columns["name"].map_entries()
    assert entries == [(1, "one"), (True, "yes_"), ("1", "text_one")]
    assert [type(k) for k, _ in entries] == [int, bool, str]
