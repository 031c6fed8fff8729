"""The mapping file as a validated model.

Field-level shape (misspelled keys, wrong kinds of values) is checked by pydantic; the
cross-references (tables, columns, captures, types of foreign keys) by
:func:`docshift.spec.check.check_mapping`. Both report through :mod:`docshift.spec.load`,
which turns every problem into a line naming the file, the table and the column.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from bson import Decimal128
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OrphanPolicy = Literal["reject", "null", "keep", "drop"]
DuplicatePolicy = Literal["reject", "keep_first"]
UnmappedPolicy = Literal["report", "ignore"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]+))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _identifier(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(
            f"{what} {value!r} is not a plain PostgreSQL identifier "
            "(letters, digits and _, not starting with a digit, at most 63 characters)"
        )
    return value


class SourceSpec(Strict):
    """Where documents come from. Sources are only ever read."""

    kind: Literal["mongodb", "mongodump", "json", "postgres_kv"]
    path: str | None = None
    uri: str | None = None
    database: str | None = None
    dsn: str | None = None
    table: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    key_column: str = "key"
    value_column: str = "value"

    @model_validator(mode="after")
    def _required_settings(self) -> SourceSpec:
        needs = {
            "mongodb": ["uri", "database"],
            "mongodump": ["path"],
            "json": ["path"],
            "postgres_kv": ["table"],
        }[self.kind]
        missing = [n for n in needs if getattr(self, n) in (None, "")]
        if missing:
            example = ", ".join(f"{n}: {_SOURCE_EXAMPLES[self.kind][n]}" for n in missing)
            raise ValueError(
                f"a {self.kind} source needs {' and '.join(repr(n) for n in missing)}: "
                f"add {example}"
                + (" (the key-value table's DSN defaults to the target's)"
                   if self.kind == "postgres_kv" else "")
            )
        return self


_SOURCE_EXAMPLES = {
    "mongodb": {"uri": "mongodb://localhost:27017", "database": "mydb"},
    "mongodump": {"path": "./dump/mydb"},
    "json": {"path": "./export"},
    "postgres_kv": {"table": "kv_store_abc123"},
}


class TargetSpec(Strict):
    """The PostgreSQL database to load. No DSN: the embedded server under ./.docshift/."""

    dsn: str | None = None
    schema_: str = Field(default="public", alias="schema")
    mode: Literal["create", "existing"] = "create"

    @field_validator("schema_")
    @classmethod
    def _schema_name(cls, v: str) -> str:
        return _identifier(v, "schema")


class OptionsSpec(Strict):
    """Settings that apply to every table unless a table overrides them."""

    naming: Literal["as_is", "camelCase"] = "as_is"
    unmapped: UnmappedPolicy = "report"
    strip_nul: bool = False
    replace_invalid_utf8: bool = False
    epoch: Literal["s", "ms"] | None = None
    max_text_chars: int | None = Field(default=None, ge=1)
    on_orphan: OrphanPolicy = "reject"


class ColumnSpec(Strict):
    """One target column: where its value comes from and what it must satisfy."""

    type: str | None = None
    from_: str | None = Field(default=None, alias="from")
    nullable: bool | None = None
    default: Any = None
    map: list[tuple[Any, Any]] | None = None
    """Source value → value, as ``(source, value)`` pairs in file order. The source values
    keep their YAML type: ``1`` (a number), ``'1'`` (text) and ``true`` are three keys."""
    enum: list[Any] | None = None
    unique: bool = False
    on_duplicate: DuplicatePolicy | None = None
    """For a ``unique`` column: overrides the table's ``on_duplicate`` for this key."""
    references: str | None = None
    on_orphan: OrphanPolicy | None = None
    max_length: int | None = Field(default=None, ge=1)

    @field_validator("map", mode="before")
    @classmethod
    def _map_pairs(cls, v: Any) -> Any:
        # a block ``{a: b}`` (from code, or a YAML file) is the same as its list of pairs
        return list(v.items()) if isinstance(v, dict) else v

    def map_entries(self) -> list[tuple[Any, Any]]:
        """The value map as ``(source value, value)`` pairs (empty without ``map``)."""
        return list(self.map or [])


def map_key(value: Any) -> tuple[str, Any] | None:
    """The key a source value is matched by in a value map: its kind and its value.

    Numbers match numbers by value (``1``, ``1.0``, ``Int64(1)``), text matches text and a
    boolean only a boolean: ``1``, ``'1'`` and ``true`` are different keys, as YAML reads
    them. None for a value that cannot be a key (an object or an array).
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float, Decimal)):
        return ("number", value)
    if isinstance(value, Decimal128):
        return ("number", value.to_decimal())
    if isinstance(value, str):
        return ("text", str(value))
    try:
        hash(value)
    except TypeError:
        return None
    return (type(value).__name__, value)


class IndexSpec(Strict):
    """A secondary index, built after the data is loaded."""

    columns: list[str] = Field(min_length=1)
    unique: bool = False
    where: str | None = None
    using: Literal["btree", "gin", "gist", "hash", "brin"] = "btree"
    name: str | None = None
    opclass: str | None = None
    on_duplicate: DuplicatePolicy | None = None
    """For a unique index: overrides the table's ``on_duplicate`` for this key."""


class FeedSpec(Strict):
    """One way rows reach a table: a collection, or key-value keys matching patterns."""

    from_: str | None = Field(default=None, alias="from")
    keys: list[str] | None = None
    where: dict[str, Any] | None = None
    unnest: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    """Per-feed source paths, overriding each column's ``from``."""

    @field_validator("keys", mode="before")
    @classmethod
    def _one_key_pattern(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_origin(self) -> FeedSpec:
        if (self.from_ is None) == (self.keys is None):
            raise ValueError("give exactly one of 'from' (a collection) or 'keys' (key patterns)")
        return self

    def captures(self) -> set[str]:
        """Names captured by this feed's key patterns."""
        return {m.group(1) for p in self.keys or [] for m in _CAPTURE.finditer(p)}


class TableSpec(Strict):
    """A target table and everything that feeds it."""

    from_: str | None = Field(default=None, alias="from")
    keys: list[str] | None = None
    where: dict[str, Any] | None = None
    unnest: str | None = None
    feeds: list[FeedSpec] | None = None
    columns: dict[str, ColumnSpec]
    primary_key: list[str] | None = None
    on_duplicate: DuplicatePolicy = "reject"
    """The default duplicate policy of every unique key of the table."""
    primary_key_on_duplicate: DuplicatePolicy | None = None
    """Overrides ``on_duplicate`` for the primary key."""
    indexes: list[IndexSpec] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    extra: str | None = None
    unmapped: UnmappedPolicy | None = None
    index_foreign_keys: bool = True

    @field_validator("keys", "primary_key", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("columns", mode="before")
    @classmethod
    def _columns_shorthand(cls, v: Any) -> Any:
        # ``email: text`` is shorthand for ``email: {type: text}``; a bare ``email:`` is
        # ``email: {}`` (existing mode takes the type from the target table)
        if isinstance(v, dict):
            return {k: ({"type": c} if isinstance(c, str) else {} if c is None else c)
                    for k, c in v.items()}
        return v

    @field_validator("indexes", mode="before")
    @classmethod
    def _index_shorthand(cls, v: Any) -> Any:
        # ``[a, b]`` is shorthand for ``{columns: [a, b]}``, and ``a`` for ``{columns: [a]}``
        if isinstance(v, list):
            return [{"columns": i} if isinstance(i, list) else
                    {"columns": [i]} if isinstance(i, str) else i for i in v]
        return v

    @model_validator(mode="after")
    def _feeds(self) -> TableSpec:
        inline = self.from_ is not None or self.keys is not None
        if self.from_ is not None and self.keys is not None:
            raise ValueError("give 'from' (a collection) or 'keys' (key patterns), not both")
        if inline and self.feeds:
            raise ValueError("give either 'from'/'keys' or a list of 'feeds', not both")
        if not inline and not self.feeds:
            raise ValueError(
                "says nothing about where its rows come from: add 'from: <collection>', "
                "'keys: <pattern>' or 'feeds: [...]'"
            )
        if inline:
            self.feeds = [FeedSpec.model_validate({
                "from": self.from_, "keys": self.keys, "where": self.where,
                "unnest": self.unnest,
            })]
        elif self.where is not None or self.unnest is not None:
            raise ValueError("with 'feeds', put 'where' and 'unnest' inside each feed")
        return self

    def column(self, name: str) -> ColumnSpec:
        """The settings of column ``name``."""
        return self.columns[name]

    def index_list(self) -> list[IndexSpec]:
        """The table's secondary indexes (shorthand lists are already expanded)."""
        return list(self.indexes)

    def unique_keys(self) -> list[list[str]]:
        """Every column set that must be unique: primary key, unique columns, unique indexes."""
        keys: list[list[str]] = []
        if self.primary_key:
            keys.append(list(self.primary_key))
        keys += [[n] for n in self.columns if self.column(n).unique]
        keys += [i.columns for i in self.index_list() if i.unique and i.where is None]
        return keys

    def duplicate_policy(self, columns: list[str]) -> DuplicatePolicy:
        """``reject`` or ``keep_first`` for the unique key made of ``columns``.

        The key's own setting (``primary_key_on_duplicate``, a unique column's or a unique
        index's ``on_duplicate``) wins; otherwise the table's ``on_duplicate``.
        """
        cols = list(columns)
        if (self.primary_key and cols == list(self.primary_key)
                and self.primary_key_on_duplicate is not None):
            return self.primary_key_on_duplicate
        if len(cols) == 1 and cols[0] in self.columns:
            col = self.column(cols[0])
            if col.unique and col.on_duplicate is not None:
                return col.on_duplicate
        for index in self.index_list():
            if index.unique and index.columns == cols and index.on_duplicate is not None:
                return index.on_duplicate
        return self.on_duplicate


class Mapping(Strict):
    """A whole mapping file."""

    version: Literal[1] = 1
    source: SourceSpec
    target: TargetSpec = Field(default_factory=TargetSpec)
    options: OptionsSpec = Field(default_factory=OptionsSpec)
    tables: dict[str, TableSpec] = Field(min_length=1)
    ignore_keys: list[str] = Field(default_factory=list)
    path: str = Field(default="docshift.yaml", exclude=True)
    """The file this mapping was read from (for messages)."""

    def tables_in_load_order(self) -> list[str]:
        """Tables sorted so that every referenced table comes before its referrers."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str, stack: tuple[str, ...]) -> None:
            if name in seen or name in stack:
                return
            for c in self.tables[name].columns.values():
                if c.references:
                    parent = c.references.split(".")[0]
                    if parent in self.tables and parent != name:
                        visit(parent, (*stack, name))
            seen.add(name)
            order.append(name)

        for name in self.tables:
            visit(name, ())
        return order


def capture_names(pattern: str) -> list[str]:
    """The ``{name}`` captures of a key pattern, in order."""
    return [m.group(1) for m in _CAPTURE.finditer(pattern)]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a key pattern (``client:{env}:{id}``, ``{n:[0-9]+}``) to an anchored regex.

    A capture without its own regex matches one or more characters, as few as possible,
    so ``client:{env}:{id}`` splits at the first colon after ``client:``.
    """
    out, pos = [], 0
    for m in _CAPTURE.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '.+?'})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    # '*' in a pattern is a wildcard that captures nothing (handy for ignore_keys)
    return re.compile("^" + "".join(out).replace(r"\*", ".*") + "$", re.DOTALL)
