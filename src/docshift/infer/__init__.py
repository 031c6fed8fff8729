"""Schema inference: sample a source and propose a complete mapping file.

Data flows left to right: :mod:`~docshift.infer.detect` (which source) →
:mod:`~docshift.infer.sample` (one read per stream: a spread sample, every id, every value of
key-like fields) → :mod:`~docshift.infer.fields` (types) and
:mod:`~docshift.infer.references` (references by value) → :mod:`~docshift.infer.documents`
(tables from collections) or :mod:`~docshift.infer.keyvalue` (tables from key patterns) →
:mod:`~docshift.infer.render` (the commented YAML). Sources are only read.
"""

from __future__ import annotations

from dataclasses import dataclass

from docshift.infer.detect import detect_kind, source_block
from docshift.infer.model import Proposal
from docshift.infer.render import render
from docshift.infer.sample import DEFAULT_SAMPLE, Progress, StreamSample, sample_stream
from docshift.sources import open_source

__all__ = ["DEFAULT_SAMPLE", "InferOptions", "Proposal", "detect_kind", "infer_mapping",
           "propose", "render"]


@dataclass
class InferOptions:
    """How to infer: the sample size per stream and how arrays of scalars become columns."""

    sample: int = DEFAULT_SAMPLE
    arrays: str = "child"
    """``child``: a child table per array of scalars; ``inline``: a ``T[]`` column."""
    kind: str | None = None
    database: str | None = None
    table: str | None = None


def propose(source: str, opts: InferOptions | None = None,
            progress: Progress | None = None) -> Proposal:
    """Read a sample of ``source`` (a path, a mongodb:// URI or a DSN) and propose a mapping."""
    opts = opts or InferOptions()
    kind = opts.kind or detect_kind(source)
    spec, block, notes = source_block(kind, source, opts.database, opts.table)
    src = open_source(spec)
    try:
        if kind == "postgres_kv":
            from docshift.infer.keyvalue import propose_key_value

            stream = src.stream(src.stream_names()[0])
            p = propose_key_value(stream, opts.sample, opts.arrays, progress)
        else:
            from docshift.infer.documents import propose_collections

            samples: dict[str, StreamSample] = {}
            for name in src.stream_names():
                samples[name] = sample_stream(src.stream(name), opts.sample, progress)
            tables, naming = propose_collections(samples, opts.arrays)
            p = Proposal(source={}, tables=tables, naming=naming)
    finally:
        src.close()
    p.source, p.source_notes = block, notes
    return p


def infer_mapping(source: str, opts: InferOptions | None = None,
                  progress: Progress | None = None) -> str:
    """The proposed mapping file for ``source``, as YAML text."""
    return render(propose(source, opts, progress))
