"""End to end: generate each example dataset, migrate it with ``docshift run``, and check the
target against the manifest exactly: rows per table, quarantined documents (source key,
table, field, error class), unmatched keys and nulled references."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from docshift.generate import Manifest, generate_crm, generate_kv

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_docshift(mapping: Path, dsn: str, cwd: Path, *args: str,
                 **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DOCSHIFT_DSN": dsn, **env}
    proc = subprocess.run([sys.executable, "-m", "docshift", "run", "-c", str(mapping), *args],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    return proc


def assert_matches(dsn: str, m: Manifest, schema: str = "public") -> None:
    with psycopg.connect(dsn) as conn:
        rows = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
            for t in m.expected_rows}
        rejects = conn.execute("SELECT source_key, table_name, field, error_class "
                               "FROM docshift.rejects").fetchall()
        unmatched = conn.execute("SELECT count(*) FROM docshift.unmatched_keys").fetchone()
        removed = conn.execute(
            "SELECT kind, table_name || '.' || column_name, count(*) FROM docshift.removals "
            "WHERE kind IN ('reference_nulled', 'orphan_dropped') GROUP BY 1, 2").fetchall()
    assert rows == m.expected_rows
    expected = Counter((r.source_key, r.table, r.field, r.error_class)
                       for r in m.expected_quarantined)
    assert Counter(rejects) == expected
    assert unmatched == (m.expected_unmatched_keys,)
    assert {c: n for k, c, n in removed if k == "reference_nulled"} == m.expected_nulled
    assert {c: n for k, c, n in removed if k == "orphan_dropped"} == m.expected_dropped


@pytest.mark.parametrize(("fmt", "scale", "seed", "edge", "bad", "workers"), [
    ("mongodump", 0.5, 1, False, 0.0, 1),
    # slow: keeps the default suite under 5 minutes (CI runs it with --slow)
    pytest.param("mongodump-gz", 0.3, 2, True, 0.1, 2, marks=pytest.mark.slow),
    pytest.param("mongodump-gz", 1.0, 2, True, 0.1, 2, marks=pytest.mark.slow),
    pytest.param("mongoexport", 0.3, 3, False, 0.2, 1, marks=pytest.mark.slow),
])
def test_crm_example_loads_exactly_the_manifest(dsn: str, tmp_path: Path, fmt: str,
                                                scale: float, seed: int, edge: bool,
                                                bad: float, workers: int) -> None:
    out = tmp_path / "crm"
    m = generate_crm(str(out), scale=scale, seed=seed, edge_cases=edge, bad_rate=bad, fmt=fmt)
    mapping = EXAMPLES / "crm" / "docshift.yaml"
    if fmt == "mongoexport":
        text = mapping.read_text().replace("kind: mongodump", "kind: json", 1)
        mapping = tmp_path / "docshift.yaml"
        mapping.write_text(text)
    run_docshift(mapping, dsn, tmp_path, "--workers", str(workers), DOCSHIFT_SOURCE=str(out))
    assert_matches(dsn, m)
    if bad:
        assert m.expected_quarantined


@pytest.mark.parametrize(("scale", "seed", "edge", "bad"), [
    (0.3, 4, False, 0.0),
    pytest.param(0.5, 5, True, 0.1, marks=pytest.mark.slow),  # as above
])
def test_kv_example_loads_exactly_the_manifest(dsn: str, tmp_path: Path, scale: float,
                                               seed: int, edge: bool, bad: float) -> None:
    table = "kv_store_5f2c1d8e"
    m = generate_kv(dsn, scale=scale, seed=seed, edge_cases=edge, bad_rate=bad, table=table,
                    manifest_path=str(tmp_path / "manifest.json"))
    run_docshift(EXAMPLES / "kv" / "docshift.yaml", dsn, tmp_path, DOCSHIFT_KV_TABLE=table)
    assert_matches(dsn, m)
    assert m.expected_unmatched_keys > 0 and m.expected_nulled
    if bad:
        assert m.expected_dropped


def test_kv_existing_example_loads_exactly_the_manifest(dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((EXAMPLES / "kv-existing" / "schema.sql").read_text())
    m = generate_kv(dsn, scale=0.5, seed=6, edge_cases=True, bad_rate=0.15,
                    manifest_path=str(tmp_path / "manifest.json"))
    proc = run_docshift(EXAMPLES / "kv-existing" / "docshift.yaml", dsn, tmp_path)
    assert_matches(dsn, m, schema="gifting")
    assert "could not be re-created" not in proc.stdout + proc.stderr
    with psycopg.connect(dsn) as conn:
        # the target's own machinery ran: generated columns, identity, trigger, keys
        assert conn.execute("SELECT count(*) FROM gifting.order_items "
                            "WHERE line_total_cents = quantity * unit_price_cents"
                            ).fetchone() == (m.expected_rows["order_items"],)
        assert conn.execute("SELECT count(DISTINCT id) FROM gifting.audit_log").fetchone() == (
            m.expected_rows["audit_log"],)
        assert conn.execute("SELECT count(*) FROM gifting.employees WHERE updated_at IS NULL"
                            ).fetchone() == (0,)
        keys = conn.execute("SELECT count(*) FROM pg_constraint c JOIN pg_namespace n "
                            "ON n.oid = c.connamespace WHERE n.nspname = 'gifting' "
                            "AND contype IN ('p', 'u', 'f')").fetchone()
        assert keys is not None and keys[0] >= 25
