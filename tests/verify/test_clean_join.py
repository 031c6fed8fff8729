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


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_clean_tables_settled_by_the_full_join_report_the_same(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = migrated_crm(dsn, tmp_path, monkeypatch, bad_rate=0.05)
    fast, slow, settled = _reports(m, dsn, monkeypatch)
    assert fast.ok and slow.ok
    assert settled >= 5
    assert _stable(fast) == _stable(slow)


@pytest.mark.slow
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


@pytest.mark.slow
def test_duplicates_are_counted_where_no_valid_unique_index_enforces_them(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = migrated_crm(dsn, tmp_path, monkeypatch)
    rep = run_verify(m, dsn, sample=20)
    dups = [c for c in rep.checks if c.name.startswith("duplicates of")]
    assert dups and all("enforced by the valid unique index" in c.message for c in dups)
    with psycopg.connect(dsn, autocommit=True) as conn:
        (table, index) = conn.execute(
            "SELECT t.relname, i.relname FROM pg_index x JOIN pg_class i ON i.oid = "
            "x.indexrelid JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON "
            "n.oid = t.relnamespace WHERE n.nspname = 'public' AND x.indisprimary "
            "ORDER BY 1 LIMIT 1").fetchone()
        conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{index}" CASCADE')
        conn.execute("SET session_replication_role = replica")
        conn.execute(f'INSERT INTO "{table}" SELECT * FROM "{table}" LIMIT 1')
    rep = run_verify(m, dsn, sample=20)
    (check,) = [c for c in rep.checks if c.table == table and c.name.startswith("duplicates")
                and "enforced" not in c.message]
    assert check.status == "fail" and check.actual == 1


PK_ONLY = """\
source: {{kind: json, path: {path}}}
target: {{mode: create, schema: public}}
tables:
  things:
    from: things
    primary_key: id
    columns:
      id: {{type: uuid, from: _id}}
      email: text
  thing_tags:
    from: things
    unnest: tags
    primary_key: [thing_id, position]
    columns:
      thing_id: {{type: uuid, from: _id, references: things}}
      position: {{type: integer, from: $index}}
      tag: {{type: text, from: $item}}
"""


def _pk_only(tmp: Path, dsn: str) -> Any:
    import json

    from docshift.run.migrate import RunOptions, migrate
    from docshift.spec import load_mapping

    src = tmp / "src"
    src.mkdir()
    ids = [f"65f0000000000000000000{i:02x}" for i in range(40)]
    docs = [{"_id": {"$oid": ids[i]}, "email": f"{i}@x", "tags": ["a", "b"][: i % 3]}
            for i in range(40)]
    docs.append({"_id": {"$oid": ids[7]}, "email": "again@x", "tags": ["z"]})  # a duplicate
    (src / "things.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp / "docshift.yaml").write_text(PK_ONLY.format(path=src))
    migrate(load_mapping(tmp / "docshift.yaml"), dsn, RunOptions())
    return load_mapping(tmp / "docshift.yaml"), ids[7]


def _undeferred(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = engine._Verifier._unquarantined_duplicates
    monkeypatch.setattr(engine._Verifier, "_unquarantined_duplicates",
                        lambda self, defer=True: probe(self, defer=False))


def test_primary_keys_proved_by_the_full_joins_are_not_probed(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, _ = _pk_only(tmp_path, dsn)
    deferred = run_verify(m, dsn, full=True)
    assert deferred.ok, [c for c in deferred.checks if c.status == "fail"]
    with monkeypatch.context() as mp:
        _undeferred(mp)
        probed = run_verify(m, dsn, full=True)
    assert _stable(deferred) == _stable(probed)


def test_an_unquarantined_duplicate_is_found_when_the_keys_were_not_probed(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m, dup = _pk_only(tmp_path, dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("DELETE FROM docshift.rejects").rowcount == 1
    rep = run_verify(m, dsn, full=True)
    assert not rep.ok
    (stream,) = [c for c in rep.checks if c.name == "every document accounted for"]
    assert stream.status == "fail" and [d.key for d in stream.differences] == [dup]
    with monkeypatch.context() as mp:
        _undeferred(mp)
        probed = run_verify(m, dsn, full=True)
    assert _stable(rep) == _stable(probed)


ORPHAN_DROP = """\
source: {{kind: json, path: {src}}}
target: {{mode: create, schema: public}}
tables:
  parents:
    from: parents
    primary_key: id
    columns:
      id: {{type: integer, from: _id}}
  children:
    from: children
    primary_key: id
    columns:
      id: {{type: integer, from: _id}}
      parent_id: {{type: integer, from: p, references: parents, on_orphan: drop}}
      n: integer
"""


def test_a_duplicate_key_behind_a_dropped_orphan_is_still_found(dsn: str,
                                                                tmp_path: Path) -> None:
    # the run resolves keys before orphans: of two documents with id 10, the later one is
    # quarantined even though the first one's row is then dropped as an orphan
    import json

    from docshift.run.migrate import RunOptions, migrate
    from docshift.spec import load_mapping

    src = tmp_path / "src"
    src.mkdir()
    (src / "parents.jsonl").write_text(json.dumps({"_id": 1}) + "\n")
    (src / "children.jsonl").write_text(json.dumps({"_id": 10, "p": 99, "n": 1}) + "\n"
                                        + json.dumps({"_id": 10, "p": 1, "n": 2}) + "\n")
    (tmp_path / "m.yaml").write_text(ORPHAN_DROP.format(src=src))
    migrate(load_mapping(tmp_path / "m.yaml"), dsn, RunOptions())
    m = load_mapping(tmp_path / "m.yaml")
    assert run_verify(m, dsn, full=True).ok
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the later duplicate loaded, and not in the quarantine
        conn.execute("INSERT INTO children VALUES (10, 1, 2)")
        assert conn.execute("DELETE FROM docshift.rejects WHERE error_class = "
                            "'duplicate_key'").rowcount == 1
    rep = run_verify(m, dsn, full=True)
    assert not rep.ok
    (stream,) = [c for c in rep.checks if c.table == "stream children"
                 and c.name == "every document accounted for"]
    assert stream.status == "fail"
