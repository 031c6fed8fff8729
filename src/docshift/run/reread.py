"""Read loaded documents again from the source, by doc_id.

A document rejected after loading (a duplicate, an orphan) is quarantined whole, with its
original; ``docshift.batches`` says where each committed batch started, so finding a
document costs at most one batch of reading.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg

from docshift.sources import open_source
from docshift.sources.base import SourceDocument
from docshift.spec.model import Mapping
from docshift.target.state import split_doc_id
from docshift.transform.rows import StreamPlan


def reread(conn: psycopg.Connection, m: Mapping, dsn: str | None, run_id: int,
           doc_ids: list[int]) -> dict[int, SourceDocument]:
    """``{doc_id: SourceDocument}`` for the given loaded documents.

    Documents are grouped by work unit and by batch; each needed batch is read once, from
    the position it was first read after. A doc_id that cannot be found (the source
    changed since the run) is left out.
    """
    wanted = sorted(set(doc_ids))
    if not wanted:
        return {}
    by_unit: dict[int, list[int]] = defaultdict(list)
    for d in wanted:
        by_unit[split_doc_id(d)[0]].append(d)
    units = {no: (name, stream) for name, stream, no in conn.execute(
        "SELECT stream, source_stream, unit_no FROM docshift.checkpoints "
        "WHERE run_id = %s AND unit_no = ANY(%s)", (run_id, list(by_unit)))}
    found: dict[int, SourceDocument] = {}
    source = open_source(m.source, dsn)
    try:
        for no, ids in by_unit.items():
            if no not in units:
                continue
            unit, stream_name = units[no]
            batches = conn.execute(
                "SELECT first_doc, after_position FROM docshift.batches "
                "WHERE run_id = %s AND stream = %s ORDER BY first_doc",
                (run_id, unit)).fetchall()
            groups: dict[int, tuple[str | None, list[int]]] = {}
            for d in ids:
                start = _batch_of(batches, d)
                if start is None:
                    continue
                groups.setdefault(start[0], (start[1], []))[1].append(d)
            stream = source.stream(stream_name)
            for first, (after, members) in groups.items():
                todo = set(members)
                last = max(members)
                for i, sdoc in enumerate(stream.read(after=after)):
                    n = first + i
                    if n in todo:
                        found[n] = sdoc
                    if n >= last:
                        break
    finally:
        source.close()
    return found


def _batch_of(batches: list[tuple[int, str | None]], d: int) -> tuple[int, str | None] | None:
    best = None
    for first, after in batches:
        if first > d:
            break
        best = (first, after)
    return best


def source_value(plan: StreamPlan, table: str, column: str, sdoc: SourceDocument,
                 value: str) -> Any:
    """The source value that the document turned into ``value`` (text) in ``table.column``.

    Each of the table's feeds in ``plan`` is read like the row builder reads it (every
    unnested element, too); the first raw value whose conversion gives ``value`` is
    returned, or None when none does.
    """
    doc, key = sdoc.doc, sdoc.key
    for feed in plan.feeds:
        if feed.table != table:
            continue
        col = next((c for c in feed.columns if c.name == column), None)
        if col is None:
            continue
        captures: dict[str, str] = {}
        if feed.patterns is not None:
            match = next((p.match(key) for p in feed.patterns if p.match(key)), None)
            if match is None:
                continue
            captures = match.groupdict()
        contexts: list[tuple[Any, ...]] = []
        if feed.unnest_getter is None:
            contexts.append((doc, key, captures, None, 0, None, {}))
        else:
            container = feed.unnest_getter((doc, key, captures, None, 0, None, {}))
            if type(container) is list:
                contexts += [(doc, key, captures, item, i, None, {})
                             for i, item in enumerate(container)]
            elif type(container) is dict:
                contexts += [(doc, key, captures, item, i, k, {})
                             for i, (k, item) in enumerate(container.items())]
        for ctx in contexts:
            raw = col.getter(ctx)  # type: ignore[arg-type]
            if raw is None:
                continue
            try:
                if str(col.value(ctx)) == value:  # type: ignore[arg-type]
                    return raw
            except Exception:  # noqa: BLE001 - a value that does not convert is not it
                continue
    return None
