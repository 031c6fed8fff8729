"""A clean table is compared by one full join; the report is the one the resolving
comparison gives, on a clean migration and on a faulty one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from docshift.verify import engine
from tests.verify.helpers import migrated_crm, run_verify
from tests.verify.test_parallel import _stable


def _reports(m: Any, dsn: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, int]:
    """(report, report without the full join, tables the full join settled)."""
    clean = engine._Verifier._clean_keyed
    settled: list[str] = []

    def counted(self: Any, t: Any, *args: Any) -> Any:
        got = clean(self, t, *args)
        if got is not None:
            settled.append(t.name)
        return got

    with monkeypatch.context() as mp:
        mp.setattr(engine._Verifier, "_clean_keyed", counted)
        fast = run_verify(m, dsn, full=True, workers=1)
    with monkeypatch.context() as mp:
        mp.setattr(engine._Verifier, "_clean_keyed", lambda *a: None)
        slow = run_verify(m, dsn, full=True, workers=1)
    return fast, slow, len(settled)


def test_clean_tables_settled_by_the_full_join_report_the_same(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = migrated_crm(dsn, tmp_path, monkeypatch, bad_rate=0.05)
    fast, slow, settled = _reports(m, dsn, monkeypatch)
    assert fast.ok and slow.ok
    assert settled >= 5
    assert _stable(fast) == _stable(slow)


def test_a_faulty_table_falls_back_and_reports_the_same(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = migrated_crm(dsn, tmp_path, monkeypatch)
    with psycopg.connect(dsn, autocommit=True) as conn:
        table = conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "WHERE c.table_schema = 'public' AND c.data_type = 'text' "
            "AND c.table_name IN (SELECT table_name FROM information_schema.table_constraints "
            "WHERE constraint_type = 'PRIMARY KEY' AND table_schema = 'public') "
            "ORDER BY 1, 2 LIMIT 1").fetchone()
        assert table is not None
        conn.execute(f'UPDATE "{table[0]}" SET "{table[1]}" = "{table[1]}" || \'!\' '
                     f'WHERE ctid = (SELECT min(ctid) FROM "{table[0]}" '
                     f'WHERE "{table[1]}" IS NOT NULL)')
    fast, slow, _ = _reports(m, dsn, monkeypatch)
    assert not fast.ok
    assert any(c.layer == "content" and c.table == table[0] and c.status == "fail"
               for c in fast.checks)
    assert _stable(fast) == _stable(slow)
