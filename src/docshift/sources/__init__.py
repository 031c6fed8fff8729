"""Sources: one module per kind, each yielding documents in a stable order with a position."""

from __future__ import annotations

from pathlib import Path

from docshift.sources.base import Source, SourceDocument, Stream, UnreadableDocument
from docshift.spec.model import SourceSpec

__all__ = ["Source", "SourceDocument", "Stream", "UnreadableDocument", "open_source"]


def open_source(spec: SourceSpec, target_dsn: str | None = None) -> Source:
    """Open the source a mapping describes. A key-value source without a DSN reads the target."""
    if spec.kind == "mongodump":
        from docshift.sources.mongodump import MongodumpSource

        return MongodumpSource(Path(spec.path or "."))
    if spec.kind == "json":
        from docshift.sources.jsonfiles import JsonSource

        return JsonSource(Path(spec.path or "."))
    if spec.kind == "mongodb":
        from docshift.sources.mongodb import MongoSource

        return MongoSource(spec.uri, spec.database or "")
    from docshift.sources.postgres_kv import KvSource

    dsn = spec.dsn or target_dsn
    assert dsn is not None
    return KvSource(dsn, spec.table or "", key_column=spec.key_column,
                    value_column=spec.value_column, schema=spec.schema_)
