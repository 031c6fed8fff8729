"""Read a ``mongodump`` directory: one stream per ``<collection>.bson`` (or ``.bson.gz``) file.

A BSON file is a plain concatenation of documents, each starting with its own length (int32,
little endian). The reader streams it in large chunks and decodes one document at a time, so
memory stays bounded whatever the file size. A document's position is the byte offset just
after it in the uncompressed stream; resuming seeks there.

Damage never ends the stream. A length prefix that cannot be right, a document that does not
end where its length says, or a file (or gzip stream) that ends inside a document starts a
*damaged region*: the reader looks for the next offset where a plausible document starts
(a sound length, a terminating 0 byte, a successful decode, and a sound length right after
it) and yields the bytes in between as one :class:`UnreadableDocument`, whose position is
that offset. Without such a start the region runs to the end of the file.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import bson
from bson.errors import BSONError

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument, file_fingerprint, key_text
from docshift.sources.bsonvalues import CODEC_OPTIONS, document_key, ejson_loads, id_to_key

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 + 16 * 1024
"""Largest BSON document length accepted: MongoDB's 16 MiB limit plus its internal slack."""

MAX_REGION_BYTES = MAX_DOCUMENT_BYTES
"""Longest damaged region yielded as one unreadable entry; longer damage gives several."""

CHUNK_BYTES = 1024 * 1024
# Where a document may start: a length below 2**25 (its fourth byte 0 or 1) followed by an
# element type byte, or the 0 that ends an empty document. A lookahead, to find overlaps.
_CANDIDATE = re.compile(rb"(?=...[\x00\x01][\x00-\x13\x7f\xff])", re.DOTALL)
_INT32 = struct.Struct("<i")
_BSON_SUFFIXES = (".bson.gz", ".bson")
_METADATA_SUFFIXES = (".metadata.json.gz", ".metadata.json")
_DECODE_ERRORS = (BSONError, ValueError, TypeError, OverflowError, KeyError, IndexError)


def _open(path: Path) -> IO[bytes]:
    """Open a possibly gzipped file for binary reading, or raise SourceError."""
    try:
        if path.name.endswith(".gz"):
            return gzip.GzipFile(path, "rb")
        return open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise SourceError(
            f"cannot open {path}: {exc.strerror or exc}",
            hint="check that the file exists and is readable",
        ) from exc


def _parse_offset(path: Path, after: str | None) -> int:
    if after is None:
        return 0
    try:
        offset = int(after)
    except ValueError:
        offset = -1
    if offset < 0 or not (after.isascii() and after.isdigit()):
        raise SourceError(
            f"{path}: resume position {after!r} is not a byte offset in this dump file",
            hint="the checkpoint belongs to another source kind; reset the checkpoint",
        )
    return offset


def _raw_id_key(data: bytes) -> str | None:
    """Best-effort ``_id`` of an undecodable document, when it is the first element."""
    try:
        if len(data) < 9 or data[5:9] != b"_id\x00":
            return None
        kind = data[4]
        if kind == 0x07:
            return data[9:21].hex() if len(data) >= 21 else None
        if kind == 0x02:
            (size,) = _INT32.unpack_from(data, 9)
            if 0 < size <= len(data) - 13:
                return key_text(data[13 : 13 + size - 1].decode("utf-8", "surrogateescape"))
            return None
        if kind in (0x10, 0x12):
            fmt = "<i" if kind == 0x10 else "<q"
            return id_to_key(struct.unpack_from(fmt, data, 9)[0])
    except (struct.error, IndexError):
        return None
    return None


class MongodumpStream:
    """One collection of a dump: a ``.bson`` or ``.bson.gz`` file."""

    def __init__(self, name: str, path: Path, metadata_path: Path | None = None,
                 warnings: list[str] | None = None) -> None:
        self.name = name
        self.path = path
        self.metadata_path = metadata_path
        self.warnings = [] if warnings is None else warnings
        """The source's warnings list (shared), to which this stream adds its own."""
        self.compressed = path.name.endswith(".gz")
        self._count: int | None = None
        self._range_counts: dict[tuple[str | None, str | None], int] = {}
        self._framing: _Framing | None = None
        self._metadata: dict[str, Any] | None = None
        self._metadata_loaded = False

    def metadata(self) -> dict[str, Any] | None:
        """The parsed ``.metadata.json`` (indexes, options), or None if the dump has none.

        A metadata file that cannot be read or parsed is ignored with a warning: the
        collection's documents do not depend on it.
        """
        if not self._metadata_loaded:
            if self.metadata_path:
                self._metadata = _load_metadata(self.metadata_path, self._warn)
            self._metadata_loaded = True
        return self._metadata

    def estimate_count(self) -> int | None:
        """Exact count for ``.bson`` (length headers only); metadata's count, if any, for gz."""
        if self._count is not None:
            return self._count
        if self.compressed:
            count = (self.metadata() or {}).get("count")
            return int(count) if isinstance(count, int) and not isinstance(count, bool) else None
        self._count = self._count_documents(None)
        return self._count

    def _count_documents(self, until: int | None) -> int | None:
        """Documents before byte offset ``until`` (all when None); None if the file is
        damaged before it (reading then yields damaged regions, which only it can tell)."""
        if self.compressed:
            # gzip cannot jump; read through instead, which is what a seek would do anyway.
            with _open(self.path) as f:
                try:
                    return _count_by_reading(f, until)
                except EOFError:
                    return None  # cut short
        hop = self._hop(until)
        return None if hop is None else hop[0]

    def _hop(self, until: int | None) -> tuple[int, int] | None:
        """(documents, offset reached) hopping over length headers up to ``until``: the
        offset is the first document end at or after it. None if the framing is damaged
        before it.

        The file's framing is read once per stream (:meth:`_frame`); a hop starts at the
        last mark before ``until`` and walks at most :data:`MARK_EVERY` documents.
        """
        framing = self._frame()
        size = framing.size
        end = size if until is None else min(until, size)
        if end > framing.sound:
            return None
        i = bisect.bisect_right(framing.offsets, end) - 1
        pos, count = framing.offsets[i], framing.counts[i]
        if pos == end:
            return count, pos
        return _walk_framing(self.path, size, pos, count, end, None)

    def _frame(self) -> _Framing:
        """The framing of the (uncompressed) file, read once: marks every
        :data:`MARK_EVERY` documents, and how far the length headers are sound."""
        if self._framing is None:
            try:
                size = self.path.stat().st_size
            except OSError as exc:
                raise SourceError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
            framing = _Framing(size, [0], [0], size)
            _walk_framing(self.path, size, 0, 0, size, framing)  # sets framing.sound
            self._framing = framing
        return self._framing

    def split(self, parts: int) -> list[str]:
        """Positions cutting the file into ``parts`` ranges of about equal size.

        Each is the position of a real document (the offset just after it), so a range
        ``(start, end]`` ends exactly at a document. Compressed files are not split: gzip
        cannot jump, so every range would decompress everything before it.
        """
        if self.compressed or parts < 2:
            return []
        framing = self._frame()
        size = framing.size
        if framing.sound < size:
            return []  # damaged: one unit, which yields the damaged regions
        bounds: list[str] = []
        before = [0]
        for k in range(1, parts):
            hop = self._hop(size * k // parts)
            assert hop is not None  # the framing is sound to the end
            count, pos = hop
            if 0 < pos < size and (not bounds or pos > int(bounds[-1])):
                bounds.append(str(pos))
                before.append(count)
        total = self._hop(None)
        assert total is not None
        before.append(total[0])
        # remember the range sizes: count_between would otherwise hop again
        edges = [None, *bounds, None]
        self._range_counts.update(zip(zip(edges, edges[1:], strict=False),
                                      (b - a for a, b in zip(before, before[1:], strict=False)),
                                      strict=True))
        return bounds

    def past(self, position: str, end: str) -> bool:
        """Whether ``position`` lies beyond ``end`` (both positions of this stream)."""
        return int(position) > int(end)

    def count_between(self, start: str | None, end: str | None) -> int | None:
        """Documents in the range ``(start, end]``."""
        if (start, end) in self._range_counts:
            return self._range_counts[(start, end)]
        upto = self._count_documents(int(end) if end else None)
        before = self._count_documents(int(start)) if start else 0
        return None if upto is None or before is None else upto - before

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def fingerprint(self, start: str | None, end: str | None) -> dict[str, Any]:
        """Size, mtime and hashes of the bytes at the start of the file and before each
        boundary of the unit ``(start, end]`` (for ``.bson.gz``: the file's last bytes)."""
        if self.compressed:
            return file_fingerprint(self.path, None)
        size = self.path.stat().st_size
        cuts = [int(p) for p in (start, end) if p is not None]
        return file_fingerprint(self.path, cuts + ([size] if end is None else []))

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield the documents in file order, starting after byte offset ``after``."""
        for piece in self.read_runs(after):
            if type(piece) is RawRun:
                yield from piece.decoded()
            else:
                yield piece  # type: ignore[misc]

    def read_runs(self, after: str | None = None) -> Iterator[RawRun | SourceDocument]:
        """What :meth:`read` yields, but each run of soundly framed documents undecoded, as
        a :class:`RawRun` (for the columnar path); damaged regions as their documents."""
        offset = _parse_offset(self.path, after)
        with _open(self.path) as f:
            try:
                self._seek(f, offset)
                yield from self._runs_from(f, offset)
            except (OSError, EOFError) as exc:
                raise SourceError(
                    f"cannot read {self.path}: {exc}",
                    hint="the file is damaged (for .bson.gz: not gzip); re-create the dump",
                ) from exc

    def _seek(self, f: IO[bytes], offset: int) -> None:
        if offset == 0:
            return
        if self.compressed:
            with contextlib.suppress(EOFError):  # the gzip stream is cut short before it
                f.seek(offset)
            reached = f.tell()
        else:
            reached = min(offset, self.path.stat().st_size)
            f.seek(offset)
        if reached != offset:
            raise SourceError(
                f"{self.path}: resume position {offset} is beyond the end of the file "
                f"({reached} bytes)",
                hint="the file changed since the checkpoint was written; reset the checkpoint",
            )

    def _not_a_position(self, offset: int) -> SourceError:
        return SourceError(
            f"{self.path}: resume position {offset} is not the position of a document in "
            "this file",
            hint="the file changed since the checkpoint was written; run again with --restart",
        )

    def _runs_from(self, f: IO[bytes], offset: int) -> Iterator[RawRun | SourceDocument]:
        name = self.name
        file = self.path.name
        # Ordinals only matter for documents without _id; after a resume the count of the
        # entries before `offset` is computed lazily, the first time one is needed.
        ordinal_base: int | None = 0 if offset == 0 else None
        ordinal = 0

        def before() -> int:
            nonlocal ordinal_base
            if ordinal_base is None:
                ordinal_base = self._entries_before(offset)
                if ordinal_base is None:
                    raise self._not_a_position(offset)
            return ordinal_base

        for piece in self._pieces(f, offset):
            if type(piece) is _Run:
                yield RawRun(self, piece, ordinal, before)
                ordinal += len(piece.ends)
            else:
                yield from self._entries(iter((piece,)), name, file, before, ordinal)
                ordinal += 1

    def _entries(self, entries: Iterator[tuple[int, bytes, str | None]], name: str, file: str,
                 before: Callable[[], int], ordinal: int) -> Iterator[SourceDocument]:
        """One document at a time: damaged regions, and documents of a run that did not
        decode as a whole (``ordinal`` counts the entries before them)."""
        decode = bson.decode
        opts = CODEC_OPTIONS
        for start, data, problem in entries:
            ordinal += 1
            position = str(start + len(data))
            if problem is not None:
                if ordinal == 1:
                    before()  # damage right at a resume point: is it a real position?
                yield SourceDocument(
                    key=key_text(f"{file}@{start}"),
                    doc=UnreadableDocument(
                        raw=data, reason=f"{self.path}: {problem}", file=str(self.path),
                        offset=start, length=len(data),
                    ),
                    position=position,
                )
                continue
            try:
                doc = decode(data, opts)
            except _DECODE_ERRORS as exc:
                key = _raw_id_key(data)
                if key is None or ordinal == 1:
                    n = before() + ordinal
                    key = key or key_text(f"{name}#{n}")
                yield SourceDocument(
                    key=key,
                    doc=UnreadableDocument(
                        raw=data,
                        reason=f"{self.path}: the {len(data)}-byte document at byte offset "
                        f"{start} is not valid BSON: {exc}",
                        file=str(self.path), offset=start, length=len(data),
                    ),
                    position=position,
                )
            else:
                if "_id" in doc:
                    key = id_to_key(doc["_id"])
                else:
                    key = document_key(doc, name, before() + ordinal)
                yield SourceDocument(key, doc, position)

    def _entries_before(self, offset: int) -> int | None:
        """How many entries (documents and damaged regions) end at or before ``offset``;
        None if no entry ends exactly there (not a position of this file)."""
        if not self.compressed:
            hop = self._hop(offset)
            if hop is not None:  # sound up to there: headers alone tell
                return hop[0] if hop[1] == offset else None
        count = 0
        with _open(self.path) as f:
            for start, data, _ in self._segments(f, 0):
                end = start + len(data)
                if end > offset:
                    return None
                count += 1
                if end == offset:
                    return count
        return 0 if offset == 0 else None

    def _segments(self, f: IO[bytes], offset: int) -> Iterator[tuple[int, bytes, str | None]]:
        """``(offset, bytes, problem)`` of each document (problem None) or damaged region,
        in file order, starting at ``offset`` (where ``f`` stands)."""
        for piece in self._pieces(f, offset):
            if type(piece) is _Run:
                buf, base, start = piece.buf, piece.base, piece.start
                for end in piece.ends:
                    yield base + start, buf[start:end], None
                    start = end
            else:
                yield piece  # type: ignore[misc]

    def _pieces(self, f: IO[bytes], offset: int) -> Iterator[_Run | tuple[int, bytes, str]]:
        """The documents of the file as runs of sound documents (:class:`_Run`) and
        ``(offset, bytes, problem)`` damaged regions, in file order, from ``offset``."""
        # gzip: read1 hands over what decompresses before a cut-short stream fails, where
        # read would drop the whole last chunk.
        read = f.read1 if self.compressed else f.read  # type: ignore[attr-defined]
        cut = False

        def chunk_of(size: int) -> bytes:
            nonlocal cut
            if cut:
                return b""
            try:
                return read(size)
            except EOFError:
                cut = True
                return b""

        unpack_from = _INT32.unpack_from
        buf = b""
        base = offset  # file offset of buf[0]
        pos = 0
        eof = False
        while True:
            n = len(buf)
            problem = None
            length = 0
            run_start = pos
            ends: list[int] = []
            while pos + 4 <= n:
                (length,) = unpack_from(buf, pos)
                if length < 5 or length > MAX_DOCUMENT_BYTES:
                    problem = f"invalid BSON document length {length} at byte offset {base + pos}"
                    break
                end = pos + length
                if end + 4 > n and not (eof and end <= n):
                    break  # the next length header is needed to vouch for this one
                if buf[end - 1]:
                    problem = (f"the {length}-byte document at byte offset {base + pos} does "
                               "not end with a 0 byte (its length is wrong)")
                    break
                if end < n:
                    following = unpack_from(buf, end)[0] if end + 4 <= n else 0
                    if (following < 5 or following > MAX_DOCUMENT_BYTES) and not _decodes(
                            buf[pos:end]):
                        # Neither this document nor what follows makes sense: the length is
                        # wrong, and the document's real end lies elsewhere.
                        problem = (f"the {length}-byte document at byte offset {base + pos} "
                                   "is not valid BSON and no document follows it (its length "
                                   "is wrong)")
                        break
                ends.append(end)
                pos = end
            if ends:
                yield _Run(buf, base, run_start, ends)
            if problem is None:
                if not eof:
                    need = CHUNK_BYTES if pos + 4 > n else max(CHUNK_BYTES, pos + length + 4 - n)
                    chunk = chunk_of(need)
                    if chunk:
                        buf = buf[pos:] + chunk if pos < n else chunk
                        base += pos
                        pos = 0
                    else:
                        eof = True
                    continue
                if pos == n:
                    if cut:
                        self._warn(
                            f"{self.path}: the compressed file is cut short after "
                            f"{base + n:,} bytes of BSON; documents after that point are "
                            "missing from the dump"
                        )
                    return
                left = n - pos
                problem = (f"{left} stray bytes at byte offset {base + pos}" if left < 4 else
                           f"the document at byte offset {base + pos} declares {length} bytes "
                           f"but only {left} are left")
                if cut:
                    problem = f"the compressed file is cut short: {problem}"
            # A damaged region starts at pos: hold enough bytes to find where it ends.
            window = MAX_REGION_BYTES + MAX_DOCUMENT_BYTES + 8
            if not eof and n - pos < window:
                parts = [buf[pos:]]
                have = n - pos
                while have < window:
                    chunk = chunk_of(max(CHUNK_BYTES, window - have))
                    if not chunk:
                        eof = True
                        break
                    parts.append(chunk)
                    have += len(chunk)
                buf = b"".join(parts)
                base += pos
                pos = 0
                n = len(buf)
            end = _resync(buf, pos)
            if end == n and eof:
                tail = "the damaged region runs to the end of the file"
            else:
                tail = f"reading resumes at byte offset {base + end}"
            yield base + pos, buf[pos:end], (
                f"damaged region of {end - pos} bytes at byte offset {base + pos}: "
                f"{problem}; {tail}")
            pos = end


class _Run:
    """Sound documents one after the other in ``buf``: from ``start`` to each of ``ends``
    (offsets in ``buf``, which starts at file offset ``base``)."""

    __slots__ = ("base", "buf", "ends", "start")

    def __init__(self, buf: bytes, base: int, start: int, ends: list[int]) -> None:
        self.buf, self.base, self.start, self.ends = buf, base, start, ends

    def decode_all(self, opts: Any) -> list[Any] | None:
        """Every document decoded in one call, or None when one of them is not valid BSON
        (then each is decoded on its own, to tell which)."""
        try:
            docs = bson.decode_all(memoryview(self.buf)[self.start:self.ends[-1]], opts)
        except _DECODE_ERRORS:
            return None
        return docs if len(docs) == len(self.ends) else None

    def documents(self) -> Iterator[tuple[int, bytes, str | None]]:
        """``(offset, bytes, None)`` of each document."""
        start = self.start
        for end in self.ends:
            yield self.base + start, self.buf[start:end], None
            start = end


class RawRun:
    """Documents one after the other in a buffer, soundly framed but not decoded yet: the
    columnar path scans them as they are (``buf[start:ends[0]]``, ``buf[ends[0]:ends[1]]``,
    …); :meth:`document` and :meth:`decoded` give them as :meth:`MongodumpStream.read`
    does."""

    __slots__ = ("_before", "_ordinal", "_run", "_stream")

    def __init__(self, stream: MongodumpStream, run: _Run, ordinal: int,
                 before: Callable[[], int]) -> None:
        self._stream, self._run, self._ordinal, self._before = stream, run, ordinal, before

    @property
    def buf(self) -> bytes:
        return self._run.buf

    @property
    def base(self) -> int:
        """The file offset of ``buf[0]``."""
        return self._run.base

    @property
    def start(self) -> int:
        return self._run.start

    @property
    def ends(self) -> list[int]:
        return self._run.ends

    def position(self, i: int) -> str:
        """The position of the ``i``-th document (the byte offset just after it)."""
        return str(self._run.base + self._run.ends[i])

    def document(self, i: int) -> SourceDocument:
        """The ``i``-th document, decoded as :meth:`MongodumpStream.read` yields it."""
        run = self._run
        start = run.ends[i - 1] if i else run.start
        entry = (run.base + start, run.buf[start:run.ends[i]], None)
        s = self._stream
        return next(s._entries(iter((entry,)), s.name, s.path.name, self._before,
                               self._ordinal + i))

    def decoded(self) -> Iterator[SourceDocument]:
        """Every document of the run, decoded (all in one call when they all decode)."""
        run, s = self._run, self._stream
        docs = run.decode_all(CODEC_OPTIONS)
        if docs is None:
            yield from s._entries(run.documents(), s.name, s.path.name, self._before,
                                  self._ordinal)
            return
        base, ordinal, name = run.base, self._ordinal, s.name
        for doc, end in zip(docs, run.ends, strict=True):
            ordinal += 1
            if "_id" in doc:
                key = id_to_key(doc["_id"])
            else:
                key = document_key(doc, name, self._before() + ordinal)
            yield SourceDocument(key, doc, str(base + end))


def _decodes(data: bytes) -> bool:
    try:
        bson.decode(data, CODEC_OPTIONS)
    except _DECODE_ERRORS:
        return False
    return True


def _plausible(buf: bytes, q: int) -> bool:
    """Whether a sound document starts at ``buf[q]``, followed by the end or by a sound
    length, and by a sound document when it lies within reach (see below).

    The bytes of a damaged document hold shorter valid BSON: each subdocument, and the
    empty document ``05 00 00 00 00`` that ends every document whose last value is an
    int32 of 5. An empty document is never a start (a collection's documents have an
    ``_id``), and a subdocument is followed by the bytes of its parent, not by a document.
    """
    n = len(buf)
    if q + 4 > n:
        return False
    (length,) = _INT32.unpack_from(buf, q)
    end = q + length
    if length <= 5 or length > MAX_DOCUMENT_BYTES or end > n or buf[end - 1]:
        return False
    if not _decodes(buf[q:end]):
        return False
    # Only bytes within MAX_DOCUMENT_BYTES + 4 of q decide, so that the answer is the same
    # whichever offset reading started from.
    reach = q + MAX_DOCUMENT_BYTES + 4
    if end + 4 <= n:
        (following,) = _INT32.unpack_from(buf, end)
        if not 5 <= following <= MAX_DOCUMENT_BYTES:
            return False
        after = end + following
        if after <= reach:
            # the caller holds at least that much unless the file ends: a document that
            # would run past the end of the file does not follow a document
            return after <= n and not buf[after - 1] and _decodes(buf[end:after])
        return True
    return end == n


def _resync(buf: bytes, pos: int) -> int:
    """Where the damaged region starting at ``buf[pos]`` ends: the next plausible document
    start, else the end of the data (at most :data:`MAX_REGION_BYTES` on)."""
    n = len(buf)
    limit = min(n, pos + MAX_REGION_BYTES)
    for m in _CANDIDATE.finditer(buf, pos + 1, min(n, limit + 5)):
        q = m.start()
        if q > limit:
            break
        if _plausible(buf, q):
            return q
    return limit


MARK_EVERY = 4096
"""Documents between two marks of a file's framing: a count or a cut at any offset walks at
most this many length headers from the mark before it."""


class _Framing:
    """Where a ``.bson`` file's documents end, sampled: ``offsets[i]`` is the end of the
    ``counts[i]``-th document (from ``(0, 0)`` on, every :data:`MARK_EVERY` documents), and the
    length headers are sound up to offset ``sound`` (``size`` when the file is sound)."""

    def __init__(self, size: int, offsets: list[int], counts: list[int], sound: int) -> None:
        self.size, self.offsets, self.counts, self.sound = size, offsets, counts, sound


def _walk_framing(path: Path, size: int, pos: int, count: int, until: int,
                  marks: _Framing | None) -> tuple[int, int] | None:
    """Hop over the length headers of ``path`` from offset ``pos`` (after ``count``
    documents) to the first document end at or after ``until``: (documents, that end).
    None if a header is not sound (a length out of range, a document past the end of the
    file or not ending in 0). With ``marks``, every :data:`MARK_EVERY`-th end is added to
    it, and where the damage starts is its ``sound``.

    The file is read in large chunks and the headers are read out of them: no system call
    per document.
    """
    unpack = _INT32.unpack_from
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from exc
    with f:
        f.seek(pos)
        buf = b""
        base = pos  # buf holds the bytes from offset base on
        sound = True
        while pos < until:
            rel = pos - base
            if rel + 4 > len(buf):
                f.seek(pos)
                buf, base, rel = f.read(CHUNK_BYTES), pos, 0
                if len(buf) < 4:
                    sound = False
                    break
            (length,) = unpack(buf, rel)
            if length < 5 or length > MAX_DOCUMENT_BYTES or pos + length > size:
                sound = False
                break
            last = rel + length - 1
            if last < len(buf):
                if buf[last]:
                    sound = False
                    break
            else:
                f.seek(pos + length - 1)
                if f.read(1) != b"\0":
                    sound = False
                    break
                buf = b""  # the next header is read afresh
            pos += length
            count += 1
            if marks is not None and not count % MARK_EVERY:
                marks.offsets.append(pos)
                marks.counts.append(count)
    if not sound:
        if marks is not None:
            marks.sound = pos  # the documents before it are sound
        return None
    return count, pos


def _count_by_reading(f: IO[bytes], until: int | None) -> int | None:
    """Count documents of a stream that cannot seek, up to byte offset ``until``."""
    count = 0
    pos = 0
    buf = b""
    start = 0
    while until is None or pos < until:
        if start + 4 <= len(buf):
            (length,) = _INT32.unpack_from(buf, start)
            if length < 5 or length > MAX_DOCUMENT_BYTES:
                return None
            if start + length <= len(buf):
                if buf[start + length - 1]:
                    return None
                start += length
                pos += length
                count += 1
                continue
        chunk = f.read(CHUNK_BYTES)
        if not chunk:
            return count if start == len(buf) else None
        buf = buf[start:] + chunk
        start = 0
    return count


def _load_metadata(path: Path, warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The metadata file's object; None (and a warning) when it is unreadable or not one."""
    ignored = "ignored (the collection is read without it)"
    try:
        with _open(path) as f:
            data = f.read()
    except (SourceError, OSError, EOFError) as exc:
        warn(f"{path}: cannot be read ({exc}); {ignored}")
        return None
    try:
        value = ejson_loads(data)
    except (ValueError, TypeError, KeyError, OverflowError, BSONError, RecursionError) as exc:
        warn(f"{path}: not valid Extended JSON ({exc}); {ignored}")
        return None
    if not isinstance(value, dict):
        warn(f"{path}: expected a JSON object, found {type(value).__name__}; {ignored}")
        return None
    return value


def _strip(name: str, suffixes: tuple[str, ...]) -> str | None:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _collection_files(folder: Path) -> dict[str, Path]:
    """``<file stem>: path`` of the BSON files directly inside ``folder``."""
    found: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise SourceError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        stem = _strip(entry.name, _BSON_SUFFIXES)
        if stem is None or not entry.is_file():
            continue
        if stem in found:
            raise SourceError(
                f"{folder}: collection {stem!r} is present twice ({found[stem].name} and "
                f"{entry.name})",
                hint="keep only one of the two files",
            )
        found[stem] = entry
    return found


def _is_system(stem: str) -> bool:
    return unquote(stem).startswith("system.")


class MongodumpSource:
    """A ``mongodump`` output: the dump root (one database folder inside) or the database
    folder itself. ``path`` may also be a single ``.bson``/``.bson.gz`` file."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if not path.exists():
            raise SourceError(
                f"dump path {path} does not exist",
                hint="pass the mongodump output folder (e.g. dump/ or dump/<database>/)",
            )
        self.path = path
        self.warnings: list[str] = []
        """Problems worked around while reading (e.g. corrupt metadata files), one a line."""
        if path.is_file():
            stem = _strip(path.name, _BSON_SUFFIXES)
            if stem is None:
                raise SourceError(
                    f"{path} is not a .bson or .bson.gz file",
                    hint="pass the mongodump output folder (e.g. dump/ or dump/<database>/)",
                )
            self.database_path = path.parent
            files = {stem: path}
        else:
            self.database_path, files = self._find_database(path)
        self._streams: dict[str, MongodumpStream] = {}
        for stem, file in files.items():
            meta = self._metadata_path(stem)
            stream = MongodumpStream(unquote(stem), file, meta, self.warnings)
            named = (stream.metadata() or {}).get("collectionName") if meta else None
            if isinstance(named, str) and named:
                # mongodump shortens very long names in file names; metadata has the real one.
                stream.name = named
            if stream.name.startswith("system."):
                continue
            if stream.name in self._streams:
                raise SourceError(
                    f"{self.database_path}: two files hold collection {stream.name!r}: "
                    f"{self._streams[stream.name].path.name} and {file.name}",
                    hint="keep only one of the two files",
                )
            self._streams[stream.name] = stream

    def _metadata_path(self, stem: str) -> Path | None:
        for suffix in _METADATA_SUFFIXES:
            candidate = self.database_path / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    @staticmethod
    def _find_database(path: Path) -> tuple[Path, dict[str, Path]]:
        files = _collection_files(path)
        databases: dict[Path, dict[str, Path]] = {}
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            sub_files = _collection_files(sub)
            # Folders with only system collections (admin, config) are not candidates.
            if any(not _is_system(stem) for stem in sub_files):
                databases[sub] = sub_files
        # `mongodump --oplog` writes oplog.bson next to the database folders.
        if files and not (databases and set(files) == {"oplog"}):
            return path, files
        if len(databases) == 1:
            return next(iter(databases.items()))
        if not databases:
            raise SourceError(
                f"no .bson or .bson.gz files in {path} or its subfolders",
                hint="pass the folder mongodump wrote (e.g. dump/ or dump/<database>/); "
                "--archive files must be restored or re-dumped without --archive first",
            )
        names = ", ".join(p.name for p in databases)
        raise SourceError(
            f"{path} holds several database folders: {names}",
            hint=f"pass the folder of the database to read, e.g. {next(iter(databases))}",
        )

    def stream_names(self) -> list[str]:
        """Collection names in the dump (``system.*`` excluded), sorted."""
        return sorted(self._streams)

    def stream(self, name: str) -> MongodumpStream:
        """The stream of collection ``name``."""
        try:
            return self._streams[name]
        except KeyError:
            raise SourceError(
                f"collection {name!r} is not in the dump {self.database_path}; it holds: "
                f"{', '.join(self.stream_names()) or '(nothing)'}",
                hint="check the collection name in the mapping",
            ) from None

    def metadata(self, name: str) -> dict[str, Any] | None:
        """The parsed ``<name>.metadata.json`` (indexes, options), or None when absent."""
        return self.stream(name).metadata()

    def close(self) -> None:
        """Nothing to release: every read opens and closes its own file."""

    def __enter__(self) -> MongodumpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
