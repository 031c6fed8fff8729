"""The same question asked of a live MongoDB source: a ``find`` or an ``aggregate``.

A string that is exactly ``"{name}"`` becomes the parameter itself (an ObjectId stays an
ObjectId); ``{name}`` inside a longer string is replaced by its text. Extended JSON
(``{"$oid": "…"}``, ``{"$date": "…"}``) is read as the BSON value it spells.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bson import json_util

from docshift.bench.queries import PLACEHOLDER, MongoAccess


@dataclass
class MongoResult:
    """What one run of a MongoDB access gave."""

    documents: int
    """Documents the server returned."""


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """``value`` with its ``{name}`` placeholders replaced by ``params``."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in params:
            return params[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), value)
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith("$") and \
                next(iter(value)) in ("$oid", "$date", "$numberLong", "$numberDecimal", "$uuid"):
            return json_util.loads(json.dumps({k: substitute(v, params)
                                               for k, v in value.items()}, default=str))
        return {k: substitute(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    return value


def run_mongo(database: Any, access: MongoAccess, params: dict[str, Any]) -> MongoResult:
    """Run the access once on ``database`` (a pymongo Database) and read every document."""
    if access.find is not None:
        cursor = database[access.find].find(substitute(access.filter, params),
                                            access.projection)
        if access.sort:
            cursor = cursor.sort(list(access.sort.items()))
        if access.limit:
            cursor = cursor.limit(access.limit)
        return MongoResult(sum(1 for _ in cursor))
    assert access.aggregate is not None and access.pipeline is not None
    cursor = database[access.aggregate].aggregate(substitute(access.pipeline, params))
    return MongoResult(sum(1 for _ in cursor))
