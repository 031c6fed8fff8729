"""The run summary through `docshift run`: per table, per phase and in total, on screen at
80 columns and in `--summary FILE` (also when the run was already complete)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.generate import Manifest, generate_crm

CRM = Path(__file__).resolve().parents[1] / "examples" / "crm" / "docshift.yaml"
FINALIZE_PHASES = {"keys", "foreign keys", "indexes", "analyze"}


@pytest.fixture
def crm(tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Manifest:
    """A small CRM dump with bad data, the example mapping pointed at it and at ``dsn``."""
    out = tmp_path / "crm"
    manifest = generate_crm(str(out), scale=0.3, seed=5, bad_rate=0.1)
    monkeypatch.setenv("DOCSHIFT_SOURCE", str(out))
    monkeypatch.setenv("DOCSHIFT_DSN", dsn)
    monkeypatch.setenv("COLUMNS", "80")
    return manifest


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["run", "-c", str(CRM), *args])
    return res.exit_code, res.output


def test_summary_on_screen_and_in_json(crm: Manifest, dsn: str, tmp_path: Path) -> None:
    code, out = _run("--summary", str(tmp_path / "run.json"))
    assert code == 3, out
    summary = json.loads((tmp_path / "run.json").read_text())
    lines = out.splitlines()
    # every table name whole, on a line of its own, at 80 columns
    for table in crm.expected_rows:
        assert any(line.split()[:1] == [table] for line in lines), (table, out)
    rows = [line for line in lines if line.split()[:1] and line.split()[0] in crm.expected_rows]
    assert max(len(line) for line in rows) <= 80
    for phase in ("prepare", "load", *FINALIZE_PHASES):
        assert any(line.split() and line.strip().startswith(phase) for line in lines), phase
    assert any(line.split()[:1] == ["total"] for line in lines)

    tables = {t["table"]: t for t in summary["tables"]}
    assert {t: v["rows"] for t, v in tables.items()} == crm.expected_rows
    # documents read are the table's own: a stream's child tables do not repeat its count
    assert tables["accounts"]["documents"] == crm.documents["crm_Accounts"]
    assert tables["opportunities"]["documents"] == crm.documents["crm_Opportunities"]
    assert tables["opportunity_tags"]["documents"] is None
    with psycopg.connect(dsn) as conn:
        removed = dict(conn.execute(
            "SELECT table_name || ':' || kind, count(*) FROM docshift.removals GROUP BY 1"
        ).fetchall())
        quarantined = dict(conn.execute(
            "SELECT coalesce(table_name, source), count(*) FROM docshift.rejects GROUP BY 1"
        ).fetchall())
    for t, v in tables.items():
        assert v["duplicates_removed"] == removed.get(f"{t}:duplicate_dropped", 0), t
        assert v["references_nulled"] == removed.get(f"{t}:reference_nulled", 0), t
        assert v["rows_dropped"] == removed.get(f"{t}:orphan_dropped", 0), t
        assert v["quarantined"] == quarantined.get(t, 0), t
    assert summary["documents"] == crm.total_documents
    assert summary["quarantined"] == len(crm.expected_quarantined)
    phases = {p["phase"]: p["seconds"] for p in summary["phases"]}
    assert {"prepare", "load"} | FINALIZE_PHASES <= set(phases)
    assert summary["seconds"] >= sum(phases.values()) * 0.99
    assert summary["documents_per_second"] > 0


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_summary_written_when_the_run_was_already_complete(crm: Manifest,
                                                           tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    again = tmp_path / "again.json"
    assert _run("--summary", str(first))[0] == 3
    code, out = _run("--summary", str(again))
    assert code == 0, out
    assert "already complete" in out
    a, b = json.loads(first.read_text()), json.loads(again.read_text())
    assert b["already_complete"] is True and a["already_complete"] is False
    assert b["run_id"] == a["run_id"]
    assert [(t["table"], t["rows"], t["documents"]) for t in b["tables"]] == \
        [(t["table"], t["rows"], t["documents"]) for t in a["tables"]]
    # the run's own phase times, recorded in its state
    assert {"load"} | FINALIZE_PHASES <= {p["phase"] for p in b["phases"]}
    assert b["seconds"] > 0


def test_summary_renders_every_name_whole_at_80_columns(crm: Manifest) -> None:
    from io import StringIO

    from rich.console import Console

    from docshift.report.console import summary_table
    from docshift.run.migrate import RunResult, TableSummary

    res = RunResult(7, tables=[TableSummary(t, 1_234_567, 2_345_678, 45, 3.5, 12, 3, 0)
                               for t in crm.expected_rows],
                    documents=9_876_543, seconds=123.4, phases={"load": 100.0, "keys": 2.0})
    buf = StringIO()
    Console(width=80, file=buf).print(summary_table(res))
    text = buf.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for t in crm.expected_rows:
        assert any(line.split()[:1] == [t] for line in lines), t
    assert "1,234,567" in text and "9,876,543" in text and "…" not in text


def test_a_name_too_long_for_the_width_is_folded_not_cut() -> None:
    from io import StringIO

    from rich.console import Console

    from docshift.report.console import summary_table
    from docshift.run.migrate import RunResult, TableSummary

    long = "a_table_name_much_longer_than_what_fits_beside_the_numbers_of_the_summary"
    res = RunResult(1, tables=[TableSummary(long, 1_234_567, 2_345_678, 1, 1.0)],
                    documents=1_234_567, seconds=2.0)
    buf = StringIO()
    Console(width=80, file=buf).print(summary_table(res))
    lines = buf.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if line.split()[:1] == [long[:5]] or
                 line.lstrip().startswith(long[:10]))
    pieces = []
    for line in lines[first:]:
        word = line.split()[0] if line.split() else ""
        if not long.startswith("".join(pieces) + word):
            break
        pieces.append(word)
    assert "".join(pieces) == long
    assert "…" not in buf.getvalue()
