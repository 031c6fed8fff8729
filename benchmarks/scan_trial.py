"""A trial, not docshift: every element of a batch of BSON documents at once, with numpy.

    python benchmarks/scan_trial.py --docs 50000 --batch 5000 --repeat 5

Could a columnar load find and check the values of a dump without making a Python object
per value, and faster than ``bson.decode_all`` makes them? This scanner is the exact half
of such a path (what pymongoarrow's decoder does not give: every element's type, the fields
no mapping names, sound lengths); the script times it against ``bson.decode_all`` on the
documents of ``throughput.py``'s dump, interleaved in one process, and checks that it finds
every document clean and every element the tree names.

:func:`scan` walks all the documents of a buffer in lockstep, one element of each document
per step, following a :class:`PathTree` of the paths a mapping reads. For each element it
records which document it is in, which path of the tree it is (or that it is none), its
BSON type byte and where its value starts, and the element that contains it. Containers the
tree does not go into are stepped over by their length, never entered.

The scan is strict: a document whose bytes it cannot account for exactly (a length that
does not add up, an unknown type byte, a container of the wrong type where the tree goes
in, a field that appears twice, an unmapped field when those must be reported) is marked as
not *clean*, and its caller reads it the ordinary way instead. Nothing here decides what a
value becomes; it only finds the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median_high

import numpy as np

DOCUMENT, ARRAY, LEAF, SKIP = 0, 1, 2, 3
"""Kinds of tree node: an object the scan goes into, an array it goes into (every element
is the node's ``element``), a value it records, a value it steps over (an ignored path)."""

UNKNOWN = -1
"""The node of an element no path of the tree names."""
SKIPPED = -2
"""The node of an element inside a container no path goes into (checked, not recorded)."""
MAX_DEPTH = 100
"""Nesting deeper than this: the document is not clean (BSON decoders stop near here)."""

_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8,
          0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}
"""Value sizes of the fixed-size BSON types."""
_SIZED = {0x02: 4, 0x0D: 4, 0x0E: 4, 0x05: 5}
"""Types whose value is an int32 length and then that many bytes (plus this many)."""
_CONTAINER = (0x03, 0x04)

MAX_STEPS = 1 << 16
"""More elements than this in one document: the scan gives up on it."""


@dataclass
class PathTree:
    """The paths a mapping reads, as a tree of field names (node 0 is the document)."""

    kind: list[int] = field(default_factory=lambda: [DOCUMENT])
    element: list[int] = field(default_factory=lambda: [UNKNOWN])
    children: list[dict[bytes, int]] = field(default_factory=lambda: [{}])
    parent: list[int] = field(default_factory=lambda: [UNKNOWN])
    name: list[str] = field(default_factory=lambda: [""])

    def add(self, parent: int, key: str | None, kind: int) -> int:
        """The node for ``key`` under ``parent`` (the element of an array when ``key`` is
        None), made with ``kind`` if it is new; ValueError if it exists with another kind."""
        if key is None:
            node = self.element[parent]
        else:
            node = self.children[parent].get(key.encode(), UNKNOWN)
        if node != UNKNOWN:
            if self.kind[node] != kind:
                raise ValueError(f"path {self.path(node)!r} is read two ways")
            return node
        node = len(self.kind)
        self.kind.append(kind)
        self.element.append(UNKNOWN)
        self.children.append({})
        self.parent.append(parent)
        self.name.append("[]" if key is None else key)
        if key is None:
            self.element[parent] = node
        else:
            self.children[parent][key.encode()] = node
        return node

    def path(self, node: int) -> str:
        parts = []
        while node > 0:
            parts.append(self.name[node])
            node = self.parent[node]
        return ".".join(reversed(parts))


@dataclass
class Elements:
    """What :func:`scan` found: one entry per element (``doc``, ``node``, ``type``, value
    offset ``value``, containing element ``parent``, -1 at the top), in document order
    within each document; and which documents are ``clean``."""

    doc: np.ndarray
    node: np.ndarray
    type: np.ndarray
    value: np.ndarray
    parent: np.ndarray
    clean: np.ndarray


def _sig(parent: np.ndarray, length: np.ndarray, head: np.ndarray,
         tail: np.ndarray) -> np.ndarray:
    """A 64-bit signature of (parent node, key length, first and last 8 key bytes)."""
    with np.errstate(over="ignore"):
        return ((head * np.uint64(0x9E3779B97F4A7C15))
                ^ (tail * np.uint64(0xC2B2AE3D27D4EB4F))
                ^ (length.astype(np.uint64) * np.uint64(0x165667B19E3779F9))
                ^ (parent.astype(np.uint64) * np.uint64(0x27D4EB2F165667C5)))


class Buffer:
    """A batch's bytes with views for reading little-endian numbers at any offset."""

    PAD = 16

    def __init__(self, data: bytes) -> None:
        raw = np.frombuffer(data + bytes(self.PAD), dtype=np.uint8)
        self.u8 = raw
        self.size = len(data)
        n = len(raw)
        self.i32 = np.ndarray((n - 3,), "<i4", raw, 0, (1,))
        self.u64 = np.ndarray((n - 7,), "<u8", raw, 0, (1,))
        self.i64 = np.ndarray((n - 7,), "<i8", raw, 0, (1,))
        self.f64 = np.ndarray((n - 7,), "<f8", raw, 0, (1,))
        at = np.arange(n, dtype=np.int64)
        self.next_zero = np.minimum.accumulate(np.where(raw == 0, at, n - 1)[::-1])[::-1]


_LOW = [np.uint64((1 << (8 * k)) - 1) if k < 8 else np.uint64(0xFFFFFFFFFFFFFFFF)
        for k in range(9)]


class _Lookup:
    """The tree's (parent, key) → child table in a form numpy can search.

    A key is found by a signature of its parent, its length and its first and last 8 bytes,
    then confirmed by comparing those exactly; a name longer than 16 bytes has its middle
    bytes compared one by one as well."""

    def __init__(self, tree: PathTree) -> None:
        rows = []
        self.long: dict[int, np.ndarray] = {}
        for parent, kids in enumerate(tree.children):
            for key, node in kids.items():
                k = len(key)
                head = int.from_bytes((key + bytes(8))[:8], "little") & int(_LOW[min(k, 8)])
                tail = int.from_bytes(key[-8:], "little") if k >= 8 else head
                rows.append((parent, k, head, tail, node))
                if k > 16:
                    self.long[node] = np.frombuffer(key, np.uint8)
        parent_a = np.array([r[0] for r in rows], np.int64)
        length_a = np.array([r[1] for r in rows], np.int64)
        head_a = np.array([r[2] for r in rows], np.uint64)
        tail_a = np.array([r[3] for r in rows], np.uint64)
        sigs = _sig(parent_a, length_a, head_a, tail_a)
        if len(np.unique(sigs)) != len(sigs):
            raise ValueError("two field names of the mapping cannot be told apart")
        order = np.argsort(sigs, kind="stable")
        self.sigs = sigs[order]
        self.parent, self.length = parent_a[order], length_a[order]
        self.head, self.tail = head_a[order], tail_a[order]
        self.nodes = np.array([r[4] for r in rows], np.int64)[order]
        self.lows = np.array(_LOW, np.uint64)

    def find(self, buf: Buffer, parent: np.ndarray, start: np.ndarray,
             length: np.ndarray) -> np.ndarray:
        """The child node of ``parent`` named by each key (bytes ``start`` on, ``length``
        long), or UNKNOWN."""
        if not len(self.sigs) or not len(parent):
            return np.full(len(parent), UNKNOWN, np.int64)
        u64 = buf.u64
        head = u64[start] & self.lows[np.minimum(length, 8)]
        tail = np.where(length >= 8, u64[np.maximum(start + length - 8, 0)], head)
        at = np.searchsorted(self.sigs, _sig(parent, length, head, tail))
        at[at >= len(self.sigs)] = 0
        same = ((self.head[at] == head) & (self.tail[at] == tail)
                & (self.length[at] == length) & (self.parent[at] == parent))
        out = np.where(same, self.nodes[at], UNKNOWN)
        for node, name in self.long.items():
            idx = np.flatnonzero(out == node)
            for j in range(8, len(name) - 8):
                idx = idx[buf.u8[start[idx] + j] == name[j]]
            wrong = np.ones(len(out), bool)
            wrong[idx] = False
            out[(out == node) & wrong] = UNKNOWN
        return out


def scan(buf: Buffer, starts: np.ndarray, ends: np.ndarray, tree: PathTree,
         lookup: _Lookup, allowed: np.ndarray, report_unknown: bool) -> Elements:
    """Find the elements of the documents ``buf[starts[i]:ends[i]]`` along ``tree``.

    ``allowed[node, type]`` says which BSON types each node may hold (an element of another
    type makes its document not clean); ``report_unknown``: an element no path names makes
    its document not clean (it must be reported as unmapped). Every container is checked
    down to its last byte, the ones no path goes into included, so that a document is clean
    only if it is sound BSON throughout.
    """
    n = len(starts)
    clean = np.ones(n, bool)
    cap = MAX_DEPTH + 2
    # per (depth, document): the container's node, element id and end (its last byte)
    st_node = np.zeros(cap * n, np.int64)
    st_elem = np.full(cap * n, -1, np.int64)
    st_end = np.zeros(cap * n, np.int64)
    kind = np.array(tree.kind + [SKIP, SKIP], np.int64)  # -2, -1: stepped through
    element = np.array(tree.element + [SKIPPED, SKIPPED], np.int64)
    allowed_flat = np.concatenate([allowed, np.ones((2, 256), bool)]).ravel()
    u8, i32, next_zero = buf.u8, buf.i32, buf.next_zero
    last = len(i32) - 1
    starts = starts.astype(np.int64)
    ends = ends.astype(np.int64)
    sound = (ends <= buf.size) & (i32[np.minimum(starts, last)] == ends - starts)
    clean &= sound
    active = np.flatnonzero(sound)
    st_end[active] = ends[active] - 1
    pos = starts[active] + 4
    slot = active.copy()  # depth * n + document
    out: list[tuple[np.ndarray, ...]] = []
    count = 0
    steps = 0
    while len(active):
        steps += 1
        if steps > MAX_STEPS:
            clean[active] = False
            break
        t = u8[pos].astype(np.int64)
        term = t == 0
        remove = None
        if term.any():
            ti = np.flatnonzero(term)
            s_t = slot[ti]
            ok = st_end[s_t] == pos[ti]  # a container ends exactly where its length said
            clean[active[ti[~ok]]] = False
            remove = np.zeros(len(active), bool)
            remove[ti[~ok | (s_t < n)]] = True
            slot[ti] -= n
            pos[ti] += 1
            ei = np.flatnonzero(~term)
            a, p, sl, ty = active[ei], pos[ei], slot[ei], t[ei]
        else:
            ei = None
            a, p, sl, ty = active, pos, slot, t
        if len(a):
            key = p + 1
            key_end = next_zero[key]
            v = key_end + 1
            vr = np.minimum(v, last)
            parent = st_node[sl]
            pk = kind[parent]
            node = element[parent]  # right for arrays and for what is stepped through
            named = np.flatnonzero(pk == DOCUMENT)
            if len(named):
                node[named] = lookup.find(buf, parent[named], key[named],
                                          (key_end - key)[named])
            size = np.where(_VAR[ty], i32[vr] + _EXTRA[ty], _SIZE[ty])
            nxt = v + size
            end_byte = u8[np.clip(nxt - 1, 0, last)]
            bad = ((size < _MIN[ty]) | (nxt > st_end[sl]) | (_NUL[ty] & (end_byte != 0))
                   | ((ty == 0x08) & (u8[vr] > 1)))
            if report_unknown:
                bad |= node == UNKNOWN
            bad |= ~allowed_flat[(node * 256 + ty) % len(allowed_flat)]
            known = node >= 0
            rec = np.flatnonzero(known & ~bad)
            out.append((a[rec], node[rec], ty[rec], v[rec], st_elem[sl[rec]], rec + count))
            box = _BOX[ty] & ~bad
            if box.any():
                go = np.flatnonzero(box)
                nk = kind[node[go]]
                ty_go = ty[go]
                inner = np.where(((ty_go == 0x03) & (nk == DOCUMENT))
                                 | ((ty_go == 0x04) & (nk == ARRAY)), node[go], SKIPPED)
                deeper = sl[go] + n
                too_deep = deeper >= cap * n
                if too_deep.any():
                    bad[go[too_deep]] = True
                    go, inner, deeper = go[~too_deep], inner[~too_deep], deeper[~too_deep]
                st_node[deeper] = inner
                st_end[deeper] = nxt[go] - 1
                nxt[go] = v[go] + 4
                sl[go] = deeper
                # the container's element id, for its children (-1: not recorded)
                st_elem[deeper] = np.where(known[go], count + go, -1)
            count += len(a)
            if ei is None:
                pos, slot = nxt, sl
            else:
                pos[ei], slot[ei] = nxt, sl
            if bad.any():
                clean[a[bad]] = False
                if remove is None:
                    remove = np.zeros(len(active), bool)
                remove[bad if ei is None else ei[bad]] = True
        if remove is not None and remove.any():
            keep = ~remove
            active, pos, slot = active[keep], pos[keep], slot[keep]
    cols = list(zip(*out, strict=True)) if out else [()] * 6
    doc, node, ty, value, parent, ident = (np.concatenate(c) if c else np.zeros(0, np.int64)
                                           for c in cols)
    # element ids were numbered per step with gaps; renumber them densely
    dense = np.full(count + 1, -1, np.int64)
    dense[ident] = np.arange(len(ident))
    parent = np.where(parent >= 0, dense[parent], -1)
    el = Elements(doc, node, ty, value, parent, clean)
    _no_repeats(el, tree)
    return el


def _tables() -> tuple[np.ndarray, ...]:
    size = np.full(256, -1, np.int64)
    for t, s in _FIXED.items():
        size[t] = s
    var = np.zeros(256, bool)
    extra = np.zeros(256, np.int64)
    for t, e in _SIZED.items():
        var[t], extra[t] = True, e
    for t in _CONTAINER:
        var[t] = True
    minimum = np.where(var, 5, 0)
    nul = var.copy()
    nul[0x05] = False
    box = np.zeros(256, bool)
    box[list(_CONTAINER)] = True
    return size, var, extra, minimum, nul, box


_SIZE, _VAR, _EXTRA, _MIN, _NUL, _BOX = _tables()


def _no_repeats(el: Elements, tree: PathTree) -> None:
    """A field twice in one object: its document is not clean (a decoder keeps only one)."""
    kind = np.array(tree.kind, np.int64)
    parent_node = np.array(tree.parent, np.int64)
    named = kind[parent_node[el.node]] == DOCUMENT
    sel = np.flatnonzero(named & el.clean[el.doc])
    if not len(sel):
        return
    # the same node twice in the same object (top-level fields all have parent -1)
    combo = (el.parent[sel] + 1) * len(tree.kind) + el.node[sel]
    pair = np.stack([el.doc[sel], combo], axis=1)
    _, first, counts = np.unique(pair, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        el.clean[pair[first[counts > 1], 0]] = False


def users_tree() -> PathTree:
    """The paths ``throughput.py``'s mapping reads from a Users document."""
    tree = PathTree()
    for k in ("_id", "email", "name", "age", "score", "active", "status", "createdAt",
              "manager", "__v"):
        tree.add(0, k, LEAF)
    profile = tree.add(0, "profile", DOCUMENT)
    for k in ("city", "bio"):
        tree.add(profile, k, LEAF)
    tags = tree.add(0, "tags", ARRAY)
    tree.add(tags, None, LEAF)
    addresses = tree.add(0, "addresses", ARRAY)
    address = tree.add(addresses, None, DOCUMENT)
    for k in ("street", "zip", "primary"):
        tree.add(address, k, LEAF)
    return tree


def main() -> None:
    import argparse
    import sys
    import tempfile
    import time
    from pathlib import Path

    import bson

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import write_dump

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=50_000, help="documents in the dump")
    ap.add_argument("--batch", type=int, default=5_000, help="documents per scan")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = (write_dump(Path(tmp), args.docs) / "bench" / "Users.bson").read_bytes()
    ends = []
    at = 0
    while at < len(data):
        at += int.from_bytes(data[at:at + 4], "little")
        ends.append(at)
    tree = users_tree()
    lookup = _Lookup(tree)
    allowed = np.ones((len(tree.kind), 256), bool)
    batches = [ends[i:i + args.batch] for i in range(0, len(ends), args.batch)]
    spans = []
    start = 0
    for b in batches:
        spans.append((start, b[-1], np.array([start] + b[:-1]) - start, np.array(b) - start))
        start = b[-1]
    n = len(ends)
    scan_s, decode_s = [], []
    for _ in range(args.repeat):
        t0 = time.process_time()
        for lo, hi, s, e in spans:
            el = scan(Buffer(data[lo:hi]), s, e, tree, lookup, allowed, True)
            if not el.clean.all():
                raise SystemExit("a clean document was found not clean")
        scan_s.append(time.process_time() - t0)
        t0 = time.process_time()
        for lo, hi, _s, _e in spans:
            bson.decode_all(data[lo:hi])
        decode_s.append(time.process_time() - t0)
    med = median_high(scan_s), median_high(decode_s)
    print(f"{n:,} Users documents, {args.batch:,} per batch, median of {args.repeat}:")
    print(f"  numpy scan       {med[0]:.3f} s CPU  {med[0] / n * 1e6:6.2f} us/doc")
    print(f"  bson.decode_all  {med[1]:.3f} s CPU  {med[1] / n * 1e6:6.2f} us/doc")
    print(f"  scan / decode    {med[0] / med[1]:.2f}x")
    json_route(data, ends, args.repeat)


def json_route(data: bytes, ends: list[int], repeat: int) -> None:
    """The other exact route at hand: BSON → Extended JSON in C (python-bsonjs), then
    pyarrow's JSON reader with the mapping's schema, which refuses unknown fields and
    values of another JSON type."""
    import io
    import time

    try:
        import bsonjs
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:
        print("  (pip install python-bsonjs pyarrow for the Extended JSON route)")
        return
    oid, date = pa.struct([("$oid", pa.string())]), pa.struct([("$date", pa.string())])
    schema = pa.schema([
        ("_id", oid), ("email", pa.string()), ("name", pa.string()), ("age", pa.int64()),
        ("score", pa.float64()), ("active", pa.bool_()), ("status", pa.string()),
        ("createdAt", date), ("profile", pa.struct([("city", pa.string()),
                                                    ("bio", pa.string())])),
        ("manager", oid), ("tags", pa.list_(pa.string())),
        ("addresses", pa.list_(pa.struct([("street", pa.string()), ("zip", pa.string()),
                                          ("primary", pa.bool_())]))), ("__v", pa.int64())])
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    read = pj.ReadOptions(use_threads=False, block_size=1 << 24)
    docs = [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    to_json, from_json = [], []
    for _ in range(repeat):
        t0 = time.process_time()
        text = "\n".join([bsonjs.dumps(d) for d in docs]).encode()
        t1 = time.process_time()
        table = pj.read_json(io.BytesIO(text), read_options=read, parse_options=parse)
        t2 = time.process_time()
        to_json.append(t1 - t0)
        from_json.append(t2 - t1)
        assert table.num_rows == len(docs)
    a, b = median_high(to_json), median_high(from_json)
    n = len(docs)
    print(f"  bsonjs.dumps     {a:.3f} s CPU  {a / n * 1e6:6.2f} us/doc")
    print(f"  pyarrow JSON     {b:.3f} s CPU  {b / n * 1e6:6.2f} us/doc  (read_json, schema)")


if __name__ == "__main__":
    main()
