"""The proposal: tables, feeds and columns with the evidence behind each, before rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ColumnProposal:
    """One proposed column and the reasons for it."""

    name: str
    type: str | None
    from_: str | None = None
    nullable: bool | None = None
    unique: bool = False
    references: str | None = None
    on_orphan: str | None = None
    evidence: list[str] = field(default_factory=list)
    check: str | None = None
    """A ``# CHECK`` note: something the reviewer should decide."""
    enum: list[tuple[str, int]] | None = None
    """A commented-out enum suggestion: values and counts."""


@dataclass
class FeedProposal:
    """Where a table's rows come from (one of several feeds, or the only one)."""

    from_: str | None = None
    keys: str | None = None
    where: dict[str, Any] | None = None
    unnest: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    note: str | None = None


@dataclass
class TableProposal:
    """One proposed table."""

    name: str
    feeds: list[FeedProposal]
    columns: list[ColumnProposal] = field(default_factory=list)
    primary_key: list[str] | None = None
    on_duplicate: str | None = None
    ignore: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kind: str = "table"
    """``table``, ``child`` (unnested array or map), ``junction`` or ``link`` (two-sided)."""

    def column(self, name: str) -> ColumnProposal | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass
class Proposal:
    """A whole proposed mapping."""

    source: dict[str, str]
    source_notes: list[str] = field(default_factory=list)
    naming: str = "as_is"
    on_orphan: str = "reject"
    tables: list[TableProposal] = field(default_factory=list)
    ignore_keys: list[tuple[str, str]] = field(default_factory=list)
    """``(pattern, why)`` pairs for a key-value source."""
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> TableProposal | None:
        return next((t for t in self.tables if t.name == name), None)
