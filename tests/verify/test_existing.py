"""Existing mode: the run's record of the rows it loaded tells them from rows that were in the
table before, so reconciliation and content are exact there too."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from docshift.spec import Mapping
from docshift.transform.ids import to_uuid
from tests.verify.helpers import EXAMPLES, migrated_kv, problems, run_verify

BEFORE = "00000000-0000-4000-8000-0000000000aa"
"""A client that was in the table before the run, with a key no source document has."""
COLLIDING = str(to_uuid("client-001"))
"""A client that was in the table before the run with the key of a source document: the row
that was there stays, and the run quarantines the document."""


@pytest.fixture(scope="module")
def existing(server_dsn: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[str, Mapping]]:
    from tests.verify.test_faults import _copy_db

    tmp = tmp_path_factory.mktemp("existing")
    dsn = _copy_db(server_dsn, "template0", "dsverify_existing")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((EXAMPLES / "kv-existing" / "schema.sql").read_text())
        conn.execute(
            "INSERT INTO gifting.clients (id, name, status, created_at) VALUES "
            "(%s, 'Before', 'trial', '1999-01-01'), (%s, 'Colliding', 'trial', '1999-01-02')",
            (BEFORE, COLLIDING))
    with pytest.MonkeyPatch.context() as mp:
        m = migrated_kv(dsn, tmp, mp, bad_rate=0.05, example="kv-existing")
        yield dsn, m
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS dsverify_existing WITH (FORCE)")


def _rows_check(rep: object, table: str) -> object:
    (check,) = [c for c in rep.checks  # type: ignore[attr-defined]
                if c.layer == "reconciliation" and c.table == table and c.name == "rows"]
    return check


def test_rows_from_before_the_run_are_no_difference(existing: tuple[str, Mapping]) -> None:
    dsn, m = existing
    with psycopg.connect(dsn) as conn:
        held = conn.execute("SELECT name FROM gifting.clients WHERE id = %s",
                            (COLLIDING,)).fetchone()
    assert held == ("Colliding",)  # the row that was there stayed
    rep = run_verify(m, dsn, full=True)
    assert problems(rep) == [], "\n".join(problems(rep))
    check = _rows_check(rep, "clients")
    assert check.status == "pass"  # type: ignore[attr-defined]
    assert "2 row(s) were in the table before the run" in check.message  # type: ignore


def _with_fault(server_dsn: str, statements: list[str]) -> Iterator[str]:
    from tests.verify.test_faults import _copy_db

    dsn = _copy_db(server_dsn, "dsverify_existing", "dsverify_existing_fault")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for s in statements:
            conn.execute(s)
    yield dsn
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS dsverify_existing_fault WITH (FORCE)")


LOADED_CLIENT = ("(SELECT min(c.id::text)::uuid FROM gifting.clients c JOIN docshift.loaded_clients"
                 " l USING (id))")


@pytest.mark.parametrize(("statements", "layer", "field"), [
    ([f"DELETE FROM gifting.clients WHERE id = {LOADED_CLIENT}"], "reconciliation", "id"),
    ([f"UPDATE gifting.clients SET name = name || 'x' WHERE id = {LOADED_CLIENT}"], "content",
     "name"),
    # a row recorded as loaded that no document gives
    (["INSERT INTO docshift.loaded_clients VALUES ('" + BEFORE + "')"], "reconciliation",
     "id"),
], ids=["delete a loaded row", "change a loaded row", "a loaded row from no document"])
def test_a_changed_loaded_row_fails(existing: tuple[str, Mapping], server_dsn: str,
                                    statements: list[str], layer: str, field: str) -> None:
    _, m = existing
    for dsn in _with_fault(server_dsn, statements):
        rep = run_verify(m, dsn, full=True)
        assert not rep.ok
        found = [(c.layer, d.field) for c in rep.checks if c.status == "fail"
                 and c.table == "clients" for d in c.differences]
        assert (layer, field) in found, problems(rep)



def test_a_row_of_its_own_in_a_table_without_a_key_is_a_warning(
        existing: tuple[str, Mapping], server_dsn: str) -> None:
    # audit_log has no primary key: its rows from before the run cannot be told from the
    # loaded ones, so they are a warning (verify.md), in every layer
    _, m = existing
    for dsn in _with_fault(server_dsn, [
            "INSERT INTO gifting.audit_log (source_key, actor, action, at) VALUES "
            "('legacy:1', NULL, 'imported', '1999-01-01')"]):
        rep = run_verify(m, dsn, full=True)
        failing = [(c.layer, c.table) for c in rep.checks if c.status == "fail"]
        assert failing == [], problems(rep)
        (rows,) = [c for c in rep.checks if c.layer == "reconciliation"
                   and c.table == "audit_log"]
        assert rows.status == "warn" and "1 not from the source" in rows.message
