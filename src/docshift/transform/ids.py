"""Deterministic ids: how any source id becomes the value of a PostgreSQL ``uuid`` column.

Every ``uuid`` column goes through :func:`to_uuid`, so a reference stored in one collection
(as an ObjectId, its hex string, a UUID or a plain key) always meets the record it points to.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from bson import Binary, ObjectId

from docshift.errors import ConversionError

NAMESPACE: uuid.UUID = uuid.uuid5(uuid.NAMESPACE_URL, "https://docshift.dev/ids")
"""UUIDv5 namespace for ids that are neither ObjectIds nor UUIDs.

Its value is ``774ebb41-0b03-548b-8471-944a712f7752``; it must never change, or re-running a
migration would give every such record a new id.
"""

_MASK12 = (1 << 12) - 1
_MASK26 = (1 << 26) - 1
_MASK36 = (1 << 36) - 1
_VERSION_BITS = 0x8 << 76
_VARIANT_BITS = 0b10 << 62

_NAMESPACE_BYTES = NAMESPACE.bytes
_V5_CLEAR = ~((0xF << 76) | (0b11 << 62))
_V5_SET = (0x5 << 76) | (0b10 << 62)
_SAFE_UNKNOWN = uuid.SafeUUID.unknown

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_HEX24 = re.compile(r"[0-9a-fA-F]{24}")


# uuid.UUID.__init__ checks its arguments in Python, which costs more than the whole id
# computation; the ints built here are valid 128-bit values, so the slots are set directly.
_new_object = object.__new__
_set_int = uuid.UUID.int.__set__
_set_is_safe = uuid.UUID.is_safe.__set__


def _uuid_from_int(n: int) -> uuid.UUID:
    u = _new_object(uuid.UUID)
    _set_int(u, n)
    _set_is_safe(u, _SAFE_UNKNOWN)
    return u


_UUID = uuid.UUID
_from_bytes = int.from_bytes
_FIXED_BITS = _VERSION_BITS | _VARIANT_BITS
# ObjectId keeps its 12 bytes in a slot; reading the slot directly saves the call of its
# ``binary`` property, a sixth of the conversion.
_oid_slot = getattr(ObjectId, "_ObjectId__id", None)
_oid_bytes = (_oid_slot.__get__ if type(_oid_slot).__name__ == "member_descriptor"
              else ObjectId.binary.fget)  # type: ignore[attr-defined]


def _uuid5(name: str) -> uuid.UUID:
    """``uuid.uuid5(NAMESPACE, name)``, faster; undecodable bytes hash as the original bytes."""
    try:
        data = name.encode("utf-8")
    except UnicodeEncodeError:
        try:
            data = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = name.encode("utf-8", "surrogatepass")
    n = int.from_bytes(hashlib.sha1(_NAMESPACE_BYTES + data).digest()[:16], "big")
    return _uuid_from_int((n & _V5_CLEAR) | _V5_SET)


def objectid_to_uuid(oid: ObjectId) -> uuid.UUID:
    """The UUID (RFC 9562 version 8) that carries the 96 bits of ``oid``.

    Bits are numbered from the most significant (bit 0) of the ObjectId and of the UUID::

        UUID bits   0-47   ObjectId bits 0-47    (timestamp and the start of the random part)
        UUID bits  48-51   0b1000                (version 8)
        UUID bits  52-63   ObjectId bits 48-59
        UUID bits  64-65   0b10                  (RFC 4122/9562 variant)
        UUID bits  66-101  ObjectId bits 60-95
        UUID bits 102-127  zero

    The ObjectId bits keep their order, so sorting the UUIDs (bytewise, as PostgreSQL does)
    sorts them like the ObjectIds; :func:`uuid_to_objectid` reverses the mapping.
    """
    o = _from_bytes(_oid_bytes(oid), "big")
    u = _new_object(_UUID)  # as _uuid_from_int, inlined: this runs for every id
    _set_int(u, ((o >> 48) << 80) | _FIXED_BITS | (((o >> 36) & _MASK12) << 64)
             | ((o & _MASK36) << 26))
    _set_is_safe(u, _SAFE_UNKNOWN)
    return u


def objectid_to_uuid_bytes(oid: ObjectId) -> bytes:
    """``objectid_to_uuid(oid).bytes``, without making the UUID object: what the loader
    copies (binary COPY of a ``uuid`` is its 16 bytes)."""
    o = _from_bytes(_oid_bytes(oid), "big")
    return (((o >> 48) << 80) | _FIXED_BITS | (((o >> 36) & _MASK12) << 64)
            | ((o & _MASK36) << 26)).to_bytes(16, "big")


def to_uuid_bytes(value: Any) -> bytes:
    """``to_uuid(value).bytes``: the 16 bytes binary COPY carries for a ``uuid`` column,
    straight from an ObjectId (the common id) without making the UUID object."""
    if type(value) is ObjectId:
        return objectid_to_uuid_bytes(value)
    return to_uuid(value).bytes


def uuid_to_objectid(u: uuid.UUID) -> ObjectId:
    """The ObjectId that :func:`objectid_to_uuid` turned into ``u``.

    Raises ``ValueError`` when ``u`` is not in that layout.
    """
    n = u.int
    if (n >> 76) & 0xF != 0x8 or (n >> 62) & 0b11 != 0b10 or n & _MASK26:
        raise ValueError(f"{u} is not an ObjectId carried in a version 8 UUID")
    o = ((n >> 80) << 48) | (((n >> 64) & _MASK12) << 36) | ((n >> 26) & _MASK36)
    return ObjectId(o.to_bytes(12, "big"))


def _bad_id(value: Any, reason: str) -> ConversionError:
    return ConversionError(reason, error_class="bad_id", value=value)


def to_uuid(value: Any) -> uuid.UUID:
    """The UUID for the source id ``value``: the one id rule of every ``uuid`` column.

    * ``ObjectId`` → :func:`objectid_to_uuid`
    * ``uuid.UUID`` → itself
    * ``bson.Binary`` of subtype 4 (or legacy 3, bytes taken in order) → that UUID
    * ``str`` in canonical UUID form (8-4-4-4-12 hex digits, any case) → that UUID
    * ``str`` of 24 hex digits → the ObjectId it spells, then as above
    * any other non-empty ``str`` → ``uuid5(NAMESPACE, value)``
    * ``int`` (not ``bool``) → the UUID of its decimal text, as above; that is
      ``uuid5(NAMESPACE, str(value))`` except for the 24-digit ones, which spell an ObjectId

    Anything else raises :class:`ConversionError` with ``error_class="bad_id"``.
    """
    t = type(value)
    if t is ObjectId:
        return objectid_to_uuid(value)
    if t is str:
        n = len(value)
        if n == 36 and _UUID_TEXT.fullmatch(value):
            return _uuid_from_int(int(value.replace("-", ""), 16))
        if n == 24 and _HEX24.fullmatch(value):
            return objectid_to_uuid(ObjectId(value))
        if n == 0:
            raise _bad_id(value, "an empty string is not an id")
        return _uuid5(value)
    if t is uuid.UUID:
        return value
    if t is Binary and len(value) == 16 and value.subtype in (3, 4):
        return _uuid_from_int(int.from_bytes(value, "big"))
    if isinstance(value, bool):
        raise _bad_id(value, "a boolean is not an id")
    if isinstance(value, int):
        # exactly the rule for its decimal text, so that 42 and "42" are the same id
        return to_uuid(int.__repr__(value))
    if isinstance(value, Binary):
        if value.subtype in (3, 4) and len(value) == 16:
            return _uuid_from_int(int.from_bytes(value, "big"))
        raise _bad_id(value, f"binary of subtype {value.subtype} and {len(value)} bytes "
                             "is not a UUID")
    if isinstance(value, ObjectId):
        return objectid_to_uuid(value)
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        return to_uuid(str(value))
    raise _bad_id(value, f"a value of type {type(value).__name__} is not an id")
