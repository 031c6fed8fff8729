"""``docshift run --dry-run`` on a terminal: the rows a run would write, what it would
quarantine."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from docshift.run.dryrun import DryRunReport


def print_dry_run(console: Console, rep: DryRunReport) -> None:
    """Rows per table, would-be-quarantined documents by cause, and unmatched keys."""
    t = Table(title="dry run: nothing was written")
    for col in ("table", "rows that would be written"):
        t.add_column(col)
    for table, n in rep.rows.items():
        t.add_row(table, f"{n:,}")
    console.print(t)
    if rep.rejects:
        r = Table(title="would be quarantined")
        for col in ("source", "table", "field", "error", "documents", "example key"):
            r.add_column(col)
        for (src, table, fld, ec), (n, key) in sorted(rep.rejects.items(),
                                                      key=lambda kv: -kv[1][0]):
            r.add_row(src, table or "", fld or "", ec, f"{n:,}", key)
        console.print(r)
    console.print(f"{rep.documents:,} documents read; duplicates and orphans are resolved "
                  "after loading and are not counted by a dry run.")
    if rep.unmatched:
        console.print(f"[yellow]{rep.unmatched} key(s) matched no table[/]")
