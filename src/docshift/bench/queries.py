"""Read a queries file (``--queries queries.yaml``): YAML → validated :class:`QueriesFile`.

Every problem becomes one line that starts with the file name and line number
(``queries.yaml:12:``), names the query entry and the setting, and says what to do; all
problems are reported at once in a MappingError (exit 2), as the mapping loader does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docshift.errors import MappingError
from docshift.spec.load import read_text_file

QUERIES_HINT = "Every key of a queries file is described in docs/bench.md."

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
"""``{name}`` in a key pattern or a MongoDB filter: a parameter, or a field of the record
the previous step read."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Params(_Strict):
    """Where a query's parameter values come from: a list, or a SQL query drawing them."""

    values: list[dict[str, Any]] | None = None
    """Each entry is one set of values, ``{name: value}``; runs take them in turn."""
    sql: str | None = None
    """A query whose rows (column name → value) are the sets of values; ``{kv_table}`` in it
    is the source's key-value table."""
    from_: Literal["target", "source"] = Field(default="target", alias="from")
    """Which database ``sql`` runs on (source: the key-value source's database)."""
    count: int | None = Field(default=None, ge=1)
    """How many rows ``sql`` draws (default: the number of runs)."""
    uuid: list[str] = []
    """Values that are source ids: the target query gets the UUID docshift made of them."""
    objectid: list[str] = []
    """Values that are UUIDs made of ObjectIds: the source access gets the ObjectId."""

    @model_validator(mode="after")
    def _one_origin(self) -> Params:
        if (self.values is None) == (self.sql is None):
            raise ValueError("give either 'values: [{name: value}, ...]' or 'sql: SELECT ...' "
                             "(a query whose columns are the parameters)")
        if self.values is not None and not self.values:
            raise ValueError("'values' is empty: give at least one {name: value} block")
        return self


class KvStep(_Strict):
    """One step of a key-value access, as the application does it."""

    get: str | None = None
    """Read one key (``site:production:{site}``)."""
    scan: str | None = None
    """Read every key matching a prefix pattern (``order:*``)."""
    get_each: str | None = None
    """For each id (or record) the previous step gave, read this key, in one round trip."""
    filter: dict[str, Any] | None = None
    """Keep the records whose fields equal these values (a list: any of them)."""
    search: dict[str, str] | None = None
    """Keep the records whose fields contain this text, ignoring case."""
    sort: str | None = None
    """Sort the records by this field (``-field``: descending)."""
    limit: int | None = Field(default=None, ge=0)
    count: bool = False
    """Replace the records by their number."""
    count_by: str | None = None
    """Replace the records by their number per value of this field."""

    @model_validator(mode="after")
    def _one_action(self) -> KvStep:
        given = [k for k in ("get", "scan", "get_each", "filter", "search", "sort", "limit",
                                  "count_by")
                 if getattr(self, k) is not None] + (["count"] if self.count else [])
        if len(given) != 1:
            what = "nothing" if not given else ", ".join(repr(g) for g in given)
            raise ValueError(f"a step does one thing (get, scan, get_each, filter, search, "
                             f"sort, limit, count or count_by), here {what}: split it into "
                             "several '- ' steps")
        return self


class MongoAccess(_Strict):
    """A ``find`` or an ``aggregate`` on a live MongoDB source."""

    find: str | None = None
    aggregate: str | None = None
    filter: dict[str, Any] = {}
    projection: dict[str, Any] | None = None
    sort: dict[str, Literal[1, -1]] | None = None
    limit: int | None = Field(default=None, ge=0)
    pipeline: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MongoAccess:
        if (self.find is None) == (self.aggregate is None):
            raise ValueError("give either 'find: <collection>' or 'aggregate: <collection>'")
        if self.aggregate is not None and self.pipeline is None:
            raise ValueError("'aggregate' needs 'pipeline: [...]'")
        if self.find is not None and self.pipeline is not None:
            raise ValueError("'pipeline' goes with 'aggregate', not with 'find'")
        return self


class SourceAccess(_Strict):
    """The same question asked of the source, the way the application asks it today."""

    kv: list[KvStep] | None = Field(default=None, min_length=1)
    mongodb: MongoAccess | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SourceAccess:
        if (self.kv is None) == (self.mongodb is None):
            raise ValueError("give either 'kv: [steps]' or 'mongodb: {find | aggregate}'")
        return self


class Query(_Strict):
    """One entry of the queries file."""

    name: str = Field(min_length=1)
    sql: str = Field(min_length=1)
    params: Params | None = None
    expect_ms: float | None = Field(default=None, gt=0)
    """The target's median time must not exceed this (exit 1 otherwise)."""
    source: SourceAccess | None = None


class QueriesFile(_Strict):
    """A queries file: a list of named queries."""

    version: Literal[1] = 1
    queries: list[Query] = Field(min_length=1)
    path: str = "queries.yaml"

    @model_validator(mode="after")
    def _unique_names(self) -> QueriesFile:
        seen: set[str] = set()
        for q in self.queries:
            if q.name in seen:
                raise ValueError(f"two queries are named {q.name!r}: give each a name of its own")
            seen.add(q.name)
        return self


def load_queries(path: str | Path) -> QueriesFile:
    """Load and validate the queries file at ``path``; raise MappingError on any problem."""
    path = Path(path)
    text = read_text_file(path, "queries file", "Give a queries file with --queries; "
                          "examples/kv/queries.yaml is one. " + QUERIES_HINT)
    return parse_queries(text, str(path))


def parse_queries(text: str, filename: str = "queries.yaml") -> QueriesFile:
    """Validate queries-file text; ``filename`` is only used in messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        what = getattr(exc, "problem", None) or str(exc)
        raise MappingError(f"{filename}:{line}: not valid YAML: {what}; check the indentation "
                           "and quote text that holds ': ' or { }", hint=QUERIES_HINT) from None
    if not isinstance(data, dict):
        raise MappingError(f"{filename}:1: a queries file is a block with 'queries:' at the top "
                           "(a list of entries with name and sql)", hint=QUERIES_HINT)
    lines: dict[tuple[Any, ...], int] = {}
    _lines(node, (), lines)
    if "path" in data:
        data.pop("path")
    try:
        return QueriesFile.model_validate({**data, "path": filename})
    except ValidationError as exc:
        problems = sorted({_describe(filename, e, lines, data) for e in exc.errors()})
        n = len(problems)
        message = (f"{filename}: {n} problem{'s' if n != 1 else ''} in the queries file\n"
                   + "\n".join(f"  - {p[1]}" for p in problems))
        raise MappingError(message, problems=[p[1] for p in problems],
                           hint=QUERIES_HINT) from None


def _lines(node: yaml.Node | None, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]
           ) -> None:
    if node is None:
        return
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[(*path, k.value)] = k.start_mark.line + 1
            _lines(v, (*path, k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)


def _describe(filename: str, err: Any, lines: dict[tuple[Any, ...], int], data: dict[str, Any]
              ) -> tuple[int, str]:
    loc = tuple(err["loc"])
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
    where = ""
    if len(loc) >= 2 and loc[0] == "queries" and isinstance(loc[1], int):
        entries = data.get("queries") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"query {name!r}" if name else f"query {loc[1] + 1}"
        rest = [str(p) for p in loc[2:] if not isinstance(p, int)]
        if "kv" in rest and len(loc) > 4 and isinstance(loc[4], int):
            where += f", kv step {loc[4] + 1}"
        if rest:
            where += f", {'.'.join(rest)!s}"
    elif loc:
        where = str(loc[0])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r}; see docs/bench.md for the keys a queries file takes"
        where = where.rsplit(", ", 1)[0] if ", " in where else where
    elif err["type"] == "missing":
        msg = f"{loc[-1]!r} is required"
        where = where.rsplit(", ", 1)[0] if ", " in where else ""
    return line, f"{filename}:{line}: {where + ': ' if where else ''}{msg}"
