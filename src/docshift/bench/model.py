"""The benchmark's results: per query the target's timings and plan, the source's timings,
and the schema advice. ``as_json()`` is the ``--report`` file."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from docshift.bench.advice import Advice
from docshift.bench.explain import PlanFacts


@dataclass
class Timing:
    """Milliseconds of the measured runs (warm-up runs excluded)."""

    runs_ms: list[float]

    @property
    def median(self) -> float:
        """The median run."""
        return statistics.median(self.runs_ms)

    @property
    def p95(self) -> float:
        """The 95th percentile (nearest rank)."""
        ordered = sorted(self.runs_ms)
        return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]

    @property
    def max(self) -> float:
        """The slowest run."""
        return max(self.runs_ms)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"runs": len(self.runs_ms), "median_ms": round(self.median, 3),
                "p95_ms": round(self.p95, 3), "max_ms": round(self.max, 3),
                "runs_ms": [round(r, 3) for r in self.runs_ms]}


@dataclass
class SourceResult:
    """The equivalent access on the source, timed the same way."""

    kind: str
    """kv | mongodb"""
    timing: Timing | None = None
    rows_read: int = 0
    """Key-value rows (MongoDB: documents returned) read by all measured runs together."""
    rows_read_per_run: float = 0.0
    round_trips_per_run: float = 0.0
    error: str | None = None
    note: str | None = None
    """Why the source was not timed (e.g. the source is a dump, not a live store)."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"kind": self.kind, "timing": self.timing.as_json() if self.timing else None,
                "rows_read": self.rows_read, "rows_read_per_run": self.rows_read_per_run,
                "round_trips_per_run": self.round_trips_per_run, "error": self.error,
                "note": self.note}


@dataclass
class QueryResult:
    """One query of the queries file, measured."""

    name: str
    sql: str
    expect_ms: float | None = None
    timing: Timing | None = None
    rows: int = 0
    """Rows the target query returned (first measured run)."""
    plan: PlanFacts | None = None
    source: SourceResult | None = None
    error: str | None = None

    @property
    def missed(self) -> bool:
        """The median is over ``expect_ms``."""
        return bool(self.expect_ms is not None and self.timing is not None
                    and self.timing.median > self.expect_ms)

    @property
    def status(self) -> str:
        """ok | slow (over expect_ms) | error."""
        if self.error or (self.source is not None and self.source.error):
            return "error"
        return "slow" if self.missed else "ok"

    @property
    def speedup(self) -> float | None:
        """Source median / target median, when both were timed."""
        if self.timing is None or self.source is None or self.source.timing is None:
            return None
        return self.source.timing.median / max(self.timing.median, 1e-6)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "status": self.status, "sql": self.sql,
                "expect_ms": self.expect_ms, "rows": self.rows,
                "target": self.timing.as_json() if self.timing else None,
                "plan": self.plan.as_json() if self.plan else None,
                "source": self.source.as_json() if self.source else None,
                "speedup": round(self.speedup, 2) if self.speedup is not None else None,
                "error": self.error}


@dataclass
class BenchReport:
    """Everything ``docshift bench`` measured."""

    queries: list[QueryResult] = field(default_factory=list)
    advice: list[Advice] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No query errored or missed its ``expect_ms``."""
        return all(q.status == "ok" for q in self.queries)

    def as_json(self) -> dict[str, Any]:
        """The JSON report (``--report bench.json``)."""
        return {"ok": self.ok, "environment": self.environment,
                "seconds": round(self.seconds, 3),
                "queries": [q.as_json() for q in self.queries],
                "advice": [a.as_json() for a in self.advice]}
