"""docshift: move MongoDB or key-value data into normalized PostgreSQL, resumably.

The library API mirrors the command line::

    from docshift import load_mapping, migrate, rollback, verify, RunOptions, VerifyOptions
    m = load_mapping("docshift.yaml")
    result = migrate(m, dsn, RunOptions(workers=2))
    report = verify(m, dsn, VerifyOptions(full=True))
    rollback(m, dsn)   # undo exactly what the migration loaded
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from docshift._lazy import lazy_attributes

if TYPE_CHECKING:
    from docshift.errors import (
        ConversionError,
        DocshiftError,
        LeaseLost,
        MappingError,
        RunAborted,
        SourceError,
        TargetError,
        UsageError,
    )
    from docshift.generate import generate_crm, generate_kv
    from docshift.run.migrate import Interrupted, RunOptions, RunResult, migrate
    from docshift.run.rollback import rollback
    from docshift.spec import Mapping, load_mapping, parse_mapping
    from docshift.verify import VerifyOptions, VerifyReport, verify

# Loaded on first use: importing ``docshift`` (as every worker process and every command
# does) stays cheap, and a command pays only for the parts it uses.
_WHERE = {
    **dict.fromkeys(["ConversionError", "DocshiftError", "LeaseLost", "MappingError",
                     "RunAborted", "SourceError", "TargetError", "UsageError"],
                    "docshift.errors"),
    **dict.fromkeys(["generate_crm", "generate_kv"], "docshift.generate"),
    **dict.fromkeys(["Interrupted", "RunOptions", "RunResult", "migrate"],
                    "docshift.run.migrate"),
    "rollback": "docshift.run.rollback",
    **dict.fromkeys(["Mapping", "load_mapping", "parse_mapping"], "docshift.spec"),
    **dict.fromkeys(["VerifyOptions", "VerifyReport", "verify"], "docshift.verify"),
}


__getattr__ = lazy_attributes(__name__, _WHERE)


__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "DocshiftError",
    "Interrupted",
    "LeaseLost",
    "Mapping",
    "MappingError",
    "RunAborted",
    "RunOptions",
    "RunResult",
    "SourceError",
    "TargetError",
    "UsageError",
    "VerifyOptions",
    "VerifyReport",
    "__version__",
    "generate_crm",
    "generate_kv",
    "load_mapping",
    "migrate",
    "parse_mapping",
    "rollback",
    "verify",
]
