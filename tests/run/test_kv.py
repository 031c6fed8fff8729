"""A key-value store (kv_store_<hash>) migrated into real tables, end to end."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from docshift.cli import app
from docshift.transform.ids import to_uuid

runner = CliRunner()

ROWS = {
    "client:production:client-001": {"name": "Acme", "status": "active",
                                     "createdAt": "2024-01-02T03:04:05Z"},
    "client:production:client-002": {"name": "Globex", "status": "suspended"},
    "client:staging:client-003": {"name": "Staging Co", "status": "active"},
    "clients:client-004": {"name": "Legacy Ltd", "status": "active"},  # legacy variant
    "site:production:site-1": {"clientId": "client-001", "siteName": "Acme HQ"},
    "site:production:site-2": {"clientId": "client-404", "siteName": "Nowhere"},  # dangling
    "gift:g1": {"id": "g1", "title": "Mug", "priceCents": 1200},
    "gift:g2": {"id": "g2", "title": "Pen", "priceCents": 300},
    "gifts:all": [{"id": "g1", "title": "Mug", "priceCents": 1200},
                  {"id": "g3", "title": "Hat", "priceCents": 2500}],
    "catalog:c1": {"name": "Winter"},
    "catalog_gifts:c1": ["g1", "g2", "g3"],
    "client_by_domain:acme.com": {"name": "Acme", "status": "active"},  # alias: ignored
    "session:abc": {"user": "x"},  # belongs to no entity: unmatched
}

MAPPING = """
source: {kind: postgres_kv, table: kv_store_1a2b}
target: {dsn: "%(dsn)s"}
options: {naming: camelCase}
ignore_keys: ["client_by_domain:*"]
tables:
  clients:
    keys: ["client:{env}:{id}", "clients:{id}"]
    where: {env: [production, null]}
    primary_key: id
    columns:
      id: {type: uuid, from: $key.id}
      slug: {type: text, from: $key.id}
      name: {type: text, nullable: false}
      status: {type: text, map: {suspended: inactive}, enum: [active, inactive]}
      created_at: timestamptz
  sites:
    keys: "site:{env}:{id}"
    primary_key: id
    columns:
      id: {type: uuid, from: $key.id}
      client_id: {type: uuid, references: clients, on_orphan: "null"}
      site_name: text
  gifts:
    feeds:
      - keys: "gift:{id}"
      - keys: "gifts:all"
        unnest: $
    primary_key: id
    on_duplicate: keep_first
    columns:
      id: {type: uuid}
      title: text
      price_cents: integer
  catalogs:
    keys: "catalog:{id}"
    primary_key: id
    columns:
      id: {type: uuid, from: $key.id}
      name: text
  catalog_gifts:
    keys: "catalog_gifts:{catalogId}"
    unnest: $
    primary_key: [catalog_id, gift_id]
    columns:
      catalog_id: {type: uuid, from: $key.catalogId, references: catalogs}
      gift_id: {type: uuid, from: $item, references: gifts}
      position: {type: integer, from: $index}
"""


@pytest.fixture
def mapping(tmp_path: Path, dsn: str, conn) -> Path:
    conn.execute("CREATE TABLE kv_store_1a2b (key text PRIMARY KEY, value jsonb NOT NULL)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kv_store_1a2b VALUES (%s, %s)",
                        [(k, Jsonb(v)) for k, v in ROWS.items()])
    p = tmp_path / "docshift.yaml"
    p.write_text(MAPPING % {"dsn": dsn})
    return p


def test_kv_store_becomes_tables(mapping: Path, conn) -> None:
    res = runner.invoke(app, ["run", "-c", str(mapping)])
    assert res.exit_code == 0, res.output
    count = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
             for t in ("clients", "sites", "gifts", "catalogs", "catalog_gifts")}
    # staging client filtered out; legacy variant included; gifts g1 deduplicated
    assert count == {"clients": 3, "sites": 2, "gifts": 3, "catalogs": 1, "catalog_gifts": 3}
    # string ids became UUIDv5, the same on both sides of a reference
    acme = conn.execute("SELECT id, status, created_at FROM clients WHERE slug = 'client-001'"
                        ).fetchone()
    assert acme[0] == to_uuid("client-001") and acme[0].version == 5
    assert conn.execute("SELECT client_id FROM sites WHERE site_name = 'Acme HQ'"
                        ).fetchone()[0] == acme[0]
    assert acme[2] is not None
    # value map; dangling reference set to NULL with a warning
    assert conn.execute("SELECT status FROM clients WHERE slug = 'client-002'"
                        ).fetchone()[0] == "inactive"
    assert conn.execute("SELECT client_id FROM sites WHERE site_name = 'Nowhere'"
                        ).fetchone()[0] is None
    assert "set to NULL" in res.output
    # the unmatched key is reported, never dropped silently; the alias is ignored on purpose
    assert conn.execute("SELECT key FROM docshift.unmatched_keys").fetchall() == [
        ("session:abc",)]
    assert "1 key(s) matched no table" in res.output
    # the source table is untouched
    assert conn.execute("SELECT count(*) FROM kv_store_1a2b").fetchone()[0] == len(ROWS)
    assert isinstance(acme[0], uuid.UUID)
