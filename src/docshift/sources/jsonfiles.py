"""Read ``mongoexport`` output and plain JSON files: one stream per file.

Two layouts are recognised from the first non-blank byte of each file:

* JSON Lines (``mongoexport``'s default, ``.jsonl``, ``.ndjson``): one document per line,
  blank lines skipped. A position is the byte offset just after the document's line.
* A JSON array (``mongoexport --jsonArray``): streamed element by element with a small
  scanner, never loaded whole. A position is the element's index (0-based).

Values may use MongoDB Extended JSON v2 (canonical or relaxed) or its legacy form; they are
decoded to the same bson types as a dump or a live server gives. ``.gz`` files are read
transparently; offsets are then offsets into the uncompressed text.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bson.errors import BSONError

from docshift.errors import SourceError
from docshift.sources.base import SourceDocument, UnreadableDocument, file_fingerprint, key_text
from docshift.sources.bsonvalues import ejson_loads, id_to_key

SUFFIXES = (".json", ".jsonl", ".ndjson")
"""File name endings read as JSON streams (each optionally followed by ``.gz``)."""

CHUNK_BYTES = 1024 * 1024
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_PARSE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, BSONError, RecursionError)
# A string (complete), a structural character, or a lone quote: an unterminated string that
# continues in the next chunk.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]|"', re.DOTALL)
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'


def _nested(levels: int) -> bytes:
    """A regex for a JSON object/array nested at most ``levels`` deep (brackets unchecked)."""
    inner = rb'[^"\[\]{}]++|' + _STRING
    pattern = b""
    for _ in range(levels):
        pattern = rb"[\[{](?:" + inner + (b"|" + pattern if pattern else b"") + rb")*+[\]}]"
    return pattern


# One whole array element in a single C-level match (all quantifiers possessive, so no
# backtracking); elements nested deeper, or cut by a chunk end, take the token scanner.
_ELEMENT = re.compile(rb'(?:[^"\[\]{},]++|' + _STRING + b"|" + _nested(8) + rb")*+")
_ELEMENT_END = b",]"
_RAW_ID = re.compile(
    rb'"_id"\s*:\s*(?:\{\s*"\$oid"\s*:\s*"([0-9a-fA-F]{24})"\s*\}|"((?:[^"\\]|\\.)*)"|(-?\d+)\b)'
)


def _stream_name(file_name: str) -> str | None:
    """``crm.users.json.gz`` → ``crm.users``; None when the suffix is not a JSON one."""
    base = file_name[:-3] if file_name.endswith(".gz") else file_name
    for suffix in SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return None


def _raw_id_key(raw: bytes) -> str | None:
    """Best-effort ``_id`` of a line that does not parse."""
    m = _RAW_ID.search(raw, 0, 4096)
    if m is None:
        return None
    value = next(g for g in m.groups() if g is not None)
    return key_text(value.decode("utf-8", "surrogateescape"))


def _parse_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc}"
    return f"invalid Extended JSON value: {exc}"


def _describe(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__} value")


class JsonStream:
    """One JSON file: JSON Lines or a JSON array of documents."""

    def __init__(self, name: str, path: Path, warnings: list[str] | None = None) -> None:
        self.name = name
        self.path = path
        self.compressed = path.name.endswith(".gz")
        self.warnings = [] if warnings is None else warnings
        """The source's warnings list (shared), to which this stream adds its own."""

    def fingerprint(self, start: str | None, end: str | None) -> dict[str, Any]:
        """Size, mtime and hashes of the bytes at the start of the file and before each
        boundary of the unit ``(start, end]``. Positions of arrays are element indices and
        ``.gz`` offsets are uncompressed ones: for those, the file's last bytes are hashed."""
        if self.compressed or self.layout() != "lines":
            return file_fingerprint(self.path, None)
        size = self.path.stat().st_size
        cuts = [int(p) for p in (start, end) if p is not None]
        return file_fingerprint(self.path, cuts + ([size] if end is None else []))

    def _open(self) -> IO[bytes]:
        try:
            if self.compressed:
                return gzip.GzipFile(self.path, "rb")
            return open(self.path, "rb", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise SourceError(
                f"cannot open {self.path}: {exc.strerror or exc}",
                hint="check that the file exists and is readable",
            ) from exc

    def _read_error(self, exc: Exception) -> SourceError:
        return SourceError(
            f"cannot read {self.path}: {exc}",
            hint="the file is damaged (for .gz: not gzip, or cut short); re-export it",
        )

    def layout(self) -> str:
        """``"array"`` or ``"lines"``, from the first non-blank byte of the file."""
        with self._open() as f:
            try:
                return self._detect(f)[0]
            except (OSError, EOFError) as exc:
                raise self._read_error(exc) from exc

    @staticmethod
    def _detect(f: IO[bytes]) -> tuple[str, int]:
        """Layout and the offset of the first non-blank byte (the file is left anywhere)."""
        offset = 0
        first = True
        while True:
            chunk = f.read(64 * 1024)
            if not chunk:
                return "lines", offset
            if first and chunk.startswith(_BOM):
                chunk = chunk[3:]
                offset = 3
            first = False
            stripped = chunk.lstrip(_WHITESPACE)
            if stripped:
                offset += len(chunk) - len(stripped)
                return ("array" if stripped[:1] == b"[" else "lines"), offset
            offset += len(chunk)

    def estimate_count(self) -> int | None:
        """Documents in the file: exact for small files, extrapolated from the first MiB for
        large ones; None for large ``.gz`` files."""
        with self._open() as f:
            try:
                kind, start = self._detect(f)
                f.seek(start)
                sample = f.read(CHUNK_BYTES)
                complete = not f.read(1)
            except (OSError, EOFError) as exc:
                raise self._read_error(exc) from exc
        if kind == "lines":
            lines = sample.split(b"\n")
            if not complete:
                lines.pop()  # may be cut short
            count = sum(1 for line in lines if line.strip())
            used = sum(len(line) + 1 for line in lines)
        else:
            count, used = _count_array_sample(sample)
        if complete:
            return count
        if self.compressed or count == 0 or used == 0:
            return None
        return round(self.path.stat().st_size * count / used)

    def split(self, parts: int) -> list[str]:
        """Positions cutting a JSON Lines file into ``parts`` ranges of about equal size.

        Each is the position of a real document (just after a non-blank line). Arrays and
        compressed files are not split.
        """
        if parts < 2 or self.path.name.endswith(".gz") or self.layout() != "lines":
            return []
        size = self.path.stat().st_size
        bounds: list[str] = []
        with open(self.path, "rb") as f:
            for k in range(1, parts):
                f.seek(max(size * k // parts - 1, 0))
                f.readline()  # finish the line the cut falls in
                line = f.readline()
                while line and not line.strip(_WHITESPACE):
                    line = f.readline()
                if not line:
                    break
                pos = f.tell()
                if pos < size and (not bounds or int(bounds[-1]) < pos):
                    bounds.append(str(pos))
        return bounds

    def past(self, position: str, end: str) -> bool:
        """Whether ``position`` lies beyond ``end`` (both positions of this stream)."""
        return int(position) > int(end)

    def read(self, after: str | None = None) -> Iterator[SourceDocument]:
        """Yield the file's documents in order, starting after position ``after``."""
        with self._open() as f:
            try:
                kind, start = self._detect(f)
                if kind == "array":
                    yield from self._read_array(f, start, self._parse_index(after))
                else:
                    f.seek(start)
                    if f.readline().strip(_WHITESPACE) == b"{":
                        raise SourceError(
                            f"{self.path} holds documents spread over several lines "
                            "(mongoexport --pretty); only one document per line, or a JSON "
                            "array, can be streamed",
                            hint="export again without --pretty (or with --jsonArray)",
                        )
                    yield from self._read_lines(f, self._parse_offset(after))
            except (OSError, EOFError) as exc:
                raise self._read_error(exc) from exc

    def _bad_position(self, after: str, what: str) -> SourceError:
        return SourceError(
            f"{self.path}: resume position {after!r} {what}",
            hint="the file changed since the checkpoint was written, or the checkpoint "
            "belongs to another source; reset the checkpoint",
        )

    def _parse_offset(self, after: str | None) -> int:
        if after is None:
            return 0
        if not (after.isascii() and after.isdigit()):
            raise self._bad_position(after, "is not a byte offset (the file is JSON Lines)")
        return int(after)

    def _parse_index(self, after: str | None) -> int:
        if after is None:
            return -1
        if not (after.isascii() and after.isdigit()):
            raise self._bad_position(after, "is not an element index (the file is a JSON array)")
        return int(after)

    # -- JSON Lines -----------------------------------------------------------------------

    def _read_lines(self, f: IO[bytes], offset: int) -> Iterator[SourceDocument]:
        name = self.name
        path = self.path
        f.seek(max(offset - 1, 0))
        if offset > 0:
            before = f.read(1)
            if before != b"\n" and (not before or f.read(1)):
                raise self._bad_position(
                    str(offset),
                    "is not the end of a line" if before else "is beyond the end of the file",
                )
        # Line numbers and ordinals before a resume point are only counted when a message or
        # a document without _id needs them.
        start = offset
        base: tuple[int, int] | None = (0, 0) if offset == 0 else None
        lineno = 0
        ordinal = 0
        for line in f:
            line_start = offset
            offset += len(line)
            lineno += 1
            data = line.strip(_WHITESPACE)
            if not data:
                continue
            ordinal += 1
            try:
                doc = ejson_loads(data)
            except _PARSE_ERRORS as exc:
                problem = _parse_problem(exc)
                doc = None
            else:
                problem = None if type(doc) is dict else f"{_describe(doc)}, not a document"
            if problem is None:
                if "_id" in doc:
                    key = id_to_key(doc["_id"])
                else:
                    if base is None:
                        base = self._lines_before(start)
                    key = key_text(f"{name}#{base[1] + ordinal}")
                yield SourceDocument(key, doc, str(offset))
                continue
            if base is None:
                base = self._lines_before(start)
            raw = line.rstrip(b"\r\n") if line.endswith(b"\n") else line
            yield SourceDocument(
                key=_raw_id_key(data) or key_text(f"{name}#{base[1] + ordinal}"),
                doc=UnreadableDocument(
                    raw=raw, reason=f"{path}:{base[0] + lineno}: {problem}",
                    file=str(path), offset=line_start, length=len(raw),
                ),
                position=str(offset),
            )

    def _lines_before(self, offset: int) -> tuple[int, int]:
        """(lines, non-blank lines) in the first ``offset`` bytes of the file."""
        lines = documents = 0
        with self._open() as f:
            remaining = offset
            for line in f:
                if remaining <= 0:
                    break
                remaining -= len(line)
                lines += 1
                if line.strip(_WHITESPACE):
                    documents += 1
        return lines, documents

    # -- JSON array -----------------------------------------------------------------------

    def _read_array(self, f: IO[bytes], start: int, after: int) -> Iterator[SourceDocument]:
        name = self.name
        path = self.path
        f.seek(start + 1)  # just after "["
        buf = b""
        buf_offset = start + 1  # file offset of buf[0]
        newlines = -1  # newlines before buf[0], counted only once a message needs it
        pos = 0  # start of the current element in buf
        index = -1
        match = _ELEMENT.match
        while True:
            m = match(buf, pos)
            end = m.end()
            if end >= len(buf) or buf[end] not in _ELEMENT_END:
                end = self._scan_element(buf, pos, buf_offset)
                if end < 0:
                    chunk = f.read(CHUNK_BYTES)
                    if not chunk:
                        yield from self._cut_off(buf, pos, buf_offset, index + 1, after,
                                                 newlines)
                        return
                    if newlines >= 0:
                        newlines += buf.count(b"\n", 0, pos)
                    buf_offset += pos
                    buf = buf[pos:] + chunk
                    pos = 0
                    continue
            closed = buf[end] == 0x5D  # ']'
            data = buf[pos:end].strip(_WHITESPACE)
            if closed and not data and index == -1:
                pass  # empty array
            elif (index := index + 1) > after:
                if data:
                    try:
                        doc = ejson_loads(data)
                    except _PARSE_ERRORS as exc:
                        problem = _parse_problem(exc)
                    else:
                        problem = None if type(doc) is dict else f"{_describe(doc)}, not a document"
                else:
                    problem = "empty element (stray comma)"
                if problem is None:
                    key = (id_to_key(doc["_id"]) if "_id" in doc
                           else key_text(f"{name}#{index + 1}"))
                    yield SourceDocument(key, doc, str(index))
                else:
                    if newlines < 0:
                        newlines = self._newlines_before(buf_offset)
                    segment = buf[pos:end]
                    first = pos + len(segment) - len(segment.lstrip(_WHITESPACE))
                    lineno = newlines + buf.count(b"\n", 0, first) + 1
                    yield SourceDocument(
                        key=_raw_id_key(data) or key_text(f"{name}#{index + 1}"),
                        doc=UnreadableDocument(
                            raw=data,
                            reason=f"{path}:{lineno}: array element {index}: {problem}",
                            file=str(path), offset=buf_offset + first, length=len(data),
                        ),
                        position=str(index),
                    )
            pos = end + 1
            if closed:
                self._check_trailing(f, buf, pos, buf_offset)
                if after > index:
                    raise self._bad_position(
                        str(after), f"is past the last element ({index}) of the JSON array"
                    )
                return

    def _cut_off(self, buf: bytes, pos: int, buf_offset: int, index: int, after: int,
                 newlines: int) -> Iterator[SourceDocument]:
        """The end of an array that stops before its closing ']': what is left of element
        ``index`` (from ``buf[pos]``) is unreadable; with nothing left, only a warning."""
        segment = buf[pos:]
        data = segment.strip(_WHITESPACE)
        end = buf_offset + len(buf)
        if not data:
            if after > index - 1:
                raise self._bad_position(
                    str(after), f"is past the last element ({index - 1}) of the JSON array")
            warning = (f"{self.path}: the JSON array ends without its closing ']' at byte "
                       f"{end:,}; the file may be cut short (every element before was read)")
            if warning not in self.warnings:
                self.warnings.append(warning)
            return
        if after >= index:
            if after > index:
                raise self._bad_position(
                    str(after), f"is past the last element ({index}) of the JSON array")
            return
        first = pos + len(segment) - len(segment.lstrip(_WHITESPACE))
        if newlines < 0:
            newlines = self._newlines_before(buf_offset)
        lineno = newlines + buf.count(b"\n", 0, first) + 1
        yield SourceDocument(
            key=_raw_id_key(data) or key_text(f"{self.name}#{index + 1}"),
            doc=UnreadableDocument(
                raw=data,
                reason=f"{self.path}:{lineno}: array element {index}: the JSON array ends "
                f"without its closing ']' at byte {end}, inside this element (the file is "
                "cut short)",
                file=str(self.path), offset=buf_offset + first, length=len(data),
            ),
            position=str(index),
        )

    def _scan_element(self, buf: bytes, pos: int, buf_offset: int) -> int:
        """Index of the ',' or ']' ending the element starting at ``pos``; -1 if ``buf`` ends
        first. The exact (slower) path, for deep nesting and elements cut by a chunk end."""
        depth = 1
        for m in _TOKEN.finditer(buf, pos):
            c = buf[m.start()]
            if c == 0x22:  # '"'
                if m.end() - m.start() == 1:
                    return -1  # string continues in the next chunk
            elif c == 0x7B or c == 0x5B:  # '{' '['
                depth += 1
            elif c == 0x2C:  # ','
                if depth == 1:
                    return m.start()
            else:  # '}' ']'
                depth -= 1
                if depth == 0:
                    if c == 0x5D:
                        return m.start()
                    raise SourceError(
                        f"{self.path}: unbalanced '}}' at byte {buf_offset + m.start()}; the "
                        "file is not a valid JSON array",
                        hint="repair or re-export the file",
                    )
        return -1

    def _newlines_before(self, offset: int) -> int:
        count = 0
        with self._open() as f:
            while offset > 0:
                chunk = f.read(min(CHUNK_BYTES, offset))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                offset -= len(chunk)
        return count

    def _check_trailing(self, f: IO[bytes], buf: bytes, end: int, buf_offset: int) -> None:
        tail = buf[end:].strip(_WHITESPACE)
        while not tail:
            chunk = f.read(CHUNK_BYTES)
            if not chunk:
                return
            tail = chunk.strip(_WHITESPACE)
        raise SourceError(
            f"{self.path}: unexpected data after the JSON array's closing ']' "
            f"(near byte {buf_offset + end}): {tail[:40]!r}",
            hint="the file should hold one JSON array or one document per line; "
            "split or re-export it",
        )


def _count_array_sample(sample: bytes) -> tuple[int, int]:
    """(complete elements, bytes they span) at the start of a JSON array sample."""
    stripped = sample.lstrip(_WHITESPACE)
    lead = len(sample) - len(stripped)
    depth = 0
    count = 0
    used = 0
    for m in _TOKEN.finditer(sample, lead):
        c = sample[m.start()]
        if c == 0x22:
            if m.end() - m.start() == 1:
                break
        elif c == 0x7B or c == 0x5B:
            depth += 1
        elif c == 0x7D or c == 0x5D:
            depth -= 1
            if depth == 1 and c == 0x7D:
                count += 1
                used = m.end()
            elif depth == 0:
                break
    return count, used


class JsonSource:
    """``mongoexport`` files or JSON Lines: one file, or a folder of them (not recursive)."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        self.path = path
        self.warnings: list[str] = []
        """Problems worked around while reading (e.g. a cut-short array), one a line."""
        self._streams: dict[str, JsonStream] = {}
        if path.is_file():
            name = _stream_name(path.name) or path.name.removesuffix(".gz").rsplit(".", 1)[0]
            self._streams[name] = JsonStream(name, path, self.warnings)
            return
        if not path.is_dir():
            raise SourceError(
                f"JSON source {path} does not exist",
                hint="pass a .json/.jsonl/.ndjson file (optionally .gz) or a folder of them",
            )
        try:
            entries = sorted(path.iterdir())
        except OSError as exc:
            raise SourceError(f"cannot list {path}: {exc.strerror or exc}") from exc
        for entry in entries:
            name = _stream_name(entry.name)
            if name is None or not entry.is_file():
                continue
            if name in self._streams:
                raise SourceError(
                    f"{path}: files {self._streams[name].path.name} and {entry.name} "
                    f"would both be stream {name!r}",
                    hint="keep only one of them, or move one to another folder",
                )
            self._streams[name] = JsonStream(name, entry, self.warnings)
        if not self._streams:
            raise SourceError(
                f"no .json, .jsonl or .ndjson files (optionally .gz) in {path}",
                hint="pass the folder mongoexport wrote to, or a single file",
            )

    def stream_names(self) -> list[str]:
        """File names without their JSON suffixes, sorted."""
        return sorted(self._streams)

    def stream(self, name: str) -> JsonStream:
        """The stream read from the file called ``name`` (+ a JSON suffix)."""
        try:
            return self._streams[name]
        except KeyError:
            raise SourceError(
                f"no JSON file for stream {name!r} in {self.path}; streams found: "
                f"{', '.join(self.stream_names())}",
                hint="check the stream name in the mapping (it is the file name without "
                ".json/.jsonl/.ndjson)",
            ) from None

    def close(self) -> None:
        """Nothing to release: every read opens and closes its own file."""

    def __enter__(self) -> JsonSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
