"""Where generated documents go: dump folders, export files, a live MongoDB, a KV table.

Every writer takes one document at a time and keeps nothing but a buffer, so memory stays
bounded whatever the scale. File writers are byte-deterministic: the same documents give the
same bytes (gzip headers carry no time stamp and no file name).
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import quote

import bson
import orjson
from bson import json_util
from bson.json_util import JSONMode, JSONOptions

from docshift.generate.manifest import int_hash

EXPORT_JSON_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED)
"""Extended JSON v2, relaxed: what ``mongoexport`` writes by default."""
_CANONICAL = JSONOptions(json_mode=JSONMode.CANONICAL)
_GZIP_LEVEL = 6
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


class _BsonFile:
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._encode = bson.encode

    def write(self, doc: dict[str, Any]) -> None:
        self._fh.write(self._encode(doc))


class MongodumpWriter:
    """``<out>/<database>/<collection>.bson`` (or ``.bson.gz``) plus ``.metadata.json``,
    the layout ``mongodump --out <out>`` (``--gzip``) produces."""

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
                                   compresslevel=_GZIP_LEVEL) as gz_fh:
                    buf = io.BufferedWriter(gz_fh, buffer_size=1 << 20)  # type: ignore[arg-type]
                    yield _BsonFile(buf)
                    buf.flush()
            else:
                yield _BsonFile(raw)
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
            data = gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
        (self.folder / metaname).write_bytes(data)

    def close(self) -> None:
        pass


class _JsonLinesFile:
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def write(self, doc: dict[str, Any]) -> None:
        text = json_util.dumps(doc, json_options=EXPORT_JSON_OPTIONS, ensure_ascii=False)
        self._fh.write(text.encode("utf-8"))
        self._fh.write(b"\n")


class MongoexportWriter:
    """``<out>/<collection>.json``: Extended JSON v2 (relaxed), one document per line, as
    ``mongoexport --collection <c> --out <c>.json`` writes it."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def collection(self, name: str,
                   indexes: list[dict[str, Any]]) -> Iterator[_JsonLinesFile]:
        with open(self.root / f"{name}.json", "wb", buffering=1 << 20) as fh:
            yield _JsonLinesFile(fh)

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

    def put(self, key: str, value: Any, created_at: datetime, updated_at: datetime) -> None:
        """Store one key."""
        ...

    def close(self) -> None:
        """Flush and release everything."""
        ...

    def abort(self) -> None:
        """Stop after a failure, keeping nothing that would look complete."""
        ...


class KvJsonlWriter:
    """A ``.jsonl`` file of ``{"key": …, "value": …}`` lines, in generation order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()

    def put(self, key: str, value: Any, created_at: datetime, updated_at: datetime) -> None:
        self._fh.write(orjson.dumps({"key": key, "value": value}))
        self._fh.write(b"\n")

    def close(self) -> None:
        self._fh.close()

    def abort(self) -> None:
        """Give up: close the (partial) file."""
        self._fh.close()


def _json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)


class KvPostgresWriter:
    """``kv_store_<hash>(key text primary key, value jsonb not null, created_at, updated_at)``
    in a PostgreSQL database, loaded with one binary COPY.

    The table must not exist yet (``replace=True`` drops it first), so that a generator
    never mixes its keys with someone else's.
    """

    def __init__(self, dsn: str, table: str = KV_TABLE_DEFAULT, *,
                 replace: bool = False) -> None:
        import psycopg
        from psycopg import sql
        from psycopg.types.json import set_json_dumps

        if not _KV_TABLE.match(table):
            raise ValueError(f"table name {table!r} is not a plain identifier")
        self.table = table
        self.conn = psycopg.connect(dsn)
        set_json_dumps(_json_bytes, context=self.conn)
        ident = sql.Identifier(table)
        if replace:
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                   (f'"{table}"',)).fetchone()
        if exists and exists[0]:
            self.conn.close()
            from docshift.errors import TargetError

            raise TargetError(f"table {table} already exists in the target database",
                              hint="give another table name, or drop it first")
        # the primary key is added after the data, as for any bulk load
        self.conn.execute(sql.SQL(
            "CREATE TABLE {} (key text NOT NULL, value jsonb NOT NULL, "
            "created_at timestamptz, updated_at timestamptz)").format(ident))
        self._ident = ident
        self._cur = self.conn.cursor()
        self._copy_cm = self._cur.copy(sql.SQL(
            "COPY {} (key, value, created_at, updated_at) FROM STDIN (FORMAT BINARY)"
        ).format(ident))
        self._copy = self._copy_cm.__enter__()
        self._copy.set_types(["text", "jsonb", "timestamptz", "timestamptz"])

    def put(self, key: str, value: Any, created_at: datetime, updated_at: datetime) -> None:
        if value is None:
            # a JSON null, not an SQL NULL
            from psycopg.types.json import Jsonb

            value = Jsonb(None)
        self._copy.write_row((key, value, created_at, updated_at))

    def close(self) -> None:
        from psycopg import sql

        self._copy_cm.__exit__(None, None, None)
        self.conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (key)").format(self._ident))
        self.conn.execute(sql.SQL("ANALYZE {}").format(self._ident))
        self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        """Give up: nothing is committed."""
        with suppress(Exception):
            self._copy_cm.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self.conn.rollback()
        self.conn.close()


def kv_sink(out: str, table: str | None, *, replace: bool = False) -> KvSink:
    """The writer for ``out``: a ``.jsonl`` path, else a PostgreSQL DSN."""
    if out.endswith(".jsonl"):
        return KvJsonlWriter(out)
    return KvPostgresWriter(out, table or KV_TABLE_DEFAULT, replace=replace)
