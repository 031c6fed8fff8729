"""YAML rendering: the proposal as a mapping file, every choice commented with its evidence."""

from __future__ import annotations

import json
import re
from typing import Any

from docshift.infer.model import ColumnProposal, FeedProposal, Proposal, TableProposal

_PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_.$\-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "~"}


def scalar(value: Any) -> str:
    """A YAML scalar that reads back as ``value`` (quoted when YAML would read it otherwise)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS and not text.startswith("-"):
        return text
    return json.dumps(text, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def _flow(items: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {scalar(v)}" for k, v in items.items()) + "}"


def render_column(col: ColumnProposal, indent: str) -> list[str]:
    lines = [f"{indent}# {_comment(e)}" for e in col.evidence]
    if col.check:
        lines.append(f"{indent}# CHECK: {_comment(col.check)}")
    settings: dict[str, Any] = {}
    if col.type is not None:
        settings["type"] = col.type
    if col.from_ is not None:
        settings["from"] = col.from_
    if col.nullable is False:
        settings["nullable"] = False
    if col.unique:
        settings["unique"] = True
    if col.references:
        settings["references"] = col.references
    if col.on_orphan:
        settings["on_orphan"] = col.on_orphan
    if list(settings) == ["type"]:
        lines.append(f"{indent}{col.name}: {scalar(col.type)}")
    else:
        lines.append(f"{indent}{col.name}: {_flow(settings)}")
    if col.enum:
        values = ", ".join(scalar(v) for v, _ in col.enum)
        counts = ", ".join(f"{v} ×{n}" for v, n in col.enum)
        lines.append(f"{indent}#   enum suggestion ({_comment(counts)}):")
        lines.append(f"{indent}#   {col.name}: {{type: text, enum: [{_comment(values)}]}}")
    return lines


def _feed_lines(feed: FeedProposal, indent: str, first: str) -> list[str]:
    lines: list[str] = []
    pad = indent
    items: list[tuple[str, str]] = []
    if feed.from_ is not None:
        items.append(("from", scalar(feed.from_)))
    if feed.keys is not None:
        items.append(("keys", json.dumps(feed.keys, ensure_ascii=False)))
    if feed.where:
        items.append(("where", _flow(feed.where)))
    if feed.unnest is not None:
        items.append(("unnest", scalar(feed.unnest)))
    if feed.columns:
        items.append(("columns", _flow(feed.columns)))
    if feed.note:
        lines.append(f"{pad}# {_comment(feed.note)}")
    for n, (k, v) in enumerate(items):
        lead = first if n == 0 else pad
        lines.append(f"{lead}{k}: {v}")
    return lines


def render_table(t: TableProposal) -> list[str]:
    lines = [f"  # {_comment(n)}" for n in t.notes]
    lines.append(f"  {t.name}:")
    if len(t.feeds) == 1:
        lines += _feed_lines(t.feeds[0], "    ", "    ")
    else:
        lines.append("    feeds:")
        for f in t.feeds:
            lines += _feed_lines(f, "        ", "      - ")
    if t.primary_key:
        pk = t.primary_key[0] if len(t.primary_key) == 1 else \
            "[" + ", ".join(t.primary_key) + "]"
        lines.append(f"    primary_key: {pk}")
    if t.on_duplicate:
        lines.append(f"    on_duplicate: {t.on_duplicate}")
    if t.ignore:
        lines.append("    ignore: [" + ", ".join(scalar(i) for i in t.ignore) + "]")
    lines.append("    columns:")
    for c in t.columns:
        lines += render_column(c, "      ")
    return lines


def render(p: Proposal) -> str:
    """The mapping file text for proposal ``p``."""
    out = ["# Proposed by `docshift infer`: review every line, then `docshift plan`.",
           "# Comments give the evidence (share of sampled documents holding a field, the",
           "# types seen with counts, distinct values, examples, reference match rates).",
           "# `# CHECK:` marks a choice to look at; enum suggestions are commented out.",
           "version: 1", "", "source:"]
    out += [f"  # {_comment(n)}" for n in p.source_notes]
    out += [f"  {k}: {scalar(v) if not v.startswith('${') else json.dumps(v)}"
            for k, v in p.source.items()]
    out += ["", "target:", "  mode: create", "  schema: public", "", "options:",
            f"  naming: {p.naming}", "  unmapped: report", f"  on_orphan: {p.on_orphan}"]
    out += [f"# {_comment(n)}" for n in p.notes]
    if p.ignore_keys:
        out += ["", "ignore_keys:"]
        for pattern, why in p.ignore_keys:
            out.append(f"  - {json.dumps(pattern, ensure_ascii=False)}"
                       + (f"  # {_comment(why)}" if why else ""))
    out += ["", "tables:"]
    for t in p.tables:
        out += render_table(t)
        out.append("")
    return "\n".join(out).rstrip() + "\n"
