"""The contract every source implements.

A *source* holds one or more *streams* (a MongoDB collection, a dump's ``.bson`` file, an
export file, or a key-value table). A stream yields :class:`SourceDocument` in a stable order,
each carrying an opaque ``position``; reading again with ``after=position`` continues with the
next document. That position is what a checkpoint stores, so resuming never re-reads or skips
a document.

Documents are plain Python values as the ``bson`` package decodes them: ``dict``, ``list``,
``str``, ``int``/``bson.Int64``, ``float``, ``bool``, ``None``, ``bson.ObjectId``,
timezone-aware ``datetime`` (UTC), ``bson.Decimal128``, ``bytes``/``bson.Binary``, …
Key-value streams yield the decoded JSON value of each row with the row's key as ``key``.

What cannot be decoded is never an exception that ends the stream: it is yielded as an
:class:`UnreadableDocument` holding the raw bytes in full, and reading goes on after it. A
stream's :meth:`Stream.fingerprint` lets a resumed run check that the source is still the one
its checkpoints were taken from; :func:`describe_change` says what differs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One document read from a stream."""

    key: str
    """Human-readable identity: the ``_id`` rendered as text, or the key-value key. Always
    storable in a PostgreSQL ``text`` column (see :func:`key_text`)."""
    doc: Any
    """The decoded document (a dict for collections; any JSON value for key-value rows), or an
    :class:`UnreadableDocument`."""
    position: str
    """Opaque resume token: reading with ``after=position`` yields the documents after this."""


class Stream(Protocol):
    """One ordered sequence of documents: a collection or a key-value table."""

    name: str

    def estimate_count(self) -> int | None:
        """A cheap estimate of how many documents the stream holds (for progress/ETA)."""
        ...

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield documents in stable order, starting after ``after`` (None: from the start).

        ``after`` may be the position of any document a read of this stream yielded,
        unreadable ones included.
        """
        ...

    def fingerprint(self, start: str | None, end: str | None) -> dict[str, Any]:
        """Cheap, JSON-serialisable facts about what the unit ``(start, end]`` reads.

        Equal fingerprints mean the unit would read what it read before; compare two with
        :func:`describe_change`. Only stable facts are used (never an estimated count).
        """
        ...


class Source(Protocol):
    """A readable set of streams. Sources are opened read-only and never written."""

    warnings: list[str]
    """Problems that were worked around without stopping, one sentence each, naming the file
    or table (e.g. a corrupt ``.metadata.json`` that was ignored). Empty when all is well."""

    def stream_names(self) -> list[str]:
        """Names of the streams this source holds, sorted."""
        ...

    def stream(self, name: str) -> Stream:
        """The stream called ``name``; raises SourceError naming what exists if unknown."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@dataclass(frozen=True, slots=True)
class UnreadableDocument:
    """Stands in for a document, or a damaged region of a file, that could not be decoded.

    Streams yield it as the ``doc`` of a SourceDocument instead of raising, so that damage
    never stops a run: the run quarantines it with ``reason`` and the ``raw`` bytes, in full.
    """

    raw: bytes
    """The bytes as they are in the source (for text sources, the UTF-8 text)."""
    reason: str
    """What is wrong, naming the file and line, byte offset or key."""
    file: str | None = None
    """The file the bytes come from (None for tables)."""
    offset: int | None = None
    """Byte offset of ``raw`` in the file (uncompressed), when the source is a file."""
    length: int | None = None
    """Length of ``raw`` in bytes."""

    def as_json(self) -> dict[str, Any]:
        """The quarantine record: a JSON object that keeps the raw bytes as base64."""
        raw = self.raw if isinstance(self.raw, bytes) else str(self.raw).encode(
            "utf-8", "surrogateescape")
        return {"$unreadable": {
            "reason": clean_text(self.reason),
            "file": None if self.file is None else clean_text(self.file),
            "offset": self.offset,
            "length": len(raw) if self.length is None else self.length,
            "raw_base64": base64.b64encode(raw).decode("ascii"),
        }}


# -- text that PostgreSQL can store -------------------------------------------------------------

_UNSAFE = re.compile(r"[\x00\ud800-\udfff]")
_UNSAFE_IN_KEY = re.compile(r"[\\\x00\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes (``\\u0000``, ``\\xff``).

    PostgreSQL ``text`` and ``jsonb`` can hold neither. For messages; not reversible.
    """
    return _UNSAFE.sub(_escape, text)


def key_text(text: str) -> str:
    """``text`` as a document key PostgreSQL can store, unchanged unless it needs escaping.

    NUL becomes ``\\u0000``, a byte that was not valid UTF-8 (kept as a surrogate escape)
    ``\\xNN``, another lone surrogate ``\\udNNN``, and a backslash is doubled, so that
    distinct texts always give distinct keys.
    """
    if _UNSAFE_IN_KEY.search(text) is None:
        return text
    return _UNSAFE_IN_KEY.sub(_escape, text)


# -- fingerprints ------------------------------------------------------------------------------

SAMPLE_BYTES = 4096
"""How many bytes a file fingerprint hashes at each place it samples."""


def file_fingerprint(path: Path, offsets: list[int] | None) -> dict[str, Any]:
    """Size, modification time and hashes of a few samples of the file at ``path``.

    The samples are the first :data:`SAMPLE_BYTES` bytes and the bytes just before each of
    ``offsets`` (byte offsets in the file). ``None`` means the offsets cannot be mapped to the
    file (compressed files, element indices): then the last bytes of the file are sampled.
    """
    st = os.stat(path)
    size = st.st_size
    cuts = [size] if offsets is None else [min(o, size) for o in offsets]
    spans = [(0, min(SAMPLE_BYTES, size))]
    spans += [(max(c - SAMPLE_BYTES, 0), c) for c in cuts]
    samples = []
    with open(path, "rb") as f:
        for begin, end in dict.fromkeys(spans):
            f.seek(begin)
            digest = hashlib.sha256(f.read(end - begin)).hexdigest()
            samples.append({"from": begin, "to": end, "sha256": digest})
    return {"source": path.name, "size": size, "mtime_ns": st.st_mtime_ns, "samples": samples}


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


_BOUNDARY_FACTS = {
    "start_exists": ("the document where the unit starts ({})", "start"),
    "end_exists": ("the document where the unit ends ({})", "end"),
}


_DESCRIBED = {"source", "size", "mtime_ns", "samples", "start", "end", "first_after_start",
              "rows_and_versions", *_BOUNDARY_FACTS}


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """One sentence saying how fingerprint ``new`` differs from ``old``; None when equal."""
    if old == new:
        return None
    name = old.get("source", "the source")
    if new.get("source", name) != name:
        return f"the unit read {name} and now reads {new.get('source')}"
    phrases: list[str] = []
    if old.get("size") != new.get("size"):
        phrases.append(f"changed size from {old.get('size', 0):,} to {new.get('size', 0):,} "
                       "bytes")
    if old.get("mtime_ns") != new.get("mtime_ns"):
        phrases.append("its modification time")
    if old.get("size") == new.get("size") and old.get("samples") != new.get("samples"):
        now = {(s["from"], s["to"]): s["sha256"] for s in new.get("samples", [])}
        spans = [f"bytes {s['from']:,} to {s['to']:,}" for s in old.get("samples", [])
                 if now.get((s["from"], s["to"])) != s["sha256"]]
        phrases.append(f"its content ({_join(spans)})" if spans else "its content")
    facts: list[str] = []
    for fact, (what, bound) in _BOUNDARY_FACTS.items():
        if old.get(fact) != new.get(fact):
            gone = "no longer exists" if old.get(fact) else "now exists"
            facts.append(f"{what.format(_show(old.get(bound)))} {gone}")
    if old.get("first_after_start") != new.get("first_after_start"):
        where = "" if old.get("start") is None else f" after {old['start']}"
        facts.append(f"the first document{where} is now {_show(new.get('first_after_start'))} "
                     f"instead of {_show(old.get('first_after_start'))}")
    before, after = old.get("rows_and_versions"), new.get("rows_and_versions")
    if before != after and before is not None and after is not None:
        facts.append(f"rows of the unit's key range were inserted, updated or deleted "
                     f"({before[0]:,} rows then, {after[0]:,} now)")
    for key in sorted(set(old) | set(new)):
        if key not in _DESCRIBED and old.get(key) != new.get(key):
            facts.append(f"its {key} changed from {_show(old.get(key))} to "
                         f"{_show(new.get(key))}")
    if old.get("start") != new.get("start") or old.get("end") != new.get("end"):
        facts.append("the unit's boundaries differ")
    if phrases:
        text = _join(phrases)
        if text.startswith("its "):
            text = "changed " + text
        sentence = f"{name} {text}"
        return sentence + (f"; {_join(facts)}" if facts else "")
    return f"{name}: {_join(facts) if facts else 'its fingerprint differs'}"
