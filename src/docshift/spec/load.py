"""Read a mapping file: YAML → ``${VAR}`` interpolation → validated :class:`Mapping`.

Every problem becomes one line that starts with the file name and line number
(``docshift.yaml:12:``), names the table and the column, says what is wrong and what to do;
all problems are reported at once in a MappingError (``problems`` holds the lines).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from docshift.errors import MappingError
from docshift.spec.check import find_problems
from docshift.spec.model import Mapping

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Loc = tuple[Any, ...]
Lines = dict[Loc, int]

REFERENCE_HINT = "Every key is described in docs/mapping.md; `docshift plan` re-checks the file."

START_HINT = ("Write one with `docshift init` (a commented starter) or "
              "`docshift infer SOURCE -o docshift.yaml`, or point at it with -c.")


def load_mapping(path: str | Path) -> Mapping:
    """Load and validate the mapping file at ``path``; raise MappingError on any problem."""
    path = Path(path)
    return parse_mapping(read_text_file(path, "mapping file", START_HINT), str(path))


def read_text_file(path: Path, what: str, missing_hint: str) -> str:
    """The UTF-8 text of ``path`` (a ``what``: "mapping file", "queries file"), or a
    MappingError naming the file and what is wrong with it."""
    if not path.is_file():
        problem = f"is a directory, not a {what}" if path.is_dir() else f"no such {what}"
        raise MappingError(f"{path}: {problem}", hint=missing_hint)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                           hint=f"Save the {what} as UTF-8.") from None


def parse_mapping(text: str, filename: str = "docshift.yaml") -> Mapping:
    """Validate mapping text; ``filename`` is only used in messages."""
    try:
        node, data = _read_yaml(text)
    except yaml.YAMLError as exc:
        problem = _yaml_problem(filename, text, exc)
        raise MappingError(problem, problems=[problem]) from None
    if not isinstance(data, dict):
        what = "is empty" if data is None else f"holds {_kind_of(data)}"
        problem = (f"{filename}:1: the file {what}; a mapping file is a block with 'source:' "
                   "and 'tables:' at the top")
        raise MappingError(problem, problems=[problem], hint=START_HINT)
    lines: Lines = {}
    words: dict[Loc, str] = {}
    problems: list[tuple[int, str]] = []
    _walk_nodes(node, (), lines, words, problems, filename)
    _typed_maps(node, data)
    data, missing = _interpolate(data)
    for loc, name in missing:
        problems.append(_at(filename, lines, loc, _label(loc)[0],
                            f"environment variable {name} is not set; export it, or write "
                            f"${{{name}:-default}} to give a fallback"))
    if missing:
        raise _error(filename, problems, hint="Export the variables, or write ${VAR:-default} "
                     "in the mapping file.")
    if "path" in data:
        # 'path' is the model's record of the file name, not a key a mapping file may set
        problems.append(_at(filename, lines, ("path",), "", "unknown key 'path'; a source "
                            "folder or file goes under 'source:' (source: {kind: mongodump, "
                            "path: ./dump/mydb})"))
        data.pop("path")
    try:
        mapping = Mapping.model_validate({**data, "path": filename})
    except ValidationError as exc:
        problems += [_describe(filename, err, lines, words) for err in exc.errors()]
        raise _error(filename, problems) from None
    problems += [_at(filename, lines, p.loc, "", p.message) for p in find_problems(mapping)]
    if problems:
        raise _error(filename, problems)
    return mapping


def _read_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree (for line numbers) and the data it holds (as ``safe_load`` reads
    it), parsed once, by libyaml when PyYAML has it (30 times faster than pure Python)."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return _compose(fast, text)
        except yaml.YAMLError:
            pass  # the pure-Python parser's description of the problem is the one we explain
    return _compose(yaml.SafeLoader, text)


def _compose(loader_class: Any, text: str) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _error(filename: str, problems: list[tuple[int, str]], hint: str = REFERENCE_HINT
           ) -> MappingError:
    lines = [text for _, text in sorted(problems, key=lambda p: p[0])]
    n = len(lines)
    head = f"{filename}: {n} problem{'s' if n != 1 else ''} in the mapping file"
    message = head + "\n" + "\n".join(f"  - {p}" for p in lines)
    return MappingError(message, problems=lines, hint=hint)


def _at(filename: str, lines: Lines, loc: Loc, where: str, text: str) -> tuple[int, str]:
    """A problem line ``file:line: where: text``, with its line number for sorting."""
    line = _line(lines, loc)
    return line, f"{filename}:{line}: {where + ': ' if where else ''}{text}"


def _line(lines: Lines, loc: Loc) -> int:
    """The line of the deepest part of ``loc`` that is in the file (1 if none is)."""
    loc = tuple(p for p in loc if p != "[key]")
    for n in range(len(loc), -1, -1):
        line = lines.get(loc[:n])
        if line:
            return line
    return 1


def _yaml_problem(filename: str, text: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    msg = f"{filename}:{line}: not valid YAML: {what}"
    if context:
        msg += f" ({context})"
    near = [mark, getattr(exc, "context_mark", None)]
    src = text.splitlines()
    source_line = " ".join(src[m.line] for m in near if m is not None and m.line < len(src))
    if "\t" in what or "\\t" in what:
        msg += "; indent with spaces, not tabs"
    elif any(c in source_line for c in "{}[]"):
        msg += ("; check that every { and [ is closed, and quote values that contain "
                "{ } [ ] or ': ' (e.g. keys: ['client:{env}:{id}'])")
    else:
        msg += "; check the indentation and the ':' after each key on this line and the one above"
    return msg


def _interpolate(value: Any) -> tuple[Any, list[tuple[Loc, str]]]:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; list the unset variables."""
    missing: list[tuple[Loc, str]] = []

    def sub(text: str, loc: Loc) -> str:
        def one(m: re.Match[str]) -> str:
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            missing.append((loc, m.group(1)))
            return m.group(0)

        return _VAR.sub(one, text)

    def walk(v: Any, loc: Loc) -> Any:
        if isinstance(v, str):
            return sub(v, loc)
        if isinstance(v, dict):
            return {k: walk(x, (*loc, k)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, (*loc, i)) for i, x in enumerate(v)]
        return v

    return walk(value, ()), missing


def _key_value(k: yaml.Node) -> Any:
    """A mapping key as ``safe_load`` reads it (``on:`` is True, ``1:`` is 1)."""
    if isinstance(k, yaml.ScalarNode) and not k.tag.endswith(":str"):
        try:
            return yaml.safe_load(k.value)
        except yaml.YAMLError:
            return k.value
    return k.value


def _typed_maps(node: yaml.Node | None, data: dict[str, Any]) -> None:
    """Replace each column's ``map`` block by its ``[source, value]`` pairs, read from YAML.

    A Python dict holds ``1`` and ``true`` (or ``0`` and ``false``) as one key, so a block
    that has both would lose one; the pairs keep every key with the type YAML gave it.
    """
    if not isinstance(node, yaml.MappingNode):
        return
    loader = yaml.SafeLoader("")
    try:
        tables = _child(node, "tables")
        for tkey, tnode in tables.value if isinstance(tables, yaml.MappingNode) else []:
            columns = _child(tnode, "columns")
            for ckey, cnode in (columns.value if isinstance(columns, yaml.MappingNode)
                                else []):
                mnode = _child(cnode, "map")
                if not isinstance(mnode, yaml.MappingNode):
                    continue
                col = data["tables"][_key_value(tkey)]["columns"][_key_value(ckey)]
                col["map"] = [[loader.construct_object(k, deep=True),
                               loader.construct_object(v, deep=True)] for k, v in mnode.value]
    except (KeyError, TypeError, yaml.YAMLError):
        return  # the shape is wrong: the model reports it
    finally:
        loader.dispose()


def _child(node: yaml.Node | None, name: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if _key_value(k) == name
                 and isinstance(_key_value(k), str)), None)


def _typed(key: Any) -> tuple[str, Any]:
    """A key with its YAML type: ``1`` and ``true`` differ in YAML, not in a Python dict."""
    return (type(key).__name__, key)


def _walk_nodes(node: yaml.Node | None, path: Loc, lines: Lines, words: dict[Loc, str],
                problems: list[tuple[int, str]], filename: str) -> None:
    """Record the 1-based line of every key path; report keys given twice in one block.

    ``words`` keeps the spelling of keys that YAML does not read as text (``on``, ``1``).
    """
    if node is None:
        return
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = _key_value(k)
            line = k.start_mark.line + 1
            if isinstance(key, (str, int, bool, float)) or key is None:
                if _typed(key) in seen:
                    where = _label(path)[0]
                    problems.append((line, f"{filename}:{line}: {where + ': ' if where else ''}"
                                     f"{k.value!r} is given twice (lines {seen[_typed(key)]} and "
                                     f"{line}); YAML keeps only the last one, so merge or rename "
                                     "them"))
                seen[_typed(key)] = line
                lines[(*path, key)] = line
                if not isinstance(key, str):
                    words[(*path, key)] = k.value
                _walk_nodes(v, (*path, key), lines, words, problems, filename)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk_nodes(v, (*path, i), lines, words, problems, filename)


_KNOWN_KEYS = {
    "column": ["type", "from", "nullable", "default", "map", "enum", "unique", "on_duplicate",
               "references", "on_orphan", "max_length"],
    "table": ["from", "keys", "where", "unnest", "feeds", "columns", "primary_key",
              "on_duplicate", "primary_key_on_duplicate", "indexes", "ignore", "extra",
              "unmapped", "index_foreign_keys"],
    "feed": ["from", "keys", "where", "unnest", "columns"],
    "index": ["columns", "unique", "where", "using", "name", "opclass", "on_duplicate"],
    "top": ["version", "source", "target", "options", "tables", "ignore_keys"],
    "source": ["kind", "path", "uri", "database", "dsn", "table", "schema", "key_column",
               "value_column"],
    "target": ["dsn", "schema", "mode"],
    "options": ["naming", "unmapped", "strip_nul", "replace_invalid_utf8", "epoch", "on_orphan"],
}

# Keys people bring from other tools, and what the mapping file calls them.
_SYNONYMS = {
    "column": {
        "primary_key": "a primary key is set on the table: 'primary_key: <column>'",
        "primary": "a primary key is set on the table: 'primary_key: <column>'",
        "pk": "a primary key is set on the table: 'primary_key: <column>'",
        "required": "write 'nullable: false'",
        "not_null": "write 'nullable: false'",
        "null": "write 'nullable: true' or 'nullable: false'",
        "optional": "write 'nullable: true'",
        "index": "indexes are set on the table: 'indexes: [[<column>]]'",
        "indexed": "indexes are set on the table: 'indexes: [[<column>]]'",
        "foreign_key": "write 'references: <table>' or 'references: <table>.<column>'",
        "fk": "write 'references: <table>' or 'references: <table>.<column>'",
        "ref": "write 'references: <table>' or 'references: <table>.<column>'",
        "values": "the allowed values go in 'enum: [...]'",
        "choices": "the allowed values go in 'enum: [...]'",
        "source": "the source path goes in 'from: <path>'",
        "path": "the source path goes in 'from: <path>'",
        "field": "the source path goes in 'from: <path>'",
        "length": "write 'max_length: <n>', or use the type varchar(n)",
        "unnest": "'unnest' is a table setting: a table with 'unnest' makes one row per element",
    },
    "table": {
        "collection": "write 'from: <collection>'",
        "source": "write 'from: <collection>' (or 'keys: <pattern>' for a key-value source)",
        "pattern": "write 'keys: <pattern>'",
        "key": "write 'keys: <pattern>' (or 'primary_key: <column>')",
        "pk": "write 'primary_key: <column>'",
        "index": "write 'indexes: [[<column>, ...]]'",
        "type": "column settings go under 'columns: {<name>: {type: ..., ...}}'",
        "nullable": "column settings go under 'columns: {<name>: {nullable: ..., ...}}'",
        "references": "column settings go under 'columns: {<name>: {references: ..., ...}}'",
    },
    "source": {
        "type": "write 'kind: mongodb | mongodump | json | postgres_kv'",
        "url": "write 'uri: mongodb://...' (mongodb) or 'dsn: ...' (postgres_kv)",
        "db": "write 'database: <name>'",
        "file": "write 'path: <file or folder>'",
        "dir": "write 'path: <folder>'",
    },
    "target": {
        "url": "write 'dsn: postgresql://...'",
        "uri": "write 'dsn: postgresql://...'",
        "database": "write 'dsn: postgresql://.../<database>'",
    },
}

_REQUIRED_HINTS = {
    ("top", "source"): ": say where documents come from, e.g. "
                       "source: {kind: mongodump, path: ./dump/mydb}",
    ("top", "tables"): ": add 'tables:' with at least one table (see `docshift init`)",
    ("source", "kind"): ": write 'kind: mongodb | mongodump | json | postgres_kv'",
    ("table", "columns"): ": list the table's columns, e.g. columns: {id: uuid, email: text}",
    ("index", "columns"): ": list the indexed columns, e.g. columns: [email]",
}


def _label(loc: Loc) -> tuple[str, str, list[Any]]:
    """Describe a location as words (``table 'users', column 'email'``).

    Also returns the kind of block it is in (top, source, target, options, table, column,
    feed, feed_column, index) and the rest of the location inside that block.
    """
    parts: list[str] = []
    kind = "top"
    i = 0
    while i < len(loc):
        p = loc[i]
        nxt = i + 1 < len(loc)
        if kind == "top" and p == "tables" and nxt:
            parts.append(f"table {loc[i + 1]!r}")
            kind = "table"
        elif kind == "table" and p == "columns" and nxt:
            parts.append(f"column {loc[i + 1]!r}")
            kind = "column"
        elif kind == "feed" and p == "columns" and nxt:
            parts.append(f"column {loc[i + 1]!r}")
            kind = "feed_column"
        elif kind == "table" and p == "feeds" and nxt and isinstance(loc[i + 1], int):
            parts.append(f"feed {loc[i + 1]}")
            kind = "feed"
        elif kind == "table" and p == "indexes" and nxt and isinstance(loc[i + 1], int):
            parts.append(f"index {loc[i + 1]}")
            kind = "index"
        elif kind == "top" and p in ("source", "target", "options"):
            parts.append(p)
            kind = p
            i += 1
            continue
        else:
            return ", ".join(parts), kind, list(loc[i:])
        i += 2
    return ", ".join(parts), kind, []


def _yaml_word(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a block of settings"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return repr(value)


def _describe(filename: str, err: Any, lines: Lines, words: dict[Loc, str]
              ) -> tuple[int, str]:
    """One pydantic error as a problem line."""
    loc = tuple(err["loc"])
    etype = err["type"]
    value = err.get("input")
    if etype == "extra_forbidden":
        where, kind, _ = _label(loc[:-1])
        return _at(filename, lines, loc, where, _unknown_key(str(loc[-1]), kind))
    if etype == "missing":
        where, kind, _ = _label(loc[:-1])
        text = f"{loc[-1]!r} is required{_REQUIRED_HINTS.get((kind, loc[-1]), '')}"
        return _at(filename, lines, loc, where, text)
    if loc[-1] == "[key]":
        # a name YAML did not read as text: ``on:`` is True, ``1:`` is 1
        where = _label(loc[:-2])[0]
        word = words.get(loc[:-1], _yaml_word(value))
        text = (f"the key {word!r} is read as {_kind_of(value)}, not as text: "
                "quote it (YAML reads yes/no/on/off/true/false as booleans and bare numbers "
                "as numbers)")
        return _at(filename, lines, loc[:-1], where, text)
    where, kind, rest = _label(loc)
    setting = next((p for p in reversed(rest) if isinstance(p, str)), None)
    name = f"{setting!r}" if setting else ""
    if etype == "literal_error":
        allowed = re.findall(r"'([^']*)'|\b(\d+)\b", err.get("ctx", {}).get("expected", ""))
        options = [a or b for a, b in allowed]
        text = (f"{name} must be {err['ctx']['expected']}, not {_kind_of(value)}"
                f"{_suggest(value, options)}")
    elif etype == "string_type":
        text = f"{name or 'the value'} should be text, not {_kind_of(value)}"
        if isinstance(value, dict) and kind == "feed_column":
            text += "; a feed's 'columns' maps a column name to a source path"
    elif etype in ("bool_type", "bool_parsing"):
        text = f"{name} should be true or false, not {_kind_of(value)}"
    elif etype in ("int_type", "int_parsing", "int_from_float"):
        text = f"{name} should be a whole number, not {_kind_of(value)}"
    elif etype in ("dict_type", "model_type", "model_attributes_type"):
        text = _not_a_block(kind, setting, value)
    elif etype == "list_type" and setting == "feeds":
        text = (f"'feeds' should be a list of feeds, each starting with '- from:' or "
                f"'- keys:', not {_kind_of(value)}")
    elif etype == "list_type":
        text = f"{name} should be a list, e.g. [a, b], not {_kind_of(value)}"
    elif etype == "too_short" and setting == "tables":
        text = "'tables' is empty: add at least one table"
    elif etype == "too_short" and kind == "index":
        text = "an index needs at least one column: columns: [<column>, ...]"
    else:
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        text = f"{name}: {msg}" if name and etype != "value_error" else msg
    if setting == "keys" and isinstance(value, dict):
        text += "; quote key patterns: keys: 'client:{env}:{id}'"
    return _at(filename, lines, loc, where, text)


def _not_a_block(kind: str, setting: str | None, value: Any) -> str:
    if kind == "column" and setting is None:
        return (f"a column is a type ('email: text') or a block of settings "
                f"('email: {{type: text, from: profile.email}}'), not {_kind_of(value)}")
    if kind == "table" and setting is None:
        return (f"a table is a block of settings (from or keys or feeds, columns, "
                f"primary_key, ...), not {_kind_of(value)}")
    if kind == "table" and setting == "columns":
        return (f"'columns' maps each column name to its type or settings, e.g. "
                f"columns: {{id: uuid, email: text}}, not {_kind_of(value)}")
    if setting == "where":
        return (f"'where' should be a block of 'field: value' filters, e.g. "
                f"where: {{env: production}}, not {_kind_of(value)}")
    if kind == "top" and setting == "tables":
        return (f"'tables' maps each table name to its settings, e.g. "
                f"tables: {{users: {{from: Users, columns: {{...}}}}}}, not {_kind_of(value)}")
    if setting is None and kind in _KNOWN_KEYS:
        known = ", ".join(_KNOWN_KEYS[kind][:3])
        return (f"expected a block of 'name: value' settings ({known}, ...), "
                f"not {_kind_of(value)}")
    what = f"{setting!r}" if setting else "this"
    return f"{what} should be a block of 'name: value' settings, not {_kind_of(value)}"


def _suggest(value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(key: str, kind: str) -> str:
    known = _KNOWN_KEYS.get("column" if kind == "feed_column" else kind, [])
    msg = f"unknown key {key!r}"
    synonym = _SYNONYMS.get(kind, {}).get(key.lower())
    close = difflib.get_close_matches(key, known, n=1)
    if synonym:
        msg += f"; {synonym}"
    elif close:
        msg += f" (did you mean {close[0]!r}?)"
    elif known:
        msg += f"; allowed here: {', '.join(known)}"
    return msg
