"""Reading a mapping file: YAML, ``${VAR}``, and the shape of every block.

Each bad mapping is what a new user might write; each message must start with the file name
and line number, name the table and column, and say what to do.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docshift.errors import MappingError
from docshift.spec import ColumnSpec, IndexSpec, load_mapping, parse_mapping
from docshift.spec.starter import STARTER
from tests.spec.mappings import MONGO, edit, problems

DOCS = Path(__file__).parents[2] / "docs" / "mapping.md"



def test_the_base_mapping_loads() -> None:
    m = parse_mapping(MONGO, "m.yaml")
    assert m.path == "m.yaml"
    assert list(m.tables) == ["accounts", "contacts"]
    assert m.tables_in_load_order() == ["accounts", "contacts"]


SHAPE_CASES = [
    # misspelled keys at every level, with a suggestion
    pytest.param(MONGO + "optoins:\n  naming: camelCase\n", 19,
                 ["unknown key 'optoins'", "did you mean 'options'"], id="top-key"),
    pytest.param(edit(MONGO, "  path: ./dump\n", "  path: ./dump\n  databse: crm\n"), 5,
                 ["source: unknown key 'databse'", "did you mean 'database'"], id="source-key"),
    pytest.param(MONGO + "target:\n  shema: crm\n", 20,
                 ["target: unknown key 'shema'", "did you mean 'schema'"], id="target-key"),
    pytest.param(MONGO + "options:\n  on_orphn: 'null'\n", 20,
                 ["options: unknown key 'on_orphn'", "did you mean 'on_orphan'"],
                 id="options-key"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n",
                      "    from: crm_Contacts\n    primary_keys: id\n"), 14,
                 ["table 'contacts': unknown key 'primary_keys'", "did you mean 'primary_key'"],
                 id="table-key"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, nulable: false}"), 17,
                 ["table 'contacts', column 'email': unknown key 'nulable'",
                  "did you mean 'nullable'"], id="column-key"),
    pytest.param(edit(MONGO, "    from: crm_Accounts\n",
                      "    feeds:\n      - from: crm_Accounts\n        unnset: tags\n"), 9,
                 ["table 'accounts', feed 0: unknown key 'unnset'", "did you mean 'unnest'"],
                 id="feed-key"),
    pytest.param(MONGO + "    indexes:\n      - {columns: [email], uniqe: true}\n", 20,
                 ["table 'contacts', index 0: unknown key 'uniqe'", "did you mean 'unique'"],
                 id="index-key"),
    # keys from other tools get the mapping file's word for them
    pytest.param(edit(MONGO, "email: text", "email: {type: text, required: true}"), 17,
                 ["column 'email': unknown key 'required'", "nullable: false"],
                 id="column-synonym"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n", "    collection: crm_Contacts\n"), 13,
                 ["table 'contacts': unknown key 'collection'", "from: <collection>"],
                 id="table-synonym"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n",
                      "    from: crm_Contacts\n    type: text\n"), 14,
                 ["table 'contacts': unknown key 'type'", "under 'columns:"],
                 id="column-setting-on-table"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, primary_key: true}"), 17,
                 ["column 'email': unknown key 'primary_key'", "set on the table"],
                 id="primary-key-on-column"),
    # wrong enum values
    pytest.param(MONGO + "target:\n  mode: exisitng\n", 20,
                 ["target: 'mode' must be 'create' or 'existing', not 'exisitng'",
                  "did you mean 'existing'"], id="mode"),
    pytest.param(edit(MONGO, "references: accounts}", "references: accounts, on_orphan: drp}"),
                 18, ["table 'contacts', column 'account_id': 'on_orphan' must be 'reject', "
                      "'null', 'keep' or 'drop', not 'drp'"], id="on-orphan"),
    pytest.param(MONGO + "options:\n  on_orphan: nul\n", 20,
                 ["options: 'on_orphan' must be", "did you mean 'null'"], id="options-on-orphan"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n",
                      "    from: crm_Contacts\n    on_duplicate: keep\n"), 14,
                 ["table 'contacts': 'on_duplicate' must be 'reject' or 'keep_first', not 'keep'",
                  "did you mean 'keep_first'"], id="on-duplicate"),
    pytest.param(edit(MONGO, "kind: mongodump", "kind: mongo"), 3,
                 ["source: 'kind' must be", "did you mean 'mongodb'"], id="source-kind"),
    pytest.param(edit(MONGO, "version: 1", "version: 2"), 1,
                 ["'version' must be 1, not the number 2"], id="version"),
    pytest.param(MONGO + "options:\n  naming: camel\n", 20,
                 ["'naming' must be 'as_is' or 'camelCase'", "did you mean 'camelCase'"],
                 id="naming"),
    # missing or contradictory pieces
    pytest.param(edit(MONGO, "source:\n  kind: mongodump\n  path: ./dump\n", ""), 1,
                 ["'source' is required", "source: {kind: mongodump, path: ./dump/mydb}"],
                 id="missing-source"),
    pytest.param(edit(MONGO, "  path: ./dump\n", ""), 2,
                 ["source: a mongodump source needs 'path'", "add path: ./dump/mydb"],
                 id="source-without-path"),
    pytest.param(edit(MONGO, "  kind: mongodump\n  path: ./dump\n", "  kind: mongodb\n"), 2,
                 ["a mongodb source needs 'uri' and 'database'", "uri: mongodb://"],
                 id="mongodb-without-uri"),
    pytest.param(edit(MONGO, "    from: crm_Accounts\n", ""), 6,
                 ["table 'accounts': says nothing about where its rows come from",
                  "from: <collection>"], id="table-without-from"),
    pytest.param(edit(MONGO, "    from: crm_Accounts\n",
                      "    from: crm_Accounts\n    feeds:\n      - from: Accounts2\n"), 6,
                 ["table 'accounts': give either 'from'/'keys' or a list of 'feeds', not both"],
                 id="from-and-feeds"),
    pytest.param(edit(MONGO, "    from: crm_Accounts\n",
                      "    from: crm_Accounts\n    keys: 'account:{id}'\n"), 6,
                 ["table 'accounts': give 'from' (a collection) or 'keys'", "not both"],
                 id="from-and-keys"),
    pytest.param(edit(MONGO, "    columns:\n      id: {type: uuid, from: _id}\n      name: text\n",
                      ""), 6,
                 ["table 'accounts': 'columns' is required", "columns: {id: uuid"],
                 id="table-without-columns"),
    pytest.param("version: 1\nsource: {kind: json, path: x.jsonl}\ntables: {}\n", 3,
                 ["'tables' is empty: add at least one table"], id="no-tables"),
    # values of the wrong kind
    pytest.param(edit(MONGO, "email: text", "email: {type: text, unique: maybe}"), 17,
                 ["column 'email': 'unique' should be true or false, not 'maybe'"],
                 id="not-a-boolean"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, max_length: lots}"), 17,
                 ["column 'email': 'max_length' should be a whole number"], id="not-a-number"),
    pytest.param(edit(MONGO, "email: text", "email: [text]"), 17,
                 ["table 'contacts', column 'email': a column is a type ('email: text') or a "
                  "block of settings"], id="column-is-a-list"),
    pytest.param(edit(MONGO, "    columns:\n      id: {type: uuid, from: _id}\n      name: text\n",
                      "    columns: [id, name]\n"), 9,
                 ["table 'accounts': 'columns' maps each column name to its type"],
                 id="columns-is-a-list"),
    pytest.param(edit(MONGO, "source:\n  kind: mongodump\n  path: ./dump\n",
                      "source: mongodump\n"), 2,
                 ["source: expected a block of 'name: value' settings (kind, path",
                  "not 'mongodump'"],
                 id="source-is-a-word"),
    pytest.param(MONGO + "    indexes:\n      - {columns: []}\n", 20,
                 ["table 'contacts', index 0: an index needs at least one column"],
                 id="index-without-columns"),
    # YAML traps
    pytest.param(edit(MONGO, "      name: text\n", "      name: text\n      on: boolean\n"), 12,
                 ["table 'accounts': the key 'on' is read as the boolean true, not as text: "
                  "quote it"],
                 id="yaml-boolean-name"),
    pytest.param(edit(MONGO, "      email: text\n",
                      "      email: text\n      email: varchar(80)\n"), 18,
                 ["table 'contacts': 'email' is given twice (lines 17 and 18)"],
                 id="duplicate-column"),
    pytest.param(edit(MONGO, "email: text", "1: text"), 17,
                 ["table 'contacts': the key '1' is read as the number 1, not as text"],
                 id="yaml-number-key"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n", "    keys: {id}\n"), 13,
                 ["table 'contacts': 'keys' should be a list", "quote key patterns"],
                 id="unquoted-key-pattern"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n",
                      "    from: crm_Contacts\n    where: active\n"), 14,
                 ["table 'contacts': 'where' should be a block of 'field: value' filters"],
                 id="where-is-a-word"),
    pytest.param(edit(MONGO, "    from: crm_Contacts\n", "    feeds: {from: crm_Contacts}\n"), 13,
                 ["table 'contacts': 'feeds' should be a list of feeds"], id="feeds-is-a-block"),
    pytest.param(MONGO + "path: ./dump\n", 19,
                 ["unknown key 'path'", "goes under 'source:'"], id="top-level-path"),
]


@pytest.mark.parametrize(("text", "line", "expected"), SHAPE_CASES)
def test_shape_problems(text: str, line: int, expected: list[str]) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"m.yaml:{line}: "), found
    for part in expected:
        assert part in found[0], found


def test_all_problems_are_reported_at_once_in_file_order() -> None:
    text = edit(MONGO, "email: text", "email: {type: text, nulable: false}")
    text = edit(text, "  path: ./dump\n", "  path: ./dump\n  databse: crm\n")
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    exc = info.value
    assert [p.split(":")[1] for p in exc.problems] == ["5", "18"]
    assert exc.message.startswith("m.yaml: 2 problems in the mapping file\n  - m.yaml:5: ")


def test_unset_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCSHIFT_TEST_DUMP", raising=False)
    text = edit(MONGO, "path: ./dump", "path: ${DOCSHIFT_TEST_DUMP}")
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    assert info.value.problems == [
        "m.yaml:4: source: environment variable DOCSHIFT_TEST_DUMP is not set; export it, "
        "or write ${DOCSHIFT_TEST_DUMP:-default} to give a fallback"]
    assert info.value.hint and "${VAR:-default}" in info.value.hint


def test_environment_variable_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCSHIFT_TEST_DUMP", raising=False)
    text = edit(MONGO, "path: ./dump", "path: ${DOCSHIFT_TEST_DUMP:-./fallback}")
    text += "target:\n  dsn: postgresql://u@${DOCSHIFT_TEST_HOST:-localhost}/crm\n"
    m = parse_mapping(text, "m.yaml")
    assert m.source.path == "./fallback"
    assert m.target.dsn == "postgresql://u@localhost/crm"
    monkeypatch.setenv("DOCSHIFT_TEST_DUMP", "/data/dump")
    assert parse_mapping(text, "m.yaml").source.path == "/data/dump"


@pytest.mark.parametrize(("text", "line", "expected"), [
    pytest.param("source:\n  kind: json\n\tpath: x\n", 3, ["not valid YAML", "spaces, not tabs"],
                 id="tab"),
    pytest.param(edit(MONGO, "from: crm_Accounts", "keys: [account:{env}:{id}]"), 7,
                 ["not valid YAML", "quote values"], id="unquoted-pattern"),
    pytest.param(edit(MONGO, "    from: crm_Accounts", "   from: crm_Accounts"), 8,
                 ["not valid YAML", "indentation"], id="indentation"),
])
def test_invalid_yaml(text: str, line: int, expected: list[str]) -> None:
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(f"m.yaml:{line}: "), found
    for part in expected:
        assert part in found[0], found


@pytest.mark.parametrize(("text", "expected"), [
    ("", "m.yaml:1: the file is empty"),
    ("# only a comment\n", "m.yaml:1: the file is empty"),
    ("- a\n- b\n", "m.yaml:1: the file holds a list"),
])
def test_not_a_mapping(text: str, expected: str) -> None:
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    assert info.value.problems[0].startswith(expected)
    assert "docshift init" in (info.value.hint or "")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping(tmp_path / "nope.yaml")
    assert "nope.yaml: no such mapping file" in info.value.message
    assert "docshift init" in (info.value.hint or "")


def test_load_mapping_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(edit(MONGO, "email: text", "email: strng"), encoding="utf-8")
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    assert info.value.problems[0].startswith(f"{path}:17: table 'contacts', column 'email': ")
    path.write_text(MONGO, encoding="utf-8")
    assert load_mapping(path).path == str(path)


def test_shorthands_are_normalized() -> None:
    text = edit(MONGO, "      name: text\n",
                "      name: text\n      region:\n    indexes: [[name], region, "
                "{columns: [name, region], unique: true}]\n")
    text += "target: {mode: existing}\n"
    table = parse_mapping(text, "m.yaml").tables["accounts"]
    assert table.column("name") == ColumnSpec(type="text")
    assert table.column("region") == ColumnSpec()
    assert table.index_list() == [IndexSpec(columns=["name"]), IndexSpec(columns=["region"]),
                                  IndexSpec(columns=["name", "region"], unique=True)]
    assert table.unique_keys() == [["id"], ["name", "region"]]


def test_starter_mapping_loads() -> None:
    m = parse_mapping(STARTER, "docshift.yaml")
    assert m.source.kind == "mongodump"
    assert m.tables_in_load_order().index("users") < m.tables_in_load_order().index("user_tags")


def _doc_examples() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M)
    return [b for b in blocks if re.search(r"^tables:", b, flags=re.M)]


def test_docs_have_complete_examples() -> None:
    assert len(_doc_examples()) >= 2


@pytest.mark.parametrize("index", range(len(_doc_examples()) if DOCS.exists() else 0))
def test_docs_examples_load(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MONGO_URI", "DATABASE_URL", "KV_DSN"):
        monkeypatch.delenv(var, raising=False)
    parse_mapping(_doc_examples()[index], f"docs/mapping.md example {index}")
