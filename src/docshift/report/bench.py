"""Renderings of a BenchReport: a terminal table, a Markdown report, one HTML file with a bar
chart of source vs target time per query."""

from __future__ import annotations

import html
from typing import Any

from rich.table import Table

STYLE = {"ok": "green", "slow": "red", "error": "red"}


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def _speedup(q: Any) -> str:
    s = q.speedup
    return "–" if s is None else f"×{s:,.1f}" if s >= 1 else f"×{s:.2f}"


def _source_cell(q: Any) -> str:
    s = q.source
    if s is None:
        return "–"
    if s.error:
        return "error"
    if s.timing is None:
        return "not timed"
    return f"{_ms(s.timing.median)} ({s.rows_read_per_run:,.0f} rows/run)"


def _plan_cell(q: Any) -> str:
    if q.plan is None:
        return "–"
    parts = []
    if q.plan.indexes:
        parts.append("index " + ", ".join(q.plan.indexes))
    if q.plan.seq_scans:
        parts.append("seq scan " + ", ".join(s.table for s in q.plan.seq_scans))
    if q.plan.misestimates:
        parts.append(f"{len(q.plan.misestimates)} misestimate(s)")
    return "; ".join(parts) or "no table read"


def terminal_table(rep: Any) -> Table:
    """One row per query: target timings, the source's median, the speed-up, the plan."""
    t = Table(title=f"bench: {'OK' if rep.ok else 'FAILED'} (times in ms)")
    for col in ("query", "status", "median", "p95", "max", "expect", "source", "speed-up"):
        t.add_column(col, justify="left" if col in ("query", "status") else "right")
    for q in rep.queries:
        tm = q.timing
        source = q.source.timing.median if q.source and q.source.timing else None
        t.add_row(q.name, f"[{STYLE[q.status]}]{q.status}[/]",
                  _ms(tm.median if tm else None), _ms(tm.p95 if tm else None),
                  _ms(tm.max if tm else None), _ms(q.expect_ms), _ms(source), _speedup(q))
    return t


def print_terminal(console: Any, rep: Any) -> None:
    """The table, the errors, then the schema advice with its DDL."""
    console.print(terminal_table(rep))
    for q in rep.queries:
        if q.plan is not None:
            console.print(f"  {q.name}: {q.rows:,} row(s); {_plan_cell(q)}", highlight=False,
                          markup=False)
        if q.speedup is not None and q.source is not None and q.source.timing is not None:
            console.print(f"  {q.name}: {_ms(q.source.timing.median)} ms on the source "
                          f"({q.source.rows_read_per_run:,.0f} row(s) read per run) → "
                          f"{_ms(q.timing.median if q.timing else None)} ms on the target, "
                          f"{_speedup(q)}", highlight=False, markup=False)
        if q.error:
            console.print(f"[red]error[/] {q.name}: {q.error}", highlight=False)
        if q.source is not None and q.source.error:
            console.print(f"[red]error[/] {q.name} (source): {q.source.error}", highlight=False)
        elif q.source is not None and q.source.note:
            console.print(f"[dim]{q.name}: source {q.source.note}[/]", highlight=False)
        if q.missed:
            console.print(f"[red]slow[/] {q.name}: median {_ms(q.timing.median)} ms > "
                          f"expect_ms {_ms(q.expect_ms)}", highlight=False)
    if rep.advice:
        console.print(f"Schema advice ({len(rep.advice)}):")
    for a in rep.advice:
        console.print(f"  [yellow]{a.kind}[/] {a.message}", highlight=False)
        if a.ddl:
            console.print(f"      {a.ddl}", highlight=False, markup=False)


def render_markdown(rep: Any) -> str:
    """The report as Markdown."""
    env = rep.environment
    out = [f"# Query benchmark: {'OK' if rep.ok else 'FAILED'}", "",
           f"Target {env.get('target')} (schema {env.get('schema')}, PostgreSQL "
           f"{env.get('server_version')}), source {env.get('source')}; {env.get('runs')} runs "
           f"per query after {env.get('warmup')} warm-up runs; queries from "
           f"`{env.get('queries_file')}`.", "",
           "| query | status | median ms | p95 ms | max ms | expect ms | rows | source median ms "
           "| speed-up | plan |", "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for q in rep.queries:
        tm = q.timing
        cells = [q.name, q.status, _ms(tm.median if tm else None), _ms(tm.p95 if tm else None),
                 _ms(tm.max if tm else None), _ms(q.expect_ms), f"{q.rows:,}", _source_cell(q),
                 _speedup(q), _plan_cell(q)]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    errors = [(q.name, q.error or (q.source.error if q.source else None)) for q in rep.queries]
    if any(e for _, e in errors):
        out += ["", "## Errors", ""] + [f"- **{n}**: {e}" for n, e in errors if e]
    out += ["", "## Schema advice", ""]
    if not rep.advice:
        out.append("None.")
    for a in rep.advice:
        out.append(f"- **{a.kind}** {a.message}" + (f"\n  ```sql\n  {a.ddl}\n  ```" if a.ddl
                                                     else ""))
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
.ok{color:#1a7f37}.slow,.error{color:#b00020;font-weight:bold}code{background:#f4f4f4}
.bar{height:.8em;display:inline-block}.t{background:#1a7f37}.s{background:#9a6700}"""


def render_html(rep: Any) -> str:
    """The Markdown report's content as one self-contained HTML file, with a bar chart of
    the source's and the target's median time per query (no script, no network)."""
    e = html.escape
    status = "OK" if rep.ok else "FAILED"
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>docshift bench: {status}</title><style>{_CSS}</style></head><body>",
             f"<h1>Query benchmark: <span class='{'ok' if rep.ok else 'error'}'>{status}"
             "</span></h1><table>"]
    for k, v in rep.environment.items():
        parts.append(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>")
    parts.append("</table><h2>Median time per query</h2><p><span class='bar t' "
                 "style='width:1em'></span> target <span class='bar s' style='width:1em'>"
                 "</span> source</p><table>")
    medians = [m for q in rep.queries for m in (
        q.timing.median if q.timing else 0,
        q.source.timing.median if q.source and q.source.timing else 0)]
    top = max(medians + [1e-9])
    for q in rep.queries:
        bars = []
        for cls, tm in (("t", q.timing), ("s", q.source.timing if q.source else None)):
            if tm is not None:
                width = max(tm.median / top * 30, 0.1)
                bars.append(f"<span class='bar {cls}' style='width:{width:.2f}em'></span> "
                            f"{e(_ms(tm.median))} ms")
        parts.append(f"<tr><td>{e(q.name)}</td><td>{'<br>'.join(bars) or '–'}</td>"
                     f"<td>{e(_speedup(q))}</td></tr>")
    parts.append("</table><h2>Queries</h2><table><tr><th>query</th><th>status</th>"
                 "<th>median ms</th><th>p95 ms</th><th>max ms</th><th>expect ms</th>"
                 "<th>rows</th><th>source</th><th>plan</th></tr>")
    for q in rep.queries:
        tm = q.timing
        cells = [_ms(tm.median if tm else None), _ms(tm.p95 if tm else None),
                 _ms(tm.max if tm else None), _ms(q.expect_ms), f"{q.rows:,}",
                 _source_cell(q), _plan_cell(q)]
        parts.append(f"<tr><td>{e(q.name)}</td><td class='{q.status}'>{q.status}</td>"
                     + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table><h2>Schema advice</h2>")
    if not rep.advice:
        parts.append("<p>None.</p>")
    else:
        parts.append("<ul>")
        for a in rep.advice:
            ddl = f"<br><code>{e(a.ddl)}</code>" if a.ddl else ""
            parts.append(f"<li><b>{e(a.kind)}</b> {e(a.message)}{ddl}</li>")
        parts.append("</ul>")
    for q in rep.queries:
        err = q.error or (q.source.error if q.source else None)
        if err:
            parts.append(f"<p class='error'>{e(q.name)}: {e(err)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
