"""``docshift rejects``: the quarantine grouped by cause, on a terminal or as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.console import Console

from docshift.run.rejects import RejectGroup, RemovalGroup


def rejects_json(groups: list[RejectGroup], removals: list[RemovalGroup] | None = None
                 ) -> dict[str, Any]:
    """The latest run's quarantine as data: the number of quarantined documents and their
    groups by cause; with ``removals`` (``--all``), also the policy removals and their total."""
    out: dict[str, Any] = {"quarantined": sum(g.count for g in groups),
                           "groups": [asdict(g) for g in groups]}
    if removals is not None:
        out["removed"] = sum(r.count for r in removals)
        out["removals"] = [asdict(r) for r in removals]
    return out


def print_rejects(console: Console, groups: list[RejectGroup],
                  removals: list[RemovalGroup] | None = None) -> None:
    """Each cause with its count, an example key and message; with ``removals`` (``--all``),
    the rows a policy removed or changed; then how to export them."""
    if not groups:
        console.print("Nothing quarantined.")
    else:
        total = sum(g.count for g in groups)
        console.print(f"{total:,} quarantined document(s), by cause:")
        for g in groups:
            where = f"{g.table or g.source}.{g.field}" if g.field else (g.table or g.source)
            console.print(f"  [bold]{g.count:>7,}[/]  {g.error_class:<18} {where}  "
                          f"[dim](source {g.source}, e.g. key {g.example_key})[/]",
                          highlight=False, soft_wrap=True)
            console.print(f"           {g.example_message}", highlight=False,
                          soft_wrap=True, markup=False)
    if removals is not None:
        if not removals:
            console.print("No row was removed or changed by a policy.")
        else:
            total = sum(g.count for g in removals)
            console.print(f"{total:,} row(s) removed or changed by a policy "
                          "(documents not quarantined):")
            for r in removals:
                where = f"{r.table}.{r.column}" if r.column else r.table
                console.print(f"  [bold]{r.count:>7,}[/]  {r.kind:<18} {where}  "
                              f"[dim](e.g. key {r.example_key})[/]", highlight=False,
                              soft_wrap=True)
                console.print(f"           {r.example_message}", highlight=False,
                              soft_wrap=True, markup=False)
    if groups or removals:
        console.print("Export them with `docshift rejects "
                      + ("--all " if removals is not None else "") + "--export rejects.jsonl`.")
