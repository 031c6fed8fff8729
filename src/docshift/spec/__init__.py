"""The mapping file: YAML → validated :class:`Mapping`."""

from docshift.spec.load import load_mapping, parse_mapping
from docshift.spec.model import ColumnSpec, FeedSpec, IndexSpec, Mapping, TableSpec

__all__ = ["ColumnSpec", "FeedSpec", "IndexSpec", "Mapping", "TableSpec", "load_mapping",
           "parse_mapping"]
