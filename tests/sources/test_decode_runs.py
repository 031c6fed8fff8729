"""A dump is decoded a run of documents at a time; what it yields is exactly what decoding
each document on its own yields, invalid documents inside a run included."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import bson
import pytest

from docshift.sources import mongodump
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.bsonvalues import CODEC_OPTIONS, id_to_key
from docshift.sources.mongodump import MongodumpSource


def one_by_one(data: bytes, name: str, ids: list[Any]) -> list[tuple[str, Any, str]]:
    """(key, document or None when invalid, position) of a soundly framed file, each document
    decoded alone: the independent reading the reader must agree with. ``ids`` are the
    documents' ``_id`` values as written (None: no ``_id``); an invalid document's key is
    still its ``_id``, read from its first element."""
    out: list[tuple[str, Any, str]] = []
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        try:
            doc = bson.decode(data[pos:pos + n], CODEC_OPTIONS)
        except Exception:  # noqa: BLE001 - any failure makes the document invalid
            doc = None
        ordinal = len(out) + 1
        given = ids[ordinal - 1]
        key = f"{name}#{ordinal}" if given is None else id_to_key(given)
        out.append((key, doc, str(pos + n)))
        pos += n
    return out


def seen(docs: list[SourceDocument]) -> list[tuple[str, Any, str]]:
    return [(d.key, None if type(d.doc) is UnreadableDocument else d.doc, d.position)
            for d in docs]


def invalid(doc: dict[str, Any]) -> bytes:
    """``doc`` encoded with its last element's type byte made unknown (framing intact)."""
    data = bytearray(bson.encode(doc))
    last = data.rindex(b"z\x00") - 1  # the type byte before the field name "z"
    data[last] = 0x42
    return bytes(data)


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 20])
def test_runs_with_invalid_documents_read_as_one_by_one(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        chunk: int) -> None:
    monkeypatch.setattr(mongodump, "CHUNK_BYTES", chunk)
    parts, ids = [], []
    for i in range(300):
        doc: dict[str, Any] = {"_id": i, "s": "x" * (i % 17), "z": i}
        if i % 41 == 5:
            del doc["_id"]
        ids.append(doc.get("_id"))
        parts.append(invalid(doc) if i % 37 == 3 else bson.encode(doc))
    data = b"".join(parts)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "c.bson").write_bytes(data)
    docs = list(MongodumpSource(tmp_path / "db").stream("c").read())
    expected = one_by_one(data, "c", ids)
    assert sum(doc is None for _, doc, _ in expected) == 9
    assert seen(docs) == expected
    # a resume anywhere, inside a run or right after an invalid document, continues exactly
    for i in (0, 3, 4, 150, 298):
        after = list(MongodumpSource(tmp_path / "db").stream("c").read(after=docs[i].position))
        assert seen(after) == expected[i + 1:]
