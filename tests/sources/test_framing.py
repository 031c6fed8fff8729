"""A dump file's framing (where its documents end) is read once per stream: counting,
splitting and counting ranges agree with the documents' real ends, damaged files included,
and planning a run reads the file about once instead of once per question."""

from __future__ import annotations

import random
from pathlib import Path

import bson
import pytest

from docshift.run.migrate import RunOptions, plan_units
from docshift.sources import mongodump
from docshift.sources.mongodump import MongodumpSource
from docshift.spec import parse_mapping


def _write(path: Path, n: int, seed: int, damage_at: int | None = None) -> list[int]:
    """``n`` documents of random sizes; the ends of the sound ones (before the damage)."""
    rng = random.Random(seed)
    ends: list[int] = []
    data = bytearray()
    for i in range(n):
        if damage_at is not None and i == damage_at:
            data += b"\xff\xff\xff\x7f garbage"  # a length no document can have
            break
        data += bson.encode({"_id": i, "pad": "x" * rng.randrange(0, 300)})
        ends.append(len(data))
    if damage_at is not None:
        for i in range(damage_at, n):
            data += bson.encode({"_id": i})
    path.write_bytes(bytes(data))
    return ends


def _reference(ends: list[int], size: int, damaged: bool, until: int) -> tuple[int, int] | None:
    """What hopping from the start gives: the first end at or after ``until``."""
    until = min(until, size)
    if until == 0:
        return 0, 0
    for k, end in enumerate(ends, start=1):
        if end >= until:
            return k, end
    return None if damaged else (len(ends), size)


@pytest.mark.parametrize(("seed", "damage"), [(1, None), (2, 150), (3, 3), (4, 0)])
def test_hops_agree_with_the_real_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       seed: int, damage: int | None) -> None:
    monkeypatch.setattr(mongodump, "MARK_EVERY", 7)  # marks all over a small file
    db = tmp_path / "db"
    db.mkdir()
    ends = _write(db / "c.bson", 300, seed, damage)
    size = (db / "c.bson").stat().st_size
    stream = MongodumpSource(db).stream("c")
    rng = random.Random(seed)
    untils = [0, 1, size, size + 5, *ends[:3], *ends[-3:]]
    untils += [e + d for e in ends[::11] for d in (-1, 0, 1)]
    untils += [rng.randrange(size + 1) for _ in range(200)]
    for until in untils:
        want = _reference(ends, size, damage is not None, until)
        assert stream._hop(until) == want, until
    assert stream.estimate_count() == (None if damage is not None else 300)


@pytest.mark.parametrize("parts", [2, 3, 5, 8])
def test_split_ranges_count_what_they_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           parts: int) -> None:
    monkeypatch.setattr(mongodump, "MARK_EVERY", 5)
    db = tmp_path / "db"
    db.mkdir()
    ends = _write(db / "c.bson", 257, parts)
    stream = MongodumpSource(db).stream("c")
    bounds = stream.split(parts)
    assert len(bounds) == parts - 1 and all(int(b) in ends for b in bounds)
    edges = [None, *bounds, None]
    fresh = MongodumpSource(db).stream("c")  # counts from the framing, not split's memory
    counts = []
    for start, end in zip(edges, edges[1:], strict=False):
        read = 0
        for d in stream.read(after=start):
            if end is not None and stream.past(d.position, end):
                break
            read += 1
            if d.position == end:
                break
        counts.append(read)
        assert stream.count_between(start, end) == read
        assert fresh.count_between(start, end) == read
    assert sum(counts) == 257


def test_planning_reads_the_file_about_once(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "db"
    db.mkdir()
    _write(db / "c.bson", 30_000, 5)
    size = (db / "c.bson").stat().st_size
    m = parse_mapping(f"""
source: {{kind: mongodump, path: "{db}"}}
tables:
  c:
    from: c
    primary_key: id
    columns:
      id: {{type: integer, from: _id}}
      pad: text
""", "m.yaml")
    plan_units(m, "", RunOptions(workers=1))  # imports and caches warmed up
    before = _bytes_read()
    units, _ = plan_units(m, "", RunOptions(workers=2, split_min_docs=1000))
    read = _bytes_read() - before
    assert len(units) == 2
    assert sum(u.estimate or 0 for u in units) == 30_000
    # counting, splitting and the ranges' counts: the file once, and a few fingerprints
    assert read < 1.3 * size, (read, size)


def _bytes_read() -> int:
    """Bytes this process has read with system calls so far (Linux)."""
    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs /proc/self/io")
    fields = dict(line.split(": ") for line in io.read_text().splitlines())
    return int(fields["rchar"])


def test_a_file_smaller_than_its_parts_is_not_cut_at_its_start(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    (db / "c.bson").write_bytes(bson.encode({}))  # 5 bytes, cut into 8
    stream = MongodumpSource(db).stream("c")
    assert stream.split(8) == []
    assert stream.count_between(None, None) == 1
