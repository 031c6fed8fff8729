"""Splitting a stream into key ranges: the ranges cover every document exactly once."""

from __future__ import annotations

from pathlib import Path

import bson
import psycopg
import pytest
from psycopg.types.json import Jsonb

from docshift.sources.jsonfiles import JsonSource
from docshift.sources.mongodump import MongodumpSource
from docshift.sources.postgres_kv import KvSource


def read_ranges(stream, bounds: list[str]) -> list[str]:
    """Keys read range by range, as work units do: after start, up to and including end."""
    keys: list[str] = []
    edges = [None, *bounds, None]
    for start, end in zip(edges, edges[1:], strict=False):
        for d in stream.read(after=start):
            if end is not None and stream.past(d.position, end):
                break
            keys.append(d.key)
            if d.position == end:
                break
    return keys


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_mongodump_ranges(tmp_path: Path, parts: int) -> None:
    db = tmp_path / "db"
    db.mkdir()
    with (db / "c.bson").open("wb") as f:
        for i in range(101):
            f.write(bson.encode({"_id": i, "pad": "x" * (i % 13)}))
    s = MongodumpSource(db).stream("c")
    bounds = s.split(parts)
    assert len(bounds) == parts - 1
    assert read_ranges(s, bounds) == [str(i) for i in range(101)]
    assert sum(s.count_between(a, b) for a, b in zip([None, *bounds], [*bounds, None],
                                                      strict=False)) == 101


@pytest.mark.parametrize("parts", [2, 4])
def test_json_lines_ranges_skip_blank_lines(tmp_path: Path, parts: int) -> None:
    lines = []
    for i in range(60):
        lines.append(f'{{"_id": {i}}}')
        if i % 5 == 0:
            lines.append("")  # blank lines never become boundaries
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n")
    s = JsonSource(tmp_path).stream("c")
    bounds = s.split(parts)
    assert bounds and len(bounds) <= parts - 1
    assert read_ranges(s, bounds) == [str(i) for i in range(60)]


def test_json_array_is_not_split(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('[{"_id": 1}, {"_id": 2}]')
    assert JsonSource(tmp_path).stream("c").split(2) == []


def test_kv_ranges(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE TABLE kv (key text PRIMARY KEY, value jsonb NOT NULL)")
        with c.cursor() as cur:
            cur.executemany("INSERT INTO kv VALUES (%s, %s)",
                            [(f"k:{i}", Jsonb({"i": i})) for i in range(250)] +
                            [("Zeta", Jsonb({})), ("ärger", Jsonb({}))])
        c.execute("ANALYZE kv")
    src = KvSource(dsn, "kv")
    try:
        s = src.stream("kv")
        bounds = s.split(3)
        assert len(bounds) == 2
        whole = [d.key for d in s.read()]
        assert read_ranges(s, bounds) == whole
        assert len(whole) == 252
    finally:
        src.close()
