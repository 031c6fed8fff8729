"""The mapping file: YAML → validated :class:`Mapping`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docshift.spec.load import load_mapping, parse_mapping
    from docshift.spec.model import ColumnSpec, FeedSpec, IndexSpec, Mapping, TableSpec

# Loaded on first use: a worker process unpickles a Mapping (it needs docshift.spec.model)
# but never reads a mapping file, so it does not pay for YAML and the mapping checks.
_WHERE = {
    **dict.fromkeys(["load_mapping", "parse_mapping"], "docshift.spec.load"),
    **dict.fromkeys(["ColumnSpec", "FeedSpec", "IndexSpec", "Mapping", "TableSpec"],
                    "docshift.spec.model"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'docshift.spec' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


__all__ = ["ColumnSpec", "FeedSpec", "IndexSpec", "Mapping", "TableSpec", "load_mapping",
           "parse_mapping"]
