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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from docshift.errors import ConversionError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec.check import resolve_reference, source_path
from docshift.spec.model import FeedSpec, Mapping, TableSpec, pattern_regex
from docshift.transform.convert import ConvertOptions, convert_options, converter_for
from docshift.transform.pgtypes import PgType, parse_type

LOADED, FILTERED, IGNORED, UNMATCHED, REJECTED = (
    "loaded", "filtered", "ignored", "unmatched", "rejected")
"""What the verifier's reading says should have happened to a document."""

_MISSING = object()


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


@dataclass
class _Feed:
    table: str
    patterns: list[re.Pattern[str]] | None
    where: list[tuple[str, tuple[Any, ...]]]
    unnest: str | None
    columns: list[_Column]
    consumed: set[str]
    item_paths: set[str]


class _Reject(Exception):
    def __init__(self, fld: str | None, error_class: str, message: str) -> None:
        super().__init__(message)
        self.field, self.error_class, self.message = fld, error_class, message


class StreamReader:
    """The verifier's reading of every document of one stream."""

    def __init__(self, m: Mapping, stream: str) -> None:
        self.stream = stream
        self.kv = m.source.kind == "postgres_kv"
        opts = convert_options(m.options)
        self.ignore = [pattern_regex(p) for p in m.ignore_keys]
        self.feeds: list[_Feed] = []
        self.report_unmapped: dict[str, bool] = {}
        self.extra: dict[str, bool] = {}
        for tname, table in m.tables.items():
            for feed in table.feeds or []:
                own = m.source.table if self.kv else feed.from_
                if own == stream:
                    self.feeds.append(self._feed(m, tname, table, feed, opts))
                    self.report_unmapped[tname] = (
                        (table.unmapped or m.options.unmapped) == "report")
                    self.extra[tname] = table.extra is not None

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
        for cname, col in table.columns.items():
            path = source_path(m, table, feed, cname)
            conv = converter_for(types[cname], opts)
            default = conv(col.default) if col.default is not None else None
            cols.append(_Column(cname, path, conv,
                                col.nullable if col.nullable is not None else cname not in pk,
                                default, dict(col.map) if col.map is not None else None,
                                list(col.enum) if col.enum is not None else None,
                                col.max_length))
            if path.startswith("$item."):
                items.add(path[len("$item."):])
            elif path == "$" or path.startswith("$."):
                consumed.add(path[2:] or "")
            elif not path.startswith("$"):
                consumed.add(path)
        if feed.unnest and not feed.unnest.startswith("$"):
            consumed.add(feed.unnest)
        return _Feed(tname, [pattern_regex(p) for p in feed.keys] if feed.keys else None,
                     [(k, tuple(v) if isinstance(v, list) else (v,))
                      for k, v in (feed.where or {}).items()],
                     feed.unnest, cols, consumed, items)

    def read(self, sdoc: SourceDocument) -> Expected:
        """What ``sdoc`` should have given: its rows per table, or why it has none."""
        doc = sdoc.doc
        if isinstance(doc, UnreadableDocument):
            return Expected(REJECTED, error_class="unreadable", message=doc.reason)
        rows: dict[str, list[tuple[Any, ...]]] = {}
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
            if not all(self._where_value(feed, doc, captures, k) in allowed
                       for k, allowed in feed.where):
                filtered = True
                continue
            took = True
            try:
                rows.setdefault(feed.table, []).extend(self._rows(feed, sdoc, captures))
            except _Reject as r:
                return Expected(REJECTED, table=feed.table, field=r.field,
                                error_class=r.error_class, message=r.message)
        if took:
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
        container = self._read(doc, sdoc.key, captures, feed.unnest, _MISSING, 0, None)
        if container is None:
            return []
        if isinstance(container, list):
            return [self._row(feed, doc, sdoc.key, captures, item, i, None)
                    for i, item in enumerate(container)]
        if isinstance(container, dict):
            return [self._row(feed, doc, sdoc.key, captures, item, i, k)
                    for i, (k, item) in enumerate(container.items())]
        raise _Reject(feed.unnest, "wrong_type", "expected an array or an object to unnest")

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
             index: int, entry: Any) -> tuple[Any, ...]:
        out = []
        for c in feed.columns:
            raw = self._read(doc, key, captures, c.path, item, index, entry)
            out.append(self._value(c, raw))
        return tuple(out)

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

    def unmapped(self, sdoc: SourceDocument, tables: list[str]) -> set[str]:
        """Source paths of ``sdoc`` that no column of the tables it feeds reads."""
        doc = sdoc.doc
        feeds = [f for f in self.feeds if f.table in tables]
        if not any(self.report_unmapped.get(f.table) for f in feeds):
            return set()
        out: set[str] = set()
        if isinstance(doc, dict) and not any(self.extra.get(f.table) and f.unnest is None
                                             for f in feeds):
            consumed = set().union(*(f.consumed for f in feeds))
            if "" not in consumed:
                _walk(doc, "", consumed, out)
        for f in feeds:
            if f.unnest is None or self.extra.get(f.table) or "$item" in {
                    c.path for c in f.columns}:
                continue
            container = (doc if f.unnest == "$" else
                         read_path(doc, f.unnest) if not f.unnest.startswith("$") else None)
            items = (container if isinstance(container, list) else
                     list(container.values()) if isinstance(container, dict) else [])
            prefix = "" if f.unnest == "$" else f.unnest
            for item in items:
                if isinstance(item, dict):
                    _walk(item, prefix + "[].", f.item_paths, out, strip=prefix + "[].")
        return out


def _walk(value: dict[str, Any], prefix: str, consumed: set[str], out: set[str],
          strip: str = "") -> None:
    for k, v in value.items():
        path = f"{prefix}{k}"
        rel = path[len(strip):]
        if rel in consumed:
            continue
        inner = rel + "."
        if any(c.startswith(inner) for c in consumed):
            # a field read in part: look inside it (a non-object there holds nothing else)
            if isinstance(v, dict):
                _walk(v, path + ".", consumed, out, strip)
        else:
            out.add(path)
