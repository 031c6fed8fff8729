"""The mapping file: YAML → validated :class:`Mapping`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from docshift._lazy import lazy_attributes

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


__getattr__ = lazy_attributes(__name__, _WHERE)


__all__ = ["ColumnSpec", "FeedSpec", "IndexSpec", "Mapping", "TableSpec", "load_mapping",
           "parse_mapping"]
