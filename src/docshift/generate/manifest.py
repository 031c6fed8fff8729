"""What a generated dataset promises, and how its deliberate defects are chosen.

A :class:`Manifest` is written next to every generated dataset. It records the settings, the
number of documents per source collection, the exact number of rows each target table of the
example mapping must hold after ``docshift run``, and one :class:`ExpectedReject` per
deliberately bad document, with the table, field and error class docshift reports for it.

Which documents are bad is a pure function of (seed, collection, index): see
:class:`DefectPlan`. Generators use it both to damage a document and to make sure no other
document ever points at a damaged one, so that a quarantined document never drags other rows
with it as orphans.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 3
"""Bumped whenever a generator's output for a given seed changes."""


@dataclass
class ExpectedReject:
    """One deliberately bad document and how docshift must quarantine it.

    ``field`` is what docshift records: the source path for a conversion error (``email``,
    ``$item.quantity``), the target column for an orphan or a duplicate key, which are found
    after loading (``assigned_to``, ``invoice_number``).
    """

    source: str
    source_key: str
    table: str
    field: str
    error_class: str
    defect: str


@dataclass
class Manifest:
    """A generated dataset's settings, sizes and expected migration outcome."""

    dataset: str
    seed: int
    scale: float
    options: dict[str, Any]
    mapping: str
    """The example mapping the expectations hold for (relative to the repository root)."""
    documents: dict[str, int]
    """Documents per source collection (crm) or per key family (kv)."""
    expected_rows: dict[str, int]
    expected_quarantined: list[ExpectedReject] = field(default_factory=list)
    expected_unmatched_keys: int = 0
    expected_nulled: dict[str, int] = field(default_factory=dict)
    """``table.column`` → references that point nowhere under ``on_orphan: null``."""
    expected_dropped: dict[str, int] = field(default_factory=dict)
    """``table.column`` → rows whose reference points nowhere under ``on_orphan: drop``
    (link elements of a junction: the row goes, its document stays)."""
    version: int = MANIFEST_VERSION

    @property
    def total_documents(self) -> int:
        """Documents written, all collections together."""
        return sum(self.documents.values())

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON values."""
        return asdict(self)

    def to_json(self) -> str:
        """The manifest as indented JSON text (stable: same dataset, same text)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the manifest to ``path`` and return it."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.to_json(), encoding="utf-8")
        return p

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["expected_quarantined"] = [ExpectedReject(**r)
                                        for r in data.get("expected_quarantined", [])]
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest written by :meth:`write`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def unit_hash(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for ``parts`` (same parts, same number)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def int_hash(*parts: object, bits: int = 64) -> int:
    """A stable pseudo-random integer of ``bits`` bits for ``parts``."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=(bits + 7) // 8).digest()
    return int.from_bytes(h, "big") >> (8 * len(h) - bits)


class DefectPlan:
    """Which documents of one collection carry a defect, and which one.

    Exactly ``floor(n * rate)`` (give or take one) of ``n`` documents are bad, spread evenly
    (a Bresenham walk with a seed-dependent phase); the kinds take turns, so every kind
    appears once the collection has ``len(kinds) / rate`` documents. Documents below
    ``reserved`` (the first one, and the edge-case documents) are never bad.
    """

    def __init__(self, seed: int, stream: str, rate: float, kinds: list[str],
                 reserved: int = 1) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad_rate must be between 0 and 1, not {rate}")
        self.rate = rate if kinds else 0.0
        self.kinds = kinds
        self.reserved = max(1, reserved)
        self.phase = unit_hash(seed, stream, "defect-phase")
        self.offset = int_hash(seed, stream, "defect-kind", bits=16)

    def defect(self, k: int) -> str | None:
        """The defect of document ``k``, or None when it is sound."""
        if self.rate == 0.0 or k < self.reserved:
            return None
        a = math.floor(k * self.rate + self.phase)
        if math.floor((k + 1) * self.rate + self.phase) == a:
            return None
        return self.kinds[(a + self.offset) % len(self.kinds)]

    def is_bad(self, k: int) -> bool:
        """Whether document ``k`` carries a defect."""
        return self.defect(k) is not None


class Tally:
    """Counts kept while generating: documents, expected rows and expected rejects."""

    def __init__(self) -> None:
        self.documents: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.rejects: list[ExpectedReject] = []
        self.nulled: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.unmatched = 0

    def reject(self, source: str, source_key: str, table: str, field: str,
               error_class: str, defect: str) -> None:
        """Record one document docshift must quarantine."""
        self.rejects.append(ExpectedReject(source, source_key, table, field, error_class,
                                           defect))

    def expected_rows(self, tables: list[str]) -> dict[str, int]:
        """Rows per table, every table of the mapping listed (zero included)."""
        return {t: self.rows.get(t, 0) for t in tables}
