"""``docshift status`` on a terminal: where the last run stands and what to do next."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from docshift.run.status import Status


def print_status(console: Console, st: Status) -> None:
    """The run's state, its work units, the tables' row counts and the next step."""
    if st.run_id is None:
        console.print(f"No run yet in this database. {st.next_step}")
        return
    finished = f", finished {st.finished_at:%Y-%m-%d %H:%M:%S}" if st.finished_at else ""
    where = {"load": "loading", "finalize": f"finalizing, {st.steps_done:,} step(s) done",
             "done": "finished"}.get(st.phase or "", "")
    console.print(f"Run {st.run_id}: [bold]{st.status}[/] ({where}; started "
                  f"{st.started_at:%Y-%m-%d %H:%M:%S}{finished})", highlight=False)
    t = Table(title="work units")
    for col in ("unit", "documents read", "of about", "quarantined", "done"):
        t.add_column(col, justify="left" if col == "unit" else "right",
                     no_wrap=col == "unit")
    for s in st.streams or []:
        about = "?" if s.estimate is None else f"{'~' if s.estimated else ''}{s.estimate:,}"
        t.add_row(s.stream, f"{s.docs_read:,}", about, f"{s.rejected:,}",
                  "yes" if s.done else "no")
    console.print(t)
    if st.tables:
        final = st.status == "completed"
        r = Table(title="rows per table" + ("" if final else " (so far; final after "
                                             "finalization)"))
        r.add_column("table", no_wrap=True)
        r.add_column("rows", justify="right")
        for name, n in st.tables.items():
            r.add_row(name, f"{n:,}")
        console.print(r)
    if st.quarantined and st.status != "completed":
        console.print(f"{st.quarantined:,} document(s) quarantined so far.")
    console.print(st.next_step, highlight=False)
