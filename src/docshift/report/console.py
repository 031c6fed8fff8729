"""Terminal rendering with rich: the progress of a run and its summary table.

On a terminal, a run shows one progress line per source stream (split key ranges add up to
their stream), an overall line (every document, rate, ETA) and, once the data is loaded,
one line for finalization (its step count and the step under way). Anywhere else (CI,
``nohup``, a pipe) and in ``--log-file``, it writes plain timestamped lines instead: one
per phase and, every few seconds, the documents done, the rate and the phase.

``docshift demo`` shows its two migrations the same way (:class:`DemoConsole`), and
``docshift infer`` a bar per stream it samples (:class:`SamplingProgress`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Column, Table

from docshift.run.migrate import UI, RunResult
from docshift.run.status import PHASES
from docshift.run.worker import Progress as StreamProgress
from docshift.spec.model import Mapping

LOG_INTERVAL = 5.0
"""Seconds between two plain progress lines when the output is not a terminal."""

LABEL_WIDTH = 24
"""Longest stream label on a progress line; longer names keep their start and end."""

FINALIZE_PHASES = PHASES[2:]


def short_label(name: str, width: int = LABEL_WIDTH) -> str:
    """``name`` in at most ``width`` characters, keeping its start and its end."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return f"{name[:head]}…{name[-(width - 1 - head):]}"


def duration(seconds: float) -> str:
    """``0.4s``, ``12.0s``, ``3m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _eta(left: float, rate: float) -> str:
    if rate <= 0 or left <= 0:
        return ""
    return "ETA " + duration(left / rate)


def finalize_step_estimate(m: Mapping) -> int:
    """About how many steps finalization takes: one per key, foreign key and index, and
    two per table (dropping the hidden columns, ANALYZE); more when duplicates or orphans
    must be resolved, fewer when a re-run skips the steps already done."""
    from docshift.target.ddl import constraints

    return sum(len(constraints(m, t)) + 2 for t in m.tables)


@dataclass
class _Stream:
    """What the display knows of one source stream (its units added up)."""

    name: str
    estimate: int = 0
    done_before: int = 0  # documents already loaded when this command started
    done: int = 0
    rejected: int = 0
    units: int = 0
    units_done: int = 0
    started: float | None = None
    finished: float | None = None
    in_columns: int = 0  # documents of this command's batches built by the columnar path
    columnar: bool = False  # some unit of it loads through the columnar path

    def rate(self) -> float:
        """Documents per second loaded by this command."""
        if self.started is None:
            return 0.0
        spent = (self.finished or time.perf_counter()) - self.started
        return (self.done - self.done_before) / spent if spent > 0 else 0.0


class RichUI(UI):
    """Progress of a run: live lines on a terminal, plain log lines elsewhere.

    ``quiet`` shows nothing but warnings; ``verbose`` also lists every finalization step
    and every table a ``--restart`` dropped; ``log`` receives the plain lines as well.
    """

    def __init__(self, console: Console, tables_of: dict[str, list[str]], *,
                 mapping: Mapping | None = None, quiet: bool = False, verbose: bool = False,
                 log: IO[str] | None = None, interval: float = LOG_INTERVAL) -> None:
        self.console = console
        self.tables_of = tables_of
        self.quiet, self.verbose, self.log, self.interval = quiet, verbose, log, interval
        self.live = console.is_terminal and not quiet
        self.plain = not console.is_terminal and not quiet
        self.steps_total = finalize_step_estimate(mapping) if mapping is not None else 0
        label_w = min(LABEL_WIDTH, max([len(s) for s in tables_of] + [len("finalize")]))
        self.bars = Progress(
            TextColumn("{task.description}", table_column=Column(
                width=label_w, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=12),
            TextColumn("{task.fields[count]}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[rate]}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[eta]}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[note]}", table_column=Column(
                no_wrap=True, overflow="ellipsis")),
            console=console, transient=False, disable=not self.live)
        self.label_w = label_w
        self.streams: dict[str, _Stream] = {}
        self.tasks: dict[str, TaskID] = {}
        self.total_task: TaskID | None = None
        self.final_task: TaskID | None = None
        self.lock = threading.RLock()
        self.phase_name: str | None = None
        self.load_started: float | None = None
        self.load_ended: float | None = None
        self.steps = 0
        self.step_name = ""
        self.dropped: list[str] = []
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._listed = False
        self.planned = False
        self.unit_estimates: dict[str, int] = {}
        self.started_units: set[str] = set()
        self.paths_told: set[str] = set()  # streams whose row building --verbose told

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self) -> RichUI:
        self.bars.start()
        if self.plain or self.log is not None:
            self._ticker = threading.Thread(target=self._tick, name="docshift-progress-log",
                                            daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join()
        self._flush_dropped()
        with self.lock:
            if self.final_task is not None:
                self.bars.update(self.final_task, note="done" if exc[0] is None else "")
        self.bars.stop()

    def _tick(self) -> None:
        while not self._stopping.wait(self.interval):
            with self.lock:
                if self.phase_name is not None:
                    self._plain(self._status_line())

    # -- plain lines -------------------------------------------------------------------

    def _plain(self, text: str) -> None:
        """A timestamped line on the console (not a terminal) and in the log file."""
        line = f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}"
        if self.plain:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self.log is not None:
            self.log.write(line + "\n")
            self.log.flush()

    def _totals(self) -> tuple[int, int, float]:
        done = sum(s.done for s in self.streams.values())
        total = sum(max(s.estimate, s.done) for s in self.streams.values())
        new = sum(s.done - s.done_before for s in self.streams.values())
        end = self.load_ended or time.perf_counter()
        elapsed = end - self.load_started if self.load_started else 0.0
        return done, total, new / elapsed if elapsed > 0 else 0.0

    def _status_line(self) -> str:
        if self.phase_name in FINALIZE_PHASES or self.phase_name == "finalize":
            of = f" of about {self.steps_total:,}" if self.steps_total > self.steps else ""
            return (f"finalize: step {self.steps:,}{of} ({self.phase_name}"
                    + (f": {self.step_name}" if self.step_name else "") + ")")
        if self.phase_name == "load":
            done, total, rate = self._totals()
            of = f" of about {total:,}" if total else ""
            eta = _eta(total - done, rate)
            return (f"load: {done:,}{of} documents, {rate:,.0f} docs/s"
                    + (f", {eta}" if eta else ""))
        return f"{self.phase_name}"

    # -- the UI protocol ---------------------------------------------------------------

    def phase(self, name: str) -> None:
        with self.lock:
            if name == "load":
                self.load_started = time.perf_counter()
            if self.phase_name == "load" and name != "load":
                self.load_ended = time.perf_counter()
                done, _, rate = self._totals()
                self._plain(f"loaded {done:,} documents ({rate:,.0f} docs/s)")
            self._flush_dropped()
            self.phase_name = name
            if name == "finalize" and self.live:
                total = self.steps_total or None
                self.final_task = self.bars.add_task(
                    "finalize", total=total, count=self._steps_text(), rate="", eta="",
                    note="")
            self._plain(f"phase {name}")

    def _steps_text(self) -> str:
        if self.steps_total > self.steps:
            return f"{self.steps:,}/~{self.steps_total:,} steps"
        return f"{self.steps:,} steps"

    def units(self, planned: list[Any]) -> None:
        """Every work unit of the run, so that the overall line knows its total at once."""
        with self.lock:
            for u in planned:
                s = self._stream(u.source_stream)
                s.units += 1
                s.estimate += u.estimate or 0
                self.unit_estimates[u.name] = u.estimate or 0
            self.planned = True
            if self.live:
                self._show(None)

    def _stream(self, unit: str) -> _Stream:
        name = unit.split("#", 1)[0]  # a key range of a split stream
        s = self.streams.get(name)
        if s is None:
            s = self.streams[name] = _Stream(name)
        return s

    def progress(self, p: StreamProgress) -> None:
        with self.lock:
            self._progress(p)

    def _progress(self, p: StreamProgress) -> None:
        s = self._stream(p.stream)
        if p.kind == "start":
            path = getattr(p, "path", None)
            if path and s.name not in self.paths_told:
                self.paths_told.add(s.name)
                self._detail(f"{s.name}: rows built in columns" if path == "columnar" else
                             f"{s.name}: rows built one document at a time ({path})")
            s.columnar = s.columnar or path == "columnar"
            self.started_units.add(p.stream)
            if not self.planned:
                s.units += 1
                s.estimate += p.estimate or 0
            s.done_before += p.docs
            s.done += p.docs
            s.rejected += p.rejected
            s.started = s.started or time.perf_counter()
        elif p.kind == "batch":
            s.done += p.docs
            s.rejected += p.rejected
            s.in_columns += getattr(p, "columnar_docs", 0)
        elif p.kind == "done":
            if p.stream not in self.started_units:
                # loaded by an earlier command: counted as its estimate
                n = self.unit_estimates.get(p.stream, 0)
                s.done += n
                s.done_before += n
            s.units_done += 1
            if s.units_done >= s.units:
                s.finished = time.perf_counter()
                if s.columnar:
                    self._detail(f"{s.name}: {s.in_columns:,} of {s.done - s.done_before:,} "
                                 "documents built in columns (the others one at a time)")
        if self.live:
            self._show(s)

    def _show(self, s: _Stream | None) -> None:
        self._list_streams()
        if self.total_task is None:
            self.total_task = self.bars.add_task(short_label("total", self.label_w), count="",
                                                 rate="", eta="", note="")
        if s is not None:
            self._show_stream(s)
        done, total_all, rate_all = self._totals()
        rejected = sum(x.rejected for x in self.streams.values())
        self.bars.update(self.total_task, total=total_all or None, completed=done,
                         count=f"{done:,}/{total_all:,}", rate=f"{rate_all:,.0f}/s"
                         if rate_all else "", eta=_eta(total_all - done, rate_all),
                         note=f"[yellow]{rejected:,} quarantined[/]" if rejected else "")

    def _show_stream(self, s: _Stream) -> None:
        name = s.name
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(short_label(name, self.label_w), count="",
                                                  rate="", eta="", note="")
        rate = s.rate()
        total = max(s.estimate, s.done)
        finished = s.finished is not None
        self.bars.update(self.tasks[name], total=total or None, completed=s.done,
                         count=f"{s.done:,}/{total:,}" if total else f"{s.done:,}",
                         rate=f"{rate:,.0f}/s" if rate else "",
                         eta="done" if finished else _eta(total - s.done, rate),
                         note=f"[yellow]{s.rejected:,} quarantined[/]" if s.rejected else "")

    def _list_streams(self) -> None:
        """The tables each stream feeds, once, above the progress lines."""
        if self._listed:
            return
        self._listed = True
        for stream, tables in self.tables_of.items():
            if len(tables) > 1 or tables != [stream]:
                self.bars.console.print(f"[dim]{escape(stream)} → {escape(', '.join(tables))}[/]",
                                        highlight=False, soft_wrap=True)

    def _detail(self, text: str) -> None:
        """A line for --verbose and the log file only."""
        if self.verbose and not self.quiet:
            if self.live:
                self.bars.console.print(f"[dim]{escape(text)}[/]", highlight=False)
            else:
                self._plain(text)
        elif self.log is not None:
            self.log.write(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}\n")
            self.log.flush()

    def step(self, name: str) -> None:
        with self.lock:
            waiting = ": waiting for a lock" in name
            if waiting:
                self.message(f"finalize: {name}")
                return
            self.steps += 1
            self.step_name = name
            self._detail(f"finalize: {name}")
            if self.final_task is not None:
                total = max(self.steps_total, self.steps)
                self.bars.update(self.final_task, total=total, completed=self.steps,
                                 count=self._steps_text(), note=escape(name))

    def message(self, text: str) -> None:
        with self.lock:
            if text.startswith("dropped table ") and not self.verbose:
                self.dropped.append(text)
                return
            self._say(text)

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log.write(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}\n")
            self.log.flush()
        if self.plain:
            self.console.print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}", markup=False,
                               highlight=False, soft_wrap=True)
        else:
            self.bars.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _flush_dropped(self) -> None:
        if self.dropped:
            n = len(self.dropped)
            self.dropped = []
            self._say(f"dropped {n} table(s) of the previous run (--verbose lists them)")


# -- the summary -----------------------------------------------------------------------


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def summary_table(res: RunResult) -> Table:
    """The final table, pgloader style: per table documents read, rows written, duplicates
    removed, references set to NULL, quarantined and load time; then each phase with its
    time; then the total, with the overall rate. Names and numbers are never shortened: a
    name too long for the width is folded onto the next line."""
    t = Table(title=f"docshift run {res.run_id}" +
              (" (already complete)" if res.already_complete else ""),
              box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    # the name column gives way first, and folds (never cuts) a name it cannot hold
    t.add_column("table", overflow="fold", min_width=len("foreign keys"))
    # short words on two lines: at 80 columns the numbers keep their room
    heads = ["documents\nread", "rows\nwritten", "dupes\nremoved", "refs\nnulled",
             "quaran-\ntined", "load\ntime"]
    dropped = any(s.rows_dropped for s in res.tables)
    if dropped:
        heads.insert(4, "orphans\ndropped")
    for h in heads:
        t.add_column(h, justify="right", no_wrap=True)
    for s in res.tables:
        cells = [_n(s.documents), _n(s.rows), _n(s.duplicates_removed),
                 _n(s.references_nulled),
                 f"[yellow]{s.quarantined:,}[/]" if s.quarantined else "0",
                 duration(s.seconds)]
        if dropped:
            cells.insert(4, _n(s.rows_dropped))
        t.add_row(s.table, *cells)
    blank = [""] * (len(heads) - 1)
    if res.phases:
        t.add_section()
        for p, sec in res.phases.items():
            t.add_row(f"[dim]{p}[/]", *blank, duration(sec))
    t.add_section()
    cells = [_n(res.documents), _n(sum(s.rows for s in res.tables)),
             _n(sum(s.duplicates_removed for s in res.tables)),
             _n(sum(s.references_nulled for s in res.tables)), _n(res.quarantined),
             duration(res.seconds)]
    if dropped:
        cells.insert(4, _n(sum(s.rows_dropped for s in res.tables)))
    t.add_row("[bold]total[/]", *cells)
    rate = res.documents / res.seconds if res.seconds > 0 else 0
    t.caption = (f"{res.documents:,} documents in {duration(res.seconds)}"
                 + (f", {rate:,.0f} documents/s" if rate else ""))
    return t


def summary_line(res: RunResult) -> str:
    """The run in one line (``--quiet``)."""
    rows = sum(s.rows for s in res.tables)
    state = "already complete" if res.already_complete else "done"
    return (f"run {res.run_id} {state}: {res.documents:,} documents, {rows:,} rows, "
            f"{res.quarantined:,} quarantined, {duration(res.seconds)}")


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


class DemoConsole:
    """``docshift demo`` on a console (``run.demo.DemoView``): each migration's progress as
    ``docshift run`` shows it (``verbose``: every finalization step too; ``log``: the plain
    log of both migrations), its summary, the verifications and the benchmark."""

    def __init__(self, console: Console, *, quiet: bool = False, verbose: bool = False,
                 log: IO[str] | None = None) -> None:
        self.console = console
        self.quiet, self.verbose, self.log = quiet, verbose, log

    def progress(self, m: Mapping, title: str) -> RichUI:
        """The progress display of one migration, its ``title`` first in the log."""
        from docshift.transform.rows import compile_streams

        if self.log is not None:
            self.log.write(f"{datetime.now():%Y-%m-%d %H:%M:%S} {title}\n")
        tables_of = {s: p.tables for s, p in compile_streams(m).items()}
        return RichUI(self.console, tables_of, mapping=m, quiet=self.quiet,
                      verbose=self.verbose, log=self.log)

    def migrated(self, res: RunResult) -> None:
        """The summary table and findings (the log gets the summary line)."""
        if self.log is not None:
            self.log.write(summary_line(res) + "\n")
            self.log.flush()
        self.console.print(summary_table(res))
        print_findings(self.console, res)

    def verified(self, rep: Any) -> None:
        """A verification's checks."""
        from docshift.report.verify import print_terminal

        print_terminal(self.console, rep)

    def benched(self, rep: Any) -> None:
        """The benchmark's timings and advice."""
        from docshift.report.bench import print_terminal

        print_terminal(self.console, rep)


class SamplingProgress:
    """The progress of ``docshift infer``: a bar per stream sampled, gone once done, and a
    line per stream on ``detail`` (``--verbose``). Called as ``infer_mapping``'s progress
    callback: ``(stream, documents sampled, estimate)``."""

    def __init__(self, console: Console, detail: Callable[[str], None]) -> None:
        self.detail = detail
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), console=console, transient=True)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> SamplingProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def __call__(self, stream: str, done: int, estimate: int | None) -> None:
        if stream not in self.tasks:
            self.tasks[stream] = self.bar.add_task(f"sampling {stream}", total=estimate)
            self.detail(f"sampling {stream}")
        self.bar.update(self.tasks[stream], completed=done)
