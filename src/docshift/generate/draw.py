"""Random draws and edge-case values shared by the dataset generators.

A :class:`Draws` holds the random stream of the collection being generated and the edge-case
variant of the document being built, so that the many small choices a document needs are
cheap method calls: a document costs about ten microseconds, and generators write tens of
thousands of them per second. Every draw comes from ``random.Random.random`` (the C
generator, one call per draw), never from the clock.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")

EMOJI_TEXT = "Party 🎉 rocket 🚀 family 👨‍👩‍👧‍👦 flag 🇨🇿 ok 👍🏽"
RTL_TEXT = "שלום עולם — مرحبا بالعالم"
COMBINING_TEXT = "Cafe\u0301 n\u0303o Z\u0335\u0321a\u0334l\u0338g\u0336o A\u030a"
MIXED_TEXT = "Ünïcödé ✓ 漢字 かな 한국어 Ελληνικά Ωμέγα"
SPECIAL_TEXT = ("O'Reilly & \"Sons\" <b>bold</b> \\back\\slash\ttab\nnew line %s {0} "
                "$where; DROP TABLE users;-- \u200bzero\u2028sep")
MEGABYTE = 1 << 20
EDGE_VARIANTS = ("nulls", "missing", "empty_arrays", "unicode_emoji", "unicode_rtl",
                 "unicode_combining", "unicode_mixed", "special_chars", "min_date", "max_date",
                 "iso_dates", "big_numbers", "long_text")
"""Edge-case documents 1..13 of every collection, one variant each; the next documents take
every enum value in turn."""
TEXT_VARIANTS = {"unicode_emoji": EMOJI_TEXT, "unicode_rtl": RTL_TEXT,
                 "unicode_combining": COMBINING_TEXT, "unicode_mixed": MIXED_TEXT,
                 "special_chars": SPECIAL_TEXT}
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


@functools.cache
def megabyte_text() -> str:
    """A 1 MiB string (ASCII, so also 1 MiB of UTF-8)."""
    unit = "docshift edge case: one megabyte of text. "
    return (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]


class _Missing:
    """Marks a field to leave out of the document."""


MISSING: Any = _Missing()


def strip_missing(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the fields marked MISSING."""
    return {k: v for k, v in doc.items() if v is not MISSING}


def epoch_ms(d: datetime) -> int:
    """Milliseconds from 1970-01-01 UTC to aware ``d``."""
    return (d - _EPOCH) // _MS


def iso(d: datetime) -> str:
    """Aware ``d`` as JavaScript's ``toISOString`` writes it (milliseconds, ``Z``)."""
    return iso_ms(epoch_ms(d))


def iso_ms(ms: int) -> str:
    """The instant ``ms`` milliseconds after 1970-01-01 UTC (not before it) as
    ``toISOString`` writes it: ``2021-03-04T05:06:07.089Z``."""
    # ~3x faster than formatting a datetime: a day prefix (cached) and three table look-ups
    day, rest = divmod(ms, 86_400_000)
    minute, rest = divmod(rest, 60_000)
    second, milli = divmod(rest, 1000)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        if len(_DAYS) < 100_000:  # generated dates span a few years: this never fills
            _DAYS[day] = prefix
    return prefix + _MINUTES[minute] + _SECONDS[second] + _MILLIS[milli]


_DAYS: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MINUTES = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
_SECONDS = [f"{s:02d}." for s in range(60)]
_MILLIS = [f"{f:03d}Z" for f in range(1000)]


def set_field(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change to one top-level field of a document (MISSING: leave the field out)."""
    def apply(doc: dict[str, Any]) -> None:
        if value is MISSING:
            doc.pop(path, None)
        else:
            doc[path] = value
    return apply


def sound_index(draw: float, n: int, bad: Callable[[int], bool] | None) -> int:
    """An index below ``n`` picked by ``draw`` (in [0, 1)), moved past defective documents.

    Every generator picks references this way, so a reference never points at a document
    that is quarantined on purpose (which would make the expected outcome cascade).
    """
    k = int(draw * n)
    if bad is not None:
        while bad(k):
            k = (k + 1) % n
    return k


def mix64(x: int) -> int:
    """The SplitMix64 output for counter ``x``: a bijection on 64-bit integers that spreads
    every input bit over the whole result (a stable hash of small integers, ~4x cheaper
    than BLAKE2b over their ``repr()``)."""
    x = (x * _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class Draws:
    """The random choices of the document being built.

    ``rnd`` is the current collection's stream (see :meth:`stream`) and ``v`` the edge-case
    variant of the current document (None for an ordinary one). ``missing`` turns true when a
    draw left a field out, so that only such documents need :func:`strip_missing`.
    """

    NULL_SHARE = 0.07
    """Share of optional fields that are null; as many again are missing."""
    ENUM_MAX = 4
    """The most values any enum of the dataset has (edge cases give each value a document)."""

    def __init__(self, edge: bool) -> None:
        self.edge = edge
        self.rnd = random.Random(0).random
        self.v: str | None = None
        self.missing = False

    def stream(self, name: str) -> None:
        """Draw from now on from the stream ``name`` (one per collection)."""
        self.rnd = random.Random(name).random

    def variant(self, k: int) -> str | None:
        """The edge-case variant of document ``k``."""
        if self.edge and 1 <= k <= len(EDGE_VARIANTS):
            return EDGE_VARIANTS[k - 1]
        return None

    def start(self, k: int) -> str | None:
        """Begin document ``k``: set and return its variant."""
        self.missing = False
        v = self.v = self.variant(k)
        return v

    def strip(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` without its MISSING fields (as is when the current document has none)."""
        if self.missing or self.v is not None:
            return strip_missing(doc)
        return doc

    # plain draws ----------------------------------------------------------------

    def below(self, n: int) -> int:
        """An integer in ``[0, n)``."""
        return int(self.rnd() * n)

    def num(self, lo: int, hi: int, step: int = 1) -> int:
        """Like ``randrange(lo, hi, step)``."""
        if step == 1:
            return lo + int(self.rnd() * (hi - lo))
        return lo + step * int(self.rnd() * ((hi - lo + step - 1) // step))

    def pick(self, seq: Sequence[T]) -> T:
        """One item of ``seq``."""
        return seq[int(self.rnd() * len(seq))]

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rnd() < p

    def sample(self, pool: Sequence[T], n: int) -> list[T]:
        """``n`` distinct items of ``pool`` (which holds no duplicates), in random order."""
        rnd, size = self.rnd, len(pool)
        out: list[T] = []
        n = min(n, size)
        while len(out) < n:
            item = pool[int(rnd() * size)]
            if item not in out:
                out.append(item)
        return out

    # optional values and edge cases --------------------------------------------

    def opt(self, value: Any) -> Any:
        """``value``, or sometimes null, or sometimes a missing field."""
        r = self.rnd()
        v = self.v
        if v is not None:
            if v == "nulls":
                return None
            if v == "missing":
                self.missing = True
                return MISSING
        share = self.NULL_SHARE
        if r >= 2 * share:
            return value
        if r < share:
            return None
        self.missing = True
        return MISSING

    def text(self, normal: str) -> str:
        """``normal``, or the edge-case text of the current variant."""
        v = self.v
        if v is None:
            return normal
        return TEXT_VARIANTS.get(v, normal)

    def enum(self, k: int, values: Sequence[str]) -> str:
        """A value of ``values``; edge-case documents take every value in turn."""
        if self.edge:
            first = 1 + len(EDGE_VARIANTS)
            if first <= k < first + self.ENUM_MAX:
                return values[(k - first) % len(values)]
        return values[int(self.rnd() * len(values))]

    def array(self, items: list[Any]) -> Any:
        """An array field: null, missing or empty for the matching edge cases."""
        v = self.v
        if v is None:
            return items
        if v == "nulls":
            return None
        if v == "missing":
            self.missing = True
            return MISSING
        if v == "empty_arrays":
            return []
        return items

    def count(self, n: int) -> int:
        """``n``, or the int32 limit for the ``big_numbers`` variant."""
        return INT32_MAX if self.v == "big_numbers" else n
