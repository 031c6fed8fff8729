"""`docshift demo --verbose` lists the finalization steps as `docshift run --verbose` does,
and `--log-file` receives the plain log of both of its migrations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


@pytest.fixture
def session_server(server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The demo on the test session's PostgreSQL server instead of a second embedded one
    (starting one costs seconds); its datasets under a home of the test's own."""
    import docshift.target.embedded

    monkeypatch.setenv("DOCSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)
    monkeypatch.setattr(docshift.target.embedded, "server_dsn", lambda home=None: server_dsn)
    monkeypatch.chdir(tmp_path)
    return server_dsn


@pytest.mark.slow  # the whole demo; CI runs it with --slow
def test_demo_verbose_lists_finalization_and_logs_both_migrations(session_server: str,
                                                                  tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    res = CliRunner().invoke(app, ["demo", "--scale", "0.05", "--workers", "1", "--verbose",
                                   "--log-file", str(log)], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    # each finalization step of both migrations, as `run --verbose` prints them
    for table in ("invoice_items", "task_comments", "order_items", "catalog_gifts"):
        assert re.search(rf"^{STAMP}finalize: analyze:{table}$", res.stdout, re.M), table
    text = log.read_text()
    titles = re.findall(rf"^{STAMP}docshift demo: the (\w+) example mapping → (\w+)$", text,
                        re.M)
    assert titles == [("crm", "docshift_demo_crm"), ("kv", "docshift_demo_kv")], text
    crm, kv = re.split(rf"^{STAMP}docshift demo: the kv ", text, flags=re.M)
    for part, table in ((crm, "invoice_items"), (kv, "order_items")):
        assert re.search(rf"^{STAMP}phase load$", part, re.M), part
        assert re.search(rf"^{STAMP}finalize: analyze:{table}$", part, re.M), part
        assert re.search(r"^run \d+ done: [\d,]+ documents, [\d,]+ rows, 0 quarantined",
                         part, re.M), part
