"""Query benchmark: what the new schema buys, query by query, and where it lacks an index.

``load_queries`` reads a queries file; ``bench`` runs it on the target (and the equivalent
access on the source, where given) and returns a :class:`BenchReport` with timings, plan
facts, the speed-up per query and schema advice with the DDL for each item.
"""

from __future__ import annotations

from docshift.bench.engine import BenchOptions, bench
from docshift.bench.model import BenchReport, QueryResult, SourceResult, Timing
from docshift.bench.queries import QueriesFile, load_queries, parse_queries

__all__ = ["BenchOptions", "BenchReport", "QueriesFile", "QueryResult", "SourceResult",
           "Timing", "bench", "load_queries", "parse_queries"]
