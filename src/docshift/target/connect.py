"""Which database to load: the mapping's DSN, or the embedded server."""

from __future__ import annotations

import os

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from docshift.dsn import mask
from docshift.spec.model import Mapping

DSN_ENV = "DOCSHIFT_DSN"
"""Environment variable that overrides the mapping's target DSN (handy in CI and tests)."""


def target_dsn(m: Mapping, override: str | None = None) -> str:
    """The target DSN: ``override``, $DOCSHIFT_DSN, the mapping's, or the embedded server's."""
    dsn = override or os.environ.get(DSN_ENV) or m.target.dsn
    if dsn:
        return dsn
    from docshift.target.embedded import server_dsn

    return server_dsn()


def redact(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (DSNs are never printed with secrets)."""
    return mask(dsn)


APPLICATION_NAME = "docshift"
"""Shown in pg_stat_activity for every connection docshift opens to the target."""


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection to ``dsn``, named ``docshift`` unless the DSN names it."""
    params = conninfo_to_dict(dsn)
    params.setdefault("application_name", APPLICATION_NAME)
    return psycopg.connect(make_conninfo(**params), autocommit=True)


def recreate_database(server: str, name: str) -> str:
    """Drop (if it exists) and create database ``name`` on ``server``; return its DSN."""
    with psycopg.connect(server, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server)
    params["dbname"] = name
    return make_conninfo(**params)
