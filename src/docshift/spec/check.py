"""Cross-reference checks that a field-by-field schema cannot express.

Each problem names the table and column, says what to do, and carries its place in the YAML
document (``loc``) so that the loader can prefix the file name and line number. Nothing here
touches a database.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from docshift.errors import ConversionError
from docshift.spec.model import ColumnSpec, FeedSpec, Mapping, TableSpec, pattern_regex
from docshift.spec.names import name_problems, opclass_problem, where_problem
from docshift.transform.convert import ConvertOptions, converter_for
from docshift.transform.pgtypes import PgType, parse_type

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
SPECIAL_PATHS = ("$key", "$item", "$index", "$")
"""Paths that do not read a document field: see docs/mapping.md, "Column sources"."""

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping: where it is in the YAML document, and what it is."""

    loc: Loc
    """Key path in the YAML document, e.g. ``("tables", "users", "columns", "email")``."""
    message: str
    """A sentence naming the table and column and saying what to do."""

    def __str__(self) -> str:
        return self.message


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_mapping(m: Mapping) -> list[str]:
    """Every cross-reference problem in ``m``, as sentences. Empty when the mapping is sound."""
    return [p.message for p in find_problems(m)]


def find_problems(m: Mapping) -> list[Problem]:
    """Every cross-reference problem in ``m``, with its place in the YAML document."""
    problems: list[Problem] = []
    kv = m.source.kind == "postgres_kv"
    for tname, table in m.tables.items():
        problems += _check_table(m, tname, table, kv)
    for i, pattern in enumerate(m.ignore_keys):
        problems += _check_pattern(("ignore_keys", i), "ignore_keys", pattern)
    problems += _check_nested_unnest(m)
    if not problems:
        # names are only worth comparing once every table and column is sound
        problems += [Problem(p.loc, p.message) for p in name_problems(m)]
    # the same problem can show up once per feed; say it once
    return list(dict.fromkeys(problems))


def _check_table(m: Mapping, tname: str, table: TableSpec, kv: bool) -> list[Problem]:
    here: Loc = ("tables", tname)
    where = f"table {tname!r}"
    problems: list[Problem] = []
    if not _IDENT.match(tname):
        problems.append(Problem(here, f"{where}: the name is not a plain PostgreSQL identifier "
                                "(letters, digits and _, not starting with a digit, at most "
                                "63 characters); rename the table"))
    if not table.columns:
        problems.append(Problem((*here, "columns"), f"{where}: it has no columns; add at least "
                                "one (e.g. 'id: {type: uuid, from: _id}'), or remove the table"))
    names = list(table.columns)
    for cname, col in table.columns.items():
        problems += _check_column(m, tname, table, cname, col)
    for i, key in enumerate(table.primary_key or []):
        if key not in table.columns:
            loc = (*here, "primary_key", i) if len(table.primary_key or []) > 1 else (
                *here, "primary_key")
            problems.append(Problem(loc, f"{where}: primary_key names column {key!r}, which "
                                    f"is not in its columns{_did_you_mean(key, names)}; "
                                    "add the column or fix the name"))
    pk = table.primary_key or []
    repeated = sorted({k for k in pk if pk.count(k) > 1})
    if repeated:
        problems.append(Problem((*here, "primary_key"), f"{where}: primary_key names "
                                f"{', '.join(map(repr, repeated))} more than once; name each "
                                "column once"))
    if table.primary_key_on_duplicate is not None and not table.primary_key:
        problems.append(Problem((*here, "primary_key_on_duplicate"),
                                f"{where}: 'primary_key_on_duplicate' needs a primary_key; "
                                "add 'primary_key: <column>' or remove the setting"))
    for i, index in enumerate(table.index_list()):
        iloc: Loc = (*here, "indexes", i)
        for c in index.columns:
            if c not in table.columns:
                problems.append(Problem(
                    iloc,
                    f"{where}, index {i}: column {c!r} is not in the table"
                    f"{_did_you_mean(c, names)}; an index can only use mapped columns"))
        if index.using in ("gin", "gist") and index.opclass is None:
            # neither has an operator class for plain scalar types without an extension
            for c in index.columns:
                t = _column_type(m, table, c)
                if t is not None and not (t.array or t.base == "jsonb"):
                    problems.append(Problem(
                        (*iloc, "using"),
                        f"{where}, index {i}: 'using: {index.using}' has no operator class "
                        f"for column {c!r} of type {t.sql} (it indexes jsonb and arrays); "
                        "use 'using: btree', or name an 'opclass' an extension provides"))
        if index.opclass is not None and (why := opclass_problem(index.opclass)):
            problems.append(Problem((*iloc, "opclass"), f"{where}, index {i}: {why}"))
        if index.where is not None and (why := where_problem(index.where, table)):
            problems.append(Problem((*iloc, "where"), f"{where}, index {i}: {why}"))
        if index.on_duplicate is not None and not (index.unique and index.where is None):
            problems.append(Problem(
                (*iloc, "on_duplicate"),
                f"{where}, index {i}: 'on_duplicate' only applies to a unique index without "
                "'where' (a unique key); add 'unique: true' or remove 'on_duplicate'"))
    if table.extra is not None:
        if table.extra in table.columns:
            problems.append(Problem((*here, "extra"), f"{where}: extra column {table.extra!r} "
                                    "is also a mapped column; give the catch-all a name of "
                                    "its own (e.g. extra: extra)"))
        elif not _IDENT.match(table.extra):
            problems.append(Problem((*here, "extra"), f"{where}: extra column "
                                    f"{table.extra!r} is not a plain identifier"))
    assert table.feeds is not None
    inline = table.from_ is not None or table.keys is not None
    for i, feed in enumerate(table.feeds):
        floc: Loc = here if inline else (*here, "feeds", i)
        fwhere = where if inline else f"{where}, feed {i}"
        problems += _check_feed(m, floc, fwhere, table, feed, kv)
    return problems


def _check_feed(m: Mapping, loc: Loc, where: str, table: TableSpec, feed: FeedSpec,
                kv: bool) -> list[Problem]:
    problems: list[Problem] = []
    if kv and feed.from_ is not None:
        problems.append(Problem((*loc, "from"), f"{where}: 'from' names a collection, but the "
                                "source is a key-value table; use 'keys: <pattern>' "
                                "(e.g. 'client:{env}:{id}')"))
    if not kv and feed.keys is not None:
        problems.append(Problem((*loc, "keys"), f"{where}: 'keys' patterns need a postgres_kv "
                                f"source; for a {m.source.kind} source use "
                                "'from: <collection>'"))
    for j, pattern in enumerate(feed.keys or []):
        ploc = (*loc, "keys", j) if len(feed.keys or []) > 1 else (*loc, "keys")
        problems += _check_pattern(ploc, where, pattern)
    captures = feed.captures()
    for name in feed.where or {}:
        if kv and name not in captures:
            problems.append(Problem(
                (*loc, "where", name),
                f"{where}: 'where' filters on {name!r}, which no key pattern captures "
                f"(captures: {', '.join(sorted(captures)) or 'none'}); capture it in 'keys', "
                f"e.g. 'client:{{{name}}}:{{id}}'"))
    if feed.unnest is not None and feed.unnest.startswith("$") and not (
            feed.unnest == "$" or feed.unnest.startswith("$.")):
        problems.append(Problem((*loc, "unnest"), f"{where}: 'unnest' takes a document path "
                                "(e.g. 'tags', 'profile.phones') or '$' for the whole document, "
                                f"not {feed.unnest!r}"))
    for cname in feed.columns:
        if cname not in table.columns:
            problems.append(Problem((*loc, "columns", cname),
                                    f"{where}: feed sets column {cname!r}, which is not in the "
                                    f"table{_did_you_mean(cname, list(table.columns))}"))
    for cname in table.columns:
        path = source_path(m, table, feed, cname)
        if cname in feed.columns:
            ploc: Loc = (*loc, "columns", cname)
        elif table.column(cname).from_ is not None:
            ploc = (*loc[:2], "columns", cname, "from")
        else:
            ploc = (*loc[:2], "columns", cname)
        problems += [Problem(ploc, p) for p in _check_path(where, cname, path, feed, captures,
                                                           kv)]
    return problems


def _check_nested_unnest(m: Mapping) -> list[Problem]:
    """Refuse an unnest path that runs through an array another table unnests.

    ``unnest: items.tags`` where a table unnests ``items`` would read ``tags`` of an array,
    which has no fields: it would give no rows at all. Nested unnest is not supported.
    """
    unnested: dict[tuple[str | None, str], str] = {}
    for tname, table in m.tables.items():
        for feed in table.feeds or []:
            if feed.unnest and not feed.unnest.startswith("$"):
                unnested.setdefault((feed.from_, feed.unnest), tname)
    problems: list[Problem] = []
    for tname, table in m.tables.items():
        inline = table.from_ is not None or table.keys is not None
        for i, feed in enumerate(table.feeds or []):
            path = feed.unnest
            if not path or path.startswith("$"):
                continue
            parts = path.split(".")
            for n in range(1, len(parts)):
                outer = ".".join(parts[:n])
                other = unnested.get((feed.from_, outer))
                if other is None:
                    continue
                loc: Loc = (("tables", tname, "unnest") if inline
                            else ("tables", tname, "feeds", i, "unnest"))
                rest = ".".join(parts[n:])
                problems.append(Problem(loc, (
                    f"table {tname!r}: 'unnest: {path}' goes through {outer!r}, an array that "
                    f"table {other!r} unnests; an unnest cannot reach into the elements of "
                    "another array (nested unnest is not supported), so it would give no "
                    f"rows. Keep the inner array on the rows of table {other!r} instead, e.g. "
                    f"a column '{rest.replace('.', '_')}: {{type: text[], from: $item.{rest}}}'"
                    " (or jsonb)")))
                break
    return problems


def _check_pattern(loc: Loc, where: str, pattern: str) -> list[Problem]:
    try:
        pattern_regex(pattern)
    except re.error as exc:
        return [Problem(loc, f"{where}: key pattern {pattern!r} does not compile ({exc}); "
                        "captures are {name} or {name:regex}, each name used once")]
    return []


def _check_path(where: str, cname: str, path: str, feed: FeedSpec, captures: set[str],
                kv: bool) -> list[str]:
    where = f"{where}, column {cname!r}"
    if not path.startswith("$"):
        if not path or any(p == "" for p in path.split(".")):
            return [f"{where}: source path {path!r} has an empty segment; write it like "
                    "'profile.email' or 'items.0.sku'"]
        return []
    head, _, rest = path.partition(".")
    if head not in SPECIAL_PATHS:
        return [f"{where}: unknown source {head!r}{_did_you_mean(head, list(SPECIAL_PATHS))}; "
                "special sources are $, $key, $key.<capture>, $item, $item.<path>, $index"]
    if head in ("$item", "$index") and feed.unnest is None:
        return [f"{where}: {head} is the current element of an unnested array, so it only "
                "means something in a table with 'unnest: <array path>'; add 'unnest', or "
                "read a document field instead"]
    if head == "$key" and rest:
        if not kv:
            return [f"{where}: $key.{rest} reads a key-pattern capture, which only a "
                    "postgres_kv source has; use $key for the document's key"]
        if feed.keys is not None and rest not in captures:
            return [f"{where}: no key pattern captures {rest!r} (captures: "
                    f"{', '.join(sorted(captures)) or 'none'})"
                    f"{_did_you_mean(rest, sorted(captures))}; capture it in 'keys', "
                    f"e.g. '...:{{{rest}}}'"]
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
                  col: ColumnSpec) -> list[Problem]:
    here: Loc = ("tables", tname, "columns", cname)
    where = f"table {tname!r}, column {cname!r}"
    problems: list[Problem] = []

    def problem(key: str | None, text: str) -> None:
        problems.append(Problem((*here, key) if key else here, f"{where}: {text}"))

    if not _IDENT.match(cname):
        problem(None, "the name is not a plain PostgreSQL identifier (letters, digits and _, "
                "not starting with a digit, at most 63 characters); rename the column and read "
                f"the field with 'from: {cname}'")
    if col.on_orphan is not None and col.references is None:
        problem("on_orphan", "'on_orphan' only applies to a column with 'references'")
    if col.on_duplicate is not None and not col.unique:
        problem("on_duplicate", "'on_duplicate' only applies to a column with 'unique: true' "
                "(set the table's duplicate policy with the table's 'on_duplicate')")
    in_pk = cname in (table.primary_key or [])
    if col.nullable and in_pk:
        problem("nullable", "a primary key column cannot be nullable; remove 'nullable: true'")
    if col.references and (col.on_orphan or m.options.on_orphan) == "null" and (
            in_pk or col.nullable is False):
        why = "it is part of the primary key" if in_pk else "it has 'nullable: false'"
        origin = "its 'on_orphan'" if col.on_orphan else "options.on_orphan"
        problem("on_orphan" if col.on_orphan else "references",
                f"{origin} is 'null', but the column cannot be NULL ({why}); set "
                "'on_orphan: reject' or 'on_orphan: keep' on this column")
    if col.type is None:
        if col.references:
            # the column takes the referenced column's type
            problems += [Problem((*here, "references"), f"{where}: {p}")
                         for p in _check_reference(m, None, col.references)]
        elif m.target.mode == "create":
            problem(None, "'type' is required (e.g. text, integer, uuid, timestamptz, "
                    f"jsonb): write '{cname}: <type>' or '{cname}: {{type: <type>, ...}}'")
        return problems
    try:
        own = parse_type(col.type)
    except ValueError as exc:
        problem("type", _type_problem(cname, col.type, str(exc)))
        return problems
    if col.references:
        problems += [Problem((*here, "references"), f"{where}: {p}")
                     for p in _check_reference(m, own, col.references)]
    if col.max_length is not None and own.base not in ("text", "varchar"):
        problem("max_length", f"max_length applies to text columns, not {own.sql}")
    options = ConvertOptions(strip_nul=m.options.strip_nul,
                             replace_invalid_utf8=m.options.replace_invalid_utf8,
                             epoch=m.options.epoch)
    if col.default is not None:
        try:
            converter_for(own, options)(col.default)
        except ConversionError as exc:
            problem("default", f"default {col.default!r} is not a {own.sql} value: "
                    f"{exc.reason}; a default is a value, not an SQL expression")
    if col.enum is not None and not own.array and own.base not in ("text", "varchar"):
        for v in col.enum:
            try:
                converter_for(own, options)(v)
            except ConversionError as exc:
                problem("enum", f"enum value {v!r} is not a {own.sql} value: {exc.reason}")
    if col.enum is not None and col.default is not None and col.default not in col.enum:
        problem("default", f"default {col.default!r} is not one of its enum values "
                f"{col.enum}: every row that takes the default would be refused; add it "
                "to the enum or change the default")
    if col.enum is not None:
        wrong = [v for v in col.enum if not isinstance(v, str)]
        if own.base in ("text", "varchar") and not own.array and wrong:
            problem("enum", f"enum value{'s' if len(wrong) > 1 else ''} "
                    f"{', '.join(map(repr, wrong))} {'are' if len(wrong) > 1 else 'is'} not "
                    "text: YAML reads yes/no/on/off/true/false as booleans and bare numbers "
                    f"as numbers; quote {'them' if len(wrong) > 1 else 'it'}, e.g. "
                    f"enum: [{', '.join(repr(_yaml_text(v)) for v in wrong)}]")
        if col.map is not None:
            for k, v in col.map_entries():
                if v is not None and v not in col.enum:
                    problem("map", f"map turns {k!r} into {v!r}, which is not in its enum "
                            f"{col.enum}; add it to the enum or change the map")
    return problems


def _column_type(m: Mapping, table: TableSpec, cname: str) -> PgType | None:
    """The type of ``table``'s column ``cname`` as the mapping gives it (None: not given,
    or not a type)."""
    if cname not in table.columns:
        return None
    col = table.column(cname)
    if col.type is None:
        return None
    try:
        return parse_type(col.type)
    except ValueError:
        return None


def _yaml_text(v: object) -> str:
    return {True: "true", False: "false"}.get(v, str(v)) if isinstance(v, bool) else str(v)


def _type_problem(cname: str, text: str, error: str) -> str:
    if ("." in text and "(" not in text) or text.startswith("$"):
        return (f"{text!r} is not a type but looks like a source path; write "
                f"'{cname}: {{type: <type>, from: {text}}}'")
    if error.startswith("unknown type") and "did you mean" not in error and _IDENT.match(text):
        error += (f"; if {text!r} is the source field, write "
                  f"'{cname}: {{type: <type>, from: {text}}}'")
    return error


def _check_reference(m: Mapping, own: PgType | None, ref: str) -> list[str]:
    parent, _, pcol = ref.partition(".")
    if parent not in m.tables:
        return [f"references table {parent!r}, which the mapping does not define"
                f"{_did_you_mean(parent, list(m.tables))}; references name a table of this "
                "mapping ('table' or 'table.column')"]
    ptable = m.tables[parent]
    if not pcol:
        pk = ptable.primary_key or []
        if len(pk) != 1:
            what = f"a composite primary key ({', '.join(pk)})" if pk else "no primary key"
            return [f"references {parent!r}, which has {what}; reference one unique column "
                    f"instead: 'references: {parent}.<column>', where that column has "
                    "'unique: true'"]
        pcol = pk[0]
    if pcol not in ptable.columns:
        return [f"references {parent}.{pcol}, which is not a column of {parent!r}"
                f"{_did_you_mean(pcol, list(ptable.columns))}"]
    if [pcol] not in ptable.unique_keys():
        return [f"references {parent}.{pcol}, which is neither the primary key nor unique; a "
                f"foreign key needs one of them: add 'unique: true' to {parent}.{pcol}, or "
                f"reference the primary key of {parent}"]
    ptype = ptable.column(pcol).type
    if own is None or ptype is None:
        return []
    try:
        theirs = parse_type(ptype)
    except ValueError:
        return []  # reported on the referenced column itself
    if theirs != own:
        return [f"type {own.sql} differs from the referenced {parent}.{pcol} ({theirs.sql}); "
                "use the same type, or leave out 'type' to take the referenced column's"]
    return []


def resolve_reference(m: Mapping, ref: str) -> tuple[str, str]:
    """``accounts`` or ``accounts.email`` → (table, column)."""
    parent, _, pcol = ref.partition(".")
    if not pcol:
        pcol = (m.tables[parent].primary_key or [""])[0]
    return parent, pcol
