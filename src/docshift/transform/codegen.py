"""Compile a feed's columns into one Python function that builds a row.

A row is built millions of times, so the getters, null checks, per-document value sharing
and conversions of all its columns are generated as the straight-line body of a single
function instead of a chain of small closures. The generated source is kept on the function
(``__doc__``) so it can be inspected: ``print(feed.row.__doc__)``.

Each column becomes, in the plain case::

    f = 3                                   # which column is being built (for errors)
    v = d.get('email')                      # the source path, inlined
    if v is None: raise MISSING             # only for NOT NULL columns
    a3 = c3(v)                              # the type converter

Columns with a default, value map, enum or max_length call their ``CompiledColumn.value``
(an enum column only for a value outside its fast path or its allowed values).
Values that depend only on the document (not on the unnested item) and are read by several
rows or tables are computed once per document through ``cache``.

:func:`compile_document` generates, from the same per-column code, one function per stream
that builds every row of a document in one call along the common case (no call per row, the
shared values in local variables), and gives up on anything else, which the row functions
then build: ``print(plan.document.__doc__)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from docshift.errors import ConversionError

if TYPE_CHECKING:
    from docshift.transform.rows import CompiledColumn, CompiledFeed

RowFunction = Callable[..., tuple[Any, ...]]
"""``row(doc, key, captures, item, idx, entry_key, cache, doc_id) -> tuple``."""

DocumentFunction = Callable[[Any, str, int], "dict[str, list[tuple[Any, ...]]] | None"]
"""``document(doc, key, docid)``: every row of a document per table, or None (see
:func:`compile_document`)."""

_EMPTY: dict[str, Any] = {}
_MISS = object()
_INLINE_DEPTH = 3


def walk_path(segments: tuple[str, ...], value: Any) -> Any:
    """Follow ``segments`` through dicts (and list indexes); None where the path ends."""
    for s in segments:
        if type(value) is dict:
            value = value.get(s)
        elif type(value) is list and s.isdigit():
            i = int(s)
            value = value[i] if i < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _dict_chain(base: str, segs: list[str]) -> str:
    """``x.get('a')`` then ``.get('b')`` on dicts only, as one expression."""
    expr = f"{base}.get({segs[0]!r})"
    for s in segs[1:]:
        expr = f"(_t.get({s!r}) if type(_t := {expr}) is dict else None)"
    return expr


def getter_source(path: str, consts: dict[str, Any]) -> str:
    """A Python expression reading ``path`` from the row function's locals."""
    head, _, rest = path.partition(".")
    segs = rest.split(".") if rest else []
    if head == "$key":
        return f"captures.get({rest!r})" if rest else "(ekey if ekey is not None else key)"
    if head == "$index":
        return "idx"
    if head in ("$item", "$"):
        base_var, dict_var = ("item", "it") if head == "$item" else ("doc", "d")
        if not segs:
            return base_var
        if len(segs) <= _INLINE_DEPTH and not any(s.isdigit() for s in segs):
            return _dict_chain(dict_var, segs)
        name = f"S{len(consts)}"
        consts[name] = tuple(segs)
        return f"_walk({name}, {base_var})"
    segs = path.split(".")
    if len(segs) <= _INLINE_DEPTH and not any(s.isdigit() for s in segs):
        return _dict_chain("d", segs)
    name = f"S{len(consts)}"
    consts[name] = tuple(segs)
    return f"_walk({name}, doc)"


UNFORESEEN = "unconvertible"
"""Error class of a value whose conversion failed in a way no conversion rule foresaw."""


def unforeseen(exc: Exception, field: str | None) -> ConversionError:
    """``exc``, raised while converting ``field``, as a ConversionError (``unconvertible``)."""
    try:
        reason = f"conversion failed: {type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - an exception that cannot show itself
        reason = f"conversion failed: {type(exc).__name__}"
    return ConversionError(reason, error_class=UNFORESEEN, field=field)


_RAISE_MISSING = ("raise ConversionError('required value is missing or null', "
                  "error_class='missing_required')")


def _value_lines(c: CompiledColumn, tag: str, consts: dict[str, Any],
                 missing: str) -> list[str]:
    """Statements setting ``v`` to column ``c``'s value, in generated code that has the row
    context's names (``doc``, ``d``, ``key``, ``captures``, ``item``, ``it``, ``idx``,
    ``ekey``, and ``ctx`` for a column that is not plain); ``missing``: the statement for a
    required value that is absent. ``tag`` makes the names it adds to ``consts`` unique."""
    if is_plain(c):
        consts[f"c{tag}"] = c.convert
        call = f"c{tag}(v)"
        if c.fast is not None:
            consts.update(c.fast.names or {})
            call = f"({c.fast.result} if {c.fast.condition} else c{tag}(v))"
        lines = [f"v = {getter_source(c.path, consts)}"]
        if c.nullable:
            return [*lines, f"v = None if v is None else {call}"]
        return [*lines, "if v is None:", f"    {missing}", f"v = {call}"]
    if _inline_enum(c):
        # the usual case of an enum column: a value of the converter's fast path that
        # is one of the allowed values; anything else takes the column's full check
        assert c.fast is not None and c.enum is not None
        consts.update(c.fast.names or {})
        consts[f"V{tag}"] = c.value
        consts[f"E{tag}"] = c.enum
        return [f"v = {getter_source(c.path, consts)}",
                f"if v is not None and {c.fast.condition} and v in E{tag}:",
                f"    v = {c.fast.result}",
                "else:",
                f"    v = V{tag}(ctx)"]
    consts[f"V{tag}"] = c.value
    return [f"v = V{tag}(ctx)"]


def compile_row(columns: list[CompiledColumn], cache_keys: list[str | None],
                tail_extra: bool) -> RowFunction:
    """One function building a row of ``columns`` (plus catch-all slot, source key, doc id)."""
    consts: dict[str, Any] = {"_walk": walk_path, "_EMPTY": _EMPTY, "_MISS": _MISS,
                              "ConversionError": ConversionError, "_unforeseen": unforeseen,
                              "PATHS": tuple(c.path for c in columns)}
    uses_item = any(c.path.startswith("$item.") for c in columns)
    body = ["d = doc if type(doc) is dict else _EMPTY"]
    if uses_item:
        body.append("it = item if type(item) is dict else _EMPTY")
    if any(not is_plain(c) for c in columns):
        body.append("ctx = (doc, key, captures, item, idx, ekey, cache)")
    body.append("f = 0")
    body.append("try:")
    for i, (c, ck) in enumerate(zip(columns, cache_keys, strict=True)):
        lines = [f"f = {i}", *_value_lines(c, str(i), consts, _RAISE_MISSING)]
        if ck is not None:
            consts[f"K{i}"] = ck
            body += [f"    v = cache.get(K{i}, _MISS)", "    if v is _MISS:"]
            body += [f"        {line}" for line in lines]
            body.append(f"        cache[K{i}] = v")
        else:
            body += [f"    {line}" for line in lines]
        body.append(f"    a{i} = v")
    body += ["except ConversionError as exc:",
             "    if exc.field is None:",
             "        exc.field = PATHS[f]",
             "    raise",
             # a failure no conversion rule foresaw still names its field, and is a
             # rejection of this document rather than an error of the run
             "except Exception as exc:",
             "    raise _unforeseen(exc, PATHS[f]) from exc"]
    values = [f"a{i}" for i in range(len(columns))] + (["None"] if tail_extra else [])
    values += ["key", "docid"]
    body.append(f"return ({', '.join(values)},)")
    src = ("def row(doc, key, captures, item, idx, ekey, cache, docid=0):\n"
           + "\n".join(f"    {line}" for line in body) + "\n")
    namespace = dict(consts)
    exec(compile(src, "<docshift row>", "exec"), namespace)  # noqa: S102
    fn = namespace["row"]
    fn.__doc__ = src
    return fn


def compile_document(feeds: list[CompiledFeed]) -> DocumentFunction | None:
    """One function building every row of a document for the feeds of one stream, along
    the happy path only; None when the stream's feeds are out of its reach (a key pattern,
    a ``where``, a catch-all, an unnest of ``$`` or through an array position).

    The function takes (document, source key, doc id) and gives the rows per table that
    ``StreamPlan.build`` gives, or None, and then ``build`` reads the document the full way:
    whenever the document is not an object, a value fails (a missing required value, a
    conversion that raises), or an unnested container is there but is not an array (an
    absent one gives no rows, as the full way does), or its path runs through anything but
    objects. The per-document values of an unnested feed are converted even when it has
    no element, so a document whose only failing value is one of those goes the full way
    too (and loads there). Each
    row is the tuple the feed's row function makes. A value read by several feeds (the
    same path, type and nullability, not depending on an element) is converted once, as the
    per-document cache does; so is every per-document value of an unnested feed.
    ``tests/transform/test_plain_differential.py`` requires identical results both ways.
    """
    if not feeds or any(f.patterns is not None or f.where or f.extra for f in feeds):
        return None
    if any(f.unnest is not None and (not f.unnest_segments
                                     or any(x.isdecimal() for x in f.unnest_segments))
           for f in feeds):
        return None
    consts: dict[str, Any] = {"_EMPTY": _EMPTY, "_walk": walk_path,
                              "captures": {}, "ekey": None}
    body = ["if type(doc) is not dict:", "    return None", "d = doc", "rows = {}"]
    if any(not is_plain(c) and not c.item_dependent for f in feeds for c in f.columns):
        body.append("ctx = (doc, key, captures, None, 0, None, None)")
    body.append("try:")
    shared: dict[Any, str] = {}
    lists: dict[str, str] = {}
    for n, feed in enumerate(feeds):
        lines: list[str] = []
        names: list[str] = []
        for i, c in enumerate(feed.columns):
            var = f"a{n}_{i}"
            names.append(var)
            if c.item_dependent:
                continue
            if is_plain(c) and c.share_key in shared:
                lines.append(f"{var} = {shared[c.share_key]}")
                continue
            lines += _value_lines(c, f"{n}_{i}", consts, "return None")
            lines.append(f"{var} = v")
            if is_plain(c):
                shared[c.share_key] = var
        out = lists.get(feed.table)
        if out is None:
            out = lists[feed.table] = f"r{len(lists)}"
            consts[f"T{out}"] = feed.table
            lines.append(f"{out} = rows[T{out}] = []")
        row = f"{out}.append(({', '.join(names)}, key, docid))"
        if feed.unnest is None:
            lines.append(row)
        else:
            segs = list(feed.unnest_segments or ())
            lines.append(f"box = d.get({segs[0]!r})")
            for seg in segs[1:]:
                # an unnest path through anything but objects: the full way decides
                lines += ["if box is not None:", "    if type(box) is not dict:",
                          "        return None", f"    box = box.get({seg!r})"]
            inner = []
            if any(c.path.startswith("$item.") for c in feed.columns):
                inner.append("it = item if type(item) is dict else _EMPTY")
            if any(not is_plain(c) and c.item_dependent for c in feed.columns):
                inner.append("ctx = (doc, key, captures, item, idx, None, None)")
            for i, c in enumerate(feed.columns):
                if c.item_dependent:
                    inner += _value_lines(c, f"{n}_{i}", consts, "return None")
                    inner.append(f"a{n}_{i} = v")
            inner.append(row)
            lines += ["if box is not None:", "    if type(box) is not list:",
                      "        return None", "    for idx, item in enumerate(box):"]
            lines += [f"        {x}" for x in inner]
        body += [f"    {x}" for x in lines]
    body += ["except Exception:", "    return None", "return rows"]
    src = "def document(doc, key, docid):\n" + "\n".join(f"    {x}" for x in body) + "\n"
    namespace = dict(consts)
    exec(compile(src, "<docshift document>", "exec"), namespace)  # noqa: S102
    fn = namespace["document"]
    fn.__doc__ = src
    return fn


def _inline_enum(c: CompiledColumn) -> bool:
    """Whether an enum column's common case can be inlined (no other optional check)."""
    return (c.enum is not None and c.fast is not None and c.default is None
            and c.value_map is None and c.max_length is None)


def is_plain(c: CompiledColumn) -> bool:
    """Whether a column needs none of the optional checks (default, map, enum, length)."""
    return (c.default is None and c.value_map is None and c.enum is None
            and c.max_length is None)
