"""Load one batch of documents: binary COPY + quarantine + checkpoint, in one transaction.

That single transaction is the exactly-once guarantee: either the batch's rows, its
quarantined documents and the stream's new position are all committed, or none is. When
PostgreSQL refuses the batch (a CHECK in an existing table, a value the converter let
through), the batch is bisected inside savepoints until the refused documents are isolated;
they are quarantined with PostgreSQL's message and the rest loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import orjson
import psycopg
from psycopg import sql

from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.spec.model import Mapping
from docshift.target.ddl import load_columns, qualified
from docshift.target.state import (
    Checkpoint,
    Unit,
    add_unmapped,
    doc_id,
    record_batch,
    save_checkpoint,
    write_rejects,
    write_unmatched,
)
from docshift.transform.columnar import ColumnarPart, encode_copy
from docshift.transform.convert import adapt_uuid_wire, printable_text, to_extended_json
from docshift.transform.rows import DocumentRows, StreamPlan, column_types


@dataclass(slots=True)
class TableCopy:
    """A prepared binary COPY into one table."""

    statement: sql.Composed
    types: list[str]

    def write(self, cur: psycopg.Cursor, rows: Iterable[tuple[Any, ...]]) -> None:
        # the rows' uuid values are their 16 bytes (convert.uuid_wire), copied as they are;
        # only this cursor's adapters change
        adapt_uuid_wire(cur.adapters)
        with cur.copy(self.statement) as copy:
            copy.set_types(self.types)
            transformer = getattr(getattr(copy, "formatter", None), "transformer", None)
            if _format_row_binary is None or transformer is None:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
                return
            # The rows are formatted by psycopg's own (C) row formatter, as write_row does,
            # into one large buffer: write_row's two Python calls per row cost a third of the
            # formatting. The buffer is a whole binary COPY stream: signature, rows, trailer.
            buf = bytearray(_BINARY_SIGNATURE)
            for row in rows:
                _format_row_binary(row, transformer, buf)
                if len(buf) > _SEND_BYTES:
                    copy.write(buf)
                    buf = bytearray()
            buf += _BINARY_TRAILER
            copy.write(buf)


try:
    from psycopg._copy_base import format_row_binary as _format_row_binary
except ImportError:  # another psycopg: every row goes through Copy.write_row
    _format_row_binary = None

_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + b"\0\0\0\0" + b"\0\0\0\0"
"""Binary COPY header: the signature, no flags, no header extension (PostgreSQL's format)."""
_BINARY_TRAILER = b"\xff\xff"
_SEND_BYTES = 1 << 20


def table_copies(m: Mapping, plan: StreamPlan) -> dict[str, TableCopy]:
    """One prepared COPY per table the stream fills."""
    out = {}
    for name in plan.tables:
        table = m.tables[name]
        types = [t.copy_name for t in column_types(m, table).values()]
        if table.extra:
            types.append("jsonb")
        types += ["text", "int8"]  # the hidden source key and document number
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            qualified(m.target.schema_, name),
            sql.SQL(", ").join(map(sql.Identifier, load_columns(table))))
        out[name] = TableCopy(stmt, types)
    return out


@dataclass
class BatchResult:
    """What a committed batch did."""

    rows: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    reject_classes: dict[str, int] = field(default_factory=dict)


Item = tuple[SourceDocument, DocumentRows]


def load_batch(conn: psycopg.Connection, run_id: int, unit: Unit, items: list[Item],
               copies: dict[str, TableCopy], cp: Checkpoint, seconds: float,
               part: ColumnarPart | None = None) -> BatchResult:
    """Commit one batch and move ``cp`` past it (``cp`` is updated in place on success).

    The i-th item is the unit's document number ``cp.docs_read + i``; its rows already
    carry that doc_id (see ``StreamPlan.build``). With ``part``, the rows of the documents
    whose items are placeholders come from the columnar path; if PostgreSQL refuses any row
    of the batch, those documents are built by the row path and the batch is loaded again,
    so that the refused documents are found and quarantined as always.
    """
    good = [it for it in items if it[1].rejection is None and it[1].matched]
    try:
        with conn.transaction():
            result = _commit(conn, run_id, unit, items, good, [], copies, cp, seconds,
                             part=part)
    except _RefusedCopy as exc:
        if part is not None and part.slices:
            part.materialize(items)
            return load_batch(conn, run_id, unit, items, copies, cp, seconds)
        if not isinstance(exc.error, (*_CLIENT_ERRORS, psycopg.errors.DataError,
                                      psycopg.errors.IntegrityError,
                                      psycopg.errors.ProgrammingError,
                                      psycopg.errors.InternalError_)) or len(good) == 0:
            raise exc.error from None
        # the batch is retried in halves below, down to the refused documents
        with conn.transaction():
            bad: list[tuple[Item, str, str, str]] = []
            kept = _isolate(conn, good, copies, bad)
            result = _commit(conn, run_id, unit, items, kept, bad, copies, cp, seconds,
                             copied=True)
    return result


_CLIENT_ERRORS = (TypeError, ValueError, OverflowError, UnicodeError)
"""What formatting one value for binary COPY can raise on the client side (a value that
passed conversion but that the wire format cannot carry); treated like a refused row."""


class _RefusedCopy(Exception):
    """The COPY into ``table`` failed, refused by PostgreSQL or while formatting a row."""

    def __init__(self, table: str, error: Exception) -> None:
        super().__init__(table)
        self.table, self.error = table, error

    def reason(self) -> tuple[str, str]:
        """(error_class, message) for the quarantine."""
        exc = self.error
        if not isinstance(exc, psycopg.DatabaseError):
            return "copy_format", f"the row cannot be sent to PostgreSQL: {exc}"
        msg = (exc.diag.message_primary or str(exc)).strip()
        detail = exc.diag.message_detail
        return (f"pg_{_snake(type(exc).__name__)}",
                f"PostgreSQL refused the row: {msg}" + (f" ({detail})" if detail else ""))


def _copy(conn: psycopg.Connection, items: list[Item], copies: dict[str, TableCopy]) -> None:
    per_table: dict[str, list[list[tuple[Any, ...]]]] = {table: [] for table in copies}
    for _, res in items:
        for table, rows in res.rows.items():
            per_table[table].append(rows)
    with conn.cursor() as cur:
        for table, cp in copies.items():
            if per_table[table]:
                with _refused_as(table):
                    cp.write(cur, chain.from_iterable(per_table[table]))


@contextmanager
def _refused_as(table: str) -> Iterator[None]:
    """A refusal of ``table``'s COPY (by PostgreSQL, or while formatting) as _RefusedCopy;
    a lost connection stays what it is."""
    try:
        yield
    except psycopg.errors.OperationalError:
        raise
    except (psycopg.DatabaseError, *_CLIENT_ERRORS) as exc:
        raise _RefusedCopy(table, exc) from exc


def _copy_columnar(conn: psycopg.Connection, part: ColumnarPart,
                   copies: dict[str, TableCopy]) -> None:
    with conn.cursor() as cur:
        for tp, batches in part.batches():
            with _refused_as(tp.table), cur.copy(copies[tp.table].statement) as copy:
                copy.write(encode_copy(tp, batches))


def _isolate(conn: psycopg.Connection, items: list[Item], copies: dict[str, TableCopy],
             bad: list[tuple[Item, str, str, str]]) -> list[Item]:
    """Load what PostgreSQL accepts, bisecting inside savepoints; collect the refused."""
    try:
        with conn.transaction():
            _copy(conn, items, copies)
        return items
    except _RefusedCopy as refused:
        if len(items) == 1:
            bad.append((items[0], refused.table, *refused.reason()))
            return []
        mid = len(items) // 2
        return _isolate(conn, items[:mid], copies, bad) + _isolate(conn, items[mid:], copies, bad)


def _document_json(doc: Any) -> str:
    """The original document as quarantine JSON; an unreadable one keeps its raw bytes."""
    as_json = getattr(doc, "as_json", None) if type(doc) is UnreadableDocument else None
    if as_json is not None:
        return orjson.dumps(as_json()).decode()
    return to_extended_json(doc)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _commit(conn: psycopg.Connection, run_id: int, unit: Unit, items: list[Item],
            good: list[Item], bad: list[tuple[Item, str, str, str]],
            copies: dict[str, TableCopy], cp: Checkpoint, seconds: float,
            copied: bool = False, part: ColumnarPart | None = None) -> BatchResult:
    source = unit.source_stream
    first = doc_id(unit.number, cp.docs_read)
    if not copied:
        _copy(conn, good, copies)
    result = BatchResult()
    if part is not None:
        _copy_columnar(conn, part, copies)
        result.rows.update(part.rows)
    rejects: list[tuple[Any, ...]] = []
    unmatched: list[str] = []
    unmapped: dict[str, tuple[int, str]] = {}
    for i, (sdoc, res) in enumerate(items):
        if res.rejection is not None:
            r = res.rejection
            rejects.append((run_id, source, printable_text(sdoc.key), r.table, "convert",
                            r.field, r.error_class, r.message, _document_json(sdoc.doc),
                            first + i))
            result.reject_classes[r.error_class] = result.reject_classes.get(r.error_class, 0) + 1
        elif not res.matched:
            unmatched.append(printable_text(sdoc.key))
        for path in res.unmapped:
            n, k = unmapped.get(path, (0, printable_text(sdoc.key)))
            unmapped[path] = (n + 1, k)
    ids = {id(sdoc): first + i for i, (sdoc, _) in enumerate(items)} if bad else {}
    for (sdoc, _res), table, error_class, message in bad:
        rejects.append((run_id, source, printable_text(sdoc.key), table, "load", None,
                        error_class, message, _document_json(sdoc.doc), ids[id(sdoc)]))
        result.reject_classes[error_class] = result.reject_classes.get(error_class, 0) + 1
    for _, res in good:
        for table, rows in res.rows.items():
            result.rows[table] = result.rows.get(table, 0) + len(rows)
    result.rejected = len(rejects)
    write_rejects(conn, rejects)
    write_unmatched(conn, run_id, source, unmatched)
    add_unmapped(conn, run_id, source, unmapped)
    new = Checkpoint(cp.stream, items[-1][0].position if items else cp.position,
                     cp.docs_read + len(items), cp.docs_rejected + result.rejected,
                     dict(cp.rows_written or {}), cp.done, cp.seconds + seconds)
    for t, n in result.rows.items():
        new.rows_written[t] = new.rows_written.get(t, 0) + n  # type: ignore[index]
    record_batch(conn, run_id, cp.stream, first,
                 cp.position if cp.position is not None else unit.start)
    save_checkpoint(conn, run_id, new, cp)
    # only now, with everything written, move the caller's checkpoint
    cp.position, cp.docs_read, cp.docs_rejected = new.position, new.docs_read, new.docs_rejected
    cp.rows_written, cp.seconds = new.rows_written, new.seconds
    return result
