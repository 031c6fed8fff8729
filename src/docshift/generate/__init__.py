"""Deterministic synthetic datasets: a MongoDB CRM and a key-value gifting platform.

Each generator streams its documents to the destination and writes a :class:`Manifest`
that says exactly what ``docshift run`` with the matching example mapping must produce.
"""

from docshift.generate.crm import LARGE_SCALE, generate_crm
from docshift.generate.kv import generate_kv
from docshift.generate.manifest import ExpectedReject, Manifest

__all__ = ["LARGE_SCALE", "ExpectedReject", "Manifest", "generate_crm", "generate_kv"]
