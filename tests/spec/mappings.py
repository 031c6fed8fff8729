"""Mappings and helpers shared by the mapping-file tests."""

from __future__ import annotations

import re

import pytest

from docshift.errors import MappingError
from docshift.spec import parse_mapping

# line numbers:  1 version, 2 source, 5 tables, 6 accounts, 12 contacts, 17 email, 18 account_id
MONGO = """\
version: 1
source:
  kind: mongodump
  path: ./dump
tables:
  accounts:
    from: crm_Accounts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      name: text
  contacts:
    from: crm_Contacts
    primary_key: id
    columns:
      id: {type: uuid, from: _id}
      email: text
      account_id: {type: uuid, from: account, references: accounts}
"""

# line numbers: 6 clients, 7 keys, 8 where, 11 id, 12 name
KV = """\
version: 1
source:
  kind: postgres_kv
  table: kv_store_abc
tables:
  clients:
    keys: 'client:{env}:{id}'
    where: {env: production}
    primary_key: id
    columns:
      id: {type: uuid, from: $key.id}
      name: text
"""


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def problems(text: str) -> list[str]:
    """The problem lines of a mapping that must not load; each names file and line."""
    with pytest.raises(MappingError) as info:
        parse_mapping(text, "m.yaml")
    lines = info.value.problems
    assert lines
    for line in lines:
        assert re.match(r"m\.yaml:\d+: ", line), line
    return lines
