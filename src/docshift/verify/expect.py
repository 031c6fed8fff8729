"""The verifier's own reading of the source: what each document should have become.

This is deliberately a plain interpreter of the mapping file, written apart from the
compiled row builders of ``transform/rows.py`` and ``transform/codegen.py``: it walks each
path itself, applies value maps, defaults, enums, nullability and ``max_length`` itself,
and unnests arrays and maps itself. Only two pieces are shared with the loader, on purpose:
the scalar converters of ``transform/convert.py`` (the documented conversion rules, including
the id rules of ``transform/ids.py``) and the mapping's own semantics from ``spec/``
(key patterns, default source paths).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from docshift.errors import ConversionError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec.check import resolve_reference, source_path
from docshift.spec.model import FeedSpec, Mapping, TableSpec, pattern_regex
from docshift.transform.convert import (
    ConvertOptions,
    FastPath,
    convert_options,
    converter_for,
    fast_path,
    uuid_wire,
)
from docshift.transform.pgtypes import PgType, parse_type

LOADED, FILTERED, IGNORED, UNMATCHED, REJECTED = (
    "loaded", "filtered", "ignored", "unmatched", "rejected")
"""What the verifier's reading says should have happened to a document."""

_MISSING = object()
_NO_CAPTURES: dict[str, str] = {}


def read_path(doc: Any, path: str) -> Any:
    """Follow a dotted path through objects (and array positions); None where it ends."""
    value = doc
    for seg in path.split("."):
        if isinstance(value, dict):
            value = value.get(seg)
        elif isinstance(value, list) and seg.isdigit():
            i = int(seg)
            value = value[i] if i < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def table_types(m: Mapping, table: TableSpec) -> dict[str, PgType]:
    """Each column's type; a foreign key without a type takes the referenced column's."""
    out = {}
    for cname, col in table.columns.items():
        text = col.type
        if text is None and col.references:
            ptable, pcol = resolve_reference(m, col.references)
            text = m.tables[ptable].column(pcol).type
        out[cname] = parse_type(text or "text")
    return out


@dataclass
class Expected:
    """One document as the verifier reads it."""

    outcome: str
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    table: str | None = None
    field: str | None = None
    error_class: str | None = None
    message: str | None = None


Getter = Callable[[Any, str, dict[str, str], Any, int, Any], Any]
"""Reads one value: (document, key, key captures, element, element index, map entry key)."""


def _getter(path: str) -> Getter:
    """How a column reads its source path, decided once per column (not per value)."""
    if path == "$key":
        return lambda doc, key, cap, item, i, entry: entry if entry is not None else key
    if path.startswith("$key."):
        name = path[5:]
        return lambda doc, key, cap, item, i, entry: cap.get(name)
    if path == "$index":
        return lambda doc, key, cap, item, i, entry: i
    if path == "$item":
        return lambda doc, key, cap, item, i, entry: None if item is _MISSING else item
    if path.startswith("$item."):
        rest = path[6:]
        parts = rest.split(".")
        if not any(s.isdigit() for s in parts):
            return lambda doc, key, cap, item, i, entry: (
                None if item is _MISSING else _read_fields(item, parts))
        return lambda doc, key, cap, item, i, entry: (
            None if item is _MISSING else read_path(item, rest))
    if path == "$":
        return lambda doc, key, cap, item, i, entry: doc
    rest = path[2:] if path.startswith("$.") else path
    segs = rest.split(".")
    if any(s.isdigit() for s in segs):
        return lambda doc, key, cap, item, i, entry: read_path(doc, rest)
    if len(segs) == 1:
        # the common case, a top-level field
        return lambda doc, key, cap, item, i, entry: (
            doc.get(rest) if type(doc) is dict or isinstance(doc, dict) else None)
    # no array positions: only objects are followed
    return lambda doc, key, cap, item, i, entry: _read_fields(doc, segs)


def _read_fields(value: Any, segs: list[str]) -> Any:
    """:func:`read_path` for a path of field names only (split once, not per value)."""
    for seg in segs:
        if type(value) is not dict and not isinstance(value, dict):
            return None
        value = value.get(seg)
        if value is None:
            return None
    return value


@dataclass
class _Column:
    name: str
    path: str
    convert: Callable[[Any], Any]
    nullable: bool
    default: Any
    value_map: dict[Any, Any] | None
    enum: list[Any] | None
    max_length: int | None
    type: str = ""
    """The column's type, as SQL (columns of one type and path read one value alike)."""
    fast: FastPath | None = None
    """The common case of ``convert``, for :mod:`docshift.verify.compiled` to inline."""
    get: Getter = field(init=False)
    plain: bool = field(init=False)
    """No map, enum or max_length: a present value is only converted."""
    per_document: bool = field(init=False)
    """The value is the same for every element of an unnested container."""

    def __post_init__(self) -> None:
        self.get = _getter(self.path)
        self.plain = self.value_map is None and self.enum is None and self.max_length is None
        self.per_document = (not self.path.startswith("$") or self.path == "$"
                             or self.path.startswith(("$.", "$key.")))


@dataclass
class _Feed:
    table: str
    patterns: list[re.Pattern[str]] | None
    where: list[tuple[str, tuple[Any, ...]]]
    unnest: str | None
    columns: list[_Column]
    consumed: set[str]
    item_paths: set[str]
    reads: set[str]
    """Document paths its columns (and the table's ``ignore``) read whole."""
    reads_item: bool
    """Whether a column reads ``$item`` itself."""
    extra: bool
    """Whether the table has a catch-all column (the last value of each row)."""
    readers: list[tuple[_Column, Getter, Callable[[Any], Any], bool]] = field(init=False)
    """Per column: the column, its getter, its converter, whether it is plain."""
    container: Getter | None = field(init=False)
    """Reads the container an unnested feed unnests."""

    def __post_init__(self) -> None:
        self.readers = [(c, c.get, c.convert, c.plain) for c in self.columns]
        self.container = _container(self.unnest) if self.unnest is not None else None


def _container(unnest: str) -> Getter:
    """How a feed reads the container it unnests: as a column reads a path, except that a
    path running through an array (``items.tags`` where ``items`` is one) rejects the
    document, as the loader does (nested unnest is not supported; docs/mapping.md)."""
    if unnest == "$":
        return _getter(unnest)
    segs = (unnest[2:] if unnest.startswith("$.") else unnest).split(".")

    def read(doc: Any, key: Any, cap: Any, item: Any, i: int, entry: Any) -> Any:
        value = doc
        for n, seg in enumerate(segs):
            if isinstance(value, dict):
                value = value.get(seg)
            elif isinstance(value, list) and seg.isdecimal():
                value = value[int(seg)] if int(seg) < len(value) else None
            elif isinstance(value, list):
                raise _Reject(unnest, "wrong_type",
                              f"unnest path {unnest!r} runs through "
                              f"{'.'.join(segs[:n])!r}, which is an array")
            else:
                return None
            if value is None:
                return None
        return value

    return read


class _Reject(Exception):
    def __init__(self, fld: str | None, error_class: str, message: str,
                 table: str | None = None) -> None:
        super().__init__(message)
        self.field, self.error_class, self.message = fld, error_class, message
        self.table = table


class StreamReader:
    """The verifier's reading of every document of one stream."""

    def __init__(self, m: Mapping, stream: str, compiled: bool = True) -> None:
        """``compiled``: read the common case through :mod:`docshift.verify.compiled`."""
        from docshift.verify.compiled import compile_reader

        self.stream = stream
        self.kv = m.source.kind == "postgres_kv"
        opts = convert_options(m.options)
        self.to_jsonb = converter_for(parse_type("jsonb"), opts)
        self.ignore = [pattern_regex(p) for p in m.ignore_keys]
        self.feeds: list[_Feed] = []
        self.report_unmapped: dict[str, bool] = {}
        self.extra: dict[str, bool] = {}
        self._consumed_memo: dict[Any, _Paths] = {}
        self._unmapped_plans: dict[tuple[str, ...], Any] = {}
        for tname, table in m.tables.items():
            for feed in table.feeds or []:
                own = m.source.table if self.kv else feed.from_
                if own == stream:
                    self.feeds.append(self._feed(m, tname, table, feed, opts))
                    self.report_unmapped[tname] = (
                        (table.unmapped or m.options.unmapped) == "report")
                    self.extra[tname] = table.extra is not None
        self.fast = compile_reader(self) if compiled else None

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(f.table for f in self.feeds))

    @staticmethod
    def _feed(m: Mapping, tname: str, table: TableSpec, feed: FeedSpec,
              opts: ConvertOptions) -> _Feed:
        types = table_types(m, table)
        pk = set(table.primary_key or [])
        cols = []
        consumed = set(table.ignore)
        items: set[str] = set()
        reads = set(table.ignore)
        for cname, col in table.columns.items():
            path = source_path(m, table, feed, cname)
            conv, fast = converter_for(types[cname], opts), fast_path(types[cname], opts)
            if types[cname].base == "uuid" and not types[cname].array:
                conv, fast = uuid_wire()  # the id rules, as the 16 bytes binary COPY carries
            default = conv(col.default) if col.default is not None else None
            cols.append(_Column(cname, path, conv,
                                col.nullable if col.nullable is not None else cname not in pk,
                                default, dict(col.map) if col.map is not None else None,
                                list(col.enum) if col.enum is not None else None,
                                col.max_length, types[cname].sql, fast))
            if path.startswith("$item."):
                items.add(path[len("$item."):])
            elif path == "$" or path.startswith("$."):
                consumed.add(path[2:] or "")
                reads.add(path[2:] or "")
            elif not path.startswith("$"):
                consumed.add(path)
                reads.add(path)
        if feed.unnest and not feed.unnest.startswith("$"):
            consumed.add(feed.unnest)
        return _Feed(tname, [pattern_regex(p) for p in feed.keys] if feed.keys else None,
                     [(k, tuple(v) if isinstance(v, list) else (v,))
                      for k, v in (feed.where or {}).items()],
                     feed.unnest, cols, consumed, items, reads,
                     any(c.path == "$item" for c in cols), table.extra is not None)

    def read(self, sdoc: SourceDocument) -> Expected:
        """What ``sdoc`` should have given: its rows per table, or why it has none."""
        if self.fast is not None:
            rows = self.fast(sdoc.doc, sdoc.key)
            if rows is not None:
                return Expected(LOADED, rows)
        return self.interpret(sdoc)

    def interpret(self, sdoc: SourceDocument) -> Expected:
        """:meth:`read`, by the mapping's interpreter alone (no compiled reading)."""
        doc = sdoc.doc
        if isinstance(doc, UnreadableDocument):
            return Expected(REJECTED, error_class="unreadable", message=doc.reason)
        rows: dict[str, list[tuple[Any, ...]]] = {}
        matched: list[tuple[_Feed, int, int]] = []
        took = filtered = False
        for feed in self.feeds:
            captures: dict[str, str] = {}
            if feed.patterns is not None:
                found = None
                for p in feed.patterns:
                    found = p.match(sdoc.key)
                    if found:
                        break
                if not found:
                    continue
                captures = found.groupdict()
            if feed.where and not all(self._where_value(feed, doc, captures, k) in allowed
                                      for k, allowed in feed.where):
                filtered = True
                continue
            took = True
            try:
                out = rows.setdefault(feed.table, [])
                first = len(out)
                out.extend(self._rows(feed, sdoc, captures))
                matched.append((feed, first, len(out)))
            except _Reject as r:
                return Expected(REJECTED, table=feed.table, field=r.field,
                                error_class=r.error_class, message=r.message)
        if took:
            if any(f.extra for f, _, _ in matched):
                try:
                    self._fill_extra(doc, sdoc.key, rows, matched)
                except _Reject as r:
                    return Expected(REJECTED, table=r.table, field=r.field,
                                    error_class=r.error_class, message=r.message)
            return Expected(LOADED, rows)
        if filtered:
            return Expected(FILTERED)
        if self.kv:
            if any(p.match(sdoc.key) for p in self.ignore):
                return Expected(IGNORED)
            return Expected(UNMATCHED)
        return Expected(FILTERED)

    def _where_value(self, feed: _Feed, doc: Any, captures: dict[str, str], k: str) -> Any:
        if feed.patterns is not None:
            return captures.get(k)
        return read_path(doc, k)

    def _rows(self, feed: _Feed, sdoc: SourceDocument,
              captures: dict[str, str]) -> list[tuple[Any, ...]]:
        doc = sdoc.doc
        if feed.unnest is None:
            return [self._row(feed, doc, sdoc.key, captures, _MISSING, 0, None)]
        assert feed.container is not None
        container = feed.container(doc, sdoc.key, captures, _MISSING, 0, None)
        if container is None:
            return []
        if not isinstance(container, (list, dict)):
            raise _Reject(feed.unnest, "wrong_type",
                          "expected an array or an object to unnest")
        if not container:
            return []
        # what every element's row shares is read once
        fixed = [self._one(c, c.get(doc, sdoc.key, captures, _MISSING, 0, None))
                 if c.per_document else _MISSING for c in feed.columns]
        if isinstance(container, list):
            return [self._row(feed, doc, sdoc.key, captures, item, i, None, fixed)
                    for i, item in enumerate(container)]
        return [self._row(feed, doc, sdoc.key, captures, item, i, k, fixed)
                for i, (k, item) in enumerate(container.items())]

    def _one(self, c: _Column, raw: Any) -> Any:
        if raw is not None and c.plain:
            try:
                return c.convert(raw)
            except ConversionError as exc:
                raise _Reject(c.path, exc.error_class, str(exc)) from None
        return self._value(c, raw)


    @staticmethod
    def _read(doc: Any, key: str, captures: dict[str, str], path: str, item: Any, index: int,
              entry: Any) -> Any:
        if path == "$key":
            return entry if entry is not None else key
        if path.startswith("$key."):
            return captures.get(path[5:])
        if path == "$index":
            return index
        if path == "$item":
            return None if item is _MISSING else item
        if path.startswith("$item."):
            return None if item is _MISSING else read_path(item, path[6:])
        if path == "$":
            return doc
        if path.startswith("$."):
            return read_path(doc, path[2:])
        return read_path(doc, path)

    def _row(self, feed: _Feed, doc: Any, key: str, captures: dict[str, str], item: Any,
             index: int, entry: Any, fixed: list[Any] | None = None) -> tuple[Any, ...]:
        out = []
        append = out.append
        for n, (c, get, convert, plain) in enumerate(feed.readers):
            if fixed is not None and fixed[n] is not _MISSING:
                append(fixed[n])
                continue
            raw = get(doc, key, captures, item, index, entry)
            if raw is not None and plain:
                try:
                    append(convert(raw))
                except ConversionError as exc:
                    raise _Reject(c.path, exc.error_class, str(exc)) from None
            else:
                append(self._value(c, raw))
        if feed.extra:
            append(None)  # filled in by _fill_extra once every feed has read the document
        return tuple(out)

    def _fill_extra(self, doc: Any, key: str, rows: dict[str, list[tuple[Any, ...]]],
                    matched: list[tuple[_Feed, int, int]]) -> None:
        """Put what no column of the document's tables reads into the catch-all columns:
        the document's unmapped fields in a table that is not unnested, each element's in
        an unnested one; NULL where there are none."""
        feeds = [f for f, _, _ in matched]
        top = [(f, a, b) for f, a, b in matched if f.extra and f.unnest is None]
        if top and isinstance(doc, dict) and not any(f.unnest == "$" for f in feeds):
            consumed = self._consumed(feeds)
            fields: dict[str, Any] = {}
            if "" not in consumed.whole:
                _walk(doc, "", consumed, fields)
            if fields:
                for f, a, b in top:
                    value = self._jsonb(fields, "", f.table)
                    _set_last(rows[f.table], a, [value] * (b - a))
        reads = set().union(*(f.reads for f in feeds))
        for f, a, b in matched:
            if not f.extra or f.unnest is None:
                continue
            same = [g for g in feeds if g.unnest == f.unnest]
            u = f.unnest
            if any(g.reads_item for g in same) or (u != "$" and (
                    "" in reads or any(u == r or u.startswith(r + ".") for r in reads))):
                continue  # every element is read whole
            container = self._read(doc, key, {}, u, _MISSING, 0, None)
            if isinstance(container, list):
                entries: list[tuple[Any, Any]] = [(None, x) for x in container]
                name = f"{u}[]"
            elif isinstance(container, dict):
                entries = list(container.items())
                name = f"{u}{{}}"
            else:
                continue
            if len(entries) != b - a:
                continue
            items = _Paths(set().union(*(g.item_paths for g in same)))
            values = []
            for k, x in entries:
                if k is not None and f"{u}.{k}" in reads:
                    values.append(None)
                elif isinstance(x, dict):
                    fields = {}
                    _walk(x, "", items, fields)
                    values.append(self._jsonb(fields, name + ".", f.table) if fields else None)
                else:
                    values.append(self._jsonb({"$item": x}, name, f.table))
            _set_last(rows[f.table], a, values)

    def _jsonb(self, fields: dict[str, Any], prefix: str, table: str) -> Any:
        """The catch-all value of ``fields``; a field jsonb cannot hold is named."""
        try:
            return self.to_jsonb(fields)
        except ConversionError as whole:
            for path, value in fields.items():
                try:
                    self.to_jsonb({path: value})
                except ConversionError as exc:
                    fld = prefix + path if path != "$item" else prefix
                    raise _Reject(fld, exc.error_class, str(exc), table) from None
            raise _Reject(prefix or None, whole.error_class, str(whole), table) from None

    @staticmethod
    def _value(c: _Column, raw: Any) -> Any:
        if raw is None:
            if c.default is not None:
                return c.default
            if not c.nullable:
                raise _Reject(c.path, "missing_required", "required value is missing or null")
            return None
        if c.value_map is not None:
            try:
                if raw in c.value_map:
                    raw = c.value_map[raw]
            except TypeError:
                pass
            if raw is None:
                if not c.nullable:
                    raise _Reject(c.path, "missing_required", "value maps to null")
                return None
        if c.enum is not None:
            try:
                ok = raw in c.enum
            except TypeError:
                ok = False
            if not ok:
                raise _Reject(c.path, "not_in_enum", "value is not one of the allowed values")
        try:
            value = c.convert(raw)
        except ConversionError as exc:
            raise _Reject(c.path, exc.error_class, str(exc)) from None
        if c.max_length is not None and isinstance(value, str) and len(value) > c.max_length:
            raise _Reject(c.path, "too_long", f"text exceeds max_length {c.max_length}")
        return value

    def unmapped(self, sdoc: SourceDocument, tables: Iterable[str]) -> set[str]:
        """Source paths of ``sdoc`` that no column of the tables it feeds reads."""
        key = tuple(tables)
        plan = self._unmapped_plans.get(key, _MISSING)
        if plan is _MISSING:
            plan = self._unmapped_plans[key] = self._unmapped_plan(list(key))
        if plan is None:
            return set()
        top, unnested = plan
        doc = sdoc.doc
        out: dict[str, Any] = {}
        # mostly every field is read: a check of the field names says so, else the walk
        # collects what is not
        if top is not None and isinstance(doc, dict) and not top.all_read(doc):
            _walk(doc, "", top, out)
        for get, pre, paths in unnested:
            container = get(doc, sdoc.key, _NO_CAPTURES, _MISSING, 0, None)
            items = (container if isinstance(container, list) else
                     list(container.values()) if isinstance(container, dict) else [])
            for item in items:
                if isinstance(item, dict) and not paths.all_read(item):
                    _walk(item, pre, paths, out, strip=pre)
        return set(out)

    def _unmapped_plan(self, tables: list[str]) -> tuple[
            _Paths | None, list[tuple[Getter, str, _Paths]]] | None:
        """What :meth:`unmapped` looks at for a document feeding ``tables``: the paths read
        of the document (None when a catch-all keeps its fields, or it is read whole), and
        per unnested container whose elements' fields are accounted for, its path, the
        prefix of its elements' paths and the paths read of them. None: nothing to report.

        Each container is read by its feed's own getter (only field paths and ``$`` get
        here)."""
        feeds = [f for f in self.feeds if f.table in tables]
        if not any(self.report_unmapped.get(f.table) for f in feeds):
            return None
        top = None
        if not any(self.extra.get(f.table) and f.unnest is None for f in feeds):
            consumed = self._consumed(feeds)
            if "" not in consumed.whole:
                top = consumed
        unnested = []
        for f in feeds:
            if f.unnest is None or self.extra.get(f.table) or "$item" in {
                    c.path for c in f.columns}:
                continue
            if f.unnest.startswith("$") and f.unnest != "$":
                continue
            pre = ("" if f.unnest == "$" else f.unnest) + "[]."
            assert f.container is not None
            unnested.append((f.container, pre, self._items(f)))
        return top, unnested

    def _consumed(self, feeds: list[_Feed]) -> _Paths:
        """What the feeds read of a document, together."""
        key = tuple(map(id, feeds))
        found = self._consumed_memo.get(key)
        if found is None:
            found = self._consumed_memo[key] = _Paths(set().union(*(f.consumed for f in feeds)))
        return found

    def _items(self, feed: _Feed) -> _Paths:
        found = self._consumed_memo.get(id(feed))
        if found is None:
            found = self._consumed_memo[id(feed)] = _Paths(feed.item_paths)
        return found


class _Paths:
    """Paths read whole, and the fields read in part (every proper prefix of one)."""

    def __init__(self, paths: set[str]) -> None:
        self.whole = paths
        self.partial = {p[:i] for p in paths for i, ch in enumerate(p) if ch == "."}
        self.walks: dict[tuple[Any, ...], list[tuple[str, str, bool]]] = {}
        """What :func:`_walk` decided per (prefix, strip, field names of an object)."""
        self.levels: dict[str, tuple[frozenset[str], list[str]]] = {}
        """Per relative path of an object: the field names read there (whole or in part),
        and those read in part."""

    def all_read(self, value: dict[str, Any], rel: str = "") -> bool:
        """Whether :func:`_walk` would collect nothing of ``value``, the object at ``rel``
        (a path relative to where the paths start, ending in a dot unless empty)."""
        level = self.levels.get(rel)
        if level is None:
            names = {p[len(rel):].partition(".")[0] for p in self.whole | self.partial
                     if p.startswith(rel) and len(p) > len(rel)}
            level = self.levels[rel] = (frozenset(names), [
                k for k in names if rel + k in self.partial and rel + k not in self.whole])
        known, inside = level
        if not value.keys() <= known:
            return False
        for k in inside:
            v = value.get(k)
            if isinstance(v, dict) and not self.all_read(v, f"{rel}{k}."):
                return False
        return True


WALK_MEMO = 10_000
"""How many distinct sets of field names (with where they are) a reader remembers."""


def _set_last(rows: list[tuple[Any, ...]], first: int, values: list[Any]) -> None:
    for i, value in enumerate(values, first):
        rows[i] = (*rows[i][:-1], value)


def _walk(value: dict[str, Any], prefix: str, consumed: _Paths, out: dict[str, Any],
          strip: str = "") -> None:
    """Collect into ``out`` the fields of ``value`` (by path) that ``consumed`` does not read.

    Objects at one place mostly share their field names, so what to do with each field is
    decided once per set of names: left out (read whole), looked into (read in part; a
    non-object there holds nothing else) or collected.
    """
    sig = (prefix, strip, *value)
    plan = consumed.walks.get(sig)
    if plan is None:
        plan = []
        for k in value:
            path = f"{prefix}{k}"
            rel = path[len(strip):]
            if rel not in consumed.whole:
                plan.append((k, path, rel in consumed.partial))
        if len(consumed.walks) < WALK_MEMO:
            consumed.walks[sig] = plan
    for k, path, inside in plan:
        v = value[k]
        if not inside:
            out[path] = v
        elif isinstance(v, dict):
            _walk(v, path + ".", consumed, out, strip)
