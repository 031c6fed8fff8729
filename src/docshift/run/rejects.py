"""Reading the quarantine: grouped by cause, or exported as JSON Lines.

With ``--all``, also the rows a policy removed or changed without quarantining a document
(``docshift.removals``: duplicates dropped by ``keep_first``, references set to NULL,
orphan rows dropped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from docshift.target.state import state_exists


@dataclass
class RejectGroup:
    source: str
    table: str | None
    field: str | None
    error_class: str
    count: int
    example_key: str | None
    example_message: str


def group_rejects(conn: psycopg.Connection) -> list[RejectGroup]:
    """Quarantined documents of the latest run, grouped by (source, table, field, error)."""
    if not state_exists(conn):
        return []
    rows = conn.execute(
        "SELECT source, table_name, field, error_class, count(*), min(source_key), "
        "min(message) FROM docshift.rejects "
        "WHERE run_id = (SELECT max(run_id) FROM docshift.runs) "
        "GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3").fetchall()
    return [RejectGroup(*r) for r in rows]


@dataclass
class RemovalGroup:
    table: str
    kind: str
    column: str | None
    count: int
    example_key: str | None
    example_message: str


def group_removals(conn: psycopg.Connection) -> list[RemovalGroup]:
    """Rows removed or changed by a policy in the latest run, grouped by table and kind."""
    if not state_exists(conn):
        return []
    rows = conn.execute(
        "SELECT table_name, kind, column_name, count(*), min(source_key), min(message) "
        "FROM docshift.removals WHERE run_id = (SELECT max(run_id) FROM docshift.runs) "
        "GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3").fetchall()
    return [RemovalGroup(*r) for r in rows]


def _json(text: str | None) -> orjson.Fragment | None:
    """A document's JSON text as one compact line. Read with the standard library, which
    keeps integers of any size (orjson turns those beyond 64 bits into floats)."""
    if text is None:
        return None
    return orjson.Fragment(json.dumps(json.loads(text), ensure_ascii=False,
                                      separators=(",", ":")))


def export_rejects(conn: psycopg.Connection, path: Path, removals: bool = False) -> int:
    """Write every quarantined document of the latest run as one JSON object per line.

    With ``removals``, every recorded removal follows, one per line with a ``removal`` key
    naming its kind. Returns the number of lines written.
    """
    n = 0
    with path.open("wb") as f:
        if not state_exists(conn):
            return 0
        cur = conn.cursor(name="rejects_export") if not conn.autocommit else conn.cursor()
        cur.execute(
            "SELECT source, source_key, table_name, stage, field, error_class, message, "
            "document::text FROM docshift.rejects WHERE run_id = (SELECT max(run_id) FROM "
            "docshift.runs) ORDER BY id")
        for src, key, table, stage, fld, ec, msg, doc in cur:
            f.write(orjson.dumps({"source": src, "source_key": key, "table": table,
                                  "stage": stage, "field": fld, "error_class": ec,
                                  "message": msg, "document": _json(doc)}) + b"\n")
            n += 1
        if removals:
            cur = conn.cursor(name="removals_export") if not conn.autocommit else conn.cursor()
            cur.execute(
                "SELECT kind, table_name, source, source_key, column_name, value, "
                "source_value, message FROM docshift.removals WHERE run_id = (SELECT "
                "max(run_id) FROM docshift.runs) ORDER BY id")
            for kind, table, src, key, col, value, sv, msg in cur:
                f.write(orjson.dumps({"removal": kind, "table": table, "source": src,
                                      "source_key": key, "column": col, "value": value,
                                      "source_value": sv, "message": msg}) + b"\n")
                n += 1
    return n
