"""The PostgreSQL column types a mapping may name, parsed into :class:`PgType`."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

BASES: tuple[str, ...] = (
    "text", "varchar", "smallint", "integer", "bigint", "numeric", "real",
    "double precision", "boolean", "date", "timestamp", "timestamptz", "uuid", "jsonb", "bytea",
)
"""Canonical spelling of every supported base type."""

SUPPORTED = (
    "text, varchar(n), smallint, integer, bigint, numeric(p,s), real, double precision, "
    "boolean, date, timestamp, timestamptz, uuid, jsonb, bytea, and T[] arrays of these"
)
"""The supported types, as error messages list them."""

VARCHAR_MAX = 10_485_760
"""PostgreSQL's largest ``varchar(n)``."""

NUMERIC_MAX_PRECISION = 1000
"""PostgreSQL's largest ``numeric`` precision."""

_ALIASES: dict[str, str] = {
    **{b: b for b in BASES},
    "int": "integer",
    "int4": "integer",
    "int2": "smallint",
    "int8": "bigint",
    "bool": "boolean",
    "float4": "real",
    "float8": "double precision",
    "double": "double precision",
    "float": "double precision",
    "character varying": "varchar",
    "decimal": "numeric",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
}

# Names people bring from other systems: only used to suggest a supported type.
_FOREIGN: dict[str, str] = {
    "string": "text",
    "str": "text",
    "char": "varchar(n)",
    "character": "varchar(n)",
    "int32": "integer",
    "int64": "bigint",
    "long": "bigint",
    "short": "smallint",
    "tinyint": "smallint",
    "number": "numeric",
    "datetime": "timestamptz",
    "time": "timestamptz",
    "json": "jsonb",
    "object": "jsonb",
    "document": "jsonb",
    "dict": "jsonb",
    "binary": "bytea",
    "blob": "bytea",
    "bytes": "bytea",
    "guid": "uuid",
    "objectid": "uuid",
}

_ARRAY = re.compile(r"(.*?)\s*\[\s*\]")
_NAME_ARGS = re.compile(r"([a-z][a-z0-9 ]*?)\s*(?:\(\s*([^()]*?)\s*\))?")


@dataclass(frozen=True, slots=True)
class PgType:
    """One PostgreSQL column type; build it with :func:`parse_type`."""

    base: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    array: bool = False

    @property
    def element(self) -> PgType:
        """The type without its array: the type of each element."""
        return replace(self, array=False) if self.array else self

    @property
    def sql(self) -> str:
        """The type as DDL spells it, e.g. ``varchar(20)``, ``numeric(10,2)``, ``text[]``."""
        text = self.base
        if self.length is not None:
            text = f"{text}({self.length})"
        elif self.precision is not None:
            text = f"{text}({self.precision},{self.scale or 0})"
        return f"{text}[]" if self.array else text

    @property
    def copy_name(self) -> str:
        """The name to give ``Copy.set_types`` for a binary COPY into a column of this type."""
        # psycopg's type registry knows type names without modifiers only; the binary
        # format of varchar(n) / numeric(p,s) is that of varchar / numeric.
        return f"{self.base}[]" if self.array else self.base


def _unknown(name: str) -> ValueError:
    known = {**_ALIASES, **_FOREIGN}
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = ""
    if close:
        target = known[close[0]]
        target = {"varchar": "varchar(n)", "numeric": "numeric(p,s)"}.get(target, target)
        hint = f" (did you mean {target!r}?)"
    return ValueError(f"unknown type {name!r}{hint}; supported: {SUPPORTED}")


def _int_arg(text: str, what: str, original: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"type {original!r}: {what} must be a whole number, not {text!r}")
    return int(text)


def parse_type(text: str) -> PgType:
    """Parse a type name as a mapping writes it (case-insensitive, aliases allowed).

    Raises ``ValueError`` with a message that says what is wrong, suggests the closest
    supported name and lists the supported types.
    """
    original = text
    norm = " ".join(text.lower().split())
    array = False
    if m := _ARRAY.fullmatch(norm):
        norm, array = m.group(1), True
        if _ARRAY.fullmatch(norm):
            raise ValueError(f"type {original!r}: arrays of arrays are not supported; "
                             f"supported: {SUPPORTED}")
    m = _NAME_ARGS.fullmatch(norm)
    if not m:
        raise ValueError(f"cannot read type {original!r}; supported: {SUPPORTED}")
    name, args = m.group(1), m.group(2)
    if name == "json":
        raise ValueError(f"type {original!r} is not supported: use 'jsonb' instead (it stores "
                         "the same documents, indexed and without duplicate keys)")
    base = _ALIASES.get(name)
    if base is None:
        raise _unknown(name)
    if args is None:
        return PgType(base, array=array)
    parts = [p.strip() for p in args.split(",")]
    if base == "varchar":
        if len(parts) != 1:
            raise ValueError(f"type {original!r}: varchar takes one length, e.g. varchar(20)")
        n = _int_arg(parts[0], "the length", original)
        if not 1 <= n <= VARCHAR_MAX:
            raise ValueError(f"type {original!r}: the length must be between 1 and "
                             f"{VARCHAR_MAX}, not {n}")
        return PgType(base, length=n, array=array)
    if base == "numeric":
        if len(parts) > 2:
            raise ValueError(f"type {original!r}: numeric takes a precision and a scale, "
                             "e.g. numeric(10,2)")
        p = _int_arg(parts[0], "the precision", original)
        s = _int_arg(parts[1], "the scale", original) if len(parts) == 2 else 0
        if not 1 <= p <= NUMERIC_MAX_PRECISION:
            raise ValueError(f"type {original!r}: the precision must be between 1 and "
                             f"{NUMERIC_MAX_PRECISION}, not {p}")
        if not 0 <= s <= p:
            raise ValueError(f"type {original!r}: the scale must be between 0 and the "
                             f"precision ({p}), not {s}")
        return PgType(base, precision=p, scale=s, array=array)
    raise ValueError(f"type {original!r}: {base} takes no arguments; supported: {SUPPORTED}")
