"""Names of what docshift creates, and the SQL fragments a mapping may carry.

PostgreSQL truncates identifiers to 63 bytes and keeps tables, indexes and the indexes behind
primary and unique keys in one namespace per schema. A mapping is checked against both rules
before anything runs: every name docshift would generate or was given must fit and must be
distinct (see :func:`name_problems`). ``target.ddl`` builds its statements with
:func:`object_name`, so the names checked here are the names created.

Index ``where`` predicates and ``opclass`` names are pasted into SQL as they are, so they are
held to strict patterns (:func:`where_problem`, :func:`opclass_problem`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass

from docshift.spec.model import Mapping, TableSpec

MAX_IDENT = 63
"""PostgreSQL truncates identifiers longer than this many bytes."""

Loc = tuple[str | int, ...]


def object_name(*parts: str) -> str:
    """A constraint/index name from parts, shortened deterministically to fit 63 bytes.

    A name that is too long keeps its first 54 bytes and gets a hash of the whole name, so
    two long names that differ only at the end stay distinct.
    """
    name = "_".join(parts)
    if len(name.encode()) <= MAX_IDENT:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.encode()[: MAX_IDENT - 9].decode(errors="ignore") + "_" + digest


@dataclass(frozen=True)
class PlannedName:
    """One name docshift will create for a table, and where it comes from."""

    kind: str  # table | check | primary_key | unique | foreign_key | index
    name: str
    table: str
    what: str
    """Where the name comes from, in words: ``table 'a', column 'b' (foreign key)``."""
    loc: Loc
    explicit: bool = False
    fix: str = ""


def planned_names(m: Mapping, tname: str) -> list[PlannedName]:
    """Every name created for table ``tname``, in the order ``target.ddl`` creates them."""
    table = m.tables[tname]
    here: Loc = ("tables", tname)
    rename = "rename the table or the column"
    out = [PlannedName("table", tname, tname, f"table {tname!r}", here)]
    for cname in table.columns:
        if table.column(cname).enum is not None:
            out.append(PlannedName("check", object_name(tname, cname, "check"), tname,
                                   f"table {tname!r}, column {cname!r} (enum check)",
                                   (*here, "columns", cname, "enum"), fix=rename))
    if table.primary_key:
        out.append(PlannedName("primary_key", object_name(tname, "pkey"), tname,
                               f"table {tname!r} (primary key)", (*here, "primary_key"),
                               fix="rename the table"))
    for cname in table.columns:
        if table.column(cname).unique:
            out.append(PlannedName("unique", object_name(tname, cname, "key"), tname,
                                   f"table {tname!r}, column {cname!r} (unique key)",
                                   (*here, "columns", cname, "unique"), fix=rename))
    fks = [c for c in table.columns if table.column(c).references]
    for cname in fks:
        out.append(PlannedName("foreign_key", object_name(tname, cname, "fkey"), tname,
                               f"table {tname!r}, column {cname!r} (foreign key)",
                               (*here, "columns", cname, "references"), fix=rename))
    indexed: set[tuple[str, ...]] = {tuple(k) for k in table.unique_keys()}
    for i, index in enumerate(table.index_list()):
        loc: Loc = (*here, "indexes", i)
        if index.name:
            out.append(PlannedName("index", index.name, tname, f"table {tname!r}, index {i}",
                                   (*loc, "name"), explicit=True,
                                   fix="give the index another 'name'"))
        else:
            out.append(PlannedName("index", object_name(tname, *index.columns, "idx"), tname,
                                   f"table {tname!r}, index {i} ({', '.join(index.columns)})",
                                   loc, fix="give the index a 'name' of its own"))
        indexed.add(tuple(index.columns))
    if table.index_foreign_keys:
        for cname in fks:
            # an index whose leading column is the FK serves it already
            if any(k[:1] == (cname,) for k in indexed):
                continue
            out.append(PlannedName("index", object_name(tname, cname, "idx"), tname,
                                   f"table {tname!r}, column {cname!r} (foreign-key index)",
                                   (*here, "columns", cname, "references"),
                                   fix=f"{rename}, or index it yourself with a named index"))
            indexed.add((cname,))
    return out


@dataclass(frozen=True)
class NameProblem:
    loc: Loc
    message: str


def name_problems(m: Mapping) -> list[NameProblem]:
    """Names that do not fit 63 bytes or that two objects of the mapping would share."""
    problems: list[NameProblem] = []
    seen: dict[str, PlannedName] = {}
    for tname in m.tables:
        for n in planned_names(m, tname):
            size = len(n.name.encode())
            if n.explicit and size > MAX_IDENT:
                problems.append(NameProblem(n.loc, f"{n.what}: the name {n.name!r} is {size} "
                                            f"bytes; PostgreSQL keeps only the first "
                                            f"{MAX_IDENT} bytes: choose a shorter name"))
                continue
            if n.explicit and not _PLAIN.match(n.name):
                problems.append(NameProblem(n.loc, f"{n.what}: the name {n.name!r} is not a "
                                            "plain identifier (letters, digits and _, not "
                                            "starting with a digit)"))
                continue
            first = seen.get(n.name)
            if first is None:
                seen[n.name] = n
                continue
            if first.kind == "table" and n.kind == "table":
                continue  # a table name is unique as a key of 'tables'
            fix = n.fix or first.fix
            problems.append(NameProblem(n.loc, f"{n.what}: the name {n.name!r} is also the "
                                        f"name of {first.what}; PostgreSQL needs distinct "
                                        f"names: {fix}"))
    return problems


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPCLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\x00]|'')*')
  | (?P<number>[+-]?[0-9]+(?:\.[0-9]+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><>|!=|<=|>=|=|<|>)
  | (?P<paren>[(),])
""", re.VERBOSE)

WHERE_KEYWORDS = frozenset({"and", "or", "not", "is", "null", "true", "false", "in", "like",
                            "ilike", "between", "distinct", "from"})
"""The words an index predicate may use besides the table's column names."""


def opclass_problem(opclass: str) -> str | None:
    """Why ``opclass`` is not an operator class name, or None when it is one."""
    if _OPCLASS.match(opclass):
        return None
    return (f"'opclass' {opclass!r} is not an operator class name (letters, digits and _, "
            "optionally schema-qualified, e.g. text_pattern_ops or jsonb_path_ops)")


def where_problem(where: str, table: TableSpec) -> str | None:
    """Why the index predicate ``where`` is refused, or None when it is sound.

    A predicate may use the table's columns, quoted text, numbers, comparisons
    (``= <> != < <= > >=``), parentheses and the words in :data:`WHERE_KEYWORDS`: enough for
    ``deleted_at IS NULL`` or ``status IN ('open', 'won')``, and nothing that could end the
    statement, start a comment or call a function.
    """
    columns = set(table.columns) | ({table.extra} if table.extra else set())
    pos, depth, words = 0, 0, 0
    while pos < len(where):
        m = _TOKEN.match(where, pos)
        if m is None:
            return (f"'where' {where!r} has {where[pos]!r} at character {pos + 1}; an index "
                    "predicate may use the table's columns, 'quoted text', numbers, "
                    "comparisons, parentheses, AND/OR/NOT, IS [NOT] NULL, IN, LIKE and "
                    "BETWEEN")
        kind, text = m.lastgroup, m.group()
        if kind == "word":
            words += 1
            if text.lower() not in WHERE_KEYWORDS and text not in columns:
                close = difflib.get_close_matches(text, sorted(columns), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return (f"'where' {where!r} reads {text!r}, which is not a column of the "
                        f"table{hint}; an index predicate may use the table's columns and "
                        "no functions")
        elif kind == "paren":
            depth += {"(": 1, ")": -1, ",": 0}[text]
            if depth < 0:
                return f"'where' {where!r} closes a parenthesis it never opened"
        pos = m.end()
    if depth:
        return f"'where' {where!r} leaves a parenthesis open"
    if not words:
        return f"'where' {where!r} is not a predicate (e.g. \"deleted_at IS NULL\")"
    return None
