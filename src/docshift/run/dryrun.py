"""``docshift run --dry-run``: read and convert everything, write nothing.

It uses the very same row builders as a real run, so what it reports as would-be-quarantined
is exactly what a run quarantines at conversion. Duplicates and orphans are resolved against
the loaded data after a real load, so a dry run cannot count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docshift.sources import open_source
from docshift.spec.model import Mapping
from docshift.transform.rows import compile_streams


@dataclass
class DryRunReport:
    documents: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    rejects: dict[tuple[str, str | None, str | None, str], tuple[int, str]] = field(
        default_factory=dict)
    unmatched: int = 0


def dry_run(m: Mapping, dsn: str | None = None) -> DryRunReport:
    """Read every stream and build every row; count rows and would-be rejects."""
    if m.source.kind == "postgres_kv" and not m.source.dsn:
        from docshift.target.connect import target_dsn

        dsn = target_dsn(m, dsn)  # the key-value table lives in the target: read it there
    rep = DryRunReport(rows={t: 0 for t in m.tables})
    source = open_source(m.source, dsn)
    try:
        for name, plan in compile_streams(m).items():
            for sdoc in source.stream(name).read():
                rep.documents += 1
                res = plan.build(sdoc)
                if res.rejection is not None:
                    r = res.rejection
                    k = (name, r.table, r.field, r.error_class)
                    n, key = rep.rejects.get(k, (0, sdoc.key))
                    rep.rejects[k] = (n + 1, key)
                elif not res.matched:
                    rep.unmatched += 1
                else:
                    for t, rows in res.rows.items():
                        rep.rows[t] += len(rows)
    finally:
        source.close()
    return rep
