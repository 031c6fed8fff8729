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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """One document read from a stream."""

    key: str
    """Human-readable identity: the ``_id`` rendered as text, or the key-value key."""
    doc: Any
    """The decoded document (a dict for collections; any JSON value for key-value rows)."""
    position: str
    """Opaque resume token: reading with ``after=position`` yields the documents after this."""


class Stream(Protocol):
    """One ordered sequence of documents: a collection or a key-value table."""

    name: str

    def estimate_count(self) -> int | None:
        """A cheap estimate of how many documents the stream holds (for progress/ETA)."""
        ...

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield documents in stable order, starting after ``after`` (None: from the start)."""
        ...


class Source(Protocol):
    """A readable set of streams. Sources are opened read-only and never written."""

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
    """Stands in for a document that could not be decoded (bad JSON line, corrupt BSON).

    Streams yield it as the ``doc`` of a SourceDocument instead of raising, so that one bad
    line never stops a run: the run quarantines it with ``reason`` and the ``raw`` text.
    """

    raw: str
    reason: str
