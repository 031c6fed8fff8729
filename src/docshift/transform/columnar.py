"""Whole batches of BSON documents to table rows as Arrow columns: the columnar path.

The row path (:mod:`docshift.transform.rows`) decodes every document into Python objects
and builds each row in Python. For a stream whose mapping this module can express, a batch
of raw BSON documents goes instead through:

1. **a compiled scanner** (``docshift._bsonscan``, C): it walks each document element by
   element, checking every length, bound and terminator as a BSON decoder does, and passes
   a document only when every element is one the mapping reads or ignores, with a BSON
   type converted here exactly (a string for a text column, an int32 or int64 for an
   integer column, …, or null), no key repeats, and no string it reads holds a NUL. For a
   passing document it reports where each read value lies, and each element of the
   unnested arrays;
2. **numpy and pyarrow** read the values straight from the buffer (fixed-size values
   gathered, strings copied into Arrow buffers, ObjectId → UUID as a byte permutation),
   then convert and check them column by column (range, length, enum, numeric format,
   UTF-8), as the row path's converters would;
3. **pgpq** encodes each table's rows for binary COPY.

A document the scanner does not pass, or whose values fail any check, is left to the row
path, which loads it or quarantines it with its cause: the columnar path loads only what the
row path would load, identically, and gives everything else to it.
``tests/transform/test_columnar.py`` runs both paths over generated datasets with bad rates
and edge cases, and over damaged documents, and requires identical tables and quarantine.

It needs the compiled scanner (built at install where a C compiler is present) and numpy,
pyarrow and pgpq (``pip install "docshift[fast]"``). Without them, or for a mapping it does
not express (:func:`compile_columnar` says why), every document takes the row path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from docshift.sources.base import SourceDocument
from docshift.spec.model import Mapping
from docshift.target.ddl import load_columns
from docshift.transform.pgtypes import PgType
from docshift.transform.rows import (
    SOURCE_DOC_COLUMN,
    SOURCE_KEY_COLUMN,
    DocumentRows,
    StreamPlan,
    column_types,
)

# the optional parts of the columnar path, imported by available() (0.4 s of imports that
# a small run would not win back)
np: Any = None
pa: Any = None
pc: Any = None
pgpq: Any = None
_bsonscan: Any = None


def available() -> bool:
    """Whether the columnar path's scanner and libraries are installed; imports them."""
    global np, pa, pc, pgpq, _bsonscan, _HEX
    if _bsonscan is None:
        try:
            import numpy
            import pgpq as encoder
            import pyarrow
            import pyarrow.compute

            from docshift import _bsonscan as scanner
        except ImportError:
            return False
        np, pa, pc, pgpq = numpy, pyarrow, pyarrow.compute, encoder
        _HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)),
                             dtype=np.uint8).reshape(256, 2)
        _bsonscan = scanner
    return True


def imported() -> bool:
    """Whether :func:`available` has imported them already (in this process)."""
    return _bsonscan is not None


# BSON element types this module reads
DOUBLE, STRING, DOCUMENT, ARRAY, OBJECTID, BOOL, DATETIME, NULL, INT32, INT64 = (
    0x01, 0x02, 0x03, 0x04, 0x07, 0x08, 0x09, 0x0A, 0x10, 0x12)

_SCALARS = frozenset({DOUBLE, STRING, OBJECTID, BOOL, DATETIME, NULL, INT32, INT64})
"""What an ignored field may hold for the scanner to skip it (no subdocument, no array:
their insides are the row path's to account for)."""

_INT_BOUNDS = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1),
               "bigint": (-(2**63), 2**63 - 1)}

# the milliseconds of the first and the last instant Python's datetime holds (years 1 to
# 9999): the row path quarantines a BSON date outside them, so this path leaves it to it
_MS_MIN = -62_135_596_800_000
_MS_MAX = 253_402_300_799_999

class NotColumnar(Exception):
    """The mapping has something the columnar path does not express (the message says what)."""


# --------------------------------------------------------------------------- compilation


@dataclass(eq=False)
class Read:
    """One value a mapping reads, with the BSON types converted here exactly."""

    kinds: frozenset[int]
    slot: int = -1
    """Where the scanner reports it: a document slot, or an element's inner slot (-1: the
    array element itself)."""
    key: bytes = b""


@dataclass(eq=False)
class Level:
    """A document level: the root, a subdocument, or an array's element documents."""

    keys: dict[str, Read | Level | Array] = field(default_factory=dict)
    slot: int = -1
    """The slot of the subdocument element (-1 for the root and for elements)."""
    key: bytes = b""
    ignored: set[str] = field(default_factory=set)


@dataclass(eq=False)
class Array:
    """An unnested array: its element (a value or a document level)."""

    element: Read | Level
    slot: int = -1
    key: bytes = b""
    index: int = -1
    """Its record table in the scanner's output."""
    inner: int = 0
    """Inner slots of each element record (the fields its documents' level reads)."""


@dataclass
class Column:
    """How one column of one table is filled."""

    name: str
    pgtype: PgType
    nullable: bool
    source: str  # "doc" (a document value), "item" (an element value), "index"
    read: Read | None = None
    enum: frozenset[str] | None = None
    max_length: int | None = None


@dataclass
class TablePlan:
    table: str
    columns: list[Column]
    array: Array | None
    """The unnested array (None: one row per document)."""
    schema: Any = None


@dataclass
class ColumnarPlan:
    """The compiled columnar form of one stream's plan."""

    stream: str
    root: Level
    id_read: Read
    tables: list[TablePlan]
    slots: int
    """Value slots per document."""
    levels: tuple[Any, ...]
    """The scanner's levels (see ``_bsonscan.c``)."""
    arrays: tuple[Any, ...]


def compile_columnar(m: Mapping, plan: StreamPlan) -> ColumnarPlan:
    """The columnar form of ``plan``; raises :class:`NotColumnar` saying what it lacks."""
    if not available():
        raise NotColumnar('numpy, pyarrow, pgpq or the compiled scanner are not installed '
                          '(pip install "docshift[fast]" on a machine with a C compiler)')
    if m.source.kind != "mongodump":
        raise NotColumnar("only mongodump sources are read in columns")
    if plan.kv:
        raise NotColumnar("key-value streams are not read in columns")
    if not plan.report_unmapped:
        raise NotColumnar("unmapped: ignore is not supported (only report)")
    root = Level()
    tables: list[TablePlan] = []
    for feed in plan.feeds:
        tname = feed.table
        table = m.tables[tname]
        if feed.patterns is not None or feed.where or feed.extra:
            raise NotColumnar(f"table {tname!r}: key patterns, where and catch-all columns "
                              "are not supported")
        array = None
        if feed.unnest is not None:
            segs = feed.unnest_segments
            if not segs:
                raise NotColumnar(f"table {tname!r}: unnest of the document itself")
            array = _array_at(root, segs, tname)
        columns = []
        for col in feed.columns:
            if col.value_map is not None or col.default is not None:
                raise NotColumnar(f"table {tname!r}, column {col.name!r}: value maps and "
                                  "defaults are not supported")
            kinds = _kinds_for(col.pgtype, tname, col.name)
            enum = None
            if col.enum is not None:
                if not all(type(v) is str for v in col.enum) or col.pgtype.base not in (
                        "text", "varchar"):
                    raise NotColumnar(f"table {tname!r}, column {col.name!r}: enum of "
                                      "non-text values")
                enum = frozenset(col.enum)
            c = Column(col.name, col.pgtype, col.nullable, "doc", enum=enum,
                       max_length=col.max_length)
            head, _, rest = col.path.partition(".")
            if head == "$index" and not rest and array is not None:
                if col.pgtype.base not in _INT_BOUNDS:
                    raise NotColumnar(f"table {tname!r}, column {col.name!r}: $index into "
                                      f"{col.pgtype.sql}")
                c.source = "index"
            elif head == "$item" and array is not None:
                c.source = "item"
                c.read = _element_read(array, rest.split(".") if rest else [], kinds,
                                       tname, col.name)
            elif head.startswith("$") or not all(_plain(s) for s in col.path.split(".")):
                raise NotColumnar(f"table {tname!r}, column {col.name!r}: path "
                                  f"{col.path!r} is not supported")
            else:
                c.read = _read_at(root, col.path.split("."), kinds, tname, col.name)
            columns.append(c)
        for path in table.ignore:
            segs = path.split(".")
            if not all(_plain(s) for s in segs):
                raise NotColumnar(f"table {tname!r}: ignore path {path!r} is not supported")
            _ignore_at(root, segs, tname)
        tables.append(TablePlan(tname, columns, array))
    id_read = root.keys.get("_id")
    if not isinstance(id_read, Read) or OBJECTID not in id_read.kinds:
        raise NotColumnar("the stream's _id is not read as an ObjectId")
    id_read.kinds = frozenset({OBJECTID})  # the source key: other ids take the row path
    spec = _Spec()
    slots = _Slots()
    spec.level(root, slots)
    cplan = ColumnarPlan(plan.stream, root, id_read, tables, slots.n, tuple(spec.levels),
                         tuple(spec.arrays))
    for tp in tables:
        _prepare_encoder(m, tp)
    return cplan


def _plain(seg: str) -> bool:
    return bool(seg) and not seg.isdigit() and not seg.startswith("$")


def _kinds_for(t: PgType, tname: str, cname: str) -> frozenset[int]:
    """The BSON types converted here exactly into ``t`` (besides null)."""
    if t.array:
        raise NotColumnar(f"table {tname!r}, column {cname!r}: array columns")
    base = t.base
    if base in ("text", "varchar"):
        return frozenset({STRING})
    if base in _INT_BOUNDS:
        return frozenset({INT32, INT64})
    if base == "double precision":
        return frozenset({DOUBLE, INT32, INT64})  # an int64 rounds as float() rounds it
    if base == "boolean":
        return frozenset({BOOL})
    if base == "timestamptz":
        return frozenset({DATETIME})
    if base == "uuid":
        return frozenset({OBJECTID})
    if base == "numeric" and t.precision is not None and t.precision <= 38:
        return frozenset({STRING, INT32, INT64})
    raise NotColumnar(f"table {tname!r}, column {cname!r}: type {t.sql} is not supported")


def _level_at(root: Level, segs: list[str], tname: str) -> Level:
    level = root
    for s in segs:
        node = level.keys.get(s)
        if node is None:
            node = level.keys[s] = Level(key=s.encode())
        if not isinstance(node, Level) or s in level.ignored:
            raise NotColumnar(f"table {tname!r}: {'.'.join(segs)!r} is read both as a value "
                              "and as a subdocument")
        level = node
    return level


def _read_at(root: Level, segs: list[str], kinds: frozenset[int], tname: str,
             cname: str) -> Read:
    level = _level_at(root, segs[:-1], tname)
    return _leaf(level, segs[-1], kinds, tname, cname)


def _leaf(level: Level, key: str, kinds: frozenset[int], tname: str, cname: str) -> Read:
    node = level.keys.get(key)
    if node is None:
        node = level.keys[key] = Read(kinds, key=key.encode())
    elif not isinstance(node, Read) or key in level.ignored:
        raise NotColumnar(f"table {tname!r}, column {cname!r}: {key!r} is read both as a "
                          "value and as a container")
    elif node.kinds != kinds:
        # read by two columns of different types: only what both convert exactly
        node.kinds = node.kinds & kinds
        if not node.kinds:
            raise NotColumnar(f"table {tname!r}, column {cname!r}: {key!r} is read as "
                              "types no BSON type converts to exactly")
    return node


def _array_at(root: Level, segs: tuple[str, ...], tname: str) -> Array:
    level = _level_at(root, list(segs[:-1]), tname)
    node = level.keys.get(segs[-1])
    if node is None:
        node = level.keys[segs[-1]] = Array(Level(), key=segs[-1].encode())
    if not isinstance(node, Array):
        raise NotColumnar(f"table {tname!r}: the unnested {'.'.join(segs)!r} is also read "
                          "as a value")
    return node


def _element_read(array: Array, segs: list[str], kinds: frozenset[int], tname: str,
                  cname: str) -> Read:
    if not segs:  # $item: the element itself
        if isinstance(array.element, Level):
            if array.element.keys:
                raise NotColumnar(f"table {tname!r}: elements read both whole and by field")
            array.element = Read(kinds)
        elif array.element.kinds != kinds:
            array.element.kinds &= kinds
            if not array.element.kinds:
                raise NotColumnar(f"table {tname!r}, column {cname!r}: $item read as "
                                  "two types")
        return array.element
    if not all(_plain(s) for s in segs):
        raise NotColumnar(f"table {tname!r}, column {cname!r}: $item path not supported")
    if isinstance(array.element, Read):
        raise NotColumnar(f"table {tname!r}: elements read both whole and by field")
    level = _level_at(array.element, segs[:-1], tname)
    return _leaf(level, segs[-1], kinds, tname, cname)


def _ignore_at(root: Level, segs: list[str], tname: str) -> None:
    level = root
    for s in segs[:-1]:
        node = level.keys.get(s)
        if node is None:
            return  # under a field nothing reads: the row path reports it or not
        if not isinstance(node, Level):
            raise NotColumnar(f"table {tname!r}: ignore path {'.'.join(segs)!r} runs "
                              "through a value")
        level = node
    key = segs[-1]
    if key in level.keys:
        raise NotColumnar(f"table {tname!r}: {'.'.join(segs)!r} is both read and ignored")
    level.ignored.add(key)


def _mask(kinds: frozenset[int] | set[int]) -> int:
    out = 0
    for k in kinds:
        out |= 1 << k
    return out


class _Slots:
    def __init__(self) -> None:
        self.n = 0

    def take(self) -> int:
        self.n += 1
        return self.n - 1


class _Spec:
    """The scanner's levels and arrays for a tree of :class:`Level`."""

    def __init__(self) -> None:
        self.levels: list[Any] = []
        self.arrays: list[Any] = []

    def level(self, level: Level, slots: _Slots) -> int:
        at = len(self.levels)
        self.levels.append(None)  # a subdocument's level comes after its parent's
        entries = []
        for name, node in level.keys.items():
            key = name.encode()
            node.slot = slots.take()
            if isinstance(node, Read):
                entries.append((key, 0, _mask(node.kinds | {NULL}), node.slot, 0))
            elif isinstance(node, Level):
                child = self.level(node, slots)
                entries.append((key, 1, _mask({DOCUMENT, NULL}), node.slot, child))
            else:
                entries.append((key, 2, _mask({ARRAY, NULL}), node.slot, self.array(node)))
        entries += [(name.encode(), 3, _mask(_SCALARS), -1, 0) for name in sorted(level.ignored)]
        self.levels[at] = tuple(entries)
        return at

    def array(self, array: Array) -> int:
        array.index = len(self.arrays)
        self.arrays.append(None)
        el = array.element
        if isinstance(el, Read):
            self.arrays[array.index] = (_mask(el.kinds | {NULL}), -1, 0)
        else:
            inner = _Slots()
            if any(isinstance(n, Array) for n in _nodes(el)):
                raise NotColumnar("an unnested array inside unnested elements")
            lvl = self.level(el, inner)
            array.inner = inner.n
            self.arrays[array.index] = (_mask({DOCUMENT, NULL}), lvl, inner.n)
        return array.index


def _nodes(level: Level) -> list[Any]:
    out: list[Any] = []
    for node in level.keys.values():
        out.append(node)
        if isinstance(node, Level):
            out += _nodes(node)
    return out


def _prepare_encoder(m: Mapping, tp: TablePlan) -> None:
    types = column_types(m, m.tables[tp.table])
    names = load_columns(m.tables[tp.table])
    fields = [pa.field(c.name, _arrow_type(types[c.name])) for c in tp.columns]
    fields += [pa.field(SOURCE_KEY_COLUMN, pa.string()), pa.field(SOURCE_DOC_COLUMN, pa.int64())]
    if [f.name for f in fields] != list(names):
        raise NotColumnar(f"table {tp.table!r}: its loaded columns are not the mapped ones")
    tp.schema = pa.schema(fields)


def _arrow_type(t: PgType) -> Any:
    base = t.base
    if base in ("text", "varchar"):
        return pa.string()
    if base == "smallint":
        return pa.int16()
    if base == "integer":
        return pa.int32()
    if base == "bigint":
        return pa.int64()
    if base == "double precision":
        return pa.float64()
    if base == "boolean":
        return pa.bool_()
    if base == "timestamptz":
        return pa.timestamp("us", tz="UTC")
    if base == "uuid":
        return pa.binary(16)  # binary COPY of a uuid is its 16 bytes, as of a bytea
    if base == "numeric":
        return pa.decimal128(t.precision, t.scale or 0)
    raise NotColumnar(f"type {t.sql} is not supported")  # pragma: no cover - _kinds_for


# --------------------------------------------------------------------------- decoding


@dataclass
class Segment:
    """The columnar rows of some documents of one buffer, and which of them the columnar
    path leaves to the row path (``rest``: their indexes among the documents given)."""

    tables: dict[str, Any]
    """Table → Arrow record batch of its rows (the documents not in ``rest``)."""
    rest: list[int]


class ColumnarDecoder:
    """Decodes documents of a :class:`ColumnarPlan` (the per-batch half of the path)."""

    def __init__(self, cplan: ColumnarPlan, options: Any) -> None:
        self.cplan = cplan
        # the row path's text limit: varchar(n) or max_text_chars, whichever is smaller
        self.max_text_chars = options.max_text_chars

    def decode(self, buf: bytes, start: int, ends: Any, doc_numbers: Any) -> Segment:
        """The rows of the documents ``buf[start:ends[0]]``, ``buf[ends[0]:ends[1]]``, …
        (``doc_numbers``: their run-wide numbers)."""
        cp = self.cplan
        ends = np.ascontiguousarray(ends, dtype=np.int64)
        status, slots, records = _bsonscan.scan(buf, start, ends, cp.slots, cp.levels,
                                                cp.arrays)
        n = len(ends)
        bad = np.frombuffer(status, dtype=np.uint8) != 0
        values = _DocValues(np.frombuffer(buf, dtype=np.uint8),
                            np.frombuffer(slots, dtype=np.int64).reshape(n, cp.slots, 3))
        ident = values.of(cp.id_read)
        bad |= ident.kinds != OBJECTID
        per_table: dict[str, tuple[list[Any], Any]] = {}
        elements: dict[int, _Elements] = {}
        for tp in cp.tables:
            el = None
            rows_doc = None
            if tp.array is not None:
                el = elements.get(tp.array.index)
                if el is None:
                    el = elements[tp.array.index] = _Elements(values.b, tp.array,
                                                              records[tp.array.index], n)
                rows_doc = el.doc
            arrays = []
            for c in tp.columns:
                if c.source == "index":
                    assert el is not None
                    arrays.append(_index_column(el.index, c.pgtype, bad, el.doc))
                    continue
                assert c.read is not None
                if c.source == "item":
                    assert el is not None
                    val, row_bad = self._column(el.values(c.read), c)
                    _mark(bad, el.doc, row_bad)
                else:
                    val, doc_bad = self._column(values.of(c.read), c)
                    bad |= doc_bad
                    if rows_doc is not None:
                        val = val.take(pa.array(rows_doc))
                arrays.append(val)
            per_table[tp.table] = (arrays, rows_doc)
        keys = _hex_keys(ident.fixed(12))
        numbers = pa.array(np.asarray(doc_numbers, dtype=np.int64))
        good = ~bad
        out = {}
        for tp in cp.tables:
            arrays, rows_doc = per_table[tp.table]
            if rows_doc is None:
                keep = pa.array(good)
                cols = [*arrays, keys, numbers]
            else:
                keep = pa.array(good[rows_doc])
                idx = pa.array(rows_doc)
                cols = [*arrays, keys.take(idx), numbers.take(idx)]
            batch = pa.RecordBatch.from_arrays(cols, schema=tp.schema)
            out[tp.table] = batch.filter(keep)
        return Segment(out, np.flatnonzero(bad).tolist())

    def _column(self, v: _Values, c: Column) -> tuple[Any, Any]:
        """The Arrow column of ``c`` from values ``v``, and where the row path must decide."""
        t = c.pgtype
        base = t.base
        null = v.kinds == NULL
        missing = ~v.present | null
        bad = missing.copy() if not c.nullable else np.zeros(len(missing), dtype=bool)
        valid = ~missing
        if base in ("text", "varchar"):
            arr, chars, wrong = v.strings(valid)
            bad |= wrong
            limit = t.length
            if self.max_text_chars is not None and (limit is None
                                                    or self.max_text_chars < limit):
                limit = self.max_text_chars
            for lim in (limit, c.max_length):
                if lim is not None:
                    bad |= valid & (chars > lim)
            if c.enum is not None:
                inside = pc.is_in(arr, value_set=pa.array(sorted(c.enum), pa.string()))
                bad |= valid & ~_flags(inside)
            return arr, bad
        if base in _INT_BOUNDS:
            lo, hi = _INT_BOUNDS[base]
            out = _integers(v, valid)
            bad |= (out < lo) | (out > hi)
            width = {"smallint": np.int16, "integer": np.int32, "bigint": np.int64}[base]
            return pa.array(np.where(bad, 0, out).astype(width), mask=missing), bad
        if base == "double precision":
            ints = valid & (v.kinds != DOUBLE)
            out = v.fixed(8, valid & ~ints).view("<f8").ravel()
            if ints.any():
                out = np.where(ints, _integers(v, ints).astype(np.float64), out)
            return pa.array(out, mask=missing), bad
        if base == "boolean":
            out = v.fixed(1, valid).ravel().astype(bool)
            return pa.array(out, mask=missing), bad
        if base == "timestamptz":
            ms = v.fixed(8, valid).view("<i8").ravel()
            bad |= valid & ((ms < _MS_MIN) | (ms > _MS_MAX))
            us = np.where(bad | missing, 0, ms) * 1000
            return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=missing), bad
        if base == "uuid":
            return _uuids(v.fixed(12, valid), missing), bad
        if base == "numeric":
            p, s = t.precision or 0, t.scale or 0
            ints = valid & (v.kinds != STRING)
            if ints.any():
                n = _integers(v, ints)
                if p - s <= 18:  # the row path: out of range from 10**(p - s) on
                    bad |= ints & ((n >= 10 ** (p - s)) | (n <= -(10 ** (p - s))))
                # by way of the widest decimal: an int64 needs 19 digits before the point
                from_int = pa.array(np.where(bad | ~ints, 0, n)).cast(
                    pa.decimal128(38, s)).cast(pa.decimal128(p, s))
            strs = valid & ~ints
            arr, _, wrong = v.strings(strs)
            bad |= wrong
            # plain decimals that fit without rounding; the row path decides the others
            digits = f"[0-9]{{1,{p - s}}}" if p > s else "0"
            plain = f"^-?{digits}(\\.[0-9]{{1,{s}}})?$" if s else f"^-?{digits}$"
            bad |= strs & ~_flags(pc.match_substring_regex(arr, plain))
            arr = pc.if_else(pa.array(strs & ~bad), arr, pa.scalar(None, pa.string()))
            dec = pc.cast(arr, pa.decimal128(p, s))
            # a negative zero: left to the row path, whose Decimal keeps the sign
            zero = _flags(pc.equal(dec, pa.scalar(0, pa.decimal128(p, s))))
            bad |= zero & _flags(pc.starts_with(arr, "-"))
            if ints.any():
                dec = pc.if_else(pa.array(ints), from_int, dec)
            return dec, bad
        raise AssertionError(base)  # pragma: no cover - compile_columnar refuses others


def _integers(v: _Values, where: Any) -> Any:
    """The int32 and int64 values as int64 (zero elsewhere)."""
    i32 = where & (v.kinds == INT32)
    i64 = where & (v.kinds == INT64)
    out = np.where(i32, v.fixed(4, i32).view("<i4").ravel(), 0).astype(np.int64)
    return np.where(i64, v.fixed(8, i64).view("<i8").ravel(), out)


def _flags(arr: Any) -> Any:
    """A boolean Arrow array as numpy, null as False."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def _mark(bad: Any, rows_doc: Any, row_bad: Any) -> None:
    """Documents with a row that needs the row path need it whole."""
    if row_bad.any():
        bad[rows_doc[row_bad]] = True


def _index_column(index: Any, t: PgType, bad: Any, rows_doc: Any) -> Any:
    _, hi = _INT_BOUNDS[t.base]
    over = index > hi
    _mark(bad, rows_doc, over)
    width = {"smallint": np.int16, "integer": np.int32, "bigint": np.int64}[t.base]
    return pa.array(np.where(over, 0, index).astype(width))


class _Values:
    """Values of one read at many places: their type byte, and value start and end."""

    def __init__(self, b: Any, present: Any, kinds: Any, start: Any, end: Any) -> None:
        self.b, self.present, self.kinds, self.start, self.end = b, present, kinds, start, end

    def fixed(self, width: int, where: Any | None = None) -> Any:
        """The first ``width`` bytes of each value, an (n, width) array (zeros elsewhere)."""
        take = self.present if where is None else where
        at = np.where(take, self.start, 0)
        out = self.b[at[:, None] + np.arange(width)]
        out[~take] = 0
        return np.ascontiguousarray(out)

    def strings(self, valid: Any) -> tuple[Any, Any, Any]:
        """(Arrow strings, length in characters, not valid UTF-8) of string values."""
        cs = self.start + 4
        lengths = np.where(valid, self.end - 1 - cs, 0)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total:
            data = self.b[np.repeat(cs - offsets[:-1], lengths) + np.arange(total)]
        else:
            data = np.zeros(0, dtype=np.uint8)
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        arr = pa.Array.from_buffers(pa.string(), len(lengths),
                                    [validity, pa.py_buffer(offsets.astype(np.int32)),
                                     pa.py_buffer(data)])
        wrong = np.zeros(len(lengths), dtype=bool)
        if total and int(data.max()) >= 0x80:
            chars = pc.fill_null(pc.utf8_length(_utf8_checked(arr, wrong)), 0).to_numpy(
                zero_copy_only=False)
        else:
            chars = lengths
        return arr, chars, wrong


def _utf8_checked(arr: Any, wrong: Any) -> Any:
    """``arr`` with the values that are not valid UTF-8 flagged in ``wrong`` (and nulled)."""
    try:
        arr.validate(full=True)
        return arr
    except pa.ArrowInvalid:
        pass
    values = pc.cast(arr, pa.binary()).to_pylist()
    for i, v in enumerate(values):
        if v is not None:
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                wrong[i] = True
    return pc.cast(pa.array([None if wrong[i] else v for i, v in enumerate(values)],
                            pa.binary()), pa.string())


class _DocValues:
    """The scanner's slots of a batch of documents: (type, value start, value end)."""

    def __init__(self, b: Any, slots: Any) -> None:
        self.b, self.slots = b, slots

    def of(self, node: Read | Level | Array) -> _Values:
        s = self.slots[:, node.slot, :]
        kinds = s[:, 0]
        return _Values(self.b, kinds != 0, kinds, s[:, 1], s[:, 2])


class _Elements:
    """The elements of one unnested array in a batch: the scanner's records."""

    def __init__(self, b: Any, array: Array, records: bytes, ndocs: int) -> None:
        width = 4 + 3 * array.inner
        r = np.frombuffer(records, dtype=np.int64).reshape(-1, width)
        self.b, self.array, self.r = b, array, r
        self.doc = np.ascontiguousarray(r[:, 0])
        # the position of each element in its array (records come in document order)
        counts = np.bincount(self.doc, minlength=ndocs)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.index = np.arange(len(self.doc), dtype=np.int64) - first[self.doc]

    def values(self, read: Read) -> _Values:
        """The values ``read`` takes from each element (the element itself, or a field of
        its document)."""
        r = self.r
        at = 1 if read.slot < 0 else 4 + 3 * read.slot
        kinds = r[:, at]
        return _Values(self.b, kinds != 0, kinds, r[:, at + 1], r[:, at + 2])


_HEX: Any = None
"""The two hex digits of each byte value (set by :func:`available`)."""


def _hex_keys(oids: Any) -> Any:
    """ObjectIds (an (n, 12) byte array) as their 24-character hex texts."""
    n = len(oids)
    data = _HEX[oids].reshape(n * 24)
    offsets = np.arange(n + 1, dtype=np.int32) * 24
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(data)])


def _uuids(oids: Any, missing: Any) -> Any:
    """ObjectIds (an (n, 12) byte array) as docshift's version 8 UUIDs
    (``transform.ids.objectid_to_uuid``), their 16 bytes each."""
    n = len(oids)
    hi = oids[:, :8].copy().view(">u8").ravel().astype(np.uint64)
    lo = oids[:, 8:].copy().view(">u4").ravel().astype(np.uint64)
    top = (((hi >> np.uint64(16)) << np.uint64(16)) | np.uint64(0x8000)
           | ((hi >> np.uint64(4)) & np.uint64(0xFFF)))
    bottom = ((np.uint64(2) << np.uint64(62))
              | ((((hi & np.uint64(0xF)) << np.uint64(32)) | lo) << np.uint64(26)))
    out = np.empty((n, 2), dtype=">u8")
    out[:, 0], out[:, 1] = top, bottom
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(pa.binary(16), n, [validity, pa.py_buffer(out.tobytes())])


def encode_copy(tp: TablePlan, batches: list[Any]) -> bytes:
    """The binary COPY stream (header, rows, trailer) of ``batches`` of ``tp``."""
    enc = pgpq.ArrowToPostgresBinaryEncoder(tp.schema)
    return b"".join([enc.write_header(), *(enc.write_batch(rb) for rb in batches),
                     enc.finish()])


# --------------------------------------------------------------------------- batches

STRICT = False
"""Raise what goes wrong while decoding a batch in columns (the tests set it) instead of
building its documents through the row path."""

COLUMNAR_ROWS = DocumentRows()
"""The rows of a document the columnar path builds: none of its own (they are in the
batch's :class:`ColumnarPart`). Shared by every such document; never changed."""

COLUMNAR_ITEM = (SourceDocument("", None, ""), COLUMNAR_ROWS)
"""The batch item of such a document (the last one of a run carries its position)."""


class ColumnarPart:
    """The documents of one batch that come as raw runs, and the rows the columnar path
    builds for them. :meth:`finish` decodes them and puts the documents it leaves to the
    row path, built by ``StreamPlan.build``, in the batch in their place; the others stay
    :data:`COLUMNAR_ROWS` placeholders."""

    def __init__(self, decoder: ColumnarDecoder) -> None:
        self.decoder = decoder
        self.slices: list[tuple[Any, int, int, int]] = []
        """(raw run, first, end, batch index of first): documents ``first:end`` of a run."""
        self.tables: dict[str, list[Any]] = {}
        self.rows: dict[str, int] = {}
        self.built = 0
        """Documents of the batch whose rows the columnar path built."""
        self._build: tuple[StreamPlan, int] | None = None

    def add(self, run: Any, first: int, end: int, at: int) -> None:
        self.slices.append((run, first, end, at))

    def finish(self, batch: list[Any], plan: StreamPlan, first_id: int) -> None:
        """Decode every slice; ``first_id``: the doc id of the batch's first document."""
        self._build = (plan, first_id)
        kept = []
        for run, i, j, at in self.slices:
            ends = run.ends
            try:
                seg = self.decoder.decode(run.buf, ends[i - 1] if i else run.start,
                                          ends[i:j], np.arange(first_id + at,
                                                               first_id + at + j - i))
            except Exception:
                if STRICT:
                    raise
                # whatever went wrong here, the row path builds these documents
                seg = Segment({}, list(range(j - i)))
            else:
                kept.append((run, i, j, at))
            for table, rows in seg.tables.items():
                self.tables.setdefault(table, []).append(rows)
            for r in seg.rest:
                sdoc = run.document(i + r)
                batch[at + r] = (sdoc, plan.build(sdoc, first_id + at + r))
        self.slices = kept
        self.rows = {t: sum(b.num_rows for b in bs) for t, bs in self.tables.items()}
        self.built = sum(1 for _, res in batch if res is COLUMNAR_ROWS)

    def batches(self) -> Iterator[tuple[TablePlan, list[Any]]]:
        """(table plan, its Arrow record batches) of every table with rows."""
        for tp in self.decoder.cplan.tables:
            batches = self.tables.get(tp.table)
            if batches and self.rows.get(tp.table):
                yield tp, batches

    def materialize(self, batch: list[Any]) -> None:
        """Every placeholder of ``batch`` built by the row path instead (when PostgreSQL
        refused the batch, the row path finds which documents it refused)."""
        assert self._build is not None
        plan, first_id = self._build
        for run, i, j, at in self.slices:
            for x in range(j - i):
                if batch[at + x][1] is COLUMNAR_ROWS:
                    sdoc = run.document(i + x)
                    batch[at + x] = (sdoc, plan.build(sdoc, first_id + at + x))
        self.slices, self.tables, self.rows, self.built = [], {}, {}, 0
