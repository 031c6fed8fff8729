"""Reference detection by value: a field refers to the table whose keys hold its values.

Names are not trusted: ``owner`` may point at users and ``accountsIDs`` at one account. A
field's distinct sampled values are looked up among every table's primary-key values (all
of them, not a sample) and among the values of other tables' unique fields (natural keys);
the key space holding most of them wins, if it holds at least :data:`MIN_RATE` of them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

MIN_RATE = 0.5
"""Share of a field's distinct values a key space must hold to count as its target."""
MIN_MATCHES = 2
"""Matches needed (fewer only when the field has fewer distinct values)."""

_ID_NAME = re.compile(r"(id|ids|key|keys|code|codes|ref|refs)$", re.I)
_NUMBERISH = re.compile(r"^-?\d{1,6}$")


@dataclass
class KeySpace:
    """Values a reference may point at: a table's primary key or one of its unique columns."""

    table: str
    column: str
    values: set[str]
    natural: bool = False
    """A unique column other than the primary key (``references: table.column``)."""

    def target(self) -> str:
        return f"{self.table}.{self.column}" if self.natural else self.table


@dataclass
class Match:
    """The key space a field's values were found in."""

    space: KeySpace
    matched: int
    distinct: int
    dangling: int
    """Sampled occurrences whose value is not in the key space."""

    @property
    def rate(self) -> float:
        return self.matched / self.distinct if self.distinct else 0.0

    def evidence(self) -> str:
        pct = 100 * self.rate
        return (f"{self.matched}/{self.distinct} distinct values ({pct:.0f}%) found in "
                f"{self.space.target()}")

    def orphan_policy(self) -> str:
        """``reject`` when every value matched, ``null`` (or ``drop`` for links) otherwise."""
        return "reject" if self.matched == self.distinct else "null"


def find_reference(name: str, values: Counter[str], spaces: list[KeySpace],
                   exclude: tuple[str, str] | None = None) -> Match | None:
    """The key space holding most of ``values`` (a field's canonical values and counts).

    Small integers and short numeric strings match many things by chance: they only count
    when the field's name ends like a key (``id``, ``_ids``, ``code``) and the space is a
    natural key or the field name mentions the table.
    """
    distinct = len(values)
    if distinct == 0:
        return None
    numberish = all(_NUMBERISH.match(v) for v in values)
    best: Match | None = None
    for space in spaces:
        if exclude == (space.table, space.column):
            continue
        if numberish and not _ID_NAME.search(name.replace("_", "")):
            continue
        matched = sum(1 for v in values if v in space.values)
        if matched == 0:
            continue
        if numberish and not _names_meet(name, space):
            continue
        dangling = sum(n for v, n in values.items() if v not in space.values)
        m = Match(space, matched, distinct, dangling)
        if best is None or (m.matched, not m.space.natural) > (best.matched,
                                                             not best.space.natural):
            best = m
    if best is None:
        return None
    if best.rate < MIN_RATE or best.matched < min(MIN_MATCHES, distinct):
        return None
    return best


def _names_meet(name: str, space: KeySpace) -> bool:
    """Whether a field name plausibly names a table or its key column (for small numbers)."""
    n = re.sub(r"[^a-z]", "", name.lower())
    for word in (space.table, space.column, space.table.rstrip("s")):
        w = re.sub(r"[^a-z]", "", word.lower())
        stem = n.removesuffix("ids").removesuffix("id")
        if w and (w in n or (stem and stem in w)):
            return True
    return False
