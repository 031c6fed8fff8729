"""Type inference: what each field of a sample holds, and the column type that fits it."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128, Int64, ObjectId

from docshift.infer.sample import canonical

MAX_DEPTH = 4
"""Nested objects are profiled this deep; below, only their presence is counted."""
DISTINCT_CAP = 2000
"""Distinct values counted per field; beyond it the field is known to be high-cardinality."""
INT32 = 2**31
DOMINANT = 0.9
"""A type held by this share of the non-null values types the column despite a few others."""

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?)?$")
_NUMERIC = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?$")
_HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
_TEXT_NUMBERS = re.compile(r"(^|_)(id|ids|number|no|code|phone|zip|postal_code|vat|tax|"
                           r"symbol|fax|iban|swift|account)$")


def type_label(v: Any) -> str:
    """The BSON / Extended JSON type name of a value, as evidence comments show it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, ObjectId):
        return "objectId"
    if isinstance(v, Int64):
        return "long"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, (Decimal128, Decimal)):
        return "decimal"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (datetime, date)):
        return "date"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, uuid.UUID) or (isinstance(v, Binary) and v.subtype in (3, 4)):
        return "uuid"
    if isinstance(v, (bytes, Binary)):
        return "binData"
    return type(v).__name__


@dataclass
class FieldStats:
    """What a sample holds at one path: presence, types, values, and nested shapes."""

    present: int = 0
    nulls: int = 0
    types: Counter[str] = field(default_factory=Counter)
    values: Counter[str] = field(default_factory=Counter)
    overflow: bool = False
    examples: list[Any] = field(default_factory=list)
    int_min: int | None = None
    int_max: int | None = None
    max_chars: int = 0
    strings: Counter[str] = field(default_factory=Counter)
    """Kinds of strings seen: date, numeric, lead0 (numeric with leading zeros), hex24, uuid."""
    children: dict[str, FieldStats] = field(default_factory=dict)
    objects: int = 0
    key_counts: list[int] = field(default_factory=list)
    elements: FieldStats | None = None
    arrays: int = 0
    non_empty: int = 0
    with_repeats: int = 0

    def add(self, v: Any, depth: int = 0) -> None:
        """Count one value found at this path."""
        self.present += 1
        label = type_label(v)
        self.types[label] += 1
        if v is None:
            self.nulls += 1
            return
        if label == "object":
            self._object(v, depth)
            return
        if label == "array":
            self._array(v, depth)
            return
        key = canonical(v)
        if key is None:
            key = repr(v) if label in ("double", "decimal", "bool", "date") else None
        if key is not None:
            if key in self.values or len(self.values) < DISTINCT_CAP:
                self.values[key] += 1
            else:
                self.overflow = True
        if len(self.examples) < 3 and v not in self.examples:
            self.examples.append(v)
        if label in ("int", "long"):
            iv = int(v)
            self.int_min = iv if self.int_min is None else min(self.int_min, iv)
            self.int_max = iv if self.int_max is None else max(self.int_max, iv)
        elif label == "string":
            self.max_chars = max(self.max_chars, len(v))
            if _ISO_DATE.match(v):
                self.strings["date"] += 1
                if len(v) == 10:
                    self.strings["day"] += 1
            elif _NUMERIC.match(v):
                self.strings["lead0" if len(v) > 1 and v[0] == "0" and v[1] != "." else
                             "numeric"] += 1
            elif _HEX24.match(v):
                self.strings["hex24"] += 1
            elif _UUID.match(v):
                self.strings["uuid"] += 1

    def _object(self, v: dict[str, Any], depth: int) -> None:
        self.objects += 1
        self.key_counts.append(len(v))
        if depth >= MAX_DEPTH:
            return
        for k, x in v.items():
            child = self.children.get(k)
            if child is None:
                if len(self.children) >= DISTINCT_CAP:
                    self.overflow = True
                    continue
                child = self.children[k] = FieldStats()
            child.add(x, depth + 1)

    def _array(self, v: list[Any], depth: int) -> None:
        self.arrays += 1
        if v:
            self.non_empty += 1
        if self.elements is None:
            self.elements = FieldStats()
        seen: set[str] = set()
        repeats = False
        for x in v:
            self.elements.add(x, depth + 1)
            key = canonical(x)
            if key is not None:
                repeats = repeats or key in seen
                seen.add(key)
        self.with_repeats += repeats

    # -- what the counts say ------------------------------------------------------------------

    @property
    def non_null(self) -> int:
        return self.present - self.nulls

    def kinds(self) -> set[str]:
        """The non-null type labels seen."""
        return {t for t in self.types if t != "null"}

    def distinct(self) -> int:
        return len(self.values)

    def is_map(self) -> bool:
        """An object used as a map: many distinct keys that look like data, one value shape."""
        if self.objects == 0 or not self.children:
            return False
        keys = list(self.children)
        data_keys = sum(1 for k in keys if re.search(r"\d", k) or _UUID.match(k)
                        or _HEX24.match(k))
        avg = sum(self.key_counts) / len(self.key_counts)
        shapes = {frozenset(c.kinds()) for c in self.children.values()}
        one_shape = len(shapes) == 1
        many = len(keys) >= 8 and avg <= len(keys) / 2
        return one_shape and (data_keys >= 0.8 * len(keys) and len(keys) >= 2 or many)

    def is_flat_record(self) -> bool:
        """A small regular object of scalars: worth flattening into columns."""
        if self.objects == 0 or not self.children or len(self.children) > 15:
            return False
        for c in self.children.values():
            if c.kinds() & {"object", "array"}:
                return False
            if c.present < 0.9 * self.objects:
                return False
        return True

    def evidence(self, total: int) -> str:
        """``present 98% (196/200), string×190 null×6, 187 distinct, e.g. "a", "b"``."""
        pct = 100 * self.present / total if total else 0
        types = " ".join(f"{t}×{n}" for t, n in self.types.most_common())
        parts = [f"present {pct:.0f}% ({self.present}/{total})", types]
        if self.values:
            parts.append(f"{'over ' if self.overflow else ''}{self.distinct()} distinct")
        if self.int_min is not None:
            parts.append(f"range {self.int_min}..{self.int_max}")
        if self.examples:
            parts.append("e.g. " + ", ".join(_show(x) for x in self.examples[:3]))
        return ", ".join(p for p in parts if p)


def _show(x: Any) -> str:
    text = str(x) if not isinstance(x, str) else repr(x)
    text = text.replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def profile(docs: list[Any], depth: int = 0) -> dict[str, FieldStats]:
    """The stats of every top-level field of ``docs`` (objects), in first-seen order."""
    out: dict[str, FieldStats] = {}
    for d in docs:
        if not isinstance(d, dict):
            continue
        for k, v in d.items():
            fs = out.get(k)
            if fs is None:
                fs = out[k] = FieldStats()
            fs.add(v, depth)
    return out


def column_type(fs: FieldStats, name: str) -> tuple[str, str | None]:
    """The PostgreSQL type for a scalar field, and a ``CHECK`` note when the types are mixed.

    Dates (BSON dates and ISO strings) → timestamptz; ObjectIds and UUIDs (or their strings)
    → uuid; Decimal128 and numeric strings → numeric; integers sized by the observed range.
    """
    kinds = fs.kinds()
    if not kinds:
        return "text", "always null or missing in the sample; the type is a guess"
    strings = fs.types.get("string", 0)
    s = fs.strings
    if kinds == {"string"} and s["day"] == strings:
        return "date", None
    if kinds <= {"date", "string"} and (s["date"] == strings):
        return "timestamptz", None
    if kinds <= {"objectId", "string", "uuid"} and s["hex24"] + s["uuid"] == strings:
        return "uuid", None
    if kinds == {"bool"}:
        return "boolean", None
    if kinds <= {"int", "long"}:
        lo, hi = fs.int_min or 0, fs.int_max or 0
        if "long" in kinds or max(abs(lo), abs(hi)) >= INT32 // 2:
            return "bigint", None
        return "integer", None
    numeric_strings = s["numeric"] == strings and strings > 0
    if kinds <= {"int", "long", "double", "decimal", "string"} and (
            "string" not in kinds or numeric_strings):
        if "string" in kinds and _TEXT_NUMBERS.search(name):
            return "text", None
        if kinds <= {"int", "long", "double"}:
            return "double precision", None
        return "numeric", None
    if kinds == {"string"}:
        return "text", None
    if kinds == {"binData"}:
        return "bytea", None
    shown = ", ".join(sorted(kinds))
    top, n = max(((t, c) for t, c in fs.types.items() if t != "null"), key=lambda tc: tc[1])
    if n >= DOMINANT * fs.non_null:
        # a few odd values: type the column for the rest; the odd documents are quarantined
        only = FieldStats(present=n, types=Counter({top: n}),
                          strings=fs.strings if top == "string" else Counter(),
                          int_min=fs.int_min, int_max=fs.int_max)
        type_, _ = column_type(only, name) if top != "string" else ("text", None)
        if type_ != "jsonb":
            return type_, (f"mixed types ({shown}): {fs.non_null - n} value(s) that are not "
                           f"{top} will quarantine their documents")
    if "string" in kinds and "bool" not in kinds and not kinds & {"object", "array",
                                                                  "binData"}:
        return "text", f"mixed types ({shown}); numbers and dates are kept as their text"
    return "jsonb", f"mixed types ({shown}); kept as jsonb"


def enum_suggestion(fs: FieldStats, total: int) -> list[tuple[str, int]] | None:
    """Values and counts of a low-cardinality string field, when an enum looks likely."""
    if fs.kinds() != {"string"} or fs.overflow or fs.non_null < 20:
        return None
    d = fs.distinct()
    if 2 <= d <= 12 and d <= fs.non_null / 5 and fs.max_chars <= 40:
        return sorted(fs.values.items(), key=lambda kv: (-kv[1], kv[0]))
    return None
