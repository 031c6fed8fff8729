"""Connection strings without their secrets: every DSN or URI is masked before it is shown.

Used by every message, summary and report that names a database, and by the run's identity
(a run resumes after a password change, because the password is not part of it).
"""

from __future__ import annotations

import re

from psycopg.conninfo import conninfo_to_dict, make_conninfo

MASK = "***"

_URI_PASSWORD = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/]*):[^@/]*@")


def mask(dsn: str | None) -> str:
    """``dsn`` (a PostgreSQL conninfo/URI or a mongodb:// URI) with any password masked."""
    if not dsn:
        return ""
    if "://" in dsn and not dsn.startswith(("postgres://", "postgresql://")):
        return _URI_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", dsn)
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "<dsn>"
    if params.get("password"):
        params["password"] = MASK
    return make_conninfo(**params)
