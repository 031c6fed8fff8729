"""Faults injected into a migrated target: verify reports each one with table, key and
field, and fails; the same target untouched passes.

Each dataset is migrated once into a template database; every fault runs on a copy of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from docshift.cli import app
from docshift.spec import Mapping
from docshift.transform.ids import uuid_to_objectid
from docshift.verify import VerifyReport
from tests.verify.helpers import EXAMPLES, KV_TABLE, migrated_crm, migrated_kv, run_verify

ONE = "(SELECT {key} FROM {t} WHERE {cond} ORDER BY {key} LIMIT 1)"


def _copy_db(server: str, template: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                  sql.Identifier(template)))
    return make_conninfo(server, dbname=name)


@pytest.fixture(scope="module")
def crm(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("crm")
    dsn = _copy_db(server_dsn, "template0", "dsverify_crm_template")
    with pytest.MonkeyPatch.context() as mp:
        migrated_crm(dsn, tmp, mp, bad_rate=0.05)
    yield "dsverify_crm_template", tmp
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS dsverify_crm_template WITH (FORCE)")


@pytest.fixture(scope="module")
def kv(server_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("kv")
    dsn = _copy_db(server_dsn, "template0", "dsverify_kv_template")
    with pytest.MonkeyPatch.context() as mp:
        migrated_kv(dsn, tmp, mp, bad_rate=0.05)
    yield "dsverify_kv_template", tmp
    with psycopg.connect(server_dsn, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS dsverify_kv_template WITH (FORCE)")


@pytest.fixture
def copy_of(server_dsn: str) -> Iterator[object]:
    made: list[str] = []

    def make(template: str) -> str:
        name = f"{template}_copy{len(made)}"
        made.append(name)
        return _copy_db(server_dsn, template, name)

    yield make
    with psycopg.connect(server_dsn, autocommit=True) as c:
        for name in made:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _inject(dsn: str, statements: list[str]) -> list[tuple[object, ...]]:
    """Run the fault's statements with triggers (and so foreign keys) switched off."""
    out: list[tuple[object, ...]] = []
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET session_replication_role = replica")
        for s in statements:
            cur = c.execute(s)
            if cur.description:
                out += cur.fetchall()
    return out


def _mapping_crm(tmp: Path, mp: pytest.MonkeyPatch) -> Mapping:
    from docshift.spec import load_mapping

    mp.setenv("DOCSHIFT_SOURCE", str(tmp / "crm"))
    return load_mapping(EXAMPLES / "crm" / "docshift.yaml")


def _mapping_kv(mp: pytest.MonkeyPatch) -> Mapping:
    from docshift.spec import load_mapping

    mp.setenv("DOCSHIFT_KV_TABLE", KV_TABLE)
    return load_mapping(EXAMPLES / "kv" / "docshift.yaml")


def _reported(rep: VerifyReport, table: str, field: str | None) -> list[tuple[str, object]]:
    """(layer, key) of every difference reported for ``table`` (and ``field``, if given)."""
    return [(c.layer, d.key) for c in rep.checks if c.status == "fail" and c.table == table
            for d in c.differences if field is None or d.field == field]


# (name, table, field or None, statements returning the changed row's id)
CRM_FAULTS = [
    ("delete a row", "tasks", None,
     ["DELETE FROM tasks WHERE id = (SELECT min(id::text)::uuid FROM tasks) RETURNING id"]),
    ("delete a child row", "invoice_items", None,
     ["DELETE FROM invoice_items WHERE (invoice_id, line) = (SELECT invoice_id, line FROM "
      "invoice_items ORDER BY 1, 2 LIMIT 1) RETURNING invoice_id"]),
    ("delete a junction row", "opportunity_contacts", None,
     ["DELETE FROM opportunity_contacts WHERE (opportunity_id, contact_id) = (SELECT "
      "opportunity_id, contact_id FROM opportunity_contacts ORDER BY 1, 2 LIMIT 1) "
      "RETURNING opportunity_id"]),
    ("duplicate a junction row", "document_accounts", None,
     ["ALTER TABLE document_accounts DROP CONSTRAINT document_accounts_pkey",
      "INSERT INTO document_accounts SELECT * FROM document_accounts ORDER BY 1, 2 LIMIT 1 "
      "RETURNING document_id"]),
    ("change a text value", "accounts", "name",
     ["UPDATE accounts SET name = name || 'x' WHERE id = (SELECT min(id::text)::uuid FROM "
      "accounts) RETURNING id"]),
    ("change a numeric in its last digit", "invoices", "amount",
     ["UPDATE invoices SET amount = amount + 0.01 WHERE id = (SELECT min(id::text)::uuid "
      "FROM invoices WHERE amount IS NOT NULL) RETURNING id"]),
    ("null a value", "accounts", "email",
     ["UPDATE accounts SET email = NULL WHERE id = (SELECT min(id::text)::uuid FROM accounts "
      "WHERE email IS NOT NULL) RETURNING id"]),
    ("shift a timestamp by 1 ms", "tasks", "created_at",
     ["UPDATE tasks SET created_at = created_at + interval '1 millisecond' WHERE id = "
      "(SELECT min(id::text)::uuid FROM tasks) RETURNING id"]),
    ("truncate a string", "accounts", "description",
     ["UPDATE accounts SET description = left(description, -1) WHERE id = (SELECT "
      "min(id::text)::uuid FROM accounts WHERE length(description) > 1) RETURNING id"]),
    ("flip a boolean", "documents", "favourite",
     ["UPDATE documents SET favourite = NOT favourite WHERE id = (SELECT min(id::text)::uuid "
      "FROM documents WHERE favourite IS NOT NULL) RETURNING id"]),
    ("point a foreign key at another row", "contacts", "account_id",
     ["UPDATE contacts SET account_id = (SELECT max(a.id::text)::uuid FROM accounts a WHERE "
      "a.id <> contacts.account_id) WHERE id = (SELECT min(id::text)::uuid FROM contacts "
      "WHERE account_id IS NOT NULL) RETURNING id"]),
    ("add an orphan", "invoice_items", None,
     ["INSERT INTO invoice_items SELECT '00000000-0000-4000-8000-000000000001', line, "
      "description, quantity, unit_price, vat_rate, sku FROM invoice_items LIMIT 1 "
      "RETURNING NULL"]),
    ("remove a key from a jsonb value", "accounts", "social",
     ["UPDATE accounts SET social = social - (SELECT k FROM jsonb_object_keys(social) k "
      "LIMIT 1) WHERE id = (SELECT min(id::text)::uuid FROM accounts WHERE "
      "jsonb_typeof(social) = 'object' AND social <> '{}') RETURNING id"]),
    ("remove a key from the catch-all jsonb value", "my_account", "details",
     ["UPDATE my_account SET details = details - (SELECT k FROM jsonb_object_keys(details) k "
      "ORDER BY k LIMIT 1) WHERE id = (SELECT min(id::text)::uuid FROM my_account WHERE "
      "details <> '{}') RETURNING id"]),
    ("delete a quarantine entry", "stream", None,
     ["DELETE FROM docshift.rejects WHERE id = (SELECT min(id) FROM docshift.rejects "
      "WHERE stage = 'convert') RETURNING source_key"]),
]


def test_crm_untouched_passes(crm: tuple[str, Path], copy_of: object) -> None:
    template, tmp = crm
    dsn = copy_of(template)  # type: ignore[operator]
    with pytest.MonkeyPatch.context() as mp:
        rep = run_verify(_mapping_crm(tmp, mp), dsn)
    assert rep.ok, [c for c in rep.checks if c.status == "fail"]
    assert sum(s.quarantined for s in rep.streams) > 0


def _assert_reported(rep: VerifyReport, name: str, table: str, field: str | None,
                     changed: list[tuple[object, ...]], crm: bool) -> None:
    assert changed, f"the fault {name!r} changed nothing"
    if table == "removal":
        assert any(c.status == "fail" and c.table == changed[0][0]
                   and c.name == "duplicate dropped records hold" for c in rep.checks), name
        return
    if table == "stream":
        key = changed[0][0]
        assert any(d.key == key for c in rep.checks if c.status == "fail"
                   and c.layer == "reconciliation" for d in c.differences), name
        return
    found = _reported(rep, table, field)
    assert found, (name, [(c.layer, c.table, c.name) for c in rep.checks if c.status == "fail"])
    value = changed[0][0]
    if crm and isinstance(value, uuid.UUID) and name != "duplicate a junction row":
        # the source key is the ObjectId the UUID was made from
        assert str(uuid_to_objectid(value)) in {k for _, k in found}, (name, found)
    if field is not None:
        assert all(k for layer, k in found if layer == "content"), (name, found)


def test_crm_every_fault_is_reported(crm: tuple[str, Path], copy_of: object) -> None:
    """All faults at once (each in its own row), one verification: fast."""
    template, tmp = crm
    dsn = copy_of(template)  # type: ignore[operator]
    changed = {f[0]: _inject(dsn, f[3]) for f in CRM_FAULTS}
    with pytest.MonkeyPatch.context() as mp:
        rep = run_verify(_mapping_crm(tmp, mp), dsn)
    assert not rep.ok
    for name, table, field, _ in CRM_FAULTS:
        _assert_reported(rep, name, table, field, changed[name], crm=True)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "table", "field", "statements"), CRM_FAULTS,
                         ids=[f[0] for f in CRM_FAULTS])
def test_crm_fault_is_reported(crm: tuple[str, Path], copy_of: object, name: str, table: str,
                               field: str | None, statements: list[str]) -> None:
    template, tmp = crm
    dsn = copy_of(template)  # type: ignore[operator]
    changed = _inject(dsn, statements)
    with pytest.MonkeyPatch.context() as mp:
        rep = run_verify(_mapping_crm(tmp, mp), dsn)
    assert not rep.ok
    _assert_reported(rep, name, table, field, changed, crm=True)


def test_crm_fault_exits_1_through_the_cli(crm: tuple[str, Path], copy_of: object,
                                           tmp_path: Path) -> None:
    template, tmp = crm
    dsn = copy_of(template)  # type: ignore[operator]
    runner = CliRunner()
    args = ["verify", "-c", str(EXAMPLES / "crm" / "docshift.yaml"), "--dsn", dsn,
            "--report", str(tmp_path / "v.json"), "--markdown", str(tmp_path / "v.md"),
            "--html", str(tmp_path / "v.html")]
    env = {"DOCSHIFT_SOURCE": str(tmp / "crm")}
    clean = runner.invoke(app, args, env=env)
    assert clean.exit_code == 0, clean.output
    _inject(dsn, CRM_FAULTS[4][3])
    res = runner.invoke(app, args, env=env)
    assert res.exit_code == 1, res.output
    assert "accounts" in res.output and "name" in res.output
    import json

    report = json.loads((tmp_path / "v.json").read_text())
    assert report["status"] == "fail"
    (check,) = [c for c in report["checks"] if c["status"] == "fail"
                and c["layer"] == "content"]
    assert check["table"] == "accounts" and check["differences"][0]["field"] == "name"
    md = (tmp_path / "v.md").read_text()
    assert "FAIL" in md and "accounts" in md
    page = (tmp_path / "v.html").read_text()
    assert "<html>" in page and "http" not in page.replace(str(tmp), "")


KV_FAULTS = [
    ("delete a row", "orders", None, ["DELETE FROM orders WHERE id = (SELECT min(id::text)::uuid "
                                      "FROM orders) RETURNING id"]),
    ("delete a child row", "order_items", None,
     ["DELETE FROM order_items WHERE (order_id, line) = (SELECT order_id, line FROM "
      "order_items ORDER BY 1, 2 LIMIT 1) RETURNING order_id"]),
    ("delete a junction row", "catalog_gifts", None,
     ["DELETE FROM catalog_gifts WHERE (catalog_id, gift_id) = (SELECT catalog_id, gift_id "
      "FROM catalog_gifts ORDER BY 1, 2 LIMIT 1) RETURNING catalog_id"]),
    ("change a number", "gifts", "price_cents",
     ["UPDATE gifts SET price_cents = price_cents + 1 WHERE id = (SELECT min(id::text)::uuid "
      "FROM gifts) RETURNING id"]),
    ("flip a boolean", "employees", "active",
     ["UPDATE employees SET active = NOT active WHERE id = (SELECT min(id::text)::uuid "
      "FROM employees) RETURNING id"]),
    ("shift a timestamp", "orders", "created_at",
     ["UPDATE orders SET created_at = created_at + interval '1 millisecond' WHERE id = "
      "(SELECT min(id::text)::uuid FROM orders) RETURNING id"]),
    ("remove a key from a jsonb value", "orders", "shipping_address",
     ["UPDATE orders SET shipping_address = shipping_address - (SELECT k FROM "
      "jsonb_object_keys(shipping_address) k LIMIT 1) WHERE id = (SELECT min(id::text)::uuid "
      "FROM orders WHERE jsonb_typeof(shipping_address) = 'object' AND shipping_address <> "
      "'{}') RETURNING id"]),
    ("add an orphan", "order_items", None,
     ["INSERT INTO order_items SELECT '00000000-0000-4000-8000-000000000001', line, gift_id, "
      "quantity, unit_price_cents FROM order_items LIMIT 1 RETURNING NULL"]),
    ("delete a quarantine entry", "stream", None,
     ["DELETE FROM docshift.rejects WHERE id = (SELECT min(id) FROM docshift.rejects "
      "WHERE stage = 'convert') RETURNING source_key"]),
    ("a removal record the target contradicts", "removal", None,
     ["UPDATE docshift.removals SET value = 'not-a-key' WHERE id = (SELECT min(id) FROM "
      "docshift.removals WHERE kind = 'duplicate_dropped') RETURNING table_name"]),
]


def test_kv_untouched_passes(kv: tuple[str, Path], copy_of: object) -> None:
    template, _ = kv
    dsn = copy_of(template)  # type: ignore[operator]
    with pytest.MonkeyPatch.context() as mp:
        rep = run_verify(_mapping_kv(mp), dsn)
    assert rep.ok, [c for c in rep.checks if c.status == "fail"]
    # keep_first removals were recorded and checked against the target
    assert any(c.name == "duplicate dropped records hold" and c.expected
               for c in rep.checks)


def test_kv_every_fault_is_reported(kv: tuple[str, Path], copy_of: object) -> None:
    template, _ = kv
    dsn = copy_of(template)  # type: ignore[operator]
    changed = {f[0]: _inject(dsn, f[3]) for f in KV_FAULTS}
    with pytest.MonkeyPatch.context() as mp:
        rep = run_verify(_mapping_kv(mp), dsn)
    assert not rep.ok
    for name, table, field, _ in KV_FAULTS:
        _assert_reported(rep, name, table, field, changed[name], crm=False)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "table", "field", "statements"), KV_FAULTS,
                         ids=[f[0] for f in KV_FAULTS])
def test_kv_fault_is_reported(kv: tuple[str, Path], copy_of: object, name: str, table: str,
                              field: str | None, statements: list[str]) -> None:
    template, _ = kv
    dsn = copy_of(template)  # type: ignore[operator]
    changed = _inject(dsn, statements)
    with pytest.MonkeyPatch.context() as mp:
        rep = run_verify(_mapping_kv(mp), dsn)
    assert not rep.ok
    _assert_reported(rep, name, table, field, changed, crm=False)
