"""Read a ``mongodump`` directory: one stream per ``<collection>.bson`` (or ``.bson.gz``) file.

A BSON file is a plain concatenation of documents, each starting with its own length (int32,
little endian). The reader streams it in large chunks and decodes one document at a time, so
memory stays bounded whatever the file size. A document's position is the byte offset just
after it in the uncompressed stream; resuming seeks there.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import bson
from bson.errors import BSONError

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument
from docshift.sources.bsonvalues import (
    CODEC_OPTIONS,
    RAW_LIMIT,
    document_key,
    ejson_loads,
    id_to_key,
    truncate_raw,
)

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 + 16 * 1024
"""Largest BSON document length accepted: MongoDB's 16 MiB limit plus its internal slack."""

CHUNK_BYTES = 1024 * 1024
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
                return data[13 : 13 + size - 1].decode("utf-8", "replace")
            return None
        if kind in (0x10, 0x12):
            fmt = "<i" if kind == 0x10 else "<q"
            return id_to_key(struct.unpack_from(fmt, data, 9)[0])
    except (struct.error, IndexError):
        return None
    return None


class MongodumpStream:
    """One collection of a dump: a ``.bson`` or ``.bson.gz`` file."""

    def __init__(self, name: str, path: Path, metadata_path: Path | None = None) -> None:
        self.name = name
        self.path = path
        self.metadata_path = metadata_path
        self.compressed = path.name.endswith(".gz")
        self._count: int | None = None
        self._range_counts: dict[tuple[str | None, str | None], int] = {}
        self._metadata: dict[str, Any] | None = None
        self._metadata_loaded = False

    def metadata(self) -> dict[str, Any] | None:
        """The parsed ``.metadata.json`` (indexes, options), or None if the dump has none."""
        if not self._metadata_loaded:
            self._metadata = _load_metadata(self.metadata_path) if self.metadata_path else None
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
        """Documents before byte offset ``until`` (all when None); None if the file is corrupt."""
        if self.compressed:
            # gzip cannot jump; read through instead, which is what a seek would do anyway.
            with _open(self.path) as f:
                return _count_by_reading(f, until)
        try:
            size = self.path.stat().st_size
            f = open(self.path, "rb", buffering=64 * 1024)  # noqa: SIM115
        except OSError as exc:
            raise SourceError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        with f:
            end = size if until is None else min(until, size)
            count = 0
            pos = 0
            while pos + 4 <= end:
                # Seeking inside the read buffer costs no system call.
                f.seek(pos)
                (length,) = _INT32.unpack(f.read(4))
                if length < 5 or length > MAX_DOCUMENT_BYTES or pos + length > size:
                    return None
                pos += length
                count += 1
        return count

    def split(self, parts: int) -> list[str]:
        """Positions cutting the file into ``parts`` ranges of about equal size.

        Each is the position of a real document (the offset just after it), so a range
        ``(start, end]`` ends exactly at a document. Compressed files are not split: gzip
        cannot jump, so every range would decompress everything before it.
        """
        if self.compressed or parts < 2:
            return []
        size = self.path.stat().st_size
        targets = [size * k // parts for k in range(1, parts)]
        bounds: list[str] = []
        counts: list[int] = []
        n = 0
        with open(self.path, "rb", buffering=64 * 1024) as f:
            pos = 0
            while pos + 4 <= size:
                f.seek(pos)
                (length,) = _INT32.unpack(f.read(4))
                if length < 5 or length > MAX_DOCUMENT_BYTES:
                    return []  # corrupt: reading will report it; do not split
                pos += length
                n += 1
                if targets and pos >= targets[0] and pos < size:
                    bounds.append(str(pos))
                    counts.append(n)
                    n = 0
                    while targets and targets[0] <= pos:
                        targets.pop(0)
        counts.append(n)
        # remember the range sizes: count_between would otherwise hop through the file again
        edges = [None, *bounds, None]
        self._range_counts.update(zip(zip(edges, edges[1:], strict=False), counts, strict=True))
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

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield the documents in file order, starting after byte offset ``after``."""
        offset = _parse_offset(self.path, after)
        with _open(self.path) as f:
            try:
                self._seek(f, offset)
                yield from self._read_from(f, offset)
            except (OSError, EOFError) as exc:
                raise SourceError(
                    f"cannot read {self.path}: {exc}",
                    hint="the file is damaged (for .bson.gz: not gzip, or cut short); "
                    "re-create the dump",
                ) from exc

    def _seek(self, f: IO[bytes], offset: int) -> None:
        if offset == 0:
            return
        if self.compressed:
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

    def _read_from(self, f: IO[bytes], offset: int) -> Iterator[SourceDocument]:
        name = self.name
        decode = bson.decode
        unpack_from = _INT32.unpack_from
        opts = CODEC_OPTIONS
        # Ordinals only matter for documents without _id; after a resume the count of the
        # documents before `offset` is computed lazily, the first time one is needed.
        ordinal_base: int | None = 0 if offset == 0 else None
        ordinal = 0
        buf = b""
        base = offset  # file offset of buf[0]
        pos = 0
        need = CHUNK_BYTES
        while True:
            chunk = f.read(need)
            if not chunk:
                if pos < len(buf):
                    self._truncated(base + pos, buf[pos:])
                return
            buf = buf[pos:] + chunk if pos < len(buf) else chunk
            base += pos
            pos = 0
            n = len(buf)
            need = CHUNK_BYTES
            while pos + 4 <= n:
                (length,) = unpack_from(buf, pos)
                if length < 5 or length > MAX_DOCUMENT_BYTES:
                    raise SourceError(
                        f"{self.path}: invalid BSON document length {length} at byte offset "
                        f"{base + pos}; the file is corrupt or not a mongodump .bson file",
                        hint="documents before this offset were read; repair or re-create "
                        "the dump to read the rest",
                    )
                end = pos + length
                if end > n:
                    need = max(CHUNK_BYTES, end - n)
                    break
                ordinal += 1
                data = buf[pos:end]
                position = str(base + end)
                try:
                    doc = decode(data, opts)
                except _DECODE_ERRORS as exc:
                    if ordinal_base is None:
                        ordinal_base = self._count_documents(offset) or 0
                    key = _raw_id_key(data) or f"{name}#{ordinal_base + ordinal}"
                    yield SourceDocument(
                        key=key,
                        doc=UnreadableDocument(
                            raw=truncate_raw(data[: RAW_LIMIT // 2 + 1].hex()),
                            reason=f"{self.path}: the {length}-byte document at byte offset "
                            f"{base + pos} is not valid BSON: {exc}",
                        ),
                        position=position,
                    )
                else:
                    if "_id" in doc:
                        key = id_to_key(doc["_id"])
                    else:
                        if ordinal_base is None:
                            ordinal_base = self._count_documents(offset) or 0
                        key = document_key(doc, name, ordinal_base + ordinal)
                    yield SourceDocument(key, doc, position)
                pos = end

    def _truncated(self, offset: int, tail: bytes) -> None:
        if len(tail) < 4:
            detail = f"{len(tail)} stray bytes"
        else:
            (length,) = _INT32.unpack_from(tail, 0)
            detail = f"a document declaring {length} bytes but only {len(tail)} present"
        raise SourceError(
            f"{self.path}: truncated at byte offset {offset}: the file ends inside "
            f"{detail}",
            hint="the dump is incomplete (all documents before this offset were read); "
            "re-run mongodump to get the rest",
        )


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
                start += length
                pos += length
                count += 1
                continue
        chunk = f.read(CHUNK_BYTES)
        if not chunk:
            break
        buf = buf[start:] + chunk
        start = 0
    return count


def _load_metadata(path: Path) -> dict[str, Any] | None:
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from exc
    try:
        value = ejson_loads(data)
    except (ValueError, TypeError, BSONError) as exc:
        raise SourceError(
            f"{path}: not valid Extended JSON ({exc})",
            hint="the metadata file is corrupt; delete it to read the collection without it",
        ) from exc
    if not isinstance(value, dict):
        raise SourceError(
            f"{path}: expected a JSON object, found {type(value).__name__}",
            hint="the metadata file is corrupt; delete it to read the collection without it",
        )
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
            stream = MongodumpStream(unquote(stem), file, meta)
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
