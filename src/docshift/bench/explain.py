"""What ``EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)`` says about one query.

The plan tree is walked once: the indexes it used, its sequential scans (with the columns
their filter, the joins and the sorts refer to, for an index proposal), the nodes whose
estimated row count is far from the actual one, and the shared buffers hit and read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MISESTIMATE_FACTOR = 10
"""A node whose estimate and actual row counts differ by this factor is flagged…"""
MISESTIMATE_MIN_ROWS = 100
"""…when the larger of the two is at least this: 2 rows for 20 never matters."""

_CONDITION_KEYS = ("Hash Cond", "Merge Cond", "Join Filter", "Index Cond", "Recheck Cond",
                   "Filter")


@dataclass
class SeqScan:
    """A sequential scan of one table, and what an index for it could be built from."""

    schema: str
    table: str
    alias: str
    rows_scanned: int
    filter: str | None = None
    filter_columns: list[str] = field(default_factory=list)
    """Columns compared in the scan's own filter, equality first."""
    text_search: list[tuple[str, str]] = field(default_factory=list)
    """(kind, column or expression): ``trigram`` for LIKE / ILIKE, ``tsvector`` for @@."""
    containment: list[str] = field(default_factory=list)
    """jsonb / array columns used with ``@>``."""
    join_columns: list[str] = field(default_factory=list)
    sort_columns: list[str] = field(default_factory=list)
    table_rows: int = 0
    """The table's size (pg_class.reltuples), filled in by the caller."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class Misestimate:
    """A plan node whose estimated row count is far from the actual one."""

    node: str
    estimated: int
    actual: int

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(self.__dict__)


@dataclass
class PlanFacts:
    """The facts of one EXPLAIN ANALYZE."""

    indexes: list[str] = field(default_factory=list)
    seq_scans: list[SeqScan] = field(default_factory=list)
    misestimates: list[Misestimate] = field(default_factory=list)
    relations: list[tuple[str, str]] = field(default_factory=list)
    """Every (schema, table) the plan reads."""
    estimated_rows: int = 0
    actual_rows: int = 0
    shared_hit: int = 0
    shared_read: int = 0
    execution_ms: float = 0.0
    planning_ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("seq_scans", "misestimates",
                                                                    "relations")}
        out["seq_scans"] = [s.as_json() for s in self.seq_scans]
        out["misestimates"] = [m.as_json() for m in self.misestimates]
        out["relations"] = [f"{s}.{t}" for s, t in self.relations]
        return out


def _nodes(plan: dict[str, Any], parents: tuple[dict[str, Any], ...] = ()
           ) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    yield plan, parents
    for child in plan.get("Plans", []):
        yield from _nodes(child, (*parents, plan))


def _node_label(node: dict[str, Any]) -> str:
    label = str(node.get("Node Type", "?"))
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    return label


def parse_plan(explained: Any) -> PlanFacts:
    """The facts of the JSON that ``EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)`` returns."""
    top = explained[0] if isinstance(explained, list) else explained
    root = top["Plan"]
    facts = PlanFacts(estimated_rows=int(root.get("Plan Rows", 0)),
                      actual_rows=int(root.get("Actual Rows", 0)),
                      shared_hit=int(root.get("Shared Hit Blocks", 0)),
                      shared_read=int(root.get("Shared Read Blocks", 0)),
                      execution_ms=float(top.get("Execution Time", 0.0)),
                      planning_ms=float(top.get("Planning Time", 0.0)))
    everything = list(_nodes(root))
    conditions = [str(n[k]) for n, _ in everything for k in _CONDITION_KEYS if k in n]
    sort_keys = [str(k) for n, _ in everything for k in n.get("Sort Key", [])
                 + n.get("Group Key", [])]
    for node, _parents in everything:
        if "Index Name" in node and node["Index Name"] not in facts.indexes:
            facts.indexes.append(str(node["Index Name"]))
        if "Relation Name" in node:
            rel = (str(node.get("Schema", "public")), str(node["Relation Name"]))
            if rel not in facts.relations:
                facts.relations.append(rel)
        loops = max(int(node.get("Actual Loops", 1)), 1)
        est, act = int(node.get("Plan Rows", 0)), int(node.get("Actual Rows", 0))
        if node.get("Actual Loops", 1) and max(est, act) >= MISESTIMATE_MIN_ROWS and \
                max(est, act) >= MISESTIMATE_FACTOR * max(min(est, act), 1):
            facts.misestimates.append(Misestimate(_node_label(node), est, act))
        if node.get("Node Type") == "Seq Scan":
            alias = str(node.get("Alias", node["Relation Name"]))
            scanned = (act + int(node.get("Rows Removed by Filter", 0))) * loops
            scan = SeqScan(schema=str(node.get("Schema", "public")),
                           table=str(node["Relation Name"]), alias=alias,
                           rows_scanned=scanned, filter=node.get("Filter"))
            _columns_of(scan, conditions, sort_keys)
            facts.seq_scans.append(scan)
    return facts


_OPERATOR = r"(=|<>|!=|<=|>=|<|>|IS\b|~~\*?|!~~\*?|@>|<@|&&|@@|= ANY)"


def _ref(alias: str) -> str:
    """A column of ``alias`` as EXPLAIN VERBOSE writes it: ``a.name`` or ``(a.name)::text``."""
    return rf'\(?\b{re.escape(alias)}\.("?[A-Za-z_][A-Za-z0-9_]*"?)\)?(?:::[a-z ]+(?:\[\])?)?'


def _add(values: list[Any], value: Any) -> None:
    if value not in values:
        values.append(value)


def _columns_of(scan: SeqScan, conditions: list[str], sort_keys: list[str]) -> None:
    """Fill in the columns of ``scan``'s table that its filter, joins and sorts use."""
    ref = _ref(scan.alias)
    own = scan.filter or ""
    for m in re.finditer(rf"to_tsvector\(('[^']*'::regconfig),\s*{ref}\)\s*@@", own):
        _add(scan.text_search, ("tsvector", f"to_tsvector({m.group(1).split('::')[0]}, "
                                            f"{m.group(2)})"))
    for m in re.finditer(rf"{ref}\s*{_OPERATOR}", own):
        column, op = m.group(1), m.group(2)
        if op.lstrip("!").startswith("~~"):
            _add(scan.text_search, ("trigram", column))
        elif op == "@>":
            _add(scan.containment, column)
        elif op != "@@":
            _add(scan.filter_columns, column)
    equality = [c for c in scan.filter_columns
                if re.search(rf"\b{re.escape(scan.alias)}\.{re.escape(c)}\)?(?:::[a-z ]+)?\s*=",
                             own)]
    scan.filter_columns = equality + [c for c in scan.filter_columns if c not in equality]
    for cond in conditions:
        if cond == own:
            continue
        for m in re.finditer(rf"{ref}\s*=|=\s*{ref}", cond):
            _add(scan.join_columns, m.group(1) or m.group(2))
    for key in sort_keys:
        m = re.match(rf"{ref}(\s+DESC)?", key)
        if m:
            _add(scan.sort_columns, m.group(1) + (" DESC" if m.group(2) else ""))
