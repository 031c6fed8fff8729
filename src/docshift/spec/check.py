"""Cross-reference checks that a field-by-field schema cannot express.

Each problem is returned as a sentence naming the table and column; the loader prefixes the
file name. Nothing here touches a database.
"""

from __future__ import annotations

import difflib
import re

from docshift.spec.model import ColumnSpec, FeedSpec, Mapping, TableSpec
from docshift.transform.pgtypes import PgType, parse_type

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
SPECIAL_PATHS = ("$key", "$item", "$index", "$")
"""Paths that do not read a document field: see docs/mapping.md, "Column sources"."""


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_mapping(m: Mapping) -> list[str]:
    """Every cross-reference problem in ``m``, as sentences. Empty when the mapping is sound."""
    problems: list[str] = []
    kv = m.source.kind == "postgres_kv"
    for tname, table in m.tables.items():
        where = f"table {tname!r}"
        if not _IDENT.match(tname):
            problems.append(f"{where}: not a plain identifier (letters, digits, _)")
        names = list(table.columns)
        for cname, col in table.columns.items():
            assert isinstance(col, ColumnSpec)
            problems += _check_column(m, tname, table, cname, col)
        for key in table.primary_key or []:
            if key not in table.columns:
                problems.append(f"{where}: primary_key names column {key!r}, which is not in "
                                f"its columns{_did_you_mean(key, names)}")
        for i, index in enumerate(table.index_list()):
            for c in index.columns:
                if c not in table.columns:
                    problems.append(f"{where}, index {i}: column {c!r} is not in the table"
                                    f"{_did_you_mean(c, names)}")
        if table.extra is not None:
            if table.extra in table.columns:
                problems.append(f"{where}: extra column {table.extra!r} is also a mapped column; "
                                "the catch-all needs a name of its own")
            elif not _IDENT.match(table.extra):
                problems.append(f"{where}: extra column {table.extra!r} is not an identifier")
        assert table.feeds is not None
        for i, feed in enumerate(table.feeds):
            fwhere = where if len(table.feeds) == 1 else f"{where}, feed {i}"
            problems += _check_feed(m, fwhere, table, feed, kv)
    return problems


def _check_feed(m: Mapping, where: str, table: TableSpec, feed: FeedSpec, kv: bool) -> list[str]:
    problems: list[str] = []
    if kv and feed.from_ is not None:
        problems.append(f"{where}: 'from' names a collection, but the source is a key-value "
                        "table; use 'keys: <pattern>' (e.g. 'client:{env}:{id}')")
    if not kv and feed.keys is not None:
        problems.append(f"{where}: 'keys' patterns need a postgres_kv source; for a "
                        f"{m.source.kind} source use 'from: <collection>'")
    captures = feed.captures()
    for name in (feed.where or {}):
        if kv and name not in captures:
            problems.append(f"{where}: 'where' filters on {name!r}, which no key pattern "
                            f"captures (captures: {', '.join(sorted(captures)) or 'none'})")
    for cname in feed.columns:
        if cname not in table.columns:
            problems.append(f"{where}: feed sets column {cname!r}, which is not in the table"
                            f"{_did_you_mean(cname, list(table.columns))}")
    for cname in table.columns:
        path = source_path(m, table, feed, cname)
        problems += _check_path(where, cname, path, feed, captures, kv)
    return problems


def _check_path(where: str, cname: str, path: str, feed: FeedSpec, captures: set[str],
                kv: bool) -> list[str]:
    if not path.startswith("$"):
        if not path or any(p == "" for p in path.split(".")):
            return [f"{where}, column {cname!r}: source path {path!r} has an empty segment"]
        return []
    head, _, rest = path.partition(".")
    if head not in SPECIAL_PATHS:
        return [f"{where}, column {cname!r}: unknown source {head!r}; special sources are "
                "$key, $key.<capture>, $item, $item.<path>, $index"]
    if head in ("$item", "$index") and feed.unnest is None:
        return [f"{where}, column {cname!r}: {head} only means something in a table with "
                "'unnest: <array path>'"]
    if head == "$key" and rest:
        if not kv:
            return [f"{where}, column {cname!r}: $key.{rest} reads a key-pattern capture, "
                    "which only a postgres_kv source has"]
        if rest not in captures:
            return [f"{where}, column {cname!r}: no key pattern captures {rest!r} "
                    f"(captures: {', '.join(sorted(captures)) or 'none'})"]
    return []


def source_path(m: Mapping, table: TableSpec, feed: FeedSpec, cname: str) -> str:
    """Where column ``cname`` of ``table`` reads its value in ``feed``.

    Order: the feed's own ``columns`` entry, the column's ``from``, else the column name
    (in camelCase under ``options.naming: camelCase``), relative to ``$item`` inside an unnest.
    """
    if cname in feed.columns:
        return feed.columns[cname]
    col = table.column(cname)
    if col.from_ is not None:
        return col.from_
    name = camel_case(cname) if m.options.naming == "camelCase" else cname
    return f"$item.{name}" if feed.unnest is not None else name


def camel_case(name: str) -> str:
    """``created_at`` → ``createdAt``."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _check_column(m: Mapping, tname: str, table: TableSpec, cname: str,
                  col: ColumnSpec) -> list[str]:
    where = f"table {tname!r}, column {cname!r}"
    problems: list[str] = []
    if not _IDENT.match(cname):
        problems.append(f"{where}: not a plain identifier (letters, digits, _)")
    if col.type is None:
        if m.target.mode == "create":
            problems.append(f"{where}: 'type' is required (e.g. text, integer, uuid, "
                            "timestamptz, jsonb)")
        return problems
    try:
        own = parse_type(col.type)
    except ValueError as exc:
        hint = ""
        if "." in col.type or col.type.startswith("$"):
            hint = (f"; it looks like a source path: write "
                    f"'{cname}: {{type: <type>, from: {col.type}}}'")
        problems.append(f"{where}: {exc}{hint}")
        return problems
    if col.references:
        problems += _check_reference(m, where, own, col.references)
    if col.max_length is not None and own.base not in ("text", "varchar"):
        problems.append(f"{where}: max_length applies to text columns, not {own.sql}")
    return problems


def _check_reference(m: Mapping, where: str, own: PgType, ref: str) -> list[str]:
    parent, _, pcol = ref.partition(".")
    if parent not in m.tables:
        return [f"{where}: references table {parent!r}, which the mapping does not define"
                f"{_did_you_mean(parent, list(m.tables))}"]
    ptable = m.tables[parent]
    if not pcol:
        pk = ptable.primary_key or []
        if len(pk) != 1:
            return [f"{where}: references {parent!r}, which has "
                    f"{'a composite' if pk else 'no'} primary key; name the column: "
                    f"'references: {parent}.<column>'"]
        pcol = pk[0]
    if pcol not in ptable.columns:
        return [f"{where}: references {parent}.{pcol}, which is not a column of {parent!r}"
                f"{_did_you_mean(pcol, list(ptable.columns))}"]
    if [pcol] not in ptable.unique_keys():
        return [f"{where}: references {parent}.{pcol}, which is neither the primary key nor "
                "unique; a foreign key needs one of them"]
    ptype = ptable.column(pcol).type
    try:
        if ptype is not None and parse_type(ptype) != own:
            return [f"{where}: type {own.sql} differs from the referenced "
                    f"{parent}.{pcol} ({parse_type(ptype).sql})"]
    except ValueError:
        pass  # reported on the referenced column itself
    return []


def resolve_reference(m: Mapping, ref: str) -> tuple[str, str]:
    """``accounts`` or ``accounts.email`` → (table, column)."""
    parent, _, pcol = ref.partition(".")
    if not pcol:
        pcol = (m.tables[parent].primary_key or [""])[0]
    return parent, pcol
