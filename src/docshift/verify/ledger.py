"""What the verifier reads of docshift's own state, in one place.

The verifier never trusts the loader's counters or positions. It reads the quarantine
only to accept a document as quarantined (and then checks the document is absent from the
target), the work units only to number the documents it reads as the run numbered them (so
an entry's ``doc_id`` names one document even when several share a key), and the removals
only to explain a difference it then checks. In existing mode, the record of the rows the run
loaded (``docshift.loaded_<table>``) tells them from rows that were in the table before.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Quarantined:
    """One quarantine entry."""

    streams: tuple[str, ...]
    source_key: str | None
    table: str | None
    stage: str
    field: str | None
    error_class: str
    message: str
    whole_document: bool
    """True when every row of the document was withheld; False for a row-level entry (an
    older finalization removed only the offending row of ``table``)."""
    doc_id: int | None = None
    """The document's number in the run (``unit_no << 40 | ordinal``); None in older state."""


@dataclass(frozen=True)
class Unit:
    """A work unit of the run: documents of ``stream`` after ``start`` up to ``end``."""

    number: int
    stream: str
    start: str | None
    end: str | None


@dataclass(frozen=True)
class Removal:
    """One row a policy removed or changed without quarantining a document."""

    table: str
    kind: str
    source_key: str | None
    column: str | None
    value: str | None


def _has(conn: psycopg.Connection, relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


def latest_run_id(conn: psycopg.Connection) -> int | None:
    """The most recent run in the target, or None when docshift never loaded it."""
    if not _has(conn, "docshift.runs"):
        return None
    row = conn.execute("SELECT max(run_id) FROM docshift.runs").fetchone()
    return row[0] if row else None


def run_status(conn: psycopg.Connection, run_id: int) -> str:
    row = conn.execute("SELECT status FROM docshift.runs WHERE run_id = %s",
                       (run_id,)).fetchone()
    return row[0] if row else "unknown"


def _has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = "
        "'docshift' AND table_name = %s AND column_name = %s)", (table, column)).fetchone()
    return bool(row and row[0])


def quarantined(conn: psycopg.Connection, run_id: int) -> list[Quarantined]:
    """Every quarantine entry of the run."""
    doc_col = "doc_id" if _has_column(conn, "rejects", "doc_id") else "NULL::bigint"
    out = []
    for src, key, table, stage, fld, ec, msg, doc in conn.execute(
            f"SELECT source, source_key, table_name, stage, field, error_class, message, "
            f"{doc_col} FROM docshift.rejects WHERE run_id = %s ORDER BY id", (run_id,)):
        # an entry made while loading withholds the whole document; one made at
        # finalization does when it names the document by number
        whole = stage != "finalize" or doc is not None
        out.append(Quarantined(tuple((src or "").split(",")), key, table, stage, fld, ec,
                               msg, whole, doc))
    return out


def units(conn: psycopg.Connection, run_id: int) -> dict[str, list[Unit]]:
    """The run's work units per source stream, in source order; streams whose units carry
    no number (older state) are left out."""
    if not _has_column(conn, "checkpoints", "unit_no"):
        return {}
    out: dict[str, list[Unit]] = {}
    numbered: dict[str, bool] = {}
    for no, stream, start, end in conn.execute(
            "SELECT unit_no, source_stream, unit_start, unit_end FROM docshift.checkpoints "
            "WHERE run_id = %s ORDER BY unit_no", (run_id,)):
        numbered[stream] = numbered.get(stream, True) and no is not None
        out.setdefault(stream, []).append(Unit(no, stream, start, end))
    return {s: us for s, us in out.items() if numbered[s]}


def removals(conn: psycopg.Connection, run_id: int) -> list[Removal]:
    """Rows removed or changed by a policy (empty when the state has no such table)."""
    if not _has(conn, "docshift.removals"):
        return []
    return [Removal(*r) for r in conn.execute(
        "SELECT table_name, kind, source_key, column_name, value FROM docshift.removals "
        "WHERE run_id = %s ORDER BY id", (run_id,))]


@dataclass(frozen=True)
class Provenance:
    """Existing mode: the record a run keeps of the rows it loaded into one table."""

    table: str
    relation: str
    """The record's table in schema ``docshift``."""
    columns: list[str] | None
    """The key columns it keeps; None when it keeps whole-row images (``image`` jsonb)."""


def provenance(conn: psycopg.Connection) -> dict[str, Provenance]:
    """Per table, the record of the rows the run loaded (existing mode, finalized runs)."""
    import json

    if not _has(conn, "docshift.objects"):
        return {}
    out = {}
    for table, name, definition in conn.execute(
            "SELECT table_name, name, definition FROM docshift.objects WHERE kind = 'loaded'"):
        if not conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE n.nspname = 'docshift' AND c.relname = %s)",
                (name,)).fetchone()[0]:  # type: ignore[index]
            continue
        columns = (json.loads(definition) or {}).get("columns") if definition else None
        out[table] = Provenance(table, name, list(columns) if columns else None)
    return out
