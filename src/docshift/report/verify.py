"""Renderings of a VerifyReport: a terminal table, a Markdown sign-off, one HTML file."""

from __future__ import annotations

import html
from typing import Any

from rich.table import Table

LAYER_COLUMNS = ("reconciliation", "content", "integrity", "nulls", "aggregates", "schema")
MARK = {"pass": "✓ pass", "warn": "! warn", "fail": "✗ fail"}
STYLE = {"pass": "green", "warn": "yellow", "fail": "red"}

CHECKLIST = (
    ("Counts reconcile: every source document is accounted for exactly once",
     ("reconciliation",)),
    ("Zero orphans, zero duplicate keys, constraints valid", ("integrity",)),
    ("Content matches the source", ("content",)),
    ("No silent NULLs; aggregates agree", ("nulls", "aggregates")),
    ("Schema matches the mapping", ("schema",)),
)


def _status(rep: Any, layers: tuple[str, ...]) -> str:
    states = {c.status for c in rep.checks if c.layer in layers}
    return "fail" if "fail" in states else "warn" if "warn" in states else "pass"


def terminal_table(rep: Any) -> Table:
    """Per table, the state of each layer (like a per-table validation state)."""
    t = Table(title=f"verification: {rep.status.upper()}")
    t.add_column("table")
    for layer in LAYER_COLUMNS:
        t.add_column(layer)
    t.add_column("rows (source → target)", justify="right")
    for name in rep.tables():
        states = rep.table_status(name)
        rows = next((c for c in rep.checks if c.table == name and c.layer == "reconciliation"
                     and c.name.startswith("rows")), None)
        counts = (f"{rows.expected:,} → {rows.actual:,}"
                  if rows and rows.expected is not None else "")
        t.add_row(name, *(f"[{STYLE[s]}]{MARK[s]}[/]" if (s := states.get(layer)) else "–"
                          for layer in LAYER_COLUMNS), counts)
    return t


def print_terminal(console: Any, rep: Any, limit: int = 5) -> None:
    """The table, then each failing or warning check with a few of its differences."""
    console.print(terminal_table(rep))
    for c in rep.failures():
        console.print(f"[{STYLE[c.status]}]{c.status}[/] {c.layer} · {c.table} · {c.name}: "
                      f"{c.message}", highlight=False)
        for d in c.differences[:limit]:
            console.print("    " + _difference_text(d), highlight=False, markup=False)
        if c.differences_total > limit:
            console.print(f"    … {c.differences_total - limit} more", highlight=False)


def _difference_text(d: Any) -> str:
    parts = []
    if d.key is not None:
        parts.append(f"key {d.key}")
    if d.field:
        parts.append(f"field {d.field}")
    if d.source_value is not None or d.target_value is not None:
        parts.append(f"source {_short(d.source_value)} → target {_short(d.target_value)}")
    if d.message:
        parts.append(d.message)
    return "; ".join(parts)


def _short(v: Any, n: int = 120) -> str:
    s = "NULL" if v is None else str(v)
    return s if len(s) <= n else s[:n] + "…"


def _md(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(rep: Any) -> str:
    """A sign-off document: environment, per-table summary, failures, checklist."""
    env = rep.environment
    out = [f"# Migration verification: {rep.status.upper()}", ""]
    out += ["## Environment", "", "| | |", "|---|---|"]
    for k in ("source", "target", "schema", "mode", "run_id", "run_status",
              "docshift_version", "verified_at", "mapping"):
        out.append(f"| {k} | {_md(env.get(k, ''))} |")
    opts = rep.options
    scope = ("every document" if opts.full else
             f"a sample of {opts.sample} documents per stream, seed {opts.seed}")
    out.append(f"| content | {scope} |")
    out += ["", "## Checklist", ""]
    for text, layers in CHECKLIST:
        s = _status(rep, layers)
        out.append(f"- [{'x' if s != 'fail' else ' '}] {text} — **{s}**")
    out += ["", "## Documents per stream", "",
            "| stream | documents | loaded | quarantined | filtered | ignored | unmatched | "
            "unaccounted |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in rep.streams:
        out.append(f"| {_md(s.stream)} | {s.documents:,} | {s.loaded:,} | {s.quarantined:,} | "
                   f"{s.filtered:,} | {s.ignored:,} | {s.unmatched:,} | {s.unaccounted:,} |")
    out += ["", "## Tables", "", "| table | " + " | ".join(LAYER_COLUMNS) + " |",
            "|---|" + "---|" * len(LAYER_COLUMNS)]
    for name in rep.tables():
        st = rep.table_status(name)
        out.append(f"| {_md(name)} | " + " | ".join(st.get(layer, "–") for layer in
                                                    LAYER_COLUMNS) + " |")
    fails = rep.failures()
    out += ["", "## Failures and warnings", ""]
    if not fails:
        out.append("None.")
    for c in fails:
        out += [f"### {c.status}: {c.layer} · {c.table} · {c.name}", "", _md(c.message), ""]
        if c.differences:
            out += ["| key | field | source | target | note |", "|---|---|---|---|---|"]
            for d in c.differences:
                out.append(f"| {_md(d.key or '')} | {_md(d.field or '')} | "
                           f"{_md(_short(d.source_value))} | {_md(_short(d.target_value))} | "
                           f"{_md(d.message or '')} |")
            if c.differences_total > len(c.differences):
                out.append(f"\n… {c.differences_total - len(c.differences)} more")
            out.append("")
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f4f4f4}.pass{color:#176f2c}.warn{color:#8a6100}
.fail{color:#b00020;font-weight:bold}code{background:#f4f4f4}"""


def render_html(rep: Any) -> str:
    """The Markdown report's content as one self-contained HTML file (no network)."""
    e = html.escape

    def cell(s: str) -> str:
        return f'<td class="{e(s)}">{e(s)}</td>'

    env = rep.environment
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>docshift verify: {e(rep.status)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Migration verification: <span class='{e(rep.status)}'>"
             f"{e(rep.status.upper())}</span></h1>", "<h2>Environment</h2><table>"]
    for k in ("source", "target", "schema", "mode", "run_id", "run_status",
              "docshift_version", "verified_at", "mapping"):
        parts.append(f"<tr><th>{e(k)}</th><td>{e(str(env.get(k, '')))}</td></tr>")
    parts.append("</table><h2>Checklist</h2><ul>")
    for text, layers in CHECKLIST:
        s = _status(rep, layers)
        parts.append(f"<li>{e(text)}: <span class='{s}'>{s}</span></li>")
    parts.append("</ul><h2>Documents per stream</h2><table><tr><th>stream</th><th>documents"
                 "</th><th>loaded</th><th>quarantined</th><th>filtered</th><th>ignored</th>"
                 "<th>unmatched</th><th>unaccounted</th></tr>")
    for s in rep.streams:
        parts.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in (
            s.stream, s.documents, s.loaded, s.quarantined, s.filtered, s.ignored,
            s.unmatched, s.unaccounted)) + "</tr>")
    parts.append("</table><h2>Tables</h2><table><tr><th>table</th>"
                 + "".join(f"<th>{layer}</th>" for layer in LAYER_COLUMNS) + "</tr>")
    for name in rep.tables():
        st = rep.table_status(name)
        parts.append(f"<tr><td>{e(name)}</td>"
                     + "".join(cell(st.get(layer, "–")) for layer in LAYER_COLUMNS) + "</tr>")
    parts.append("</table><h2>Failures and warnings</h2>")
    fails = rep.failures()
    if not fails:
        parts.append("<p>None.</p>")
    for c in fails:
        parts.append(f"<h3><span class='{e(c.status)}'>{e(c.status)}</span>: {e(c.layer)} · "
                     f"{e(c.table)} · {e(c.name)}</h3><p>{e(c.message)}</p>")
        if c.differences:
            parts.append("<table><tr><th>key</th><th>field</th><th>source</th><th>target</th>"
                         "<th>note</th></tr>")
            for d in c.differences:
                parts.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in (
                    d.key or "", d.field or "", _short(d.source_value),
                    _short(d.target_value), d.message or "")) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
