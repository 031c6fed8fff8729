"""Read a mapping file: YAML → ``${VAR}`` interpolation → validated :class:`Mapping`.

Every problem becomes one line that names the file (with its line number), the table and the
column, and says what is wrong; all problems are reported at once in a MappingError.
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
from docshift.spec.check import check_mapping
from docshift.spec.model import Mapping

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_mapping(path: str | Path) -> Mapping:
    """Load and validate the mapping file at ``path``; raise MappingError on any problem."""
    path = Path(path)
    if not path.exists():
        raise MappingError(
            f"{path}: no such mapping file",
            hint="Write one with `docshift init` or `docshift infer SOURCE -o docshift.yaml`, "
            "or point at it with -c.",
        )
    return parse_mapping(path.read_text(encoding="utf-8"), str(path))


def parse_mapping(text: str, filename: str = "docshift.yaml") -> Mapping:
    """Validate mapping text; ``filename`` is only used in messages."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{filename}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MappingError(f"{filename}: expected a mapping with 'source' and 'tables' at the top")
    lines = _line_numbers(node)
    data, missing = _interpolate(data)
    if missing:
        raise MappingError(
            f"{filename}: environment variable(s) not set: {', '.join(sorted(missing))}",
            hint="Export them, or write ${VAR:-default} in the mapping file.",
        )
    try:
        mapping = Mapping.model_validate({**data, "path": filename})
    except ValidationError as exc:
        problems = [_describe(filename, err, lines) for err in exc.errors()]
        raise MappingError(_summary(filename, problems), problems=problems) from None
    problems = [f"{filename}: {p}" for p in check_mapping(mapping)]
    if problems:
        raise MappingError(_summary(filename, problems), problems=problems)
    return mapping


def _summary(filename: str, problems: list[str]) -> str:
    n = len(problems)
    head = f"{filename}: {n} problem{'s' if n != 1 else ''} in the mapping file"
    return head + "\n" + "\n".join(f"  - {p}" for p in problems)


def _interpolate(value: Any) -> tuple[Any, set[str]]:
    missing: set[str] = set()

    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            missing.add(m.group(1))
            return m.group(0)

        return _VAR.sub(one, text)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return sub(v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value), missing


def _line_numbers(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map each key path in the YAML document to its 1-based line number."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*path, i))

    if node is not None:
        walk(node, ())
    return lines


_KNOWN_KEYS = {
    "column": ["type", "from", "nullable", "default", "map", "enum", "unique", "references",
               "on_orphan", "max_length"],
    "table": ["from", "keys", "where", "unnest", "feeds", "columns", "primary_key",
              "on_duplicate", "indexes", "ignore", "extra", "unmapped", "index_foreign_keys"],
    "feed": ["from", "keys", "where", "unnest", "columns"],
    "index": ["columns", "unique", "where", "using", "name", "opclass"],
    "top": ["version", "source", "target", "options", "tables", "ignore_keys"],
    "source": ["kind", "path", "uri", "database", "dsn", "table", "schema", "key_column",
               "value_column"],
    "target": ["dsn", "schema", "mode"],
    "options": ["naming", "unmapped", "strip_nul", "replace_invalid_utf8", "epoch", "on_orphan"],
}


def _where(loc: tuple[Any, ...]) -> tuple[str, str]:
    """Describe a pydantic error location as words, and say which kind of block it is in."""
    parts: list[str] = []
    kind = "top"
    i = 0
    # pydantic inserts union-branch names (e.g. 'ColumnSpec') into locations; drop them
    loc = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper() and
                                       p.endswith("Spec")) and p not in ("list[str]", "str"))
    while i < len(loc):
        p = loc[i]
        if p == "tables" and i + 1 < len(loc):
            parts.append(f"table {loc[i + 1]!r}")
            kind = "table"
            i += 2
        elif p == "columns" and kind in ("table", "feed") and i + 1 < len(loc):
            parts.append(f"column {loc[i + 1]!r}")
            kind = "column" if kind == "table" else "feed"
            i += 2
        elif p == "feeds" and i + 1 < len(loc):
            parts.append(f"feed {loc[i + 1]}")
            kind = "feed"
            i += 2
        elif p == "indexes" and i + 1 < len(loc):
            parts.append(f"index {loc[i + 1]}")
            kind = "index"
            i += 2
        elif p in ("source", "target", "options") and i == 0:
            parts.append(p)
            kind = p
            i += 1
        else:
            i += 1
    return ", ".join(parts), kind


def _describe(filename: str, err: Any, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(err["loc"])
    yaml_loc = tuple(p for p in loc if not (isinstance(p, str) and p.endswith("Spec")))
    line = None
    for n in range(len(yaml_loc), 0, -1):
        line = lines.get(yaml_loc[:n])
        if line:
            break
    where, kind = _where(loc)
    prefix = f"{filename}:{line}" if line else filename
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        where = _where(loc[:-1])[0]
        known = _KNOWN_KEYS.get(kind, [])
        if kind == "column" and loc[-2:-1] and False:
            pass
        close = difflib.get_close_matches(str(key), known, n=1)
        msg = f"unknown key {key!r}"
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        elif known:
            msg += f"; allowed here: {', '.join(known)}"
        if key in ("type", "nullable", "references") and kind == "table":
            msg += "; column settings go under 'columns: {name: {...}}'"
        return f"{prefix}: {where + ': ' if where else ''}{msg}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = f"'{loc[-1]}' is required"
        where = _where(loc[:-1])[0]
    elif err["type"] == "literal_error":
        msg = f"{loc[-1]!r}: {msg} (got {err.get('input')!r})"
    return f"{prefix}: {where + ': ' if where else ''}{msg}"
