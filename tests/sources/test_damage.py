"""Damaged source files: every complete document is read, the damage is kept whole, and a
resume from any yielded position continues exactly after it."""

from __future__ import annotations

import base64
import gzip
import json
import struct
from pathlib import Path
from typing import Any

import bson
import pytest

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.jsonfiles import JsonSource
from docshift.sources.mongodump import MongodumpSource


def encode(docs: list[dict[str, Any]]) -> list[bytes]:
    return [bson.encode(d) for d in docs]


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def read(path: Path, name: str, after: str | None = None) -> list[SourceDocument]:
    return list(MongodumpSource(path).stream(name).read(after=after))


def check_resume_everywhere(docs: list[SourceDocument], path: Path, name: str) -> None:
    """Reading after each yielded position gives exactly the entries after it."""
    for i, d in enumerate(docs):
        assert read(path, name, after=d.position) == docs[i + 1 :], f"after entry {i}"


# -- BSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["c.bson", "c.bson.gz"])
def test_truncated_last_document_is_kept_whole(tmp_path: Path, file: str) -> None:
    good = encode([{"_id": i, "s": "x" * i} for i in range(3)])
    cut = bson.encode({"_id": 3, "s": "abcdef"})[:-4]
    write(tmp_path / "db" / file, b"".join(good) + cut)
    docs = read(tmp_path / "db", "c")
    assert [d.doc for d in docs[:3]] == [{"_id": i, "s": "x" * i} for i in range(3)]
    assert len(docs) == 4
    bad = docs[3].doc
    offset = sum(map(len, good))
    assert isinstance(bad, UnreadableDocument)
    assert bad.raw == cut
    assert (bad.offset, bad.length) == (offset, len(cut))
    assert bad.file is not None and bad.file.endswith(file)
    assert file in bad.reason and str(offset) in bad.reason
    assert docs[3].key == f"{file}@{offset}"
    assert docs[3].position == str(offset + len(cut))
    check_resume_everywhere(docs, tmp_path / "db", "c")


@pytest.mark.parametrize("file", ["c.bson", "c.bson.gz"])
def test_corrupt_length_in_the_middle_resynchronises(tmp_path: Path, file: str) -> None:
    docs_in = [{"_id": i, "name": f"user {i}", "n": i} for i in range(6)]
    parts = encode(docs_in)
    damaged = bytearray(parts[2])
    damaged[0:4] = struct.pack("<i", -77)  # the length prefix of document 2 is garbage
    parts[2] = bytes(damaged)
    write(tmp_path / "db" / file, b"".join(parts))
    docs = read(tmp_path / "db", "c")
    assert [d.doc for d in docs if not isinstance(d.doc, UnreadableDocument)] == (
        docs_in[:2] + docs_in[3:]
    )
    assert len(docs) == 6
    bad = docs[2].doc
    assert isinstance(bad, UnreadableDocument)
    offset = len(parts[0]) + len(parts[1])
    assert bad.raw == parts[2]
    assert (bad.offset, bad.length) == (offset, len(parts[2]))
    assert "-77" in bad.reason
    assert docs[2].position == str(offset + len(parts[2]))
    check_resume_everywhere(docs, tmp_path / "db", "c")


@pytest.mark.parametrize("last", [5, {"city": "Brno"}, [{"_id": 7, "a": 1}]])
def test_the_valid_bson_inside_a_damaged_document_is_not_taken_for_a_document(
        tmp_path: Path, last: Any) -> None:
    # the damaged document ends with an int32 of 5 (its last bytes are the empty document
    # 05 00 00 00 00), a subdocument, or an array of subdocuments with ids: none of them
    # may come out as a document of its own
    docs_in = [{"_id": i, "name": f"user {i}", "last": last} for i in range(6)]
    parts = encode(docs_in)
    damaged = bytearray(parts[2])
    damaged[0:4] = struct.pack("<i", 10**9)
    parts[2] = bytes(damaged)
    write(tmp_path / "db" / "c.bson", b"".join(parts))
    docs = read(tmp_path / "db", "c")
    assert len(docs) == 6
    assert [d.doc for d in docs if not isinstance(d.doc, UnreadableDocument)] == (
        docs_in[:2] + docs_in[3:])
    assert docs[2].doc.raw == parts[2]
    check_resume_everywhere(docs, tmp_path / "db", "c")


def test_garbage_that_never_resynchronises_runs_to_the_end(tmp_path: Path) -> None:
    parts = encode([{"_id": 1}, {"_id": 2}])
    garbage = b"\xff" * 300
    write(tmp_path / "db" / "c.bson", b"".join(parts) + garbage)
    docs = read(tmp_path / "db", "c")
    assert [d.doc for d in docs[:2]] == [{"_id": 1}, {"_id": 2}]
    (bad,) = [d.doc for d in docs[2:]]
    assert isinstance(bad, UnreadableDocument)
    assert bad.raw == garbage and bad.length == 300
    assert "end of the file" in bad.reason
    check_resume_everywhere(docs, tmp_path / "db", "c")


def test_stray_bytes_at_the_end(tmp_path: Path) -> None:
    write(tmp_path / "db" / "c.bson", bson.encode({"_id": 1}) + b"\x01\x02")
    docs = read(tmp_path / "db", "c")
    assert docs[0].doc == {"_id": 1}
    assert isinstance(docs[1].doc, UnreadableDocument) and docs[1].doc.raw == b"\x01\x02"


def test_frame_without_its_zero_terminator_resynchronises(tmp_path: Path) -> None:
    parts = encode([{"_id": i, "v": "abc"} for i in range(4)])
    broken = bytearray(parts[1])
    broken[-1] = 0x41  # framing is wrong: the length cannot be trusted
    parts[1] = bytes(broken)
    write(tmp_path / "db" / "c.bson", b"".join(parts))
    docs = read(tmp_path / "db", "c")
    assert [d.doc["_id"] for d in docs if isinstance(d.doc, dict)] == [0, 2, 3]
    assert docs[1].doc.raw == parts[1]


def test_gzip_cut_short_keeps_what_decompresses(tmp_path: Path) -> None:
    docs_in = [{"_id": i, "blob": f"{i:08d}" * 200} for i in range(40)]
    data = b"".join(encode(docs_in))
    packed = gzip.compress(data)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "c.bson.gz").write_bytes(packed[: len(packed) // 2])
    docs = read(tmp_path / "db", "c")
    good = [d.doc for d in docs if isinstance(d.doc, dict)]
    assert 0 < len(good) < 40 and good == docs_in[: len(good)]
    bad = docs[-1].doc
    assert isinstance(bad, UnreadableDocument) and "cut short" in bad.reason
    assert data.startswith(b"".join(encode(good)) + bad.raw)
    check_resume_everywhere(docs, tmp_path / "db", "c")


def test_large_damaged_region_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            ) -> None:
    from docshift.sources import mongodump

    monkeypatch.setattr(mongodump, "CHUNK_BYTES", 64)
    parts = encode([{"_id": i, "s": "y" * (i * 11)} for i in range(12)])
    garbage = b"\xfe" * 1000
    data = b"".join(parts[:5]) + garbage + b"".join(parts[5:])
    for file in ("c.bson", "g.bson.gz"):
        write(tmp_path / "db" / file, data)
    for name in ("c", "g"):
        docs = read(tmp_path / "db", name)
        assert [d.doc["_id"] for d in docs if isinstance(d.doc, dict)] == list(range(12))
        (bad,) = [d.doc for d in docs if isinstance(d.doc, UnreadableDocument)]
        assert bad.raw == garbage
        check_resume_everywhere(docs, tmp_path / "db", name)


def test_resume_position_inside_a_document_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "db" / "c.bson", b"".join(encode([{"_id": i} for i in range(3)])))
    with pytest.raises(SourceError, match=r"c\.bson.*not .*position"):
        read(tmp_path / "db", "c", after="3")


def test_documents_without_id_keep_their_ordinal_after_damage(tmp_path: Path) -> None:
    parts = encode([{"x": i} for i in range(3)])
    write(tmp_path / "db" / "c.bson", parts[0] + b"\xff\xff\xff\xff\x00" + parts[1] + parts[2])
    docs = read(tmp_path / "db", "c")
    assert [d.key for d in docs] == ["c#1", "c.bson@12", "c#3", "c#4"]
    check_resume_everywhere(docs, tmp_path / "db", "c")


# -- the quarantine record ---------------------------------------------------------------------


def test_as_json_carries_everything_needed_to_restore_the_bytes() -> None:
    raw = bytes(range(256)) * 40  # larger than any old truncation limit
    bad = UnreadableDocument(raw, "cut short", file="dump/crm/Users.bson", offset=123456,
                             length=len(raw))
    record = bad.as_json()
    assert json.loads(json.dumps(record)) == record
    inner = record["$unreadable"]
    assert inner["reason"] == "cut short"
    assert inner["file"] == "dump/crm/Users.bson"
    assert (inner["offset"], inner["length"]) == (123456, len(raw))
    assert base64.b64decode(inner["raw_base64"]) == raw


def test_as_json_text_is_storable_in_jsonb(conn: Any) -> None:
    bad = UnreadableDocument(b"\x00\xff", "bad \x00 byte in x\udcff.bson", file="x\udcff.bson")
    text = json.dumps(bad.as_json())
    stored = conn.execute("SELECT %s::jsonb -> '$unreadable' ->> 'file'", (text,)).fetchone()
    assert stored == ("x\\xff.bson",)


# -- JSON ------------------------------------------------------------------------------------


def jread(path: Path, name: str, after: str | None = None) -> list[SourceDocument]:
    return list(JsonSource(path).stream(name).read(after=after))


def test_bad_json_line_is_kept_whole_and_reading_goes_on(tmp_path: Path) -> None:
    bad_line = b'{"_id": 2, "s": "' + b"z" * 30_000 + b'", oops}'
    data = b'{"_id": 1}\n' + bad_line + b'\r\n{"_id": 3}\n'
    (tmp_path / "c.jsonl").write_bytes(data)
    docs = jread(tmp_path, "c")
    assert [d.key for d in docs] == ["1", "2", "3"]
    bad = docs[1].doc
    assert isinstance(bad, UnreadableDocument)
    assert bad.raw == bad_line
    assert (bad.offset, bad.length) == (11, len(bad_line))
    for i, d in enumerate(docs):
        assert jread(tmp_path, "c", after=d.position) == docs[i + 1 :]


@pytest.mark.parametrize("file", ["cut.json", "cut.json.gz"])
def test_cut_off_json_array(tmp_path: Path, file: str) -> None:
    text = b'[{"_id": 1},\n {"_id": 2},\n {"_id": 3, "s": "abc'
    write(tmp_path / file, text)
    docs = jread(tmp_path, "cut")
    assert [d.doc for d in docs[:2]] == [{"_id": 1}, {"_id": 2}]
    assert len(docs) == 3
    bad = docs[2].doc
    assert isinstance(bad, UnreadableDocument)
    assert bad.raw == b'{"_id": 3, "s": "abc'
    assert bad.offset == text.index(b'{"_id": 3')
    assert "closing ']'" in bad.reason
    for i, d in enumerate(docs):
        assert jread(tmp_path, "cut", after=d.position) == docs[i + 1 :]


def test_array_cut_right_after_a_comma_warns(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text('[{"_id": 1},\n')
    source = JsonSource(tmp_path)
    assert [d.key for d in source.stream("cut").read()] == ["1"]
    assert len(source.warnings) == 1 and "cut.json" in source.warnings[0]


def test_a_damaged_file_is_not_split(tmp_path: Path) -> None:
    parts = encode([{"_id": i, "s": "q" * 100} for i in range(50)])
    sound = b"".join(parts)
    write(tmp_path / "db" / "ok.bson", sound)
    broken = bytearray(sound)
    broken[len(parts[0]) * 30 - 1] = 0x41  # the last byte of document 29
    write(tmp_path / "db" / "bad.bson", bytes(broken))
    write(tmp_path / "db" / "tail.bson", sound + b"\x01")
    source = MongodumpSource(tmp_path / "db")
    assert len(source.stream("ok").split(4)) == 3
    assert source.stream("bad").split(4) == []
    assert source.stream("tail").split(4) == []


def test_long_damage_comes_as_several_bounded_entries(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from docshift.sources import mongodump

    monkeypatch.setattr(mongodump, "MAX_REGION_BYTES", 100)
    garbage = b"\xee" * 350
    write(tmp_path / "db" / "c.bson", bson.encode({"_id": 1}) + garbage + bson.encode({"_id": 2}))
    docs = read(tmp_path / "db", "c")
    regions = [d.doc for d in docs if isinstance(d.doc, UnreadableDocument)]
    assert [len(r.raw) for r in regions] == [100, 100, 100, 50]
    assert b"".join(r.raw for r in regions) == garbage
    assert [d.doc for d in (docs[0], docs[-1])] == [{"_id": 1}, {"_id": 2}]
    check_resume_everywhere(docs, tmp_path / "db", "c")
