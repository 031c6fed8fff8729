"""Verification: prove a migration correct, independently of the loader.

``verify(m, dsn, options)`` reads the source once with its own simple reader, compares what
each document should have become with the target, layer by layer (reconciliation, content,
integrity, nulls and aggregates, schema, coverage), and returns a :class:`VerifyReport`.
"""

from docshift.verify.engine import verify
from docshift.verify.model import Check, Difference, StreamLedger, VerifyOptions, VerifyReport

__all__ = ["Check", "Difference", "StreamLedger", "VerifyOptions", "VerifyReport", "verify"]
