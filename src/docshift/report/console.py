"""Terminal rendering with rich: progress bars per stream and the run summary table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from docshift.run.migrate import UI, RunResult
from docshift.run.worker import Progress as StreamProgress


class RichUI(UI):
    """Shows one progress bar per source stream, with rows/s and ETA."""

    def __init__(self, console: Console, tables_of: dict[str, list[str]]) -> None:
        self.console = console
        self.tables_of = tables_of
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} docs/s"),
            TextColumn("{task.fields[rows_rate]:>9} rows/s"), TextColumn("{task.fields[rej]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
            disable=not console.is_terminal)
        self.tasks: dict[str, TaskID] = {}
        self.rejected: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def __enter__(self) -> RichUI:
        self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.stop()

    def progress(self, p: StreamProgress) -> None:
        if p.stream not in self.tasks:
            label = f"{p.stream} → {', '.join(self.tables_of.get(p.stream, []))}"
            self.tasks[p.stream] = self.bars.add_task(label, total=p.estimate, rate="",
                                                      rows_rate="", rej="")
            self.rejected[p.stream] = 0
            self.rows[p.stream] = 0
        tid = self.tasks[p.stream]
        if p.kind == "start":
            self.bars.update(tid, total=p.estimate, completed=p.docs)
            self.rejected[p.stream] = p.rejected
        elif p.kind == "batch":
            self.bars.advance(tid, p.docs)
            self.rejected[p.stream] += p.rejected
            self.rows[p.stream] += sum((p.rows or {}).values())
        elif p.kind == "done":
            task = self.bars.tasks[self.tasks[p.stream]]
            self.bars.update(tid, total=task.completed)
        task = self.bars.tasks[tid]
        speed = task.speed
        elapsed = task.elapsed or 0
        rows_rate = self.rows[p.stream] / elapsed if elapsed > 0 else 0
        n = self.rejected[p.stream]
        self.bars.update(tid, rate=f"{speed:,.0f}" if speed else "",
                         rows_rate=f"{rows_rate:,.0f}" if rows_rate else "",
                         rej=f"[yellow]{n} quarantined[/]" if n else "")

    def step(self, name: str) -> None:
        if self.console.is_terminal:
            self.console.print(f"[dim]finalize: {name}[/]", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text)


def summary_table(res: RunResult) -> Table:
    """The final table: documents read, rows written, quarantined, time and rate per table."""
    t = Table(title=f"docshift run {res.run_id}" +
              (" (already complete)" if res.already_complete else ""))
    for col in ("table", "documents read", "rows written", "quarantined", "time", "rows/s"):
        t.add_column(col, justify="left" if col == "table" else "right")
    for s in res.tables:
        rate = f"{s.rows / s.seconds:,.0f}" if s.seconds > 0 else "-"
        t.add_row(s.table, f"{s.documents:,}", f"{s.rows:,}",
                  f"[yellow]{s.quarantined:,}[/]" if s.quarantined else "0",
                  f"{s.seconds:.1f}s", rate)
    return t


def print_findings(console: Console, res: RunResult) -> None:
    """Unmatched keys, unmapped fields, finalization warnings and failures of a run."""
    if res.unmatched_keys:
        console.print(f"[yellow]{res.unmatched_keys} key(s) matched no table and no "
                      "ignore pattern[/] (listed in docshift.unmatched_keys; add them to "
                      "ignore_keys or map them).")
    if res.unmapped:
        console.print("[yellow]Unmapped source fields[/] (not read by any column; add them "
                      "to a table's 'ignore' list, map them, or keep them with 'extra'):")
        for stream, path, n in res.unmapped[:20]:
            console.print(f"  {stream}.{path}: {n:,} document(s)", highlight=False)
        if len(res.unmapped) > 20:
            console.print(f"  … and {len(res.unmapped) - 20} more (docshift.unmapped)")
    if res.finalize:
        for w in res.finalize.warnings:
            console.print(f"[yellow]warning:[/] {w}", highlight=False)
        for f in res.finalize.failures:
            console.print(f"[red]failed:[/] {f}", highlight=False)
