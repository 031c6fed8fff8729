"""The verifier's compiled reading gives exactly what its interpreter gives.

Every document of the generated CRM and key-value datasets (edge cases and bad data
included, with and without the mappings' ``ignore`` lists) and of hand-made shapes is read
twice: by a reader that tries the compiled function first, and by one that only interprets.
Outcome, rows, table, field, class and message must agree, and the compiled function must
have read most documents itself (else the test would prove nothing). The source fields left
unmapped must agree too: found with the check of field names first, or by the walk alone.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from docshift.generate import generate_crm, generate_kv
from docshift.sources import open_source
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec import parse_mapping
from docshift.verify import expect
from docshift.verify.expect import StreamReader
from tests.transform.test_plain_differential import MAPPING, example, shaped

KV_WHERE = """
source: {kind: postgres_kv, table: kv}
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
      size: {type: integer, from: stats.size, default: 1}
  client_tags:
    keys: ["client:{env}:{id}", "legacy:{id}"]
    unnest: tags
    columns:
      client_id: {type: text, from: $key.id}
      whole_key: {type: text, from: $key}
      position: {type: integer, from: $index}
      tag: {type: text, from: $item}
      label: {type: text, from: $item.label}
"""

KV_SHAPES: list[tuple[str, Any]] = [
    ("client:production:1", {"name": "ann", "tags": ["a", "b"]}),
    ("client:staging:2", {"name": "bob", "tags": ["c"]}),
    ("client:production:3", {"name": "toolongname"}),
    ("client:production:4", {"name": None}),
    ("client:production:5", {"name": "x", "status": "suspended", "stats": {"size": 3}}),
    ("client:production:6", {"name": "x", "status": "gone"}),
    ("client:production:7", {"name": "x", "status": ["active"]}),
    ("client:production:8", {"name": "x", "plan": None, "stats": "flat"}),
    ("client:production:9", {"name": "x", "tags": {"k": "v"}}),
    ("client:production:10", {"name": "x", "tags": [{"label": "l"}, None, 3]}),
    ("client:production:11", {"name": "x", "tags": "one"}),
    ("client:production:12", ["not", "an", "object"]),
    ("client:production:13", None),
    ("client:production:14", {"name": "x", "stats": {"size": "big"}}),
    ("legacy:15", {"tags": ["t"]}),
    ("legacy:16", {"name": "only"}),
    ("other:17", {"name": "x"}),
    ("client:production:18", UnreadableDocument(b"{", "broken JSON")),
]


def assert_same(m: Any, docs: list[tuple[str, SourceDocument]]) -> Counter[str]:
    """Read every document both ways; how many the compiled function read itself."""
    fast = {s: StreamReader(m, s) for s in dict.fromkeys(s for s, _ in docs)}
    slow = {s: StreamReader(m, s, compiled=False) for s in fast}
    seen: Counter[str] = Counter()
    for stream, sdoc in docs:
        got, want = fast[stream].read(sdoc), slow[stream].interpret(sdoc)
        assert got == want, (stream, sdoc.key)
        if want.outcome == "loaded":
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(expect._Paths, "all_read", lambda self, value, rel="": False)
                walked = slow[stream].unmapped(sdoc, want.rows)
            assert fast[stream].unmapped(sdoc, got.rows) == walked, (stream, sdoc.key)
            seen["with unmapped fields" if walked else "all read"] += 1
        compiled = fast[stream].fast
        took = compiled is not None and compiled(sdoc.doc, sdoc.key) is not None
        seen["compiled" if took else "interpreted"] += 1
        seen[want.outcome] += 1
    return seen


def source_documents(m: Any, dsn: str | None) -> list[tuple[str, SourceDocument]]:
    streams = dict.fromkeys(m.source.table if m.source.kind == "postgres_kv" else f.from_
                            for t in m.tables.values() for f in t.feeds or [])
    source = open_source(m.source, dsn)
    try:
        return [(s, d) for s in streams for d in source.stream(s).read()]
    finally:
        source.close()


@pytest.mark.parametrize(("seed", "edge", "bad"), [(21, True, 0.2), (22, False, 0.0)])
def test_crm_compiled_reading_is_the_interpreted_one(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     seed: int, edge: bool, bad: float) -> None:
    out = tmp_path / "crm"
    generate_crm(str(out), scale=0.3, seed=seed, edge_cases=edge, bad_rate=bad)
    monkeypatch.setenv("DOCSHIFT_SOURCE", str(out))
    for ignoring in (True, False):
        m = example("crm", ignoring)
        seen = assert_same(m, source_documents(m, None))
        assert seen["compiled"] > 0.5 * (seen["compiled"] + seen["interpreted"])
        assert bool(seen["rejected"]) is bool(bad)
        assert seen["all read"] and (seen["with unmapped fields"] or ignoring), seen


def test_kv_compiled_reading_is_the_interpreted_one(dsn: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    table = "kv_store_compiled"
    generate_kv(dsn, scale=0.3, seed=23, edge_cases=True, bad_rate=0.2, table=table,
                manifest_path=str(tmp_path / "manifest.json"))
    monkeypatch.setenv("DOCSHIFT_KV_TABLE", table)
    for ignoring in (True, False):
        m = example("kv", ignoring)
        seen = assert_same(m, source_documents(m, dsn))
        assert seen["compiled"] > 0.5 * seen["loaded"]
        assert seen["rejected"] and seen["unmatched"]


def test_hand_made_shapes_read_the_same() -> None:
    m = parse_mapping(MAPPING.replace("    extra: rest\n", "").replace("    extra: more\n", ""),
                      "m.yaml")
    docs = [("c", SourceDocument(str(d["_id"]), d, str(d["_id"]))) for d in shaped()]
    seen = assert_same(m, docs)
    assert seen["compiled"] > 10 and seen["interpreted"] > 10 and seen["rejected"]


def test_key_patterns_where_maps_and_defaults_read_the_same() -> None:
    m = parse_mapping(KV_WHERE, "m.yaml")
    seen = assert_same(m, [("kv", SourceDocument(k, v, k)) for k, v in KV_SHAPES])
    assert seen["compiled"] >= 4 and seen["rejected"] and seen["filtered"] + seen["unmatched"]


def test_streams_with_a_catch_all_are_interpreted() -> None:
    m = parse_mapping(MAPPING, "m.yaml")
    assert StreamReader(m, "c").fast is None
