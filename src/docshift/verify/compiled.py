"""The verifier's reading of a document, compiled for the common case.

:class:`~docshift.verify.expect.StreamReader` interprets the mapping for every document.
That is the reference, and it is slow: most of its time goes to deciding, value by value,
what the mapping already decided once. This module turns the same reader's own columns
(``_Feed`` and ``_Column`` of ``expect.py``; nothing of ``transform/``'s row builders) into
one Python function per stream that reads a document along the happy path only:

- the document is an object (or an array a feed unnests whole), and no feed of its stream
  has a catch-all column;
- every value is present, or absent where the column allows it (a default or NULL);
- every conversion succeeds and every unnested container is an array (or absent).

Whatever else happens (an exception, a required value missing, a container that is an
object or of the wrong type, a document no feed takes) makes the function return None,
and the interpreter reads the document instead: only it decides a rejection, a filter, an
ignored or an unmatched key. ``tests/verify/test_compiled.py`` runs both over the generated
datasets, bad and edge-case documents included, and requires identical readings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from docshift.verify.expect import (
    _MISSING,
    _NO_CAPTURES,
    StreamReader,
    _Column,
    _Feed,
    _read_fields,
)

Fast = Callable[[Any, str], "dict[str, list[tuple[Any, ...]]] | None"]
"""(document, key) → rows per table, or None: let the interpreter read this one."""


def compile_reader(reader: StreamReader) -> Fast | None:
    """The compiled reading of ``reader``'s stream; None where it cannot be compiled (a feed
    with a catch-all column, an unnested path that is not a field path)."""
    feeds = reader.feeds
    if not feeds or any(f.extra for f in feeds):
        return None
    if any(f.unnest not in (None, "$") and not _plain_path(f.unnest) for f in feeds):
        return None
    env: dict[str, Any] = {"_read_fields": _read_fields, "_VALUE": StreamReader._value,
                           "_MISSING": _MISSING, "_NO_CAPTURES": _NO_CAPTURES}
    lines = ["def fast(d, key):",
             "    if type(d) is not dict and type(d) is not list:",
             "        return None",
             "    rows = {}",
             "    took = False",
             "    try:"]
    shared: dict[tuple[Any, ...], str] = {}
    for n, feed in enumerate(feeds):
        lines += ["        " + x for x in _feed_lines(reader, n, feed, env, shared)]
    lines += ["    except Exception:", "        return None",
              "    return rows if took else None"]
    code = "\n".join(lines) + "\n"
    exec(compile(code, f"<verify reader {reader.stream}>", "exec"), env)  # noqa: S102
    fast: Fast = env["fast"]
    fast.__doc__ = code  # what was generated, for whoever debugs it
    return fast


def _plain_path(path: str) -> bool:
    return not path.startswith("$") and not any(s.isdigit() for s in path.split("."))


def _feed_lines(reader: StreamReader, n: int, feed: _Feed, env: dict[str, Any],
                shared: dict[tuple[Any, ...], str]) -> list[str]:
    """Statements that add ``feed``'s rows of ``d`` to ``rows`` (or return None)."""
    out: list[str] = ["cap = _NO_CAPTURES"]
    ind = ""
    if feed.patterns is not None:
        env[f"_P{n}"] = feed.patterns
        out += ["found = None",
                f"for p in _P{n}:",
                "    found = p.match(key)",
                "    if found:",
                "        break",
                "if found:",
                "    cap = found.groupdict()"]
        ind = "    "
    if feed.where:
        def where(d: Any, cap: dict[str, str], feed: _Feed = feed) -> bool:
            return all(reader._where_value(feed, d, cap, k) in allowed
                       for k, allowed in feed.where)

        env[f"_W{n}"] = where
        out.append(ind + f"if _W{n}(d, cap):")
        ind += "    "
    table = f"_T{n}"
    env[table] = feed.table
    body = ["took = True", f"out = rows.setdefault({table}, [])"]
    names = []
    if feed.unnest is None:
        always = not ind
        for k, c in enumerate(feed.columns):
            v = f"v{n}_{k}"
            body += _value_lines(n, k, c, v, "_MISSING", "0", env, shared, always)
            names.append(v)
        body.append(f"out.append(({', '.join(names)},))")
    else:
        if feed.unnest == "$":
            box = "d"
        elif "." in feed.unnest:
            # the reader's own container read: a path through an array raises, and the
            # interpreter rejects the document
            env[f"_U{n}"] = feed.container
            box = f"_U{n}(d, key, _NO_CAPTURES, _MISSING, 0, None)"
        else:
            box = f"d.get({feed.unnest!r})"
        body += [f"box = {box}",
                 "if box is not None:",
                 "    if type(box) is not list:",
                 "        return None",
                 "    if box:"]
        inner: list[str] = []
        for k, c in enumerate(feed.columns):
            v = f"v{n}_{k}"
            if c.per_document:
                inner += _value_lines(n, k, c, v, "_MISSING", "0", env, shared)
            names.append(v)
        element: list[str] = []
        for k, c in enumerate(feed.columns):
            if not c.per_document:
                element += _value_lines(n, k, c, f"v{n}_{k}", "item", "i", env)
        element.append(f"out.append(({', '.join(names)},))")
        inner += ["for i, item in enumerate(box):"] + ["    " + x for x in element]
        body += ["        " + x for x in inner]
    return out + [ind + x for x in body]


def _value_lines(n: int, k: int, c: _Column, v: str, item: str, index: str,
                 env: dict[str, Any], shared: dict[tuple[Any, ...], str] | None = None,
                 share: bool = False) -> list[str]:
    """Statements that set ``v`` to column ``c``'s value, as the interpreter gives it.

    ``shared`` maps a plain read of a document field (its path, type and whether it may be
    absent) to the variable that already holds it: an id read by several tables of
    a stream is converted once per document. ``share``: this statement always runs (no
    pattern, filter or array around it), so later columns may take its value."""
    raw = _raw(n, k, c, item, index, env)
    if (c.enum is not None and c.value_map is None and c.max_length is None
            and c.fast is not None):
        # the usual enum value: of the converter's common case and allowed as it is
        env[f"_K{n}_{k}"], env[f"_E{n}_{k}"] = c, c.enum
        env.update(c.fast.names or {})
        return [f"v = {raw}", f"if v is not None and ({c.fast.condition}) and v in _E{n}_{k}:",
                f"    {v} = {c.fast.result}", "else:", f"    {v} = _VALUE(_K{n}_{k}, v)"]
    if not c.plain:
        env[f"_K{n}_{k}"] = c
        return [f"{v} = _VALUE(_K{n}_{k}, {raw})"]
    # only a read of the document itself (no captures, no array element) is the same read
    # wherever it appears
    same = ((c.path, c.type, c.nullable) if c.default is None
            and _document_field(c.path) is not None else None)
    if same is not None and shared is not None and same in shared:
        return [f"{v} = {shared[same]}"]
    if same is not None and shared is not None and share:
        shared[same] = v
    env[f"_C{n}_{k}"] = c.convert
    if c.default is not None:
        env[f"_D{n}_{k}"] = c.default
        absent = f"{v} = _D{n}_{k}"
    elif c.nullable:
        absent = f"{v} = None"
    else:
        absent = "return None"
    out = [f"v = {raw}", "if v is None:", f"    {absent}"]
    if c.fast is not None:
        # the converter's common case inline (convert.fast_path: its first test, verbatim)
        env.update(c.fast.names or {})
        out += [f"elif {c.fast.condition}:", f"    {v} = {c.fast.result}"]
    return out + ["else:", f"    {v} = _C{n}_{k}(v)"]


def _document_field(path: str) -> list[str] | None:
    """The field names of a column path that reads the document itself by field names
    alone (not a capture, an element, an array position); else None."""
    rest = path[2:] if path.startswith("$.") else path
    return rest.split(".") if not rest.startswith("$") and _plain_path(rest) else None


def _fields(obj: str, segs: list[str], name: str, env: dict[str, Any]) -> str:
    """An expression for ``_read_fields(obj, segs)``, its usual case inline: ``obj`` an
    object (a document always is when it gets here, or ``.get`` fails and the interpreter
    reads it) and a path of one or two field names."""
    if len(segs) == 1:
        return f"{obj}.get({segs[0]!r})"
    if len(segs) == 2:
        env[name] = segs[1:]
        return (f"(_o.get({segs[1]!r}) if type(_o := {obj}.get({segs[0]!r})) is dict "
                f"else _read_fields(_o, {name}))")
    env[name] = segs
    return f"_read_fields({obj}, {name})"


def _raw(n: int, k: int, c: _Column, item: str, index: str, env: dict[str, Any]) -> str:
    """An expression for the source value column ``c`` reads."""
    path = c.path
    if path == "$index":
        return index
    segs = _document_field(path)
    if segs is not None:
        return _fields("d", segs, f"_S{n}_{k}", env)
    if item == "item" and path == "$item":
        return "item"
    if item == "item" and path.startswith("$item.") and _plain_path(path[6:]):
        segs = path[6:].split(".")
        env[f"_S{n}_{k}"] = segs
        if len(segs) == 1:
            return (f"(item.get({segs[0]!r}) if type(item) is dict "
                    f"else _read_fields(item, _S{n}_{k}))")
        return f"_read_fields(item, _S{n}_{k})"
    # anything else through the column's own getter
    env[f"_G{n}_{k}"] = c.get
    return f"_G{n}_{k}(d, key, cap, {item}, {index}, None)"
