"""What verification found: checks with a status per table, and the document ledger."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"

LAYERS = ("reconciliation", "content", "integrity", "nulls", "aggregates", "schema",
          "coverage")
"""The layers, in report order."""

REPORT_VERSION = 1
"""Version of the JSON report's schema (docs/verify.md); bumped on incompatible changes."""


@dataclass
class Difference:
    """One failing source key, with the field and both values where there are any."""

    key: str | None
    field: str | None = None
    source_value: Any = None
    target_value: Any = None
    message: str | None = None


@dataclass
class Check:
    """One named check of one layer on one table (or stream)."""

    name: str
    layer: str
    table: str
    status: str
    expected: Any = None
    actual: Any = None
    message: str = ""
    differences: list[Difference] = field(default_factory=list)
    differences_total: int = 0


@dataclass(kw_only=True)
class DocumentCounts:
    """How many source documents went each way (a stream's, or one part of it)."""

    documents: int = 0
    loaded: int = 0
    quarantined: int = 0
    filtered: int = 0
    ignored: int = 0
    unmatched: int = 0
    unaccounted: int = 0

    def add(self, other: DocumentCounts) -> None:
        """Add ``other``'s counts to these."""
        for f in fields(DocumentCounts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class StreamLedger(DocumentCounts):
    """Every document of one stream, accounted for exactly once."""

    stream: str

    @property
    def balanced(self) -> bool:
        return self.documents == (self.loaded + self.quarantined + self.filtered
                                  + self.ignored + self.unmatched + self.unaccounted)


@dataclass
class VerifyOptions:
    """How thoroughly to compare content."""

    sample: int = 1000
    """Documents per stream whose every mapped field is compared (ignored with ``full``)."""
    full: bool = False
    seed: int = 0
    max_differences: int = 20
    """How many failing keys each check lists."""
    workers: int | None = None
    """Processes reading the source side by side (one per work unit of the run at most);
    None: as many as there are CPUs for a large source, one for a small one."""


@dataclass
class VerifyReport:
    """Everything verification found."""

    checks: list[Check] = field(default_factory=list)
    streams: list[StreamLedger] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    options: VerifyOptions = field(default_factory=VerifyOptions)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (reading the source, copying, each table's comparisons…)."""

    @property
    def status(self) -> str:
        states = {c.status for c in self.checks}
        return FAIL if FAIL in states else WARN if WARN in states else PASS

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings do not fail a verification)."""
        return self.status != FAIL

    def tables(self) -> list[str]:
        return list(dict.fromkeys(c.table for c in self.checks if c.layer != "coverage"))

    def table_status(self, table: str) -> dict[str, str]:
        """The worst status per layer for one table."""
        out: dict[str, str] = {}
        rank = {PASS: 0, WARN: 1, FAIL: 2}
        for c in self.checks:
            if c.table == table and rank[c.status] >= rank.get(out.get(c.layer, PASS), 0):
                out[c.layer] = c.status
        return out

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status != PASS]

    def as_json(self) -> dict[str, Any]:
        """The report as documented in docs/verify.md."""
        return {
            "version": REPORT_VERSION,
            "status": self.status,
            "environment": self.environment,
            "options": asdict(self.options),
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            # the stream's name first, as the documented schema shows it
            "streams": [{"stream": s.stream, **asdict(s), "balanced": s.balanced}
                        for s in self.streams],
            "checks": [asdict(c) for c in self.checks],
        }
