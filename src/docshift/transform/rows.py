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
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from docshift.errors import ConversionError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec.check import resolve_reference, source_path
from docshift.spec.model import FeedSpec, Mapping, TableSpec, map_key, pattern_regex
from docshift.transform.codegen import (
    DocumentFunction,
    RowFunction,
    compile_document,
    compile_row,
    is_plain,
    unforeseen,
    walk_path,
)
from docshift.transform.convert import (
    ConvertOptions,
    FastPath,
    convert_options,
    converter_for,
    fast_path,
    printable_text,
    to_json_value,
    uuid_wire,
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

_NO_CAPTURES: MappingProxyType[str, str] = MappingProxyType({})
"""The captures of a feed without key patterns (shared by every document, so read-only)."""

# A row context: (root document, source key, captures, item, index, entry key, cache).
# The cache is a dict per document: values that depend only on the document (not on the
# unnested item) are converted once and shared by every row and table built from it.
Ctx = tuple[Any, str, dict[str, str], Any, int, Any, dict[Any, Any]]
Getter = Callable[[Ctx], Any]
Check = Callable[[Any], bool]


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
        source = raw
        if self.value_map is not None:
            # matched by kind and value: 1, '1' and true are three keys (an object or an
            # array has no key, so no mapping)
            k = map_key(raw)
            if k is not None:
                with contextlib.suppress(TypeError):
                    raw = self.value_map.get(k, raw)
            if raw is None:
                return self._null()
        if self.enum is not None:
            try:
                ok = raw in self.enum
            except TypeError:
                ok = False
            if not ok:
                mapped = "" if raw is source else f" (mapped from source value {source!r})"
                raise ConversionError(
                    f"value is not one of the allowed values {sorted(map(str, self.enum))}"
                    f"{mapped}", error_class="not_in_enum", value=raw, field=self.path)
        try:
            out = self.convert(raw)
        except ConversionError as exc:
            exc.field = self.path
            raise
        if self.max_length is not None and type(out) is str and len(out) > self.max_length:
            raise ConversionError(
                f"text of {len(out)} characters exceeds max_length {self.max_length}",
                error_class="too_long", value=source, field=self.path)
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
    consumed: list[tuple[tuple[Any, ...], bool]]
    """Source paths this feed reads, as segments (``_ELEMENTS`` for the elements of the
    unnested container), each with whether everything under it is read."""
    unnest_segments: tuple[str, ...] | None = None
    row: RowFunction | None = None
    reads_fields: bool = False
    """Whether the feed reads fields of the document (so it must be an object): a column or
    the unnest path reads a document path, or the table keeps a catch-all."""


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
    options: ConvertOptions = field(default_factory=ConvertOptions)
    _consumed_cache: dict[tuple[int, ...], Any] = field(default_factory=dict)
    _unmapped_memo: dict[tuple[int, ...], dict[Any, Any]] = field(default_factory=dict)
    shape_check: bool = True
    """Whether documents with nothing unmapped are told apart first, by their key sets
    (the full accounting alone gives the same result, more slowly)."""
    _checks: dict[tuple[int, ...], Check] = field(default_factory=dict)
    _extra: bool | None = None
    """Whether some feed keeps a catch-all column (decided at the first document)."""
    document: DocumentFunction | None = None
    """Every row of a document in one call, along the happy path (``codegen.
    compile_document``); None where the stream's feeds are out of its reach, or to build
    every document the full way."""
    _every_feed: list[int] = field(default_factory=list)
    """The index of every feed: the ones a document matches when :attr:`document` built it."""
    columnar: Any = None
    """The stream's columnar decoder once worked out (``run.worker.columnar_decoder``);
    False where the columnar path does not apply, and then ``columnar_reason`` says why."""
    columnar_reason: str | None = None

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(f.table for f in self.feeds))

    def build(self, sdoc: SourceDocument, doc_id: int = 0) -> DocumentRows:
        """Turn one document into rows for each table (all of them, or a rejection).

        Every row ends with the document's source key and ``doc_id`` (the hidden columns).
        Nothing in a document's content makes this raise: whatever fails becomes the
        document's :class:`Rejection`.
        """
        doc = sdoc.doc
        if self.document is not None:
            out = self._happy(sdoc, doc_id)
            if out is not None:
                return out
        if type(doc) is UnreadableDocument:
            out = DocumentRows()
            out.rejection = Rejection(None, "unreadable", printable_text(doc.reason))
            return out
        table: str | None = None
        try:
            out = DocumentRows()
            all_rows = out.rows
            key = sdoc.key
            matched: list[int] = []
            # where each feed's rows are, for the catch-all columns (only they need it)
            extra = self._extra
            if extra is None:
                extra = self._extra = any(f.extra for f in self.feeds)
            spans: dict[int, tuple[int, int]] | None = {} if extra else None
            filtered = False
            cache: dict[Any, Any] = {}
            for i, feed in enumerate(self.feeds):
                captures: Any = _NO_CAPTURES
                if feed.patterns is not None:
                    for p in feed.patterns:
                        m = p.match(sdoc.key)
                        if m:
                            captures = m.groupdict()
                            break
                    else:
                        continue
                table = feed.table
                if feed.where and not _passes(feed, (doc, sdoc.key, captures, None, 0, None,
                                                     cache)):
                    filtered = True  # the key belongs to this table but is filtered out
                    continue
                if feed.reads_fields and type(doc) is not dict:
                    raise ConversionError(
                        f"the value is {_kind_of(doc)}, not an object, and table "
                        f"{feed.table!r} reads fields from it", error_class="not_an_object",
                        value=doc)
                matched.append(i)
                rows = all_rows.get(table)
                if rows is None:
                    rows = all_rows[table] = []
                first = len(rows)
                if feed.unnest_getter is None:
                    rows.append(feed.row(doc, key, captures, None, 0, None,  # type: ignore[misc]
                                         cache, doc_id))
                else:
                    self._feed_rows(feed, sdoc, captures, rows, cache, doc_id)
                if spans is not None:
                    spans[i] = (first, len(rows))
            table = None
            if not matched:
                # a key-value key that no table takes and no ignore pattern names is
                # "unmatched": counted and listed, never dropped silently
                out.matched = (not self.kv or filtered
                               or any(p.match(sdoc.key) for p in self.ignore_patterns))
                return out
            if self.report_unmapped or any(self.feeds[i].extra for i in matched):
                self._unmapped_fields(out, doc, matched, spans)
            if not (key.isascii() and "\x00" not in key):
                _replace_hidden_key(out, printable_text(key))
            return out
        except Exception as exc:  # noqa: BLE001 - one document never stops a run
            return _rejected(exc, table)

    def _happy(self, sdoc: SourceDocument, doc_id: int) -> DocumentRows | None:
        """:meth:`build` by :attr:`document` (every feed matches: none has a key pattern or a
        ``where``); None: build it the full way."""
        assert self.document is not None
        key = sdoc.key
        if type(key) is not str or not key.isascii() or "\x00" in key:
            return None  # the hidden key column takes a printable form of it
        rows = self.document(sdoc.doc, key, doc_id)
        if rows is None:
            return None
        out = DocumentRows(rows)
        if self.report_unmapped:
            try:
                self._unmapped_fields(out, sdoc.doc, self._every_feed, None)
            except Exception:  # noqa: BLE001 - the full way makes it the document's rejection
                return None
        return out

    def _unmapped_fields(self, out: DocumentRows, doc: Any, matched: list[int],
                         spans: dict[int, tuple[int, int]] | None) -> None:
        """Keep unmapped fields in catch-all columns, or report them (``out.unmapped``)."""
        key = tuple(matched)
        if self.shape_check:
            check = self._checks.get(key)
            if check is None:
                check = self._checks[key] = nothing_unmapped_check(self._consumed(key))
            if check(doc):
                return
        tree = self._consumed(key)
        if tree is True:
            return  # some column reads the whole document
        top: dict[str, Any] = {}
        elements: dict[tuple[Any, ...], Elements] = {}
        _unmapped_root(doc, tree, self._unmapped_memo.setdefault(key, {}), top, elements)
        reported: list[str] = []
        # fields kept in a catch-all column are not lost, so they are not reported
        if top and not (spans is not None and self._fill_extra(out, matched, spans, top)):
            reported += [printable_text(p) for p in top]
        for segs, found in elements.items():
            if found.paths and not (spans is not None and self._fill_element_extra(
                    out, matched, spans, segs, found)):
                reported += [printable_text(p) for p in found.paths]
        if self.report_unmapped:
            out.unmapped = reported

    def _feed_rows(self, feed: CompiledFeed, sdoc: SourceDocument, captures: dict[str, str],
                   rows: list[tuple[Any, ...]], cache: dict[Any, Any], doc_id: int) -> None:
        doc, key, row = sdoc.doc, sdoc.key, feed.row
        if feed.unnest_getter is None:
            rows.append(row(doc, key, captures, None, 0, None, cache, doc_id))
            return
        container = _unnest_container(feed, doc)
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

    def _consumed(self, matched: tuple[int, ...]) -> Any:
        """The tree of what the matched feeds read: True where everything below is read."""
        tree = self._consumed_cache.get(matched)
        if tree is None:
            tree = {}
            for i in matched:
                for segs, whole in self.feeds[i].consumed:
                    tree = _add_consumed(tree, segs, whole)
            self._consumed_cache[matched] = tree
        return tree

    def _fill_extra(self, out: DocumentRows, matched: list[int],
                    spans: dict[int, tuple[int, int]], unmapped: dict[str, Any]) -> bool:
        """Put the unmapped fields into the catch-all column(s); True if any took them."""
        kept = False
        for i in matched:
            feed = self.feeds[i]
            if not feed.extra or feed.unnest is not None:
                continue
            value = _json_fields(unmapped, "", self.options, feed.table)
            rows = out.rows[feed.table]
            pos = len(feed.columns)
            at = spans[i][0]
            rows[at] = rows[at][:pos] + (value,) + rows[at][pos + 1:]
            kept = True
        return kept

    def _fill_element_extra(self, out: DocumentRows, matched: list[int],
                            spans: dict[int, tuple[int, int]], segs: tuple[Any, ...],
                            found: Elements) -> bool:
        """Put each element's unmapped fields into its row's catch-all; True if any did."""
        kept = False
        for i in matched:
            feed = self.feeds[i]
            if not feed.extra or feed.unnest_segments != segs:
                continue
            first, end = spans[i]
            if end - first != len(found.per_element):
                continue  # not the container these rows came from
            rows = out.rows[feed.table]
            pos = len(feed.columns)
            for n, fields in enumerate(found.per_element):
                if fields:
                    value = _json_fields(fields, found.name + ".", self.options, feed.table)
                    r = rows[first + n]
                    rows[first + n] = r[:pos] + (value,) + r[pos + 1:]
            kept = True
        return kept


def _unnest_container(feed: CompiledFeed, doc: Any) -> Any:
    """The array or object ``feed`` unnests in ``doc`` (None when it is missing).

    A path that runs through an array (``items.tags`` where ``items`` is an array) rejects
    the document: nested unnest is not supported, and reading nothing there would lose
    every element silently.
    """
    segs = feed.unnest_segments or ()
    value = doc
    for n, s in enumerate(segs):
        if type(value) is dict:
            value = value.get(s)
        elif type(value) is list and s.isdecimal():
            i = int(s)
            value = value[i] if i < len(value) else None
        elif type(value) is list:
            through = ".".join(segs[:n])
            raise ConversionError(
                f"unnest path {feed.unnest!r} runs through {through!r}, which is an array; "
                "nested unnest is not supported (unnest the outer array and keep the inner "
                "one in a text[] or jsonb column)", error_class="wrong_type",
                value=value, field=feed.unnest)
        else:
            return None
        if value is None:
            return None
    return value


def _rejected(exc: Exception, table: str | None) -> DocumentRows:
    out = DocumentRows()
    if not isinstance(exc, ConversionError):
        exc = unforeseen(exc, None)
    table = getattr(exc, "table", None) or table
    out.rejection = Rejection(exc.field, exc.error_class, printable_text(str(exc)), table)
    return out


def _replace_hidden_key(out: DocumentRows, key: str) -> None:
    for rows in out.rows.values():
        rows[:] = [(*r[:-2], key, r[-1]) for r in rows]


def _json_fields(fields: dict[str, Any], prefix: str, options: ConvertOptions,
                 table: str) -> Any:
    """The catch-all value of ``fields``; a field jsonb cannot hold names itself."""
    try:
        return to_json_value(fields, options)
    except ConversionError as whole:
        for path, value in fields.items():
            try:
                to_json_value({path: value}, options)
            except ConversionError as exc:
                exc.field = printable_text(prefix + path)
                exc.table = table  # type: ignore[attr-defined]
                raise
        whole.table = table  # type: ignore[attr-defined]
        raise


_ELEMENTS = ("elements",)
"""Segment of a consumed path standing for every element of an unnested array or map; a
tuple, so that no field name (always text) can be mistaken for it."""


@dataclass(slots=True)
class Elements:
    """Unmapped fields of the elements of one unnested container."""

    name: str
    """``items[]`` (an array), ``attrs{}`` (a map), ``$[]`` (the document itself)."""
    per_element: list[dict[str, Any] | None]
    paths: dict[str, None]


def _add_consumed(tree: Any, segs: tuple[Any, ...], whole: bool) -> Any:
    if tree is True:
        return True
    if not segs:
        return True if whole else tree
    node = tree
    for p in segs[:-1]:
        nxt = node.setdefault(p, {})
        if nxt is True:
            return tree
        node = nxt
    last = segs[-1]
    if whole:
        node[last] = True
    elif node.get(last) is not True:
        node.setdefault(last, {})
    return tree


def _passes(feed: CompiledFeed, ctx: Ctx) -> bool:
    return all(getter(ctx) in allowed for _, getter, allowed in feed.where)


def _unmapped(value: Any, tree: dict[Any, Any], prefix: str, segs: tuple[Any, ...],
              out: dict[str, Any], elements: dict[tuple[Any, ...], Elements] | None) -> None:
    """Collect into ``out`` the fields of ``value`` (a dict) that ``tree`` does not read."""
    for k, v in value.items():
        sub = tree.get(k)
        if sub is True:
            continue
        path = f"{prefix}{k}"
        if sub is None:
            out[path] = v
        else:
            _inside(v, sub, path, (*segs, k), out, elements)


def _inside(v: Any, sub: dict[Any, Any], path: str, segs: tuple[Any, ...],
            out: dict[str, Any], elements: dict[tuple[Any, ...], Elements] | None) -> None:
    """Look inside a field that is partly read: an object, or an unnested container."""
    if elements is not None and _ELEMENTS in sub:
        _unmapped_elements(v, sub, path, segs, elements)
    elif type(v) is dict:
        _unmapped(v, sub, path + ".", segs, out, elements)


def _unmapped_elements(value: Any, tree: dict[Any, Any], path: str, segs: tuple[Any, ...],
                       elements: dict[tuple[Any, ...], Elements]) -> None:
    """The unmapped fields of each element of an unnested array, or entry of a map."""
    if type(value) is list:
        entries: list[tuple[Any, Any]] = [(None, x) for x in value]
        name = f"{path}[]"
    elif type(value) is dict:
        entries = list(value.items())
        name = f"{path}{{}}"
    else:
        return  # not a container: the unnesting feed rejects the document
    inner = tree[_ELEMENTS]
    found = Elements(name, [], {})
    for k, x in entries:
        if inner is True or (k is not None and tree.get(k) is True):
            found.per_element.append(None)
            continue
        fields: dict[str, Any] = {}
        if type(x) is dict:
            _unmapped(x, inner, "", (), fields, None)
            for p in fields:
                found.paths[f"{name}.{p}"] = None
        else:
            # an element that is not an object, and no column reads $item itself
            fields["$item"] = x
            found.paths[name] = None
        found.per_element.append(fields or None)
    elements[segs] = found


MEMO_LIMIT = 10_000
"""How many distinct top-level key sets the unmapped-field check remembers per stream."""


def nothing_unmapped_check(tree: Any) -> Check:
    """A function telling whether a document has no unmapped field under ``tree``.

    It answers True exactly when :func:`_unmapped_root` would find nothing (no unmapped
    field, no unmapped field of any element), so the full accounting, which builds the
    paths and values, runs only for documents that have something to report.
    """
    if tree is True:
        return lambda doc: True
    if _ELEMENTS in tree:
        return _elements_check(tree)  # unnest: $
    check = _dict_check(tree, True)
    return lambda doc: type(doc) is not dict or check(doc)


def _dict_check(tree: dict[Any, Any], elements: bool) -> Check:
    """For a dict ``value`` read partly as ``tree``: True when nothing in it is unmapped
    (mirrors :func:`_unmapped`; ``elements`` as there, whether unnested containers count)."""
    # a key is unmapped where the tree has no entry for it: the key set is a subset of the
    # tree's, tested in C without building anything
    known = frozenset(tree)
    partial = tuple((k, _inside_check(sub, elements)) for k, sub in tree.items()
                    if sub is not True)

    def check(value: dict[Any, Any]) -> bool:
        if not value.keys() <= known:
            return False
        for k, f in partial:  # noqa: SIM110 - a loop is faster than all() over a generator
            if k in value and not f(value[k]):
                return False
        return True

    return check


def _inside_check(sub: dict[Any, Any], elements: bool) -> Check:
    """Mirrors :func:`_inside`: an unnested container, or an object read partly."""
    if elements and _ELEMENTS in sub:
        return _elements_check(sub)
    check = _dict_check(sub, elements)
    return lambda v: type(v) is not dict or check(v)


def _elements_check(tree: dict[Any, Any]) -> Check:
    """Mirrors :func:`_unmapped_elements`: True when no element has an unmapped field."""
    inner = tree[_ELEMENTS]
    if inner is True:
        return lambda value: True
    check = _dict_check(inner, False)
    whole = frozenset(k for k, sub in tree.items() if sub is True)

    def elements_check(value: Any) -> bool:
        if type(value) is list:
            for x in value:  # noqa: SIM110 - faster than all() over a generator
                if type(x) is not dict or not check(x):
                    return False
            return True
        if type(value) is dict:
            for k, x in value.items():
                if k in whole:
                    continue
                if type(x) is not dict or not check(x):
                    return False
        return True  # not a container: the unnesting feed rejects the document

    return elements_check


def _unmapped_root(doc: Any, tree: dict[Any, Any], memo: dict[Any, Any],
                   out: dict[str, Any], elements: dict[tuple[Any, ...], Elements]) -> None:
    """Like :func:`_unmapped` at the top level, memoized on the document's key set.

    Documents of one collection mostly share their keys, so which top-level keys are
    unmapped, and which need a look inside, is decided once per key set.
    """
    if _ELEMENTS in tree:
        _unmapped_elements(doc, tree, "$", (), elements)  # unnest: $
        return
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
        _inside(doc[k], tree[k], k, (k,), out, elements)


def compile_streams(m: Mapping, streams: Collection[str] | None = None
                    ) -> dict[str, StreamPlan]:
    """Compile the mapping into one plan per source stream (collection or KV table).

    With ``streams``, only the plans of those streams are compiled (a stream's plan depends
    on its own feeds alone, so it is the same as in the full compilation).
    """
    kv = m.source.kind == "postgres_kv"
    options = convert_options(m.options)
    plans: dict[str, StreamPlan] = {}
    ignore = [pattern_regex(p) for p in m.ignore_keys]
    for tname, table in m.tables.items():
        assert table.feeds is not None
        for feed in table.feeds:
            stream = m.source.table if kv else feed.from_
            assert stream is not None
            if streams is not None and stream not in streams:
                continue
            report = (table.unmapped or m.options.unmapped) == "report"
            plan = plans.setdefault(stream, StreamPlan(stream, [], report, ignore, kv,
                                                       options))
            plan.report_unmapped = plan.report_unmapped or report
            plan.feeds.append(_compile_feed(m, tname, table, feed, options))
    for plan in plans.values():
        _share_document_values(plan)
    return plans


def column_types(m: Mapping, table: TableSpec) -> dict[str, PgType]:
    """Each column's PostgreSQL type (FK columns without a type take the parent's, following
    references through tables whose key column has no type of its own either)."""
    return {cname: parse_type(_declared_type(m, table, cname)) for cname in table.columns}


def _declared_type(m: Mapping, table: TableSpec, cname: str) -> str:
    col = table.column(cname)
    seen: set[int] = set()
    while col.type is None and col.references and id(col) not in seen:
        seen.add(id(col))
        ptable, pcol = resolve_reference(m, col.references)
        col = m.tables[ptable].column(pcol)
    return col.type or "text"


def _compile_feed(m: Mapping, tname: str, table: TableSpec, feed: FeedSpec,
                  options: ConvertOptions) -> CompiledFeed:
    types = column_types(m, table)
    pk = set(table.primary_key or [])
    columns = []
    unnest_segs = _unnest_segments(feed.unnest)
    consumed: list[tuple[tuple[Any, ...], bool]] = [
        (tuple(p.split(".")), True) for p in table.ignore]
    if unnest_segs is not None:
        consumed.append(((*unnest_segs, _ELEMENTS), False))
    for cname in table.columns:
        col = table.column(cname)
        path = source_path(m, table, feed, cname)
        segs = _read_segments(path, unnest_segs)
        if segs is not None:
            consumed.append((segs, True))
        t = types[cname]
        conv = converter_for(t, options)
        fast = fast_path(t, options)
        if t.base == "uuid" and not t.array:
            conv, fast = uuid_wire()
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
            value_map=({map_key(k): v for k, v in col.map_entries()}
                       if col.map is not None else None),
            enum=frozenset(col.enum) if col.enum is not None else None,
            max_length=col.max_length,
            fast=fast,
        ))
    where = [(k, compile_getter(f"$key.{k}" if feed.keys else k),
              tuple(v) if isinstance(v, list) else (v,))
             for k, v in (feed.where or {}).items()]
    for c in columns:
        c.item_dependent = _item_dependent(c.path, feed.unnest is not None)
        # a str key: its hash is cached, unlike a tuple's
        c.share_key = f"{c.path}\x1f{c.pgtype.sql}\x1f{c.nullable}"
        if c.path.startswith("$key."):
            # a capture depends on the feed's patterns: two feeds over the same key may
            # capture different text under the same name
            c.share_key += f"\x1f{feed.keys!r}"
    return CompiledFeed(
        table=tname,
        patterns=[pattern_regex(p) for p in feed.keys] if feed.keys else None,
        where=where,
        unnest=feed.unnest,
        unnest_getter=compile_getter(feed.unnest) if feed.unnest else None,
        columns=columns,
        extra=table.extra is not None,
        consumed=consumed,
        unnest_segments=unnest_segs,
        reads_fields=(table.extra is not None
                      or any(_reads_document(c.path) for c in columns)
                      or (feed.unnest is not None and _reads_document(feed.unnest))),
    )


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is list:
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _reads_document(path: str) -> bool:
    """Whether ``path`` reads a field of the source document (not its key, item or index)."""
    return not path.startswith("$") or path.startswith("$.")


def _unnest_segments(unnest: str | None) -> tuple[str, ...] | None:
    """The document path an unnest reads, as segments (``()`` for ``$``)."""
    if unnest is None:
        return None
    if unnest == "$":
        return ()
    return tuple(unnest.removeprefix("$.").split("."))


def _read_segments(path: str, unnest: tuple[str, ...] | None) -> tuple[Any, ...] | None:
    """The document segments a column path reads, or None when it reads no field."""
    head, _, rest = path.partition(".")
    if head in ("$key", "$index"):
        return None
    if head == "$item":
        if unnest is None:
            return None
        return (*unnest, _ELEMENTS, *(rest.split(".") if rest else ()))
    if head == "$":
        return tuple(rest.split(".")) if rest else ()
    return tuple(path.split("."))


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
    plan.document = compile_document(plan.feeds)
    plan._every_feed = list(range(len(plan.feeds)))


def summarize_unmapped(counter: Counter[str]) -> list[tuple[str, int]]:
    """Unmapped paths, most frequent first."""
    return counter.most_common()
