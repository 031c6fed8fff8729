"""Reading the quarantine: grouped by cause, or exported as JSON Lines."""

from __future__ import annotations

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


def export_rejects(conn: psycopg.Connection, path: Path) -> int:
    """Write every quarantined document of the latest run as one JSON object per line."""
    n = 0
    with path.open("wb") as f:
        if not state_exists(conn):
            return 0
        cur = conn.cursor(name="rejects_export") if not conn.autocommit else conn.cursor()
        cur.execute(
            "SELECT source, source_key, table_name, stage, field, error_class, message, "
            "document FROM docshift.rejects WHERE run_id = (SELECT max(run_id) FROM "
            "docshift.runs) ORDER BY id")
        for src, key, table, stage, fld, ec, msg, doc in cur:
            f.write(orjson.dumps({"source": src, "source_key": key, "table": table,
                                  "stage": stage, "field": fld, "error_class": ec,
                                  "message": msg, "document": doc}) + b"\n")
            n += 1
    return n
