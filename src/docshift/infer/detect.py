"""Which kind of source a SOURCE argument is, and the ``source`` block that reads it."""

from __future__ import annotations

import re
from pathlib import Path

from docshift.dsn import secrets
from docshift.errors import SourceError
from docshift.spec.model import SourceSpec

KINDS = ("mongodump", "json", "mongodb", "postgres_kv")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_BSON_SUFFIXES = (".bson", ".bson.gz")


def detect_kind(source: str) -> str:
    """``mongodb`` for a mongodb:// URI, ``postgres_kv`` for a PostgreSQL DSN, and for a path
    ``mongodump`` (``.bson`` files) or ``json`` (``.json``/``.jsonl`` files)."""
    if source.startswith(("mongodb://", "mongodb+srv://")):
        return "mongodb"
    if source.startswith(("postgres://", "postgresql://")) or re.search(
            r"(^|\s)(dbname|host|user)=", source):
        return "postgres_kv"
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{source}: no such file or folder",
                          hint="Give a mongodump folder, an export file or folder, a "
                               "mongodb:// URI or a PostgreSQL DSN (or --kind).")
    if path.is_file():
        name = path.name.lower()
        if name.endswith(_BSON_SUFFIXES):
            return "mongodump"
        if name.endswith(_JSON_SUFFIXES):
            return "json"
    else:
        files = [p.name.lower() for p in path.rglob("*") if p.is_file()]
        if any(f.endswith(_BSON_SUFFIXES) for f in files):
            return "mongodump"
        if any(f.endswith(_JSON_SUFFIXES) for f in files):
            return "json"
    raise SourceError(f"{source}: neither .bson nor .json/.jsonl files found here",
                      hint="Say what it is with --kind mongodump|json|mongodb|postgres_kv.")


def without_secret(dsn: str) -> str:
    """``dsn`` without its password, for writing into a file."""
    out = dsn
    for s in secrets(dsn):
        out = out.replace(f":{s}@", "@")
    return re.sub(r"(^|\s)(password|passwd|pwd)=\S+", "", out).strip()


def source_block(kind: str, source: str, database: str | None, table: str | None
                 ) -> tuple[SourceSpec, dict[str, str], list[str]]:
    """The spec to read from, the ``source`` block to write (no password in it), and notes."""
    notes: list[str] = []
    if kind in ("mongodump", "json"):
        spec = SourceSpec(kind=kind, path=source)  # type: ignore[arg-type]
        return spec, {"kind": kind, "path": source}, notes
    if kind == "mongodb":
        db = database or _uri_database(source)
        if not db:
            raise SourceError("a mongodb source needs a database",
                              hint="Add --database DB (or put it in the URI: "
                                   "mongodb://host/DB).")
        spec = SourceSpec(kind="mongodb", uri=source, database=db)
        uri = without_secret(source)
        block = {"kind": "mongodb", "uri": uri, "database": db}
        if uri != source:
            block["uri"] = "${MONGO_URI:-" + uri + "}"
            notes.append("the password is not written here: set $MONGO_URI to the full URI")
        return spec, block, notes
    if kind != "postgres_kv":
        raise SourceError(f"unknown source kind {kind!r}", hint="Use one of " + ", ".join(KINDS))
    if not table:
        table = find_kv_table(source)
    spec = SourceSpec(kind="postgres_kv", dsn=source, table=table)
    dsn = without_secret(source)
    block = {"kind": "postgres_kv", "table": table, "dsn": dsn}
    if dsn != source:
        block["dsn"] = "${KV_DSN:-" + dsn + "}"
        notes.append("the password is not written here: set $KV_DSN to the full DSN "
                     "(or use PGPASSWORD / ~/.pgpass)")
    return spec, block, notes


def _uri_database(uri: str) -> str | None:
    m = re.match(r"^mongodb(\+srv)?://[^/]+/([^?]+)", uri)
    return m.group(2) if m else None


def find_kv_table(dsn: str) -> str:
    """The one table with ``key`` and ``value`` columns in the database, if there is one."""
    from docshift.target.connect import connect

    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.table_name FROM information_schema.columns c "
            "WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema', 'docshift') "
            "AND c.column_name IN ('key', 'value') "
            "GROUP BY c.table_schema, c.table_name HAVING count(*) = 2 ORDER BY 1").fetchall()
    names = [r[0] for r in rows]
    if len(names) == 1:
        return names[0]
    found = ", ".join(names) if names else "none"
    raise SourceError(f"which key-value table? tables with key and value columns: {found}",
                      hint="Name it with --table KV_TABLE.")
