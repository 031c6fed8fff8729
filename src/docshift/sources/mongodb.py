"""Read collections from a live MongoDB server, page by page in ``_id`` order.

Pages are ``_id`` ranges (``{"_id": {"$gt": last}}`` sorted by ``_id``, limited), never
skip/limit offsets, so every page is an index seek however deep into the collection it is,
and a resume position is simply the last ``_id`` (as canonical Extended JSON).

MongoDB's range operators only match values of the same *type bracket* as the bound
(``{"$gt": 5}`` never matches a string), while sorting orders all brackets by BSON type
order. A collection whose ``_id`` values mix types (ints and ObjectIds, say) is therefore
read one bracket after the other, in BSON sort order: MinKey, null, numbers, strings,
objects, binary, ObjectId, booleans, dates, timestamps, MaxKey, …
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pymongo
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Timestamp
from bson.codec_options import CodecOptions
from bson.datetime_ms import DatetimeMS
from bson.errors import BSONError
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from docshift.dsn import mask, scrub
from docshift.errors import SourceError
from docshift.sources.base import SourceDocument
from docshift.sources.bsonvalues import (
    CODEC_OPTIONS,
    canonical_ejson,
    id_to_key,
    parse_canonical_ejson,
)


@dataclass(frozen=True, slots=True)
class _Bracket:
    """One BSON type bracket: how to select all of its ``_id`` values."""

    name: str
    enter: dict[str, Any]
    """Filter on ``_id`` matching every value of the bracket (and nothing else)."""
    single: bool = False
    """The bracket holds one value only (null, MinKey, MaxKey): no paging inside it."""


# In MongoDB's BSON sort order. Range bounds and $type predicates both use the _id index.
_BRACKETS: tuple[_Bracket, ...] = (
    _Bracket("minKey", {"$eq": MinKey()}, single=True),
    _Bracket("null", {"$eq": None}, single=True),
    _Bracket("number", {"$type": "number"}),
    _Bracket("string", {"$gte": ""}),  # also matches symbols, which sort with strings
    _Bracket("object", {"$type": "object"}),
    _Bracket("binData", {"$type": "binData"}),
    _Bracket("objectId", {"$type": "objectId"}),
    _Bracket("bool", {"$type": "bool"}),
    _Bracket("date", {"$type": "date"}),
    _Bracket("timestamp", {"$type": "timestamp"}),
    _Bracket("dbPointer", {"$type": "dbPointer"}),
    _Bracket("javascript", {"$type": "javascript"}),
    _Bracket("javascriptWithScope", {"$type": "javascriptWithScope"}),
    _Bracket("maxKey", {"$eq": MaxKey()}, single=True),
)
_BRACKET_INDEX = {b.name: i for i, b in enumerate(_BRACKETS)}


def _bracket_of(value: Any) -> int:
    """Index in :data:`_BRACKETS` of the bracket ``value`` belongs to."""
    if isinstance(value, MinKey):
        name = "minKey"
    elif value is None:
        name = "null"
    elif isinstance(value, bool):
        name = "bool"
    elif isinstance(value, int | float | Int64 | Decimal128):
        name = "number"
    elif isinstance(value, str):
        name = "string"
    elif isinstance(value, dict | DBRef):
        name = "object"
    elif isinstance(value, bytes | Binary):
        name = "binData"
    elif isinstance(value, ObjectId):
        name = "objectId"
    elif isinstance(value, datetime | DatetimeMS):
        name = "date"
    elif isinstance(value, Timestamp):
        name = "timestamp"
    elif isinstance(value, Code):
        name = "javascriptWithScope" if value.scope is not None else "javascript"
    elif isinstance(value, MaxKey):
        name = "maxKey"
    else:
        raise TypeError(f"unsupported _id type {type(value).__name__}")
    return _BRACKET_INDEX[name]


def _sort_key(value: Any) -> tuple[Any, ...] | None:
    """A key that orders ``_id`` values as MongoDB sorts them; None for the types whose
    order is not reproduced here (objects, binary, code, …)."""
    b = _bracket_of(value)
    name = _BRACKETS[b].name
    if name == "number":
        number = value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)
        # NaN sorts first among numbers
        return (b, 0, 0) if number.is_nan() else (b, 1, number)
    if name == "string":
        return (b, value.encode("utf-8", "surrogatepass"))
    if name == "objectId":
        return (b, value.binary)
    if name == "bool":
        return (b, bool(value))
    if name == "date":
        if isinstance(value, DatetimeMS):
            return (b, int(value))
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (b, round(aware.timestamp() * 1000))
    if name == "timestamp":
        return (b, value.time, value.inc)
    if _BRACKETS[b].single:
        return (b,)
    return None


def _after_filter(last: Any) -> dict[str, Any]:
    """``_id`` filter for the values after ``last`` within its bracket."""
    if (isinstance(last, float) and math.isnan(last)) or (
        isinstance(last, Decimal128) and last.to_decimal().is_nan()
    ):
        # NaN sorts first among numbers but no range operator matches after it.
        return {"$gte": float("-inf")}
    return {"$gt": last}


def _with_codec(collection: Collection[Any]) -> Collection[Any]:
    try:
        return collection.with_options(codec_options=CODEC_OPTIONS)
    except NotImplementedError:
        # mongomock (used in tests) only implements tz_aware among the codec options.
        return collection.with_options(codec_options=CodecOptions(tz_aware=True))


class MongoStream:
    """One collection, read in ``_id`` order."""

    def __init__(self, source: MongoSource, name: str) -> None:
        self.name = name
        self._source = source
        self._collection = _with_codec(source.database[name])
        self._bounds: dict[str, tuple[int, tuple[Any, ...] | None]] = {}

    def _where(self) -> str:
        return f"collection {self._source.database.name}.{self.name}"

    def estimate_count(self) -> int | None:
        """The server's metadata count (``estimatedDocumentCount``)."""
        try:
            return int(self._collection.estimated_document_count())
        except PyMongoError as exc:
            raise self._source.error(f"cannot count {self._where()}", exc) from exc

    def _parse_position(self, after: str) -> Any:
        try:
            last = parse_canonical_ejson(after)
            _bracket_of(last)
        except (ValueError, TypeError, BSONError) as exc:
            raise SourceError(
                f"{self._where()}: resume position {after!r} is not an _id in canonical "
                f"Extended JSON ({exc})",
                hint="the checkpoint belongs to another source kind; reset the checkpoint",
            ) from exc
        return last

    def fingerprint(self, start: str | None, end: str | None) -> dict[str, Any]:
        """Whether the unit's boundary ``_id``s still exist and which ``_id`` comes first after
        ``start``. Inserts elsewhere (and the estimated count) play no part."""
        facts: dict[str, Any] = {"source": self._where(), "start": start, "end": end}
        for name, bound in (("start_exists", start), ("end_exists", end)):
            if bound is not None:
                _id = self._parse_position(bound)
                try:
                    found = self._collection.find_one({"_id": _id}, {"_id": 1})
                except PyMongoError as exc:
                    raise self._source.error(f"cannot read {self._where()}", exc) from exc
                facts[name] = found is not None
        first = next(self._read(start, 1), None)
        facts["first_after_start"] = None if first is None else first.position
        return facts

    def split(self, parts: int) -> list[str]:
        """``_id``s cutting the collection into ``parts`` ranges of about equal counts.

        Each boundary is an existing ``_id`` (as a position) of a type :meth:`past` can
        order without the server: numbers, strings, ObjectIds, booleans, dates, timestamps.
        """
        if parts < 2:
            return []
        n = self.estimate_count() or 0
        bounds: list[str] = []
        last: tuple[Any, ...] | None = None
        for k in range(1, parts):
            # skip walks the _id index once per boundary: a planning cost, paid once per run
            try:
                found = list(self._collection.find({}, {"_id": 1}).sort("_id", pymongo.ASCENDING)
                             .skip(n * k // parts).limit(1))
            except PyMongoError as exc:
                raise self._source.error(f"cannot read {self._where()}", exc) from exc
            if not found:
                break
            order = _sort_key(found[0]["_id"])
            if order is None or (last is not None and order <= last):
                continue
            bounds.append(canonical_ejson(found[0]["_id"]))
            last = order
        return bounds

    def past(self, position: str, end: str) -> bool:
        """Whether ``_id`` ``position`` sorts after ``_id`` ``end`` (``end`` from :meth:`split`)."""
        value = self._parse_position(position)
        mine = _sort_key(value)
        if end not in self._bounds:
            bound_value = self._parse_position(end)
            self._bounds[end] = (_bracket_of(bound_value), _sort_key(bound_value))
        end_bracket, bound = self._bounds[end]
        if mine is None or bound is None:
            # an _id whose order inside its bracket is not known here: brackets decide
            return _bracket_of(value) > end_bracket
        return mine > bound

    def count_between(self, start: str | None, end: str | None) -> int:
        """Documents with ``start < _id <= end`` (None: open end), bracket by bracket."""
        first = 0 if start is None else _bracket_of(self._parse_position(start))
        final = len(_BRACKETS) - 1 if end is None else _bracket_of(self._parse_position(end))
        total = 0
        for b in range(first, final + 1):
            spec = _BRACKETS[b]
            cond: dict[str, Any] = dict(spec.enter)
            if start is not None and b == first:
                if spec.single:
                    continue
                cond = _after_filter(self._parse_position(start))
            if end is not None and b == final and not spec.single:
                cond = {**cond, "$lte": self._parse_position(end)}
            try:
                total += int(self._collection.count_documents({"_id": cond}))
            except NotImplementedError:
                # mongomock cannot evaluate $type for some rare types; the reader reads
                # nothing of them either. A server always can.
                continue
            except PyMongoError as exc:
                raise self._source.error(f"cannot count {self._where()}", exc) from exc
        return total

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield the collection's documents in ``_id`` order, after the ``_id`` ``after``."""
        return self._read(after, self._source.page_size)

    def _read(self, after: str | None, page_size: int) -> Iterator[SourceDocument]:
        if after is None:
            bracket = 0
            last: Any = None
            inside = False
        else:
            last = self._parse_position(after)
            bracket = _bracket_of(last)
            inside = True
        while bracket < len(_BRACKETS):
            spec = _BRACKETS[bracket]
            if inside and spec.single:
                bracket, inside = bracket + 1, False
                continue
            filter_ = {"_id": _after_filter(last) if inside else spec.enter}
            page = self._page(filter_, page_size)
            for doc in page:
                _id = doc["_id"]
                yield SourceDocument(id_to_key(_id), doc, canonical_ejson(_id))
            if len(page) < page_size or spec.single:
                bracket, inside = bracket + 1, False
            else:
                last, inside = page[-1]["_id"], True

    def _page(self, filter_: dict[str, Any], page_size: int) -> list[dict[str, Any]]:
        # The whole page comes in one batch, so no server cursor stays open (and can time out)
        # while the caller processes it.
        cursor = (
            self._collection.find(filter_)
            .sort("_id", pymongo.ASCENDING)
            .limit(page_size)
            .batch_size(page_size)
        )
        try:
            return list(cursor)
        except NotImplementedError:
            # mongomock cannot evaluate $type for some rare types; a server always can.
            return []
        except BSONError as exc:
            raise SourceError(
                f"{self._where()}: a document in the page {filter_!r} cannot be decoded: {exc}",
                hint="inspect the documents of that _id range with mongosh",
            ) from exc
        except PyMongoError as exc:
            raise self._source.error(f"cannot read {self._where()}", exc) from exc


class MongoSource:
    """A database on a live MongoDB server. Only reads; never writes anything."""

    def __init__(
        self,
        uri: str | None,
        database: str,
        *,
        client: pymongo.MongoClient[Any] | None = None,
        page_size: int = 1000,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self._owns_client = client is None
        self._uri = uri
        if client is None:
            try:
                client = pymongo.MongoClient(uri, **_client_options(uri))
            except (PyMongoError, ValueError, TypeError) as exc:
                raise SourceError(
                    f"cannot use the MongoDB URI {mask(uri)} for database {database!r}: "
                    f"{scrub(str(exc), uri)}",
                    hint="check the source's uri in the mapping (mongodb://user:password@host/…,"
                    " with @ : / % in the user name or password percent-encoded)",
                ) from None
        self.client = client
        self.database = client[database]
        self.warnings: list[str] = []
        """Problems worked around while reading; none arise for a live server today."""
        self._names: list[str] | None = None

    def error(self, what: str, exc: Exception) -> SourceError:
        """A SourceError for a failed server call."""
        return SourceError(
            f"{what}: {scrub(str(exc), self._uri)}",
            hint="check that the server is reachable and that the user may read the database "
            f"{self.database.name!r}",
        )

    def stream_names(self) -> list[str]:
        """Collection names of the database (no ``system.*``, no views), sorted."""
        if self._names is None:
            try:
                try:
                    names = self.database.list_collection_names(filter={"type": "collection"})
                except NotImplementedError:
                    names = self.database.list_collection_names()  # mongomock: no filters
            except PyMongoError as exc:
                raise self.error(f"cannot list collections of {self.database.name!r}", exc) from exc
            self._names = sorted(n for n in names if not n.startswith("system."))
        return list(self._names)

    def stream(self, name: str) -> MongoStream:
        """The collection called ``name``."""
        names = self.stream_names()
        if name not in names:
            found = ", ".join(names) if names else "no collections (check the database name)"
            raise SourceError(
                f"collection {name!r} does not exist in database {self.database.name!r}; "
                f"it has: {found}",
                hint="check the collection name in the mapping",
            )
        return MongoStream(self, name)

    def close(self) -> None:
        """Close the client if this source created it."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> MongoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _client_options(uri: str | None) -> dict[str, Any]:
    """Client keyword options: read from secondaries when possible, unless the URI says
    otherwise, and identify docshift in the server logs."""
    # Parsed by hand: pymongo's parser resolves mongodb+srv:// names over DNS.
    query = uri.split("?", 1)[1] if uri and "?" in uri else ""
    given = {key.lower() for key, _ in parse_qsl(query)}
    options: dict[str, Any] = {}
    if "readpreference" not in given:
        options["readPreference"] = "secondaryPreferred"
    if "appname" not in given:
        options["appname"] = "docshift"
    return options
