"""Where generated documents go: dump folders, export files, a live MongoDB, a KV table.

Every writer takes one document at a time and keeps nothing but a buffer, so memory stays
bounded whatever the scale. File writers are byte-deterministic: the same documents give the
same bytes (gzip headers carry no time stamp and no file name).
"""

from __future__ import annotations

import gzip
import queue
import re
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

import bson
import orjson
from bson import ObjectId, json_util
from bson.datetime_ms import DatetimeMS
from bson.json_util import JSONMode, JSONOptions

from docshift.generate.draw import epoch_ms, iso_ms
from docshift.generate.manifest import int_hash

EXPORT_JSON_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED)
"""Extended JSON v2, relaxed: what ``mongoexport`` writes by default."""
_CANONICAL = JSONOptions(json_mode=JSONMode.CANONICAL)
GZIP_LEVEL = 1
"""zlib level of ``mongodump-gz``: level 1 compresses ~3x faster than mongodump's 6, for files
~20% larger (see docs/datasets.md)."""
_CHUNK = 1 << 20
"""Bytes gathered before one write (or one compression) call."""
MONGO_BATCH = 1000
"""Documents per ``insert_many`` for a live MongoDB."""
KV_TABLE_DEFAULT = "kv_store_demo"
"""The key-value table's name when none is given (what ``examples/kv`` reads by default)."""
_KV_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class CollectionSink(Protocol):
    """One collection being written."""

    def write(self, doc: dict[str, Any]) -> None:
        """Append one document."""
        ...


class DatasetSink(Protocol):
    """A MongoDB-shaped destination: one collection after the other."""

    parallel: bool
    """Whether forked processes may write different collections at the same time."""

    def collection(self, name: str,
                   indexes: list[dict[str, Any]]) -> Any:  # context manager of CollectionSink
        """Open collection ``name`` (with secondary ``indexes``) for writing."""
        ...

    def close(self) -> None:
        """Flush and release everything."""
        ...


def _index_specs(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``_id`` index plus secondary indexes, as mongodump metadata lists them."""
    specs: list[dict[str, Any]] = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    for ix in indexes:
        keys = ix["key"]
        name = "_".join(f"{k}_{v}" for k, v in keys.items())
        spec: dict[str, Any] = {"v": 2, "key": dict(keys), "name": name}
        if ix.get("unique"):
            spec["unique"] = True
        specs.append(spec)
    return specs


class _ChunkedFile:
    """Encodes documents and writes them in chunks of about :data:`_CHUNK` bytes."""

    def __init__(self, out: IO[bytes] | _Background) -> None:
        self._out = out
        self._parts: list[bytes] = []
        self._size = 0

    def encode(self, doc: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def write(self, doc: dict[str, Any]) -> None:
        data = self.encode(doc)
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._out.write(b"".join(self._parts))
            self._parts.clear()
            self._size = 0


class _BsonFile(_ChunkedFile):
    """Documents as BSON, one after the other (the ``.bson`` layout)."""

    def encode(self, doc: dict[str, Any]) -> bytes:
        return bson.encode(doc)


class _Background:
    """Hands chunks of bytes to ``write`` on a helper thread.

    zlib and libpq let go of the GIL while they compress or send, so that work overlaps the
    generation of the next chunk; at most ``depth`` chunks wait, so memory stays bounded.
    """

    def __init__(self, write: Callable[[bytes], object], name: str, depth: int = 4) -> None:
        self._write = write
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(chunk)
                except BaseException as exc:  # re-raised in the writing thread
                    self._error = exc

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        """Wait until every chunk is written (raises the helper's error, if any)."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class MongodumpWriter:
    """``<out>/<database>/<collection>.bson`` (or ``.bson.gz``) plus ``.metadata.json``,
    the layout ``mongodump --out <out>`` (``--gzip``) produces."""

    parallel = True
    """Collections are separate files: forked processes may write different ones at once."""

    def __init__(self, out: str | Path, database: str, *, gz: bool = False) -> None:
        self.root = Path(out)
        self.folder = self.root / database
        self.folder.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.gz = gz

    @contextmanager
    def collection(self, name: str, indexes: list[dict[str, Any]]) -> Iterator[_BsonFile]:
        stem = quote(name, safe="")
        suffix = ".bson.gz" if self.gz else ".bson"
        with open(self.folder / f"{stem}{suffix}", "wb") as raw:
            if self.gz:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=GZIP_LEVEL) as gz:
                    background = _Background(gz.write, "docshift-gzip")
                    try:
                        out = _BsonFile(background)
                        yield out
                        out.flush()
                    finally:
                        background.close()
            else:
                out = _BsonFile(raw)
                yield out
                out.flush()
        meta = {
            "indexes": _index_specs(indexes),
            # a collection UUID like mongodump's, derived from the names: deterministic
            "uuid": f"{int_hash(self.database, name, bits=128):032x}",
            "collectionName": name,
            "type": "collection",
        }
        text = json_util.dumps(meta, json_options=_CANONICAL)
        metaname = f"{stem}.metadata.json" + (".gz" if self.gz else "")
        data = text.encode()
        if self.gz:
            data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        (self.folder / metaname).write_bytes(data)

    def close(self) -> None:
        pass


def _relaxed(value: Any) -> Any:
    """orjson's fallback for the BSON types of generated documents: the relaxed Extended
    JSON v2 that ``json_util.dumps`` writes for them (dates from 1970 on as ISO-8601
    strings, earlier ones as ``$numberLong`` milliseconds)."""
    t = type(value)
    if t is ObjectId:
        return {"$oid": value.binary.hex()}
    if t is DatetimeMS:
        ms = int(value)
    elif isinstance(value, datetime):
        ms = epoch_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    else:
        return json_util.default(value, json_options=EXPORT_JSON_OPTIONS)
    if ms >= 0:
        return {"$date": iso_ms(ms)}
    return {"$date": {"$numberLong": str(ms)}}


_EXPORT_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE


class _JsonLinesFile(_ChunkedFile):
    """One relaxed Extended JSON document per line."""

    def encode(self, doc: dict[str, Any]) -> bytes:
        return orjson.dumps(doc, default=_relaxed, option=_EXPORT_OPTIONS)


class MongoexportWriter:
    """``<out>/<collection>.json``: Extended JSON v2 (relaxed), one document per line, as
    ``mongoexport --collection <c> --out <c>.json`` writes it."""

    parallel = True
    """Collections are separate files: forked processes may write different ones at once."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def collection(self, name: str,
                   indexes: list[dict[str, Any]]) -> Iterator[_JsonLinesFile]:
        with open(self.root / f"{name}.json", "wb") as fh:
            out = _JsonLinesFile(fh)
            yield out
            out.flush()

    def close(self) -> None:
        pass


class _MongoBatch:
    def __init__(self, coll: Any) -> None:
        self._coll = coll
        self._docs: list[dict[str, Any]] = []

    def write(self, doc: dict[str, Any]) -> None:
        self._docs.append(doc)
        if len(self._docs) >= MONGO_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._docs:
            self._coll.insert_many(self._docs, ordered=True)
            self._docs = []


class MongoWriter:
    """A live MongoDB (``mongodb://…/<database>``; the database defaults to ``database``).

    Each collection is dropped and re-created, so writing twice gives the same data.
    """

    parallel = False

    def __init__(self, uri: str, database: str, client: Any = None) -> None:
        import pymongo
        from pymongo.uri_parser import parse_uri

        if client is None:
            client = pymongo.MongoClient(uri, tz_aware=True)
        self.client = client
        self.db = client[parse_uri(uri).get("database") or database]

    @contextmanager
    def collection(self, name: str, indexes: list[dict[str, Any]]) -> Iterator[_MongoBatch]:
        self.db.drop_collection(name)
        coll = self.db[name]
        batch = _MongoBatch(coll)
        yield batch
        batch.flush()
        for ix in indexes:
            coll.create_index(list(ix["key"].items()), unique=bool(ix.get("unique")))

    def close(self) -> None:
        self.client.close()


def dataset_sink(out: str, fmt: str, database: str) -> DatasetSink:
    """The writer for ``out``: a ``mongodb://`` URI, else a folder in format ``fmt``."""
    if out.startswith(("mongodb://", "mongodb+srv://")):
        return MongoWriter(out, database)
    if fmt == "mongodump":
        return MongodumpWriter(out, database)
    if fmt == "mongodump-gz":
        return MongodumpWriter(out, database, gz=True)
    if fmt == "mongoexport":
        return MongoexportWriter(out)
    raise ValueError(f"unknown format {fmt!r}; choose mongodump, mongodump-gz or mongoexport")


# --------------------------------------------------------------------------- key-value


class KvSink(Protocol):
    """A key-value destination."""

    scratch: Path | None
    """Where part files are best kept (beside the output), or None for the temp folder."""

    def put(self, key: str, value: Any, created_at: int, updated_at: int) -> None:
        """Store one key; the times are microseconds since 1970-01-01 UTC."""
        ...

    def part(self, path: Path) -> KvPart:
        """A file that encodes keys as this sink does, for :meth:`append` to add later."""
        ...

    def append(self, path: Path) -> None:
        """Add every key of the finished part file ``path`` (and delete it)."""
        ...

    def close(self) -> None:
        """Flush and release everything."""
        ...

    def abort(self) -> None:
        """Stop after a failure, keeping nothing that would look complete."""
        ...


def jsonl_row(key: str, value: Any, created_at: int, updated_at: int) -> bytes:
    """One ``{"key": …, "value": …}`` line."""
    return orjson.dumps({"key": key, "value": value}, option=orjson.OPT_APPEND_NEWLINE)


_PG_EPOCH_US = 946_684_800_000_000
"""2000-01-01 UTC in microseconds since 1970: where PostgreSQL's binary timestamps start."""
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_ROW_HEAD = struct.Struct("!hi")  # 4 fields; the key's length
_JSONB_HEAD = struct.Struct("!ib")  # the value's length; jsonb format version 1
_ROW_TAIL = struct.Struct("!iqiq")  # two timestamptz: 8 bytes each


def copy_row(key: str, value: Any, created_at: int, updated_at: int) -> bytes:
    """One row of ``COPY … (FORMAT BINARY)`` into (key text, value jsonb, created_at
    timestamptz, updated_at timestamptz); a None value is a JSON null, not an SQL NULL."""
    k = key.encode()
    v = orjson.dumps(value)
    return b"".join((_ROW_HEAD.pack(4, len(k)), k, _JSONB_HEAD.pack(len(v) + 1, 1), v,
                     _ROW_TAIL.pack(8, created_at - _PG_EPOCH_US, 8,
                                    updated_at - _PG_EPOCH_US)))


RowEncoder = Callable[[str, Any, int, int], bytes]


class _KvStream:
    """Encodes keys with ``encode_row`` and sends them on in chunks of about 1 MiB."""

    scratch: Path | None = None

    def __init__(self, encode_row: RowEncoder) -> None:
        self.encode_row = encode_row
        self._parts: list[bytes] = []
        self._size = 0

    def put(self, key: str, value: Any, created_at: int, updated_at: int) -> None:
        data = self.encode_row(key, value, created_at, updated_at)
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._parts:
            self._send(b"".join(self._parts))
            self._parts.clear()
            self._size = 0

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def part(self, path: Path) -> KvPart:
        return KvPart(path, self.encode_row)

    def append(self, path: Path) -> None:
        self._flush()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                self._send(chunk)
        path.unlink()


class KvPart(_KvStream):
    """Encoded keys in a file, for a sink to :meth:`~KvSink.append` in their turn."""

    def __init__(self, path: Path, encode_row: RowEncoder) -> None:
        super().__init__(encode_row)
        self.path = path
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()

    def _send(self, data: bytes) -> None:
        self._fh.write(data)

    def close(self) -> None:
        self._flush()
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)


class KvJsonlWriter(_KvStream):
    """A ``.jsonl`` file of ``{"key": …, "value": …}`` lines, in generation order."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(jsonl_row)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.scratch = self.path.parent
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def _send(self, data: bytes) -> None:
        self._fh.write(data)

    def close(self) -> None:
        self._flush()
        self._fh.close()

    def abort(self) -> None:
        """Give up: close the (partial) file."""
        self._fh.close()


class KvPostgresWriter(_KvStream):
    """``kv_store_<hash>(key text primary key, value jsonb not null, created_at, updated_at)``
    in a PostgreSQL database, loaded with one binary COPY.

    Rows are encoded here, straight into COPY's binary format (orjson for the values), and
    sent in 1 MiB blocks by a helper thread while the next rows are generated. The table
    must not exist yet (``replace=True`` drops it first), so that a generator never mixes
    its keys with someone else's.
    """

    def __init__(self, dsn: str, table: str = KV_TABLE_DEFAULT, *,
                 replace: bool = False) -> None:
        from psycopg import sql

        from docshift.dsn import parse_dsn

        super().__init__(copy_row)
        if not _KV_TABLE.match(table):
            raise ValueError(f"table name {table!r} is not a plain identifier")
        self.table = table
        from docshift.target.connect import connect

        parse_dsn(dsn, what="the --out DSN")
        self.conn = connect(dsn)
        self.conn.autocommit = False
        ident = sql.Identifier(table)
        if replace:
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                   (f'"{table}"',)).fetchone()
        if exists and exists[0]:
            self.conn.close()
            from docshift.errors import TargetError

            raise TargetError(f"table {table} already exists in the target database",
                              hint="give another table name (--table), or replace it (--replace)")
        # the primary key is added after the data, as for any bulk load
        self.conn.execute(sql.SQL(
            "CREATE TABLE {} (key text NOT NULL, value jsonb NOT NULL, "
            "created_at timestamptz, updated_at timestamptz)").format(ident))
        self._ident = ident
        self._cur = self.conn.cursor()
        # FREEZE: the table is new in this transaction, so its rows can be written frozen
        self._copy_cm = self._cur.copy(sql.SQL(
            "COPY {} (key, value, created_at, updated_at) FROM STDIN (FORMAT BINARY, FREEZE)"
        ).format(ident))
        self._copy = self._copy_cm.__enter__()
        # started with the first block, so that no thread runs yet when workers are forked
        self._sender: _Background | None = None
        self._parts.append(_COPY_SIGNATURE)

    def _send(self, data: bytes) -> None:
        if self._sender is None:
            self._sender = _Background(self._copy.write, "docshift-copy")
        self._sender.write(data)

    def close(self) -> None:
        from psycopg import sql

        self._parts.append(_COPY_TRAILER)
        self._flush()
        assert self._sender is not None
        self._sender.close()
        self._copy_cm.__exit__(None, None, None)
        self.conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (key)").format(self._ident))
        # statistics of the key column (what reads filter on) and the row count; those of the
        # jsonb values would double the time and serve no query
        self.conn.execute(sql.SQL("ANALYZE {} (key)").format(self._ident))
        self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        """Give up: nothing is committed."""
        if self._sender is not None:
            with suppress(Exception):
                self._sender.close()
        with suppress(Exception):
            self._copy_cm.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self.conn.rollback()
        self.conn.close()


def kv_sink(out: str, table: str | None, *, replace: bool = False) -> KvSink:
    """The writer for ``out``: a ``.jsonl`` path, else a PostgreSQL DSN."""
    if out.endswith(".jsonl"):
        return KvJsonlWriter(out)
    return KvPostgresWriter(out, table or KV_TABLE_DEFAULT, replace=replace)
