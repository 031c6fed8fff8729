"""docshift: move MongoDB or key-value data into normalized PostgreSQL, resumably.

The library API mirrors the command line::

    from docshift import load_mapping, migrate, RunOptions
    m = load_mapping("docshift.yaml")
    result = migrate(m, dsn, RunOptions(workers=2))
"""

from docshift.errors import (
    ConversionError,
    DocshiftError,
    MappingError,
    RunAborted,
    SourceError,
    TargetError,
)
from docshift.generate import generate_crm, generate_kv
from docshift.run.migrate import Interrupted, RunOptions, RunResult, migrate
from docshift.spec import Mapping, load_mapping, parse_mapping

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "DocshiftError",
    "Interrupted",
    "Mapping",
    "MappingError",
    "RunAborted",
    "RunOptions",
    "RunResult",
    "SourceError",
    "TargetError",
    "__version__",
    "generate_crm",
    "generate_kv",
    "load_mapping",
    "migrate",
    "parse_mapping",
]
