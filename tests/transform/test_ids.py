import hashlib
import pickle
import random
import uuid

import pytest
from bson import Binary, Int64, ObjectId
from hypothesis import given
from hypothesis import strategies as st

from docshift.errors import ConversionError
from docshift.transform.ids import (
    NAMESPACE,
    objectid_to_uuid,
    objectid_to_uuid_bytes,
    to_uuid,
    uuid_to_objectid,
)

object_ids = st.binary(min_size=12, max_size=12).map(ObjectId)


def test_namespace_is_fixed():
    assert str(NAMESPACE) == "774ebb41-0b03-548b-8471-944a712f7752"


@given(object_ids)
def test_deterministic(oid):
    assert objectid_to_uuid(oid) == objectid_to_uuid(ObjectId(oid.binary))
    assert to_uuid(oid) == objectid_to_uuid(oid)


@given(object_ids)
def test_version_8_and_rfc_variant(oid):
    u = objectid_to_uuid(oid)
    assert u.version == 8
    assert u.variant == uuid.RFC_4122
    assert u.int & ((1 << 26) - 1) == 0


@given(object_ids)
def test_round_trip(oid):
    assert uuid_to_objectid(objectid_to_uuid(oid)) == oid


@given(object_ids, object_ids)
def test_order_preserving(a, b):
    ua, ub = objectid_to_uuid(a), objectid_to_uuid(b)
    assert (a < b) == (ua < ub)
    assert (a < b) == (ua.bytes < ub.bytes)
    assert (a == b) == (ua == ub)


def test_layout_of_known_values():
    assert objectid_to_uuid(ObjectId(b"\x00" * 12)) == uuid.UUID(
        "00000000-0000-8000-8000-000000000000")
    assert objectid_to_uuid(ObjectId(b"\xff" * 12)) == uuid.UUID(
        "ffffffff-ffff-8fff-bfff-fffffc000000")
    oid = ObjectId("65b9f1a2c3d4e5f601234567")
    assert str(objectid_to_uuid(oid)) == "65b9f1a2-c3d4-8e5f-9804-8d159c000000"


@pytest.mark.parametrize("text", [
    "00000000-0000-4000-8000-000000000000",  # version 4
    "00000000-0000-8000-c000-000000000000",  # wrong variant
    "00000000-0000-8000-8000-000000000001",  # non-zero tail
    str(uuid.uuid4()),
])
def test_uuid_to_objectid_rejects_other_layouts(text):
    with pytest.raises(ValueError, match="version 8"):
        uuid_to_objectid(uuid.UUID(text))


@given(st.uuids())
def test_uuids_are_kept(u):
    assert to_uuid(u) is u
    assert to_uuid(str(u)) == u
    assert to_uuid(str(u).upper()) == u


@given(object_ids)
def test_hex_string_meets_objectid(oid):
    assert to_uuid(str(oid)) == to_uuid(oid)
    assert to_uuid(str(oid).upper()) == to_uuid(oid)


def test_binary_uuid():
    u = uuid.uuid4()
    assert to_uuid(Binary(u.bytes, 4)) == u
    assert to_uuid(Binary(u.bytes, 3)) == u


not_special = st.text(min_size=1).filter(
    lambda s: not (len(s) == 24 and all(c in "0123456789abcdefABCDEF" for c in s))
    and not (len(s) == 36 and s.count("-") == 4)
)


@given(not_special)
def test_other_strings_use_uuid5(s):
    assert to_uuid(s) == uuid.uuid5(NAMESPACE, s)
    assert to_uuid(s) == to_uuid(s)


@given(st.integers())
def test_ints_are_ids_like_their_text(n):
    assert to_uuid(n) == to_uuid(str(n))
    if len(str(n)) != 24:
        assert to_uuid(n) == uuid.uuid5(NAMESPACE, str(n))


def test_24_digit_int_spells_an_objectid():
    n = 10**23
    assert to_uuid(n) == objectid_to_uuid(ObjectId(str(n)))


def test_int64_is_an_int():
    assert to_uuid(Int64(7)) == to_uuid(7)


@pytest.mark.parametrize("text", [
    "6b048267481aa72f40dbf24",  # 23 hex digits
    "{00000000-0000-4000-8000-000000000000}",
    "00000000000040008000000000000000",  # hyphen-less UUID
    "0000000-00000-4000-8000-000000000000",  # hyphens in the wrong places
])
def test_near_misses_are_plain_strings(text):
    assert to_uuid(text) == uuid.uuid5(NAMESPACE, text)


@pytest.mark.parametrize("value", [
    "", True, False, 1.0, 2.5, {}, {"$oid": "6b048267481aa72f40dbf24d"}, [], [1],
    None, b"0123456789abcdef", Binary(b"0123456789abcdef", 0), Binary(b"short", 4),
])
def test_bad_ids(value):
    with pytest.raises(ConversionError) as info:
        to_uuid(value)
    assert info.value.error_class == "bad_id"
    assert info.value.value is value
    assert info.value.field is None


def test_postgres_orders_like_objectids(conn):
    rng = random.Random(20240131)
    oids = [ObjectId(rng.randbytes(12)) for _ in range(500)]
    # ObjectIds that differ only in the low bits of each segment
    base = bytearray(rng.randbytes(12))
    for i in range(12):
        for bit in (0x01, 0x80):
            b = bytearray(base)
            b[i] ^= bit
            oids.append(ObjectId(bytes(b)))
    oids = sorted(set(oids))
    conn.execute("CREATE TABLE ids (n integer, id uuid)")
    with conn.cursor().copy("COPY ids (n, id) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["integer", "uuid"])
        shuffled = list(enumerate(oids))
        rng.shuffle(shuffled)
        for n, oid in shuffled:
            copy.write_row([n, to_uuid(oid)])
    rows = conn.execute("SELECT n, id FROM ids ORDER BY id").fetchall()
    assert [n for n, _ in rows] == list(range(len(oids)))
    assert [uuid_to_objectid(u) for _, u in rows] == oids


@given(object_ids)
def test_results_behave_like_ordinary_uuids(oid):
    u = to_uuid(oid)
    plain = uuid.UUID(str(u))
    assert u == plain and hash(u) == hash(plain)
    assert pickle.loads(pickle.dumps(u)) == plain
    assert u.bytes == plain.bytes and u.hex == plain.hex


def test_strings_with_undecodable_bytes_are_ids():
    raw = b"caf\xe9".decode("utf-8", "surrogateescape")
    digest = hashlib.sha1(NAMESPACE.bytes + b"caf\xe9").digest()
    assert to_uuid(raw) == uuid.UUID(bytes=digest[:16], version=5)
    assert to_uuid(raw) != to_uuid("café")
    assert to_uuid("\ud800").version == 5


@given(object_ids)
def test_the_loaders_bytes_are_the_uuids_bytes(oid: ObjectId) -> None:
    assert objectid_to_uuid_bytes(oid) == objectid_to_uuid(oid).bytes
