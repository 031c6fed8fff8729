"""The key-value access an application does today, run against the real key-value table.

Each step is what a key-value client offers: ``get`` one key, ``scan`` every key of a
prefix (``key LIKE 'order:%'``, as ``getByPrefix`` helpers do), ``get_each`` — one
``mget`` (``key = ANY(...)``) of the ids an index key holds — and then, in the client, what
the store cannot do: ``filter``, ``search``, ``sort``, ``limit``, ``count``, ``count_by``. Every row
read is counted, so the report shows how much of the store the question had to touch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from docshift.bench.queries import PLACEHOLDER, KvStep
from docshift.errors import DocshiftError


@dataclass
class KvResult:
    """What one run of a key-value access gave."""

    value: Any
    rows_read: int
    round_trips: int


def field_of(record: Any, path: str) -> Any:
    """``record``'s value at the dotted ``path`` (None when absent)."""
    for part in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


def fill(template: str, params: dict[str, Any], record: Any = None) -> str:
    """``template`` with each ``{name}`` replaced by a parameter or a field of ``record``."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in params:
            return str(params[name])
        value = field_of(record, name)
        if value is None:
            raise DocshiftError(f"{{{name}}} in {template!r} is neither a parameter nor a "
                                "field of the record the previous step read",
                                hint="Name it under params, or read a record that has it "
                                "first (see docs/bench.md).")
        return str(value)

    return PLACEHOLDER.sub(one, template)


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


class KvAccess:
    """Runs key-value steps on ``table(key_column, value_column)`` through one connection."""

    def __init__(self, conn: psycopg.Connection, table: str, *, schema: str | None = None,
                 key_column: str = "key", value_column: str = "value") -> None:
        self.conn = conn
        t = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        k, v = sql.Identifier(key_column), sql.Identifier(value_column)
        self._get = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(v, t, k)
        self._mget = sql.SQL("SELECT {}, {} FROM {} WHERE {} = ANY(%s)").format(k, v, t, k)
        self._scan = sql.SQL("SELECT {} FROM {} WHERE {} LIKE %s").format(v, t, k)

    def run(self, steps: list[KvStep], params: dict[str, Any]) -> KvResult:
        """Run the steps once with ``params``; the last step's value is the answer."""
        current: Any = None
        rows = trips = 0
        for step in steps:
            if step.get is not None:
                row = self.conn.execute(self._get, (fill(step.get, params, current),)).fetchone()
                trips += 1
                rows += row is not None
                current = row[0] if row else None
            elif step.scan is not None:
                found = self.conn.execute(self._scan, (_like(fill(step.scan, params, current)),)
                                          ).fetchall()
                trips += 1
                rows += len(found)
                current = [r[0] for r in found]
            elif step.get_each is not None:
                items = current if isinstance(current, list) else []
                keys = [fill(step.get_each, {**params, "item": i} if not isinstance(i, dict)
                             else params, i) for i in items]
                found = dict(self.conn.execute(self._mget, (keys,)).fetchall())
                trips += 1
                rows += len(found)
                current = [found[k] for k in keys if k in found]
            else:
                current = _client_side(step, current, params)
        return KvResult(current, rows, trips)


def _records(current: Any) -> list[Any]:
    if isinstance(current, list):
        return current
    return [] if current is None else [current]


def _client_side(step: KvStep, current: Any, params: dict[str, Any]) -> Any:
    """filter / search / sort / limit / count / count_by, in the client as applications do."""
    records = _records(current)
    if step.filter is not None:
        tests: list[tuple[str, Callable[[Any], bool]]] = []
        for path, want in step.filter.items():
            wanted = [fill(w, params) if isinstance(w, str) else w
                      for w in (want if isinstance(want, list) else [want])]
            tests.append((path, lambda v, wanted=wanted: v in wanted))
        return [r for r in records if all(t(field_of(r, p)) for p, t in tests)]
    if step.search is not None:
        wanted = {p: fill(w, params).casefold() for p, w in step.search.items()}
        return [r for r in records
                if all(w in str(field_of(r, p) or "").casefold() for p, w in wanted.items())]
    if step.sort is not None:
        path = step.sort.lstrip("-")
        present = [r for r in records if field_of(r, path) is not None]
        missing = [r for r in records if field_of(r, path) is None]
        present.sort(key=lambda r: field_of(r, path), reverse=step.sort.startswith("-"))
        return present + missing
    if step.limit is not None:
        return records[: step.limit]
    if step.count:
        return len(records)
    assert step.count_by is not None
    return dict(Counter(str(field_of(r, step.count_by)) for r in records))
