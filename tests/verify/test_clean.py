"""A clean migration verifies with nothing reported (zero false positives)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.verify.helpers import migrated_crm, migrated_kv, problems, run_verify


# with bad data, tests/verify/test_faults.py verifies the untouched targets
@pytest.mark.parametrize("bad_rate", [0.0])
def test_crm_clean(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   bad_rate: float) -> None:
    m = migrated_crm(dsn, tmp_path, monkeypatch, bad_rate=bad_rate)
    rep = run_verify(m, dsn, full=True)
    assert problems(rep) == []
    assert rep.ok
    assert all(s.balanced and s.unaccounted == 0 for s in rep.streams)
    assert sum(s.loaded for s in rep.streams) > 100
    if bad_rate:
        assert sum(s.quarantined for s in rep.streams) > 0


@pytest.mark.parametrize("bad_rate", [0.0])
def test_kv_clean(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  bad_rate: float) -> None:
    m = migrated_kv(dsn, tmp_path, monkeypatch, bad_rate=bad_rate)
    rep = run_verify(m, dsn, full=True)
    assert problems(rep) == []
    (s,) = rep.streams
    assert s.balanced and s.unaccounted == 0 and s.filtered > 0 and s.ignored > 0


def test_kv_existing_mode_clean(dsn: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from tests.verify.helpers import EXAMPLES

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((EXAMPLES / "kv-existing" / "schema.sql").read_text())
    m = migrated_kv(dsn, tmp_path, monkeypatch, bad_rate=0.1, example="kv-existing")
    rep = run_verify(m, dsn, full=True)
    assert problems(rep) == []


def test_report_times_each_phase(dsn: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    m = migrated_kv(dsn, tmp_path, monkeypatch)
    rep = run_verify(m, dsn, full=True)
    phases = rep.as_json()["phases"]
    assert {"read source", "integrity"} <= set(phases)
    assert {f"compare {t}" for t in m.tables} <= set(phases)
    assert all(isinstance(s, float) and s >= 0 for s in phases.values())
    assert phases["read source"] <= rep.seconds
