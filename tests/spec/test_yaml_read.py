"""A mapping file is parsed once, by libyaml when PyYAML has it: same data, same lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from docshift.spec.load import _compose, _read_yaml
from tests.spec.mappings import KV, MONGO

EXAMPLES = sorted((Path(__file__).parents[2] / "src" / "docshift" / "examples").glob("*/*.yaml"))

ODD = """\
tables:
  t:
    columns:
      flag: {type: boolean, map: {1: true, '1': false, true: true, on: false, 0.5: null}}
      when: {type: date, default: 2024-01-02}
      note: |
        two
        lines
    keys: ['client:{env}:{id}', "a\\tb"]
    anchors: &a [1, 2]
    again: *a
"""

needs_libyaml = pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"),
                                   reason="PyYAML without libyaml")


def lines(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """The line and column of every node, by its path of keys and indexes."""
    out: dict[tuple[Any, ...], int] = {}
    if node is None:
        return out
    out[path] = node.start_mark.line * 1000 + node.start_mark.column
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out |= lines(v, (*path, k.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out |= lines(v, (*path, i))
    return out


@needs_libyaml
@pytest.mark.parametrize("text", [MONGO, KV, ODD, *(p.read_text() for p in EXAMPLES)],
                         ids=["mongo", "kv", "odd", *(p.parent.name + "/" + p.name
                                                      for p in EXAMPLES)])
def test_libyaml_reads_what_the_pure_python_parser_reads(text: str) -> None:
    fast_node, fast = _compose(yaml.CSafeLoader, text)
    slow_node, slow = _compose(yaml.SafeLoader, text)
    assert fast == slow == yaml.safe_load(text)
    assert lines(fast_node) == lines(slow_node)
    assert [type(v) for v in _leaves(fast)] == [type(v) for v in _leaves(slow)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in (k, *_leaves(v))]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def test_an_empty_file_reads_as_nothing() -> None:
    assert _read_yaml("") == (None, None)
    assert _read_yaml("# only a comment\n") == (None, None)


def test_broken_yaml_is_described_by_the_pure_python_parser() -> None:
    text = "tables:\n  t:\n\tcolumns: {}\n"
    with pytest.raises(yaml.YAMLError) as fast:
        _read_yaml(text)
    with pytest.raises(yaml.YAMLError) as slow:
        yaml.compose(text, Loader=yaml.SafeLoader)
    assert str(fast.value) == str(slow.value)
