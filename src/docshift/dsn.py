"""Connection strings without their secrets: every DSN or URI is masked before it is shown.

Used by every message, summary and report that names a database, and by the run's identity
(a run resumes after a password change, because the password is not part of it).

Three forms are understood, and none of them needs to be valid to be masked:

- PostgreSQL key/value conninfo (``host=db user=app password='s3 cret'``);
- PostgreSQL URIs (``postgresql://app:s3cret@db:5432/crm?sslmode=require``);
- MongoDB URIs (``mongodb://`` and ``mongodb+srv://``).

A password pasted into a URI without percent-encoding (``p@ss:w/rd``, ``50%off``) is the
common case this module is written for: the user part is taken to end at the *last* ``@``,
so the whole password is hidden even where the driver would split it elsewhere, and
:func:`parse_dsn` refuses such a DSN with a hint instead of letting the driver quote pieces
of it in an error message. :func:`scrub` removes every secret of a set of DSNs from any text
(driver errors can quote the DSN or pieces of it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote

from docshift.errors import DocshiftError, TargetError

MASK = "***"

DSN_SHAPE = "postgresql://user@host:5432/db or host=… dbname=…"
"""The two shapes of a PostgreSQL DSN, as messages name them."""

ENCODE_HINT = ("Percent-encode the user name and password inside a URI (% → %25, @ → %40, "
               "/ → %2F, : → %3A, ? → %3F), or use the key=value form (host, port, dbname, "
               "user and the password in single quotes, each as name=value).")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_POSTGRES_SCHEMES = ("postgres://", "postgresql://")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|scram_.*key|authmechanismproperties", re.I)
# In free text: a URI's user:password@ (greedy up to the last @ of the word), and a
# password=value pair (quoted or not), wherever they occur.
_TEXT_URI = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:@/'\"]*):\S*@")
_TEXT_PAIR = re.compile(r"(?P<head>\b[A-Za-z_]*(?:pass|pwd|secret|token)[A-Za-z_]*\s*=\s*)"
                        r"(?:'(?:[^'\\]|\\.)*(?:'|$)|(?:\\.|[^\s&'\"])+)", re.I)
# Pieces of a secret a driver may quote after splitting it at one of these characters.
_SPLIT = re.compile(r"[@/:?&=#\s]+")
SHORT_SECRET = 4
"""Secrets (or pieces) shorter than this are only removed where they stand alone."""


@dataclass(frozen=True, slots=True)
class _Uri:
    scheme: str
    user: str | None
    """The user part (``None`` without an ``@``)."""
    password: str | None
    """Everything between the first ``:`` of the user part and its end, as written."""
    rest: str
    """Host(s), path and query, after the user part."""


def _split_uri(dsn: str) -> _Uri | None:
    """A URI cut into scheme, user, password and the rest; ``None`` if ``dsn`` is no URI."""
    m = _SCHEME.match(dsn)
    if not m:
        return None
    body = dsn[m.end():]
    # The user part ends at the last @ before the query; a password may hold @ / : and even ?.
    at = body.split("?", 1)[0].rfind("@")
    if at < 0:
        at = body.rfind("@")
    if at < 0:
        return _Uri(m.group(), None, None, body)
    user, colon, password = body[:at].partition(":")
    return _Uri(m.group(), user, password if colon else None, body[at + 1:])


def _mask_query(rest: str, postgres: bool) -> str:
    """``rest`` with the values of secret (and, for PostgreSQL, unknown) parameters masked."""
    base, q, query = rest.partition("?")
    if not q:
        return rest
    parts = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        if eq and _is_secret_key(key, postgres):
            item = f"{key}={MASK}"
        parts.append(item)
    return f"{base}?{'&'.join(parts)}"


@cache
def _libpq_keys() -> frozenset[str]:
    from psycopg import pq

    return frozenset(d.keyword.decode() for d in pq.Conninfo.get_defaults())


def _is_secret_key(key: str, postgres: bool) -> bool:
    """Whether the value of setting ``key`` is masked: a password, token or secret — and, in
    a PostgreSQL DSN, any key libpq does not know (a misspelt ``pasword=`` is a password)."""
    key = unquote(key).strip()
    return bool(_SECRET_KEY.search(key)) or (postgres and key not in _libpq_keys())


class _Unreadable(ValueError):
    """A key/value conninfo string libpq would refuse (``at`` is where reading stopped)."""

    def __init__(self, reason: str, at: int) -> None:
        super().__init__(reason)
        self.at = at


def _conninfo_pairs(dsn: str) -> list[tuple[str, str, int, int]]:
    """``(key, value, start, end)`` of every pair, read as libpq reads key/value strings."""
    pairs = []
    i, n = 0, len(dsn)
    while True:
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n or dsn[i] != "=":
            raise _Unreadable("a word without '=' after it", start)
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        vstart, value = i, []
        if i < n and dsn[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise _Unreadable("a quoted value without its closing quote", vstart)
                if dsn[i] == "\\" and i + 1 < n:
                    value.append(dsn[i + 1])
                    i += 2
                elif dsn[i] == "'":
                    i += 1
                    break
                else:
                    value.append(dsn[i])
                    i += 1
        else:
            while i < n and not dsn[i].isspace():
                if dsn[i] == "\\" and i + 1 < n:
                    value.append(dsn[i + 1])
                    i += 2
                else:
                    value.append(dsn[i])
                    i += 1
        pairs.append((key, "".join(value), vstart, i))


def _readable_part(dsn: str) -> tuple[list[tuple[str, str, int, int]], int | None]:
    """The pairs libpq would read, and where reading stopped (``None``: the whole string)."""
    try:
        return _conninfo_pairs(dsn), None
    except _Unreadable as exc:
        return (_conninfo_pairs(dsn[:exc.at]) if exc.at else []), exc.at


def _unreadable_rest(rest: str, after_secret: bool) -> tuple[str, str | None]:
    """How the part of a key/value string libpq cannot read is shown, and the secret it may
    hold. It may be the end of a password (``password=my secret``), so it is shown only when
    it cannot be: not after a secret setting, holding no setting of its own; a URI-like
    ``user:password@host`` that lacks its ``://`` keeps everything but the password."""
    if after_secret or "=" in rest or "'" in rest or _SECRET_KEY.search(rest):
        return MASK, rest.strip()
    at, colon = rest.rfind("@"), rest.find(":")
    if 0 <= colon < at:
        return f"{rest[:colon + 1]}{MASK}{rest[at:]}", rest[colon + 1:at]
    return rest, None


def _mask_conninfo(dsn: str) -> str:
    pairs, stop = _readable_part(dsn)
    out, last = [], 0
    for key, _, start, end in pairs:
        if _is_secret_key(key, postgres=True):
            out += [dsn[last:start], MASK]
            last = end
    if stop is None:
        out.append(dsn[last:])
        return "".join(out)
    after_secret = bool(pairs) and _is_secret_key(pairs[-1][0], postgres=True)
    out.append(dsn[last:stop])
    if not (after_secret and pairs[-1][3] == stop):  # else already masked: password='…
        out.append(_unreadable_rest(dsn[stop:], after_secret)[0])
    return "".join(out)


def mask(dsn: str | None) -> str:
    """``dsn`` (a PostgreSQL conninfo/URI or a mongodb:// URI) with any password masked.

    Never fails and never shows a secret: a URI keeps its user name and hosts, a key/value
    string its other settings. Of a key/value string libpq cannot read, the part it cannot
    read is shown only where it cannot hold a secret (``postgres//oops`` stays as it is).
    """
    if not dsn:
        return ""
    uri = _split_uri(dsn)
    if uri is None:
        return _mask_conninfo(dsn)
    rest = _mask_query(uri.rest, postgres=dsn.startswith(_POSTGRES_SCHEMES))
    if uri.user is None:
        return f"{uri.scheme}{rest}"
    password = f":{MASK}" if uri.password is not None else ""
    return f"{uri.scheme}{uri.user}{password}@{rest}"


def secrets(dsn: str | None) -> list[str]:
    """Every secret ``dsn`` holds, as written and percent-decoded, longest first."""
    if not dsn:
        return []
    found: set[str] = set()
    uri = _split_uri(dsn)
    if uri is not None:
        if uri.password:
            found.add(uri.password)
        _, q, query = uri.rest.partition("?")
        for item in query.split("&") if q else []:
            key, eq, value = item.partition("=")
            if eq and value and _is_secret_key(key, dsn.startswith(_POSTGRES_SCHEMES)):
                found.add(value)
    else:
        pairs, stop = _readable_part(dsn)
        if stop is not None:
            after_secret = bool(pairs) and _is_secret_key(pairs[-1][0], postgres=True)
            hidden = _unreadable_rest(dsn[stop:], after_secret)[1]
            if hidden:
                found.update((hidden, hidden.lstrip("'")))
        found.update(v for k, v, _, _ in pairs if v and _is_secret_key(k, postgres=True))
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(text: str, *dsns: str | None) -> str:
    """``text`` (an error message, say) with every DSN in ``dsns`` masked and each of their
    secrets replaced by ``***`` — also pieces of a secret a driver may have split off — and
    any URI password or ``password=`` value found in the text itself masked as well."""
    for dsn in sorted((d for d in dsns if d), key=len, reverse=True):
        text = text.replace(dsn, mask(dsn))
    whole: set[str] = set()
    pieces: set[str] = set()
    for dsn in dsns:
        for s in secrets(dsn):
            whole.add(s)
            pieces.update(p for p in _SPLIT.split(s) if p and p != s)
    for s in sorted(whole, key=len, reverse=True):
        text = _replace(text, s)
    for p in sorted(pieces - whole, key=len, reverse=True):
        text = _replace(text, p)
    text = _TEXT_URI.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _TEXT_PAIR.sub(lambda m: f"{m['head']}{MASK}", text)


def _replace(text: str, secret: str) -> str:
    if secret == MASK:
        return text
    if len(secret) >= SHORT_SECRET:
        return text.replace(secret, MASK)
    # a short secret inside a word is left alone: replacing every "ab" garbles the message
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)


def parse_dsn(dsn: str, *, what: str = "the target DSN",
              error: type[DocshiftError] = TargetError) -> dict[str, str]:
    """The settings of PostgreSQL DSN ``dsn``, or ``error`` naming ``what`` with the DSN
    masked and a hint; never a driver error that could quote the password."""
    from psycopg.conninfo import conninfo_to_dict

    uri = _split_uri(dsn)
    if uri is not None and uri.user is not None:
        body = dsn[len(uri.scheme):]
        # libpq ends the user part at the first @ or /, not at the last @
        cut = min((p for p in (body.find("@"), body.find("/")) if p >= 0), default=-1)
        theirs = body[:cut] if cut >= 0 and body[cut] == "@" else None
        ours = uri.user if uri.password is None else f"{uri.user}:{uri.password}"
        if uri.password is not None and theirs != ours:
            raise error(f"{what} cannot be read: its password holds '@' or '/' that are not "
                        f"percent-encoded: {mask(dsn)}", hint=ENCODE_HINT)
        if _BAD_ESCAPE.search(ours):
            raise error(f"{what} cannot be read: its user name or password holds a '%' that "
                        f"does not start a percent-escape: {mask(dsn)}", hint=ENCODE_HINT)
    try:
        return conninfo_to_dict(dsn)
    except Exception as exc:
        reason = _unreadable_reason(dsn) or scrub(str(exc).strip(), dsn)
        raise error(f"{what} cannot be read: {mask(dsn)} ({reason}); expected {DSN_SHAPE}",
                    hint=SHAPE_HINT) from None


SHAPE_HINT = ("Write it as a URI, postgresql://user@host:5432/dbname (a password goes after "
              "the user and a colon, with @ / : % in it written %40 %2F %3A %25), or as "
              "settings separated by spaces: host=db port=5432 dbname=crm user=app (and the "
              "password in single quotes).")

_URI_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:?/")


def _unreadable_reason(dsn: str) -> str | None:
    """What is wrong with a key/value string libpq cannot read, in words that quote no
    secret; ``None`` for a URI or a string whose every word reads (libpq says why)."""
    if _split_uri(dsn) is not None:
        return None
    pairs, stop = _readable_part(dsn)
    if stop is None:
        return None
    rest = dsn[stop:]
    if not pairs and _URI_LIKE.match(rest):
        return "a URI starts with postgresql://"
    if rest.startswith("'"):
        return "a quoted value lacks its closing quote"
    after_secret = bool(pairs) and _is_secret_key(pairs[-1][0], postgres=True)
    shown, hidden = _unreadable_rest(rest, after_secret)
    word = shown.split()[0] if hidden is None else None
    return f"{word!r} is not a name=value setting" if word else "a word without '=' after it"
