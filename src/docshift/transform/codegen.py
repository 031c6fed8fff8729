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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from docshift.errors import ConversionError

if TYPE_CHECKING:
    from docshift.transform.rows import CompiledColumn

RowFunction = Callable[..., tuple[Any, ...]]
"""``row(doc, key, captures, item, idx, entry_key, cache, doc_id) -> tuple``."""

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
        lines = [f"f = {i}"]
        if is_plain(c):
            consts[f"c{i}"] = c.convert
            call = f"c{i}(v)"
            if c.fast is not None:
                consts.update(c.fast.names or {})
                call = f"({c.fast.result} if {c.fast.condition} else c{i}(v))"
            lines.append(f"v = {getter_source(c.path, consts)}")
            if c.nullable:
                lines.append(f"v = None if v is None else {call}")
            else:
                lines += ["if v is None:",
                          "    raise ConversionError('required value is missing or null', "
                          "error_class='missing_required')",
                          f"v = {call}"]
        elif _inline_enum(c):
            # the usual case of an enum column: a value of the converter's fast path that
            # is one of the allowed values; anything else takes the column's full check
            assert c.fast is not None and c.enum is not None
            consts.update(c.fast.names or {})
            consts[f"V{i}"] = c.value
            consts[f"E{i}"] = c.enum
            lines += [f"v = {getter_source(c.path, consts)}",
                      f"if v is not None and {c.fast.condition} and v in E{i}:",
                      f"    v = {c.fast.result}",
                      "else:",
                      f"    v = V{i}(ctx)"]
        else:
            consts[f"V{i}"] = c.value
            lines.append(f"v = V{i}(ctx)")
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


def _inline_enum(c: CompiledColumn) -> bool:
    """Whether an enum column's common case can be inlined (no other optional check)."""
    return (c.enum is not None and c.fast is not None and c.default is None
            and c.value_map is None and c.max_length is None)


def is_plain(c: CompiledColumn) -> bool:
    """Whether a column needs none of the optional checks (default, map, enum, length)."""
    return (c.default is None and c.value_map is None and c.enum is None
            and c.max_length is None)
