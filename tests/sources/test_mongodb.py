"""MongoSource against mongomock: _id-range paging, resume, mixed _id types, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import mongomock
import pytest
from bson import Int64, ObjectId, json_util

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument
from docshift.sources.mongodb import MongoSource, _client_options

UTC = dt.UTC


@pytest.fixture
def client() -> mongomock.MongoClient:
    c = mongomock.MongoClient()
    db = c["crm"]
    db["users"].insert_many(
        [{"_id": ObjectId(f"{i + 1:024x}"), "n": i, "at": dt.datetime(2024, 1, 1 + i)}
         for i in reversed(range(10))]
    )
    db.create_collection("empty")
    db["system.profile"].insert_one({"_id": 1})
    return c


def read(source: MongoSource, name: str, after: str | None = None) -> list[SourceDocument]:
    return list(source.stream(name).read(after=after))


def test_stream_names_skip_system_collections(client: mongomock.MongoClient) -> None:
    assert MongoSource(None, "crm", client=client).stream_names() == ["empty", "users"]


def test_pages_return_every_document_once_in_id_order(
    client: mongomock.MongoClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = MongoSource(None, "crm", client=client, page_size=3)
    stream = source.stream("users")
    filters: list[Any] = []
    find = stream._collection.find

    def spy(filter_: Any, *args: Any, **kwargs: Any) -> Any:
        filters.append(filter_)
        return find(filter_, *args, **kwargs)

    monkeypatch.setattr(stream._collection, "find", spy)
    docs = list(stream.read())
    assert [d.doc["n"] for d in docs] == list(range(10))
    assert [d.key for d in docs] == [f"{i + 1:024x}" for i in range(10)]
    # Pages are _id ranges, never offsets: each continues after the previous page's last _id.
    assert {"_id": {"$gt": ObjectId(f"{3:024x}")}} in filters
    assert {"_id": {"$gt": ObjectId(f"{9:024x}")}} in filters


def test_positions_are_canonical_extended_json(client: mongomock.MongoClient) -> None:
    docs = read(MongoSource(None, "crm", client=client), "users")
    assert docs[0].position == json_util.dumps(
        ObjectId(f"{1:024x}"), json_options=json_util.CANONICAL_JSON_OPTIONS
    )
    assert docs[0].doc["at"].tzinfo is not None


@pytest.mark.parametrize("page_size", [1, 3, 10, 1000])
def test_resume_at_every_cut_point(client: mongomock.MongoClient, page_size: int) -> None:
    docs = read(MongoSource(None, "crm", client=client, page_size=page_size), "users")
    for i, cut in enumerate(docs):
        # A new source object, as a new process would build.
        fresh = MongoSource(None, "crm", client=client, page_size=page_size)
        assert read(fresh, "users", after=cut.position) == docs[i + 1 :]


MIXED: list[Any] = [
    5, ObjectId("65f000000000000000000002"), "b", None, 1.5, Int64(2**40), "a",
    {"k": 1}, ObjectId("65f000000000000000000001"), True, dt.datetime(2020, 1, 1), -3, False,
]


@pytest.mark.parametrize("page_size", [1, 2, 100])
def test_mixed_id_types_are_read_by_type_bracket(page_size: int) -> None:
    client = mongomock.MongoClient()
    coll = client["crm"]["mixed"]
    coll.insert_many([{"_id": v, "v": i} for i, v in enumerate(MIXED)])
    # Range operators are type-bracketed (also in mongomock): {$gt: 5} never reaches
    # strings or ObjectIds, which is why the reader walks the brackets one by one.
    assert [d["_id"] for d in coll.find({"_id": {"$gt": 1.5}})] == [5, Int64(2**40)]
    source = MongoSource(None, "crm", client=client, page_size=page_size)
    docs = read(source, "mixed")
    ids = [d.doc["_id"] for d in docs]
    # MongoDB's BSON comparison order (what a live server uses, and mongomock mimics):
    # null < numbers < strings < objects < ObjectId < booleans < dates.
    assert ids == [
        None, -3, 1.5, 5, Int64(2**40), "a", "b", {"k": 1},
        ObjectId("65f000000000000000000001"), ObjectId("65f000000000000000000002"),
        False, True, dt.datetime(2020, 1, 1, tzinfo=UTC),
    ]
    assert [d.key for d in docs][:8] == ["null", "-3", "1.5", "5", "1099511627776", "a", "b",
                                          '{"k": 1}']
    for i, cut in enumerate(docs):
        assert read(source, "mixed", after=cut.position) == docs[i + 1 :]


def test_empty_collection(client: mongomock.MongoClient) -> None:
    stream = MongoSource(None, "crm", client=client).stream("empty")
    assert list(stream.read()) == []
    assert stream.estimate_count() == 0


def test_estimate_count(client: mongomock.MongoClient) -> None:
    assert MongoSource(None, "crm", client=client).stream("users").estimate_count() == 10


def test_unknown_collection_lists_the_existing_ones(client: mongomock.MongoClient) -> None:
    with pytest.raises(SourceError) as info:
        MongoSource(None, "crm", client=client).stream("customers")
    assert "'customers'" in str(info.value) and "empty, users" in str(info.value)
    with pytest.raises(SourceError, match="no collections"):
        MongoSource(None, "nothing_here", client=client).stream("users")


def test_bad_position(client: mongomock.MongoClient) -> None:
    with pytest.raises(SourceError, match="crm.users"):
        read(MongoSource(None, "crm", client=client), "users", after="12345x")


def test_nothing_is_written(client: mongomock.MongoClient) -> None:
    before = {n: list(client["crm"][n].find()) for n in client["crm"].list_collection_names()}
    source = MongoSource(None, "crm", client=client, page_size=4)
    for name in source.stream_names():
        read(source, name)
    after = {n: list(client["crm"][n].find()) for n in client["crm"].list_collection_names()}
    assert after == before


def test_close_only_closes_an_own_client(client: mongomock.MongoClient) -> None:
    MongoSource(None, "crm", client=client).close()
    assert read(MongoSource(None, "crm", client=client), "users")  # still usable
    own = MongoSource("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50", "crm")
    assert own.client.read_preference.mongos_mode == "secondaryPreferred"
    own.close()


def test_client_options_respect_the_uri() -> None:
    assert _client_options(None) == {"readPreference": "secondaryPreferred", "appname": "docshift"}
    assert _client_options("mongodb://h/db?readPreference=primary&appName=x") == {}


def test_unreachable_server_is_a_source_error() -> None:
    source = MongoSource("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50", "crm")
    with pytest.raises(SourceError, match="crm"):
        source.stream_names()
    source.close()
