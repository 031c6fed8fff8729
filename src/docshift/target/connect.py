"""Which database to load: the mapping's DSN, or the embedded server."""

from __future__ import annotations

import os
import re
import shlex

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from docshift.dsn import mask, parse_dsn, scrub
from docshift.errors import TargetError
from docshift.spec.model import Mapping

DSN_ENV = "DOCSHIFT_DSN"
"""Environment variable that overrides the mapping's target DSN (handy in CI and tests)."""

UNREACHABLE_HINT = ("Check the DSN (host, port, database, user, password) and that the server "
                    "is running; docshift resumes from its last checkpoint on re-run.")


def target_dsn(m: Mapping, override: str | None = None, *, start: bool = True) -> str:
    """The target DSN: ``override``, $DOCSHIFT_DSN, the mapping's, or the embedded server's.

    A given DSN is checked here, so that a malformed one is an error naming where it came
    from (with the password masked) before anything tries to connect with it. With
    ``start=False`` (commands that only read docshift's state) the embedded server is never
    started: when it is not running, there is no state to read, and that is the error.
    """
    given = given_dsn(m, override)
    if given is not None:
        where, dsn = given
        parse_dsn(dsn, what=f"the target DSN ({where})")
        return dsn
    from docshift.target.embedded import running_server_dsn, server_dsn

    if start:
        return server_dsn()
    running = running_server_dsn()
    if running is None:
        raise TargetError(
            "no target DSN is set and the embedded PostgreSQL server (./.docshift/) is not "
            "running, so there is no migration to look at",
            hint="Give the target with --dsn or $DOCSHIFT_DSN, or run `docshift run` (which "
            "starts the embedded server) first.")
    return running


def given_dsn(m: Mapping, override: str | None = None) -> tuple[str, str] | None:
    """Where the target DSN is given and the DSN, unchecked: ``override`` (--dsn),
    $DOCSHIFT_DSN or the mapping's ``target.dsn``; ``None`` when the embedded server is the
    target."""
    given = [("--dsn", override), (f"${DSN_ENV}", os.environ.get(DSN_ENV)),
             (f"target.dsn in {m.path}", m.target.dsn)]
    return next(((where, dsn) for where, dsn in given if dsn), None)


def redact(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (DSNs are never printed with secrets)."""
    return mask(dsn)


APPLICATION_NAME = "docshift"
"""Shown in pg_stat_activity for every connection docshift opens to the target."""


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection to ``dsn``, named ``docshift`` unless the DSN names it.

    Raises TargetError (password masked) when the DSN is malformed or the server cannot be
    reached.
    """
    params = parse_dsn(dsn)
    params.setdefault("application_name", APPLICATION_NAME)
    try:
        return psycopg.connect(make_conninfo(**params), autocommit=True)
    except psycopg.OperationalError as exc:
        missing = missing_database(dsn, exc)
        if missing is not None:
            raise missing from None
        # the DSN, then a space: a password=*** at its end must not swallow what follows
        raise TargetError(f"cannot reach the target database {mask(dsn)} "
                          f"({scrub(one_line(str(exc)), dsn)})", hint=UNREACHABLE_HINT
                          ) from None


_ATTEMPTS = "Multiple connection attempts failed. All failures were:"
_ATTEMPT = re.compile(r"^- host: .*?: (?=connection )")
_FAILED = re.compile(r"^connection (?:failed|is bad): (?=connection )")


def one_line(message: str) -> str:
    """A driver's connection error on one line: libpq puts its advice on a line of its own
    and psycopg adds a block naming each address it tried, so the lines are joined with
    ``; ``, each reason given once, without the redundant ``connection failed:``."""
    head, _, attempts = message.partition(_ATTEMPTS)
    parts: list[str] = []
    for chunk in [head, *re.split(r"\n(?=- host: )", attempts)]:
        chunk = _FAILED.sub("", _ATTEMPT.sub("", chunk.strip()))
        for line in chunk.splitlines():
            line = _FAILED.sub("", line.strip())
            if parts and line[:1].isupper() and line[1:2].islower():
                line = line[0].lower() + line[1:]  # a sentence that goes on the line before
            if line and line not in parts:
                parts.append(line)
    return "; ".join(parts)


_NO_DATABASE = re.compile(r'database "(?P<name>(?:[^"]|"")+)" does not exist')


def missing_database(dsn: str, exc: BaseException) -> TargetError | None:
    """The error for ``exc``, a failed connection to ``dsn``, when the server said that the
    database does not exist: naming it, with the ``createdb`` command that creates it (host,
    port and user from the DSN; never its password). ``None`` for any other failure."""
    found = _NO_DATABASE.search(str(exc))
    if found is None:
        return None
    name = found["name"].replace('""', '"')
    try:
        params = parse_dsn(dsn)
    except TargetError:
        return None
    if params.get("dbname", params.get("user", name)) != name:
        return None  # the error is about another DSN's database
    command = ["createdb"]
    for key, flag in (("host", "-h"), ("port", "-p"), ("user", "-U")):
        if params.get(key):
            command += [flag, params[key]]
    command.append(name)
    return TargetError(f"database {name} does not exist on the server of {mask(dsn)}",
                       hint=f"Create it with `{shlex.join(command)}` (or point the DSN at a "
                       "database that exists), then re-run.")


def recreate_database(server: str, name: str) -> str:
    """Drop (if it exists) and create database ``name`` on ``server``; return its DSN."""
    params = parse_dsn(server, what="the server DSN")
    with connect(server) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params["dbname"] = name
    return make_conninfo(**params)
