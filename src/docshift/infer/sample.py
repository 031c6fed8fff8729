"""Sampling: one read of each stream gives a spread sample, the id set and key-like values.

Every document is visited once. A reservoir (seeded, so re-running proposes the same file)
keeps at most ``size`` documents spread over the whole stream, not only its head; the
stream's ids and the values of fields whose names look like keys are kept in full, because
reference detection and uniqueness need every value, not a sample of them.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from bson import Binary, Decimal128, ObjectId

from docshift.sources.base import SourceDocument, Stream, UnreadableDocument

DEFAULT_SAMPLE = 1000
"""Documents kept per stream (or per key pattern of a key-value table)."""

SEED = 20240101
"""Fixed seed of the reservoir: the same source always gives the same proposal."""

_HEX24 = re.compile(r"^[0-9a-fA-F]{24}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
# fields whose every value is kept: candidates for unique keys and natural-key references
KEY_LIKE = re.compile(r"(^|_)(id|ids|key|code|slug|sku|email|username|number|domain|uuid|"
                      r"ref)$")

Progress = Callable[[str, int, int | None], None]
"""Called as ``progress(stream, documents read, estimate)`` while reading."""


def canonical(value: Any) -> str | None:
    """The text a value converts to an id by: what makes a reference meet its record.

    ObjectIds and 24-hex strings give the same text (both become the same UUID), integers
    and their decimal text too (``42`` and ``"42"``); None for values that are not ids.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str):
        if _HEX24.match(value) or _UUID.match(value):
            return value.lower()
        return value if value else None
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Binary) and value.subtype in (3, 4) and len(value) == 16:
        return str(uuid.UUID(bytes=bytes(value)))
    return None


@lru_cache(maxsize=65536)
def snake_case(name: str) -> str:
    """``watching_accountsIDs`` → ``watching_accounts_ids``; a plain identifier always."""
    s = re.sub(r"([A-Z]{2,})s(?=$|_|[A-Z])", r"\1S", name)  # accountsIDs: IDs is one word
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    s = re.sub(r"_+", "_", s)
    if not s:
        s = "field"
    if s[0].isdigit():
        s = "f_" + s
    return s[:63]


@dataclass
class KeyValues:
    """Every value of one key-like field of a stream (as :func:`canonical` text)."""

    values: set[str] = field(default_factory=set)
    present: int = 0
    duplicates: int = 0
    kinds: set[str] = field(default_factory=set)

    def add(self, value: Any) -> None:
        text = canonical(value)
        if text is None:
            if value is not None and not isinstance(value, bool):
                self.kinds.add("other")
            return
        self.present += 1
        self.kinds.add("int" if isinstance(value, int) else "text")
        if text in self.values:
            self.duplicates += 1
        else:
            self.values.add(text)


@dataclass
class StreamSample:
    """What one read of a stream (or of one key pattern) leaves for the inference."""

    name: str
    count: int = 0
    docs: list[Any] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    ids: KeyValues = field(default_factory=KeyValues)
    """The ``_id`` of every document (key-value: the id capture of every key)."""
    with_id: int = 0
    fields: dict[str, KeyValues] = field(default_factory=dict)
    """Every value of each top-level key-like field, over the whole stream."""
    non_null: dict[str, int] = field(default_factory=dict)
    """Documents with a non-null value, per top-level field, over the whole stream."""
    unreadable: int = 0


class Reservoir:
    """A uniform sample of at most ``size`` items of a sequence of unknown length."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng, self.seen = size, rng, 0
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        j = self.rng.randrange(self.seen)
        if j < self.size:
            self.items[j] = item


def observe(sample: StreamSample, doc: dict[str, Any]) -> None:
    """Count one document's top-level facts that need every document."""
    sample.count += 1
    if "_id" in doc:
        sample.with_id += 1
        sample.ids.add(doc["_id"])
    for name, value in doc.items():
        if value is not None:
            sample.non_null[name] = sample.non_null.get(name, 0) + 1
        if _key_like(name) and not isinstance(value, (dict, datetime)):
            kv = sample.fields.setdefault(name, KeyValues())
            if isinstance(value, list):
                continue
            kv.add(value)


@lru_cache(maxsize=65536)
def _key_like(name: str) -> bool:
    return KEY_LIKE.search(snake_case(name)) is not None


def documents(stream: Stream, progress: Progress | None = None) -> Iterator[SourceDocument]:
    """Every readable document of ``stream``, reporting progress every few thousand."""
    estimate = stream.estimate_count()
    n = 0
    for sdoc in stream.read():
        n += 1
        if progress is not None and n % 5000 == 0:
            progress(stream.name, n, estimate)
        yield sdoc
    if progress is not None:
        progress(stream.name, n, estimate)


def sample_stream(stream: Stream, size: int = DEFAULT_SAMPLE,
                  progress: Progress | None = None) -> StreamSample:
    """Read ``stream`` once: a spread sample of ``size`` documents plus ids and key values."""
    sample = StreamSample(stream.name)
    reservoir = Reservoir(size, random.Random(SEED))
    for sdoc in documents(stream, progress):
        doc = sdoc.doc
        if isinstance(doc, UnreadableDocument) or not isinstance(doc, dict):
            sample.unreadable += 1
            continue
        observe(sample, doc)
        reservoir.add((sdoc.key, doc))
    sample.keys = [k for k, _ in reservoir.items]
    sample.docs = [d for _, d in reservoir.items]
    return sample


def decimal_like(value: Any) -> bool:
    """A BSON Decimal128 (a number kept exactly)."""
    return isinstance(value, Decimal128)
