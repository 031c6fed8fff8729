"""Read a PostgreSQL key-value table (a key column and a JSON value column) as one stream.

Rows are read by keyset pagination in key order (``WHERE key > last ORDER BY key LIMIT n``),
each page in its own short read-only transaction, so the source database never sees a
long-running transaction or a write. Text keys are compared with ``COLLATE "C"`` everywhere:
the order is plain byte order, the same on every server and after an OS or ICU upgrade,
which is what makes a stored position (the last key) valid for a later run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads

from docshift.dsn import mask, parse_dsn, scrub
from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.bsonvalues import json_loads

_JSON_TYPES = {"json", "jsonb"}
_TEXT_TYPES = {"text", "varchar", "bpchar", "name", "citext"}
_RELKINDS = ("r", "p", "v", "m", "f")


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the key-value table as the catalog describes it."""

    name: str
    type: str
    """Display type, e.g. ``character varying(200)``."""
    base_type: str
    """Name of the underlying base type (domains resolved), e.g. ``varchar``."""
    not_null: bool
    collatable: bool


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class KvStream:
    """The rows of the key-value table, in byte order of the key."""

    def __init__(self, source: KvSource) -> None:
        self._source = source
        self.name = source.table
        # Columns are qualified with the table: a bare name in ORDER BY would mean the
        # (text) output column of the same name, not the key column.
        key = sql.Identifier(source.schema, source.table, source.key_column)
        value = sql.Identifier(source.schema, source.table, source.value_column)
        table = sql.Identifier(source.schema, source.table)
        key_type = source.columns[source.key_column]
        if key_type.collatable:
            order = sql.SQL('{} COLLATE "C"').format(key)
            after = sql.SQL('{} COLLATE "C" > %(after)s').format(key)
        else:
            order = key
            after = sql.SQL("{} > CAST(%(after)s AS {})").format(key, sql.SQL(key_type.type))
        value_expr = value if source.value_kind == "json" else sql.SQL("{}::text").format(value)
        select = sql.SQL("SELECT {key}::text, {value} FROM {table} WHERE ").format(
            key=key, value=value_expr, table=table
        )
        tail = sql.SQL(" ORDER BY {} LIMIT %(limit)s").format(order)
        self._first = select + sql.SQL("{} IS NOT NULL").format(key) + tail
        self._next = select + after + tail
        self._nulls = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(table, key)
        self._duplicates = sql.SQL(
            "SELECT min({key}::text) FROM {table} WHERE {key} IS NOT NULL GROUP BY {order} "
            "HAVING count(*) > 1 LIMIT 3"
        ).format(key=key, table=table, order=order)
        self._count = sql.SQL("SELECT count(*) FROM {}").format(table)
        if key_type.collatable:
            equal = sql.SQL("{} = %(key)s").format(key)
        else:
            equal = sql.SQL("{} = CAST(%(key)s AS {})").format(key, sql.SQL(key_type.type))
        self._exists = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(table, equal)
        key_only = sql.SQL("SELECT {}::text FROM {} WHERE ").format(key, table)
        self._first_key = key_only + sql.SQL("{} IS NOT NULL").format(key) + tail
        self._next_key = key_only + after + tail
        # every row's key and xmin (the transaction that wrote that version of it): any
        # insert, update or delete in a range changes the sum; values are not read
        upto = (sql.SQL('{} COLLATE "C" <= %(end)s').format(key) if key_type.collatable
                else sql.SQL("{} <= CAST(%(end)s AS {})").format(key, sql.SQL(key_type.type)))
        self._digest_sql = (sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended({}::text || ':' || xmin::text, 0)),"
            " 0)::text FROM {} WHERE {} IS NOT NULL").format(key, table, key), after, upto)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor inside a new read-only transaction (every query of the stream uses one)."""
        with self._source.transaction() as cur:
            yield cur

    def estimate_count(self) -> int | None:
        """``pg_class.reltuples`` (the planner's estimate); ``count(*)`` if never analyzed."""
        with self.transaction() as cur:
            cur.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (self._source.oid,)
            )
            row = cur.fetchone()
            estimate = int(row[0]) if row is not None else -1
            if estimate < 0 or self._source.relkind not in ("r", "m"):
                cur.execute(self._count)
                count = cur.fetchone()
                return int(count[0]) if count is not None else None
            return estimate

    def _check_keys(self) -> None:
        """Refuse keys that cannot be paged through exactly (NULL or duplicate keys)."""
        source = self._source
        with self.transaction() as cur:
            if not source.columns[source.key_column].not_null:
                cur.execute(self._nulls)
                row = cur.fetchone()
                nulls = int(row[0]) if row is not None else 0
                if nulls:
                    raise SourceError(
                        f"{source.where}: {nulls} rows have a NULL {source.key_column!r}; "
                        "they have no position in key order and cannot be read resumably",
                        hint="give those rows a key, or read from a view that excludes them",
                    )
            if not source.key_is_unique:
                cur.execute(self._duplicates)
                duplicates = [r[0] for r in cur.fetchall()]
                if duplicates:
                    raise SourceError(
                        f"{source.where}: key column {source.key_column!r} is not unique "
                        f"(e.g. {', '.join(map(repr, duplicates))} occur more than once)",
                        hint="deduplicate the keys, or read from a view with a unique key",
                    )

    def split(self, parts: int) -> list[str]:
        """Keys cutting the table into ``parts`` ranges of about equal row counts.

        Only text keys are split (their order is byte order, which :meth:`past` can compare
        without the database); each boundary is an existing key.
        """
        source = self._source
        if parts < 2 or not source.columns[source.key_column].collatable:
            return []
        n = self.estimate_count() or 0
        key = sql.Identifier(source.schema, source.table, source.key_column)
        table = sql.Identifier(source.schema, source.table)
        query = sql.SQL('SELECT {k}::text FROM {t} WHERE {k} IS NOT NULL ORDER BY {k} '
                        'COLLATE "C" OFFSET %s LIMIT 1').format(k=key, t=table)
        bounds: list[str] = []
        with self.transaction() as cur:
            for k in range(1, parts):
                row = cur.execute(query, (n * k // parts,)).fetchone()
                if row is not None and (not bounds or row[0] != bounds[-1]):
                    bounds.append(row[0])
        return bounds

    def fingerprint(self, start: str | None, end: str | None) -> dict[str, Any]:
        """Whether the unit's boundary keys still exist and which key comes first after
        ``start``. Rows elsewhere in the table (and the row estimate) play no part."""
        with self.transaction() as cur:
            facts: dict[str, Any] = {"source": self._source.where, "start": start, "end": end}
            for name, bound in (("start_exists", start), ("end_exists", end)):
                if bound is not None:
                    self._run(cur, self._exists, {"key": bound})
                    row = cur.fetchone()
                    facts[name] = bool(row and row[0])
            query = self._first_key if start is None else self._next_key
            self._run(cur, query, {"after": start, "limit": 1})
            row = cur.fetchone()
            facts["first_after_start"] = None if row is None else row[0]
            facts["rows_and_versions"] = self._digest(cur, start, end)
        return facts

    def _digest(self, cur: psycopg.Cursor[Any], start: str | None,
                end: str | None) -> list[Any] | None:
        """Row count and a sum over (key, row version) of the unit's range; None when the
        source has no row versions to read (a view)."""
        base, after, upto = self._digest_sql
        query = base
        if start is not None:
            query += sql.SQL(" AND ") + after
        if end is not None:
            query += sql.SQL(" AND ") + upto
        try:
            with cur.connection.transaction():
                cur.execute(query, {"after": start, "end": end})
                row = cur.fetchone()
        except psycopg.errors.UndefinedColumn:
            return None
        return None if row is None else [int(row[0]), row[1]]

    def _run(self, cur: psycopg.Cursor[Any], query: sql.Composed, params: dict[str, Any]) -> None:
        try:
            cur.execute(query, params)
        except psycopg.DataError as exc:
            raise SourceError(
                f"{self._source.where}: position {next(iter(params.values()))!r} is not a "
                f"valid {self._source.key_column!r} value ({exc})",
                hint="the checkpoint belongs to another source; run again with --restart",
            ) from exc

    def past(self, position: str, end: str) -> bool:
        """Whether key ``position`` sorts after key ``end`` (byte order, as COLLATE "C")."""
        return _utf8(position) > _utf8(end)

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield the rows in key order (byte order for text), starting after key ``after``."""
        self._check_keys()
        rows = self._pages(after) if self._source.key_is_indexed else self._cursor(after)
        yield from self._documents(rows)

    def _execute(self, cur: psycopg.Cursor[Any], after: str | None, limit: int | None) -> None:
        params = {"after": after, "limit": limit}
        try:
            cur.execute(self._first if after is None else self._next, params)
        except psycopg.DataError as exc:
            raise SourceError(
                f"{self._source.where}: resume position {after!r} is not a valid "
                f"{self._source.key_column!r} value ({exc})",
                hint="the checkpoint belongs to another source; reset the checkpoint",
            ) from exc

    def _pages(self, after: str | None) -> Iterator[list[tuple[str, Any]]]:
        """Keyset pages, each an index range scan in its own short transaction."""
        page_size = self._source.page_size
        while True:
            with self.transaction() as cur:
                self._execute(cur, after, page_size)
                rows = cur.fetchall()
            yield rows
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def _cursor(self, after: str | None) -> Iterator[list[tuple[str, Any]]]:
        """One sorted server-side cursor, fetched page by page: without an index in byte
        order, per-page queries would each scan and sort the whole table."""
        page_size = self._source.page_size
        conn = self._source.conn
        with self.transaction(), conn.cursor(name="docshift_kv") as cur:
            self._execute(cur, after, None)
            while rows := cur.fetchmany(page_size):
                yield rows

    def _documents(self, pages: Iterator[list[tuple[str, Any]]]) -> Iterator[SourceDocument]:
        source = self._source
        text_values = source.value_kind == "text"
        for rows in pages:
            for key, value in rows:
                if text_values and value is not None:
                    try:
                        value = json_loads(value)
                    except (ValueError, RecursionError) as exc:
                        raw = _utf8(value)
                        value = UnreadableDocument(
                            raw=raw,
                            reason=f"{source.where}, key {key!r}: {source.value_column!r} is "
                            f"not valid JSON: {exc}",
                            length=len(raw),
                        )
                yield SourceDocument(key, value, key)


class KvSource:
    """A key-value table: ``table(key_column, value_column)`` with JSON (or JSON text) values.

    The connection is read-only: every transaction is ``READ ONLY`` and the session's
    ``default_transaction_read_only`` is on.
    """

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        key_column: str = "key",
        value_column: str = "value",
        schema: str | None = None,
        page_size: int = 5000,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.table = table
        self.key_column = key_column
        self.value_column = value_column
        self.page_size = page_size
        self.warnings: list[str] = []
        """Problems worked around while reading; none arise for a table today."""
        parse_dsn(dsn, what="the key-value source DSN", error=SourceError)
        try:
            self.conn: psycopg.Connection[Any] = psycopg.connect(dsn, autocommit=False)
        except psycopg.Error as exc:
            raise SourceError(
                f"cannot connect to the key-value source database {mask(dsn)}: "
                f"{scrub(str(exc).strip(), dsn)}",
                hint="check the source DSN (host, port, database, user, password)",
            ) from None
        try:
            if self.conn.info.encoding == "ascii":
                # SQL_ASCII stores any bytes unchecked: keys and names would not be text.
                raise SourceError(
                    f"the key-value source database {self.conn.info.dbname!r} uses the "
                    "SQL_ASCII encoding, so its text (keys, table names) is not reliably text",
                    hint="copy the table into a database created with ENCODING 'UTF8' "
                    "and read it from there",
                )
            self.conn.read_only = True
            set_json_loads(json_loads, self.conn)
            self._describe(schema)
        except BaseException:
            self.conn.close()
            raise

    @property
    def where(self) -> str:
        """The table's qualified name, for messages."""
        return f"table {self.schema}.{self.table}"

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor inside a new read-only transaction, committed when the block ends."""
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as exc:
            raise SourceError(
                f"lost the connection while reading {self.where}: {exc}",
                hint="run again: reading resumes after the last stored position",
            ) from exc

    def _describe(self, schema: str | None) -> None:
        with self.transaction() as cur:
            cur.execute("SET SESSION default_transaction_read_only = on")
            cur.execute(
                "SELECT c.oid, n.nspname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %(t)s AND c.relkind = ANY(%(kinds)s) AND "
                "(n.nspname = %(s)s OR (%(s)s::text IS NULL AND pg_table_is_visible(c.oid)))",
                {"t": self.table, "s": schema, "kinds": list(_RELKINDS)},
            )
            row = cur.fetchone()
            if row is None:
                raise self._missing_table(cur, schema)
            self.oid, self.schema, self.relkind = int(row[0]), str(row[1]), str(row[2])
            cur.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), b.typname, "
                "a.attnotnull, b.typcollation <> 0 "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype "
                "ELSE t.oid END "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (self.oid,),
            )
            self.columns = {r[0]: Column(r[0], r[1], r[2], r[3], r[4]) for r in cur.fetchall()}
            missing = [c for c in (self.key_column, self.value_column) if c not in self.columns]
            if missing:
                raise SourceError(
                    f"{self.where} has no column {' or '.join(map(repr, missing))}; its "
                    f"columns are: {self._column_list()}",
                    hint="set the key and value column names of the source in the mapping",
                )
            value = self.columns[self.value_column]
            if value.base_type in _JSON_TYPES:
                self.value_kind = "json"
            elif value.base_type in _TEXT_TYPES:
                self.value_kind = "text"
            else:
                raise SourceError(
                    f"{self.where}: value column {self.value_column!r} is {value.type}; "
                    "expected json, jsonb or text holding JSON",
                    hint=f"pick the JSON column among: {self._column_list()}",
                )
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "WHERE i.indrelid = %s AND i.indisunique AND i.indnkeyatts = 1 "
                "AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = %s)",
                (self.oid, self.key_column),
            )
            unique = cur.fetchone()
            self.key_is_unique = bool(unique and unique[0])
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_index i "
                "JOIN pg_class ic ON ic.oid = i.indexrelid "
                "JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree' "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                "LEFT JOIN pg_collation co ON co.oid = i.indcollation[0] "
                "WHERE i.indrelid = %s AND a.attname = %s AND i.indpred IS NULL "
                "AND i.indexprs IS NULL "
                "AND (i.indcollation[0] = 0 OR co.collname IN ('C', 'POSIX')))",
                (self.oid, self.key_column),
            )
            indexed = cur.fetchone()
            self.key_is_indexed = bool(indexed and indexed[0])
            """Whether a btree index gives the key order (byte order for text): reads then go
            by short keyset pages; otherwise by one sorted cursor in one transaction."""
        self._stream = KvStream(self)

    def _column_list(self) -> str:
        return ", ".join(f"{c.name} ({c.type})" for c in self.columns.values())

    def _missing_table(self, cur: psycopg.Cursor[Any], schema: str | None) -> SourceError:
        cur.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = ANY(%(kinds)s) AND n.nspname NOT IN "
            "('pg_catalog', 'information_schema', 'pg_toast') AND "
            "(n.nspname = %(s)s OR (%(s)s::text IS NULL AND pg_table_is_visible(c.oid))) "
            "ORDER BY 1 LIMIT 50",
            {"s": schema, "kinds": list(_RELKINDS)},
        )
        tables = [r[0] for r in cur.fetchall()]
        place = f"schema {schema!r}" if schema else "the search path"
        return SourceError(
            f"table {self.table!r} does not exist in {place}; tables there: "
            f"{', '.join(tables) or '(none)'}",
            hint="check the key-value table name (and schema) of the source",
        )

    def stream_names(self) -> list[str]:
        """The one stream: the table's name."""
        return [self.table]

    def stream(self, name: str) -> KvStream:
        """The table's stream (``name`` must be the table name)."""
        if name != self.table:
            raise SourceError(
                f"the key-value source has one stream, {self.table!r}; not {name!r}",
                hint="use the table name as the stream name in the mapping",
            )
        return self._stream

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> KvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
