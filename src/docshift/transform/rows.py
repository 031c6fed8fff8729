"""Compiled row builders: one source document → the rows it gives every table.

:func:`compile_streams` turns a mapping into one :class:`StreamPlan` per source stream
(collection or key-value table). ``StreamPlan.build`` is the hot path: it matches the
document to feeds, walks unnested arrays and maps, reads each column's path, applies the
value map, enum check and type conversion, and returns either every row of the document or
the reason the whole document is rejected. A document is all-or-nothing: if any value of any
of its rows fails, none of its rows is loaded and the document goes to quarantine.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from docshift.errors import ConversionError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec.check import resolve_reference, source_path
from docshift.spec.model import ColumnSpec, FeedSpec, Mapping, TableSpec, pattern_regex
from docshift.transform.codegen import RowFunction, compile_row, is_plain, walk_path
from docshift.transform.convert import (
    ConvertOptions,
    FastPath,
    converter_for,
    fast_path,
    to_json_value,
)
from docshift.transform.pgtypes import PgType, parse_type

SOURCE_KEY_COLUMN = "__docshift_key"
"""Hidden column added to every loaded table while the run is under way: it names the source
document of each row so that duplicate and orphan resolution can quarantine by source key.
It is dropped when the table is finalized."""

SOURCE_DOC_COLUMN = "__docshift_doc"
"""Second hidden column: the source document's number in the run (``target.state.doc_id``),
which orders documents in source order (the first of two duplicates is the one kept) and
finds every row of one document when the document is rejected after loading. Rows that were
in an existing table before the run have NULL here: docshift never deletes those."""

# A row context: (root document, source key, captures, item, index, entry key, cache).
# The cache is a dict per document: values that depend only on the document (not on the
# unnested item) are converted once and shared by every row and table built from it.
Ctx = tuple[Any, str, dict[str, str], Any, int, Any, dict[Any, Any]]
Getter = Callable[[Ctx], Any]


def compile_getter(path: str) -> Getter:
    """A function reading ``path`` (dotted, or a special ``$`` source) from a row context."""
    head, _, rest = path.partition(".")
    segs = tuple(rest.split(".")) if rest else ()
    if head == "$key":
        if segs:
            name = rest
            return lambda ctx: ctx[2].get(name)
        return lambda ctx: ctx[5] if ctx[5] is not None else ctx[1]
    if head == "$index":
        return lambda ctx: ctx[4]
    if head == "$item":
        if not segs:
            return lambda ctx: ctx[3]
        return lambda ctx: walk_path(segs, ctx[3])
    if head == "$":
        return lambda ctx: walk_path(segs, ctx[0]) if segs else ctx[0]
    all_segs = tuple(path.split("."))
    if len(all_segs) == 1:
        name = all_segs[0]
        return lambda ctx: ctx[0].get(name) if type(ctx[0]) is dict else None
    return lambda ctx: walk_path(all_segs, ctx[0])


@dataclass(slots=True)
class CompiledColumn:
    """One column of one feed: how to get, check and convert its value."""

    name: str
    path: str
    getter: Getter
    convert: Callable[[Any], Any]
    pgtype: PgType
    nullable: bool
    default: Any
    value_map: dict[Any, Any] | None
    enum: frozenset[Any] | None
    max_length: int | None
    item_dependent: bool = False
    share_key: Any = None
    fast: FastPath | None = None
    """The converter's common case, inlined into the generated row function."""

    def value(self, ctx: Ctx) -> Any:
        raw = self.getter(ctx)
        if raw is None:
            if self.default is not None:
                return self.default
            if not self.nullable:
                raise ConversionError("required value is missing or null",
                                      error_class="missing_required", field=self.path)
            return None
        if self.value_map is not None:
            # an unhashable value (dict/list) has no mapping
            with contextlib.suppress(TypeError):
                raw = self.value_map.get(raw, raw)
            if raw is None:
                return self._null()
        if self.enum is not None:
            try:
                ok = raw in self.enum
            except TypeError:
                ok = False
            if not ok:
                raise ConversionError(
                    f"value is not one of the allowed values {sorted(map(str, self.enum))}",
                    error_class="not_in_enum", value=raw, field=self.path)
        try:
            out = self.convert(raw)
        except ConversionError as exc:
            exc.field = self.path
            raise
        if self.max_length is not None and type(out) is str and len(out) > self.max_length:
            raise ConversionError(
                f"text of {len(out)} characters exceeds max_length {self.max_length}",
                error_class="too_long", value=out, field=self.path)
        return out

    def _null(self) -> Any:
        if not self.nullable:
            raise ConversionError("value maps to null but the column is not nullable",
                                  error_class="missing_required", field=self.path)
        return None


@dataclass(slots=True)
class CompiledFeed:
    """One feed of one table, ready to turn documents into rows."""

    table: str
    patterns: list[re.Pattern[str]] | None
    where: list[tuple[str, Getter, tuple[Any, ...]]]
    unnest: str | None
    unnest_getter: Getter | None
    columns: list[CompiledColumn]
    extra: bool
    consumed: set[str]
    row: RowFunction | None = None


@dataclass(slots=True)
class Rejection:
    """Why a document was not loaded."""

    field: str | None
    error_class: str
    message: str
    table: str | None = None


@dataclass(slots=True)
class DocumentRows:
    """What one document gives: rows per table, or a rejection; and unmapped paths."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    rejection: Rejection | None = None
    matched: bool = True
    unmapped: list[str] = field(default_factory=list)


@dataclass
class StreamPlan:
    """Every feed that reads one source stream, and the tables they fill."""

    stream: str
    feeds: list[CompiledFeed]
    report_unmapped: bool
    ignore_patterns: list[re.Pattern[str]]
    kv: bool
    _consumed_cache: dict[tuple[int, ...], dict[str, Any]] = field(default_factory=dict)
    _unmapped_memo: dict[tuple[int, ...], dict[Any, Any]] = field(default_factory=dict)

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(f.table for f in self.feeds))

    def build(self, sdoc: SourceDocument, doc_id: int = 0) -> DocumentRows:
        """Turn one document into rows for each table (all of them, or a rejection).

        Every row ends with the document's source key and ``doc_id`` (the hidden columns).
        """
        doc = sdoc.doc
        out = DocumentRows()
        if type(doc) is UnreadableDocument:
            out.rejection = Rejection(None, "unreadable", doc.reason)
            return out
        matched: list[int] = []
        filtered = False
        cache: dict[Any, Any] = {}
        try:
            for i, feed in enumerate(self.feeds):
                captures: dict[str, str] = {}
                if feed.patterns is not None:
                    for p in feed.patterns:
                        m = p.match(sdoc.key)
                        if m:
                            captures = m.groupdict()
                            break
                    else:
                        continue
                if feed.where and not _passes(feed, (doc, sdoc.key, captures, None, 0, None,
                                                     cache)):
                    filtered = True  # the key belongs to this table but is filtered out
                    continue
                matched.append(i)
                rows = out.rows.setdefault(feed.table, [])
                self._feed_rows(feed, sdoc, captures, rows, cache, doc_id)
        except ConversionError as exc:
            out.rows = {}
            table = self.feeds[i].table
            out.rejection = Rejection(exc.field, exc.error_class, str(exc), table)
            return out
        if not matched:
            # a key-value key that no table takes and no ignore pattern names is "unmatched":
            # counted and listed, never dropped silently
            out.matched = (not self.kv or filtered
                           or any(p.match(sdoc.key) for p in self.ignore_patterns))
            return out
        if self.report_unmapped or any(self.feeds[i].extra for i in matched):
            key = tuple(matched)
            tree = self._consumed(key)
            unmapped: dict[str, Any] = {}
            _unmapped_root(doc, tree, self._unmapped_memo.setdefault(key, {}), unmapped)
            kept = unmapped and self._fill_extra(out, matched, unmapped)
            # fields kept in a catch-all column are not lost, so they are not reported
            if self.report_unmapped and not kept:
                out.unmapped = list(unmapped)
        return out

    def _feed_rows(self, feed: CompiledFeed, sdoc: SourceDocument, captures: dict[str, str],
                   rows: list[tuple[Any, ...]], cache: dict[Any, Any], doc_id: int) -> None:
        doc, key, row = sdoc.doc, sdoc.key, feed.row
        if feed.unnest_getter is None:
            rows.append(row(doc, key, captures, None, 0, None, cache, doc_id))
            return
        container = feed.unnest_getter((doc, key, captures, None, 0, None, cache))
        if container is None:
            return
        if type(container) is list:
            for idx, item in enumerate(container):
                rows.append(row(doc, key, captures, item, idx, None, cache, doc_id))
        elif type(container) is dict:
            for idx, (k, item) in enumerate(container.items()):
                rows.append(row(doc, key, captures, item, idx, k, cache, doc_id))
        else:
            raise ConversionError(
                f"expected an array or an object to unnest, got {type(container).__name__}",
                error_class="wrong_type", value=container, field=feed.unnest)

    def _consumed(self, matched: tuple[int, ...]) -> dict[str, Any]:
        tree = self._consumed_cache.get(matched)
        if tree is None:
            tree = {}
            for i in matched:
                for path in self.feeds[i].consumed:
                    node = tree
                    parts = path.split(".")
                    for p in parts[:-1]:
                        nxt = node.setdefault(p, {})
                        if nxt is True:
                            break
                        node = nxt
                    else:
                        node[parts[-1]] = True
            self._consumed_cache[matched] = tree
        return tree

    def _fill_extra(self, out: DocumentRows, matched: list[int],
                    unmapped: dict[str, Any]) -> bool:
        """Put the unmapped fields into the catch-all column(s); True if any took them."""
        kept = False
        for i in matched:
            feed = self.feeds[i]
            if not feed.extra or feed.unnest is not None:
                continue
            value = to_json_value(unmapped)
            rows = out.rows[feed.table]
            pos = len(feed.columns)
            rows[-1] = rows[-1][:pos] + (value,) + rows[-1][pos + 1:]
            kept = True
        return kept


def _passes(feed: CompiledFeed, ctx: Ctx) -> bool:
    return all(getter(ctx) in allowed for _, getter, allowed in feed.where)


def _unmapped(value: Any, tree: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    if type(value) is not dict:
        return
    for k, v in value.items():
        sub = tree.get(k)
        if sub is True:
            continue
        path = f"{prefix}{k}"
        if sub is None:
            out[path] = v
        elif type(v) is dict:
            _unmapped(v, sub, path + ".", out)


MEMO_LIMIT = 10_000
"""How many distinct top-level key sets the unmapped-field check remembers per stream."""


def _unmapped_root(doc: Any, tree: dict[str, Any], memo: dict[Any, Any],
                   out: dict[str, Any]) -> None:
    """Like :func:`_unmapped` at the top level, memoized on the document's key set.

    Documents of one collection mostly share their keys, so which top-level keys are
    unmapped, and which need a look inside, is decided once per key set.
    """
    if type(doc) is not dict:
        return
    sig = tuple(doc)
    entry = memo.get(sig)
    if entry is None:
        missing = tuple(k for k in sig if k not in tree)
        partial = tuple(k for k in sig if type(tree.get(k)) is dict)
        entry = (missing, partial)
        if len(memo) < MEMO_LIMIT:
            memo[sig] = entry
    for k in entry[0]:
        out[k] = doc[k]
    for k in entry[1]:
        v = doc[k]
        if type(v) is dict:
            _unmapped(v, tree[k], k + ".", out)


def compile_streams(m: Mapping) -> dict[str, StreamPlan]:
    """Compile the mapping into one plan per source stream (collection or KV table)."""
    kv = m.source.kind == "postgres_kv"
    options = ConvertOptions(strip_nul=m.options.strip_nul,
                             replace_invalid_utf8=m.options.replace_invalid_utf8,
                             epoch=m.options.epoch)
    plans: dict[str, StreamPlan] = {}
    ignore = [pattern_regex(p) for p in m.ignore_keys]
    for tname, table in m.tables.items():
        assert table.feeds is not None
        for feed in table.feeds:
            stream = m.source.table if kv else feed.from_
            assert stream is not None
            report = (table.unmapped or m.options.unmapped) == "report"
            plan = plans.setdefault(stream, StreamPlan(stream, [], report, ignore, kv))
            plan.report_unmapped = plan.report_unmapped or report
            plan.feeds.append(_compile_feed(m, tname, table, feed, options))
    for plan in plans.values():
        _share_document_values(plan)
    return plans


def column_types(m: Mapping, table: TableSpec) -> dict[str, PgType]:
    """Each column's PostgreSQL type (FK columns without a type take the parent's)."""
    out: dict[str, PgType] = {}
    for cname, col in table.columns.items():
        assert isinstance(col, ColumnSpec)
        if col.type is None and col.references:
            ptable, pcol = resolve_reference(m, col.references)
            out[cname] = parse_type(m.tables[ptable].column(pcol).type or "text")
        else:
            out[cname] = parse_type(col.type or "text")
    return out


def _compile_feed(m: Mapping, tname: str, table: TableSpec, feed: FeedSpec,
                  options: ConvertOptions) -> CompiledFeed:
    types = column_types(m, table)
    pk = set(table.primary_key or [])
    columns = []
    consumed: set[str] = set(table.ignore)
    for cname in table.columns:
        col = table.column(cname)
        path = source_path(m, table, feed, cname)
        if not path.startswith("$"):
            consumed.add(path)
        t = types[cname]
        conv = converter_for(t, options)
        default = None
        if col.default is not None:
            try:
                default = conv(col.default)
            except ConversionError as exc:
                raise ValueError(f"table {tname!r}, column {cname!r}: default {exc}") from None
        columns.append(CompiledColumn(
            name=cname, path=path, getter=compile_getter(path), convert=conv, pgtype=t,
            nullable=(col.nullable if col.nullable is not None else cname not in pk),
            default=default,
            value_map=dict(col.map) if col.map is not None else None,
            enum=frozenset(col.enum) if col.enum is not None else None,
            max_length=col.max_length,
            fast=fast_path(t, options),
        ))
    if feed.unnest and not feed.unnest.startswith("$"):
        consumed.add(feed.unnest)
    where = [(k, compile_getter(f"$key.{k}" if feed.keys else k),
              tuple(v) if isinstance(v, list) else (v,))
             for k, v in (feed.where or {}).items()]
    for c in columns:
        c.item_dependent = _item_dependent(c.path, feed.unnest is not None)
        # a str key: its hash is cached, unlike a tuple's
        c.share_key = f"{c.path}\x1f{c.pgtype.sql}\x1f{c.nullable}"
    return CompiledFeed(
        table=tname,
        patterns=[pattern_regex(p) for p in feed.keys] if feed.keys else None,
        where=where,
        unnest=feed.unnest,
        unnest_getter=compile_getter(feed.unnest) if feed.unnest else None,
        columns=columns,
        extra=table.extra is not None,
        consumed=consumed,
    )


def _item_dependent(path: str, unnested: bool) -> bool:
    """Whether a value changes from one unnested item to the next."""
    head = path.partition(".")[0]
    return head in ("$item", "$index") or (path == "$key" and unnested)


def _share_document_values(plan: StreamPlan) -> None:
    """Decide which values are converted once per document, then compile each feed's row.

    A child table's parent id is the same for every unnested item, and the ``_id`` of a
    collection usually feeds several tables; such values are cached per document.
    """
    uses: Counter[Any] = Counter()
    for feed in plan.feeds:
        for c in feed.columns:
            if not c.item_dependent:
                uses[c.share_key] += 1
    for feed in plan.feeds:
        keys: list[str | None] = []
        for c in feed.columns:
            if c.item_dependent:
                keys.append(None)
            elif is_plain(c) and (feed.unnest is not None or uses[c.share_key] > 1):
                keys.append(c.share_key)
            elif feed.unnest is not None:
                keys.append(f"own\x1f{id(c)}")
            else:
                keys.append(None)
        feed.row = compile_row(feed.columns, keys, feed.extra)


def summarize_unmapped(counter: Counter[str]) -> list[tuple[str, int]]:
    """Unmapped paths, most frequent first."""
    return counter.most_common()
