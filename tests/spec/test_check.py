"""Cross-reference problems: types, references, keys, indexes, source paths and captures.

Each mapping here is well-formed YAML of the right shape but wrong in what it says, as a new
user might write it; each problem must give the file, the line, the table, the column and
what to do.
"""

from __future__ import annotations

import pytest

from docshift.spec import parse_mapping
from docshift.spec.check import camel_case, resolve_reference, source_path
from docshift.spec.model import capture_names, pattern_regex
from tests.spec.mappings import KV, MONGO, edit, problems


def test_base_mappings_load() -> None:
    parse_mapping(MONGO, "m.yaml")
    kv = parse_mapping(KV, "m.yaml")
    assert kv.tables["clients"].feeds[0].captures() == {"env", "id"}  # type: ignore[index]


CASES = [
    # types
    pytest.param(edit(MONGO, "email: text", "email: strng"), 17,
                 ["table 'contacts', column 'email': unknown type 'strng'",
                  "did you mean 'text'", "supported: text"], id="unknown-type"),
    pytest.param(edit(MONGO, "email: text", "email: json"), 17,
                 ["column 'email': type 'json' is not supported: use 'jsonb'"], id="json-type"),
    pytest.param(edit(MONGO, "email: text", "email: profile.email"), 17,
                 ["column 'email': 'profile.email' is not a type but looks like a source path",
                  "'email: {type: <type>, from: profile.email}'"], id="path-as-type"),
    pytest.param(edit(MONGO, "email: text", "email: emailAddress"), 17,
                 ["unknown type 'emailaddress'", "if 'emailAddress' is the source field, write "
                  "'email: {type: <type>, from: emailAddress}'"], id="field-as-type"),
    pytest.param(edit(MONGO, "email: text", "email: {type: 'varchar(0)'}"), 17,
                 ["column 'email': type 'varchar(0)': the length must be between 1"],
                 id="bad-length"),
    pytest.param(edit(MONGO, "email: text", "email: {from: mail}"), 17,
                 ["column 'email': 'type' is required", "'email: <type>'"], id="missing-type"),
    pytest.param(edit(MONGO, "email: text", "email: {type: integer, max_length: 20}"), 17,
                 ["column 'email': max_length applies to text columns, not integer"],
                 id="max-length-on-integer"),
    pytest.param(edit(MONGO, "email: text", "created: {type: timestamptz, default: now()}"), 17,
                 ["column 'created': default 'now()' is not a timestamptz value",
                  "not an SQL expression"], id="default-expression"),
    pytest.param(edit(MONGO, "email: text", "active: {type: text, enum: [yes, no]}"), 17,
                 ["column 'active': enum values True, False are not text",
                  "quote them, e.g. enum: ['true', 'false']"],
                 id="enum-yaml-boolean"),
    pytest.param(edit(MONGO, "email: text",
                      "status: {type: text, map: {closed: done}, enum: [open, won, lost]}"), 17,
                 ["column 'status': map turns 'closed' into 'done', which is not in its enum",
                  "add it to the enum or change the map"], id="map-outside-enum"),
    # references
    pytest.param(edit(MONGO, "references: accounts}", "references: acounts}"), 18,
                 ["table 'contacts', column 'account_id': references table 'acounts', which the "
                  "mapping does not define (did you mean 'accounts'?)"], id="undefined-table"),
    pytest.param(edit(MONGO, "{type: uuid, from: account, references: accounts}",
                      "{type: text, from: account, references: accounts.name}"), 18,
                 ["column 'account_id': references accounts.name, which is neither the primary "
                  "key nor unique", "add 'unique: true' to accounts.name"], id="not-unique"),
    pytest.param(edit(MONGO, "references: accounts}", "references: accounts.nme}"), 18,
                 ["references accounts.nme, which is not a column of 'accounts'",
                  "did you mean 'name'"], id="undefined-column"),
    pytest.param(edit(MONGO, "    primary_key: id\n", "    primary_key: [id, name]\n"), 18,
                 ["column 'account_id': references 'accounts', which has a composite primary "
                  "key (id, name)", "'references: accounts.<column>'"], id="composite-key"),
    pytest.param(edit(MONGO, "{type: uuid, from: account, references: accounts}",
                      "{type: text, from: account, references: accounts}"), 18,
                 ["column 'account_id': type text differs from the referenced accounts.id "
                  "(uuid)", "leave out 'type'"], id="type-mismatch"),
    pytest.param(edit(MONGO, "      email: text\n",
                      "      email: {type: text, on_orphan: 'null'}\n"), 17,
                 ["column 'email': 'on_orphan' only applies to a column with 'references'"],
                 id="on-orphan-without-references"),
    pytest.param(edit(MONGO, "from: account, references: accounts}",
                      "from: account, references: accounts, nullable: false, on_orphan: 'null'}"),
                 18, ["column 'account_id': its 'on_orphan' is 'null', but the column cannot be "
                      "NULL (it has 'nullable: false')", "'on_orphan: reject'"],
                 id="null-orphans-in-not-null-column"),
    # keys and indexes
    pytest.param(edit(MONGO, "    from: crm_Contacts\n    primary_key: id\n",
                      "    from: crm_Contacts\n    primary_key:\n      - id\n      - uid\n"), 16,
                 ["table 'contacts': primary_key names column 'uid', which is not in its "
                  "columns (did you mean 'id'?)"], id="primary-key-column"),
    pytest.param(edit(MONGO, "id: {type: uuid, from: _id}",
                      "id: {type: uuid, from: _id, nullable: true}"), 10,
                 ["table 'accounts', column 'id': a primary key column cannot be nullable"],
                 id="nullable-primary-key"),
    pytest.param(MONGO + "    indexes: [[emial]]\n", 19,
                 ["table 'contacts', index 0: column 'emial' is not in the table (did you mean "
                  "'email'?)"], id="index-column"),
    pytest.param(MONGO + "    extra: email\n", 19,
                 ["table 'contacts': extra column 'email' is also a mapped column"],
                 id="extra-is-a-column"),
    pytest.param(edit(MONGO, "  contacts:", "  2contacts:"), 12,
                 ["table '2contacts': the name is not a plain PostgreSQL identifier"],
                 id="table-name"),
    # source paths
    pytest.param(edit(MONGO, "email: text", "email: {type: text, from: $item.email}"), 17,
                 ["table 'contacts', column 'email': $item is the current element of an "
                  "unnested array", "'unnest: <array path>'"], id="item-without-unnest"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, from: $itme}"), 17,
                 ["column 'email': unknown source '$itme' (did you mean '$item'?)"],
                 id="unknown-special-source"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, from: profile..email}"), 17,
                 ["column 'email': source path 'profile..email' has an empty segment"],
                 id="empty-segment"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, from: $key.env}"), 17,
                 ["column 'email': $key.env reads a key-pattern capture, which only a "
                  "postgres_kv source has"], id="capture-on-mongo"),
    pytest.param(edit(KV, "name: text", "name: {type: text, from: $key.environment}"), 12,
                 ["table 'clients', column 'name': no key pattern captures 'environment' "
                  "(captures: env, id)", "capture it in 'keys'"], id="capture-missing"),
    pytest.param(edit(MONGO, "    from: crm_Accounts\n", "    unnest: $item\n"
                      "    from: crm_Accounts\n"), 7,
                 ["table 'accounts': 'unnest' takes a document path"], id="unnest-special"),
    # feeds and source kinds
    pytest.param(edit(MONGO, "    from: crm_Accounts\n", "    keys: 'account:{id}'\n"), 7,
                 ["table 'accounts': 'keys' patterns need a postgres_kv source; for a mongodump "
                  "source use 'from: <collection>'"], id="keys-on-mongodump"),
    pytest.param(edit(KV, "    keys: 'client:{env}:{id}'\n    where: {env: production}\n",
                      "    from: clients\n"), 7,
                 ["table 'clients': 'from' names a collection, but the source is a key-value "
                  "table; use 'keys: <pattern>'"], id="from-on-kv"),
    pytest.param(edit(KV, "where: {env: production}", "where: {stage: production}"), 8,
                 ["table 'clients': 'where' filters on 'stage', which no key pattern captures "
                  "(captures: env, id)"], id="where-uncaptured"),
    pytest.param(edit(KV, "keys: 'client:{env}:{id}'", "keys: 'client:{env}:{id:[0-9+}'"), 7,
                 ["table 'clients': key pattern 'client:{env}:{id:[0-9+}' does not compile"],
                 id="bad-pattern"),
    pytest.param(edit(KV, "    keys: 'client:{env}:{id}'\n    where: {env: production}\n",
                      "    feeds:\n      - keys: 'client:{env}:{id}'\n"
                      "        columns: {nmae: $key.env}\n"), 9,
                 ["table 'clients', feed 0: feed sets column 'nmae', which is not in the table "
                  "(did you mean 'name'?)"], id="feed-column"),
    # what PostgreSQL would refuse only after the load
    pytest.param(edit(MONGO, "    primary_key: id\n    columns:\n      id: {type: uuid, from: _id}"
                      "\n      email", "    primary_key: [id, id]\n    columns:\n"
                      "      id: {type: uuid, from: _id}\n      email"), 14,
                 ["table 'contacts': primary_key names 'id' more than once"], id="pk-twice"),
    pytest.param(edit(MONGO, "email: text", "email: {type: integer, enum: [1, a]}"), 17,
                 ["column 'email': enum value 'a' is not a integer value"], id="enum-type"),
    pytest.param(edit(MONGO, "email: text", "email: {type: boolean, enum: [true, maybe]}"), 17,
                 ["column 'email': enum value 'maybe' is not a boolean value"],
                 id="enum-boolean"),
    pytest.param(edit(MONGO, "email: text", "email: {type: text, enum: [x, y], default: z}"),
                 17, ["column 'email': default 'z' is not one of its enum values"],
                 id="default-outside-enum"),
    pytest.param(MONGO + "    indexes:\n      - {columns: [email], using: gin}\n", 20,
                 ["table 'contacts', index 0: 'using: gin' has no operator class for column "
                  "'email' of type text"], id="gin-on-text"),
    pytest.param(KV + "ignore_keys: ['tmp:{a}:{a}']\n", 13,
                 ["ignore_keys: key pattern 'tmp:{a}:{a}' does not compile"],
                 id="bad-ignore-pattern"),
]


@pytest.mark.parametrize(("text", "line", "expected"), CASES)
def test_cross_reference_problems(text: str, line: int, expected: list[str]) -> None:
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"m.yaml:{line}: "), found
    for part in expected:
        assert part in found[0], found


def test_foreign_key_without_type_takes_the_referenced_type() -> None:
    m = parse_mapping(edit(MONGO, "{type: uuid, from: account, references: accounts}",
                           "{from: account, references: accounts}"), "m.yaml")
    from docshift.transform.rows import column_types

    assert column_types(m, m.tables["contacts"])["account_id"].sql == "uuid"


def test_existing_mode_allows_columns_without_type() -> None:
    m = parse_mapping(edit(MONGO, "email: text", "email:") + "target: {mode: existing}\n",
                      "m.yaml")
    assert m.tables["contacts"].column("email").type is None


def test_problem_in_a_feed_points_at_the_feed() -> None:
    text = edit(KV, "    keys: 'client:{env}:{id}'\n    where: {env: production}\n",
                "    feeds:\n      - keys: 'client:{env}:{id}'\n      - keys: 'clients:{id}'\n"
                "        where: {env: production}\n")
    assert problems(text) == [
        "m.yaml:10: table 'clients', feed 1: 'where' filters on 'env', which no key pattern "
        "captures (captures: id); capture it in 'keys', e.g. 'client:{env}:{id}'"]


def test_load_order_puts_parents_first() -> None:
    text = MONGO.replace("  accounts:", "  zaccounts:").replace(
        "references: accounts}", "references: zaccounts}")
    text = text.replace("      name: text\n", "      name: text\n"
                        "      main_contact: {type: uuid, references: contacts}\n")
    m = parse_mapping(text, "m.yaml")
    # a cycle (contacts ↔ zaccounts) does not loop; every table appears once
    assert sorted(m.tables_in_load_order()) == ["contacts", "zaccounts"]
    m = parse_mapping(MONGO.replace("  accounts:", "  zaccounts:").replace(
        "references: accounts}", "references: zaccounts}"), "m.yaml")
    assert m.tables_in_load_order() == ["zaccounts", "contacts"]


def test_source_path_rules() -> None:
    text = edit(KV, "      name: text\n", "      created_at: timestamptz\n"
                "      name: {type: text, from: label}\n") + "options: {naming: camelCase}\n"
    text += ("  client_sites:\n    keys: 'client_sites:{client}'\n    unnest: $\n"
             "    columns:\n      client_id: {type: uuid, from: $key.client}\n"
             "      site_id: {type: text, from: $item}\n      position: {type: integer, "
             "from: $index}\n      site_name: text\n")
    m = parse_mapping(text.replace("options: {naming: camelCase}\n", "") +
                      "options: {naming: camelCase}\n", "m.yaml")
    clients, sites = m.tables["clients"], m.tables["client_sites"]
    assert clients.feeds and sites.feeds
    assert source_path(m, clients, clients.feeds[0], "created_at") == "createdAt"
    assert source_path(m, clients, clients.feeds[0], "name") == "label"
    assert source_path(m, sites, sites.feeds[0], "site_name") == "$item.siteName"
    assert resolve_reference(m, "clients") == ("clients", "id")
    assert resolve_reference(m, "clients.name") == ("clients", "name")


def test_patterns() -> None:
    assert camel_case("created_at") == "createdAt"
    assert capture_names("client:{env}:{id:[0-9]+}") == ["env", "id"]
    rx = pattern_regex("client:{env}:{id}")
    assert rx.match("client:production:client-001").groupdict() == {  # type: ignore[union-attr]
        "env": "production", "id": "client-001"}
    assert rx.match("clients:client-001") is None
    assert pattern_regex("order:{n:[0-9]+}").match("order:12x") is None
    assert pattern_regex("session:*").match("session:abc:def")


def test_check_mapping_returns_sentences_and_find_problems_their_places() -> None:
    from docshift.spec.check import check_mapping, find_problems

    m = parse_mapping(MONGO, "m.yaml")
    assert check_mapping(m) == [] and find_problems(m) == []
    m.tables["contacts"].columns["email"].type = "strng"
    [problem] = find_problems(m)
    assert problem.loc == ("tables", "contacts", "columns", "email", "type")
    assert check_mapping(m) == [problem.message]
    assert problem.message.startswith("table 'contacts', column 'email': unknown type 'strng'")


def test_a_table_without_columns_is_a_problem_of_the_mapping() -> None:
    # it used to pass, then the loader's generated code failed to compile (a traceback)
    text = ("version: 1\nsource: {kind: json, path: .}\ntables:\n  t:\n    from: c\n"
            "    columns: {}\n")
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith("m.yaml:6: "), found
    assert "table 't': it has no columns" in found[0], found
    assert "add at least one" in found[0], found
