"""Progress of `docshift run`: live lines on a terminal, timestamped log lines elsewhere,
`--quiet`, `--verbose` and `--log-file`."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from docshift.generate import Manifest, generate_crm

CRM = Path(__file__).resolve().parents[1] / "examples" / "crm" / "docshift.yaml"
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def crm(tmp_path: Path) -> tuple[Manifest, Path]:
    out = tmp_path / "crm"
    return generate_crm(str(out), scale=0.5, seed=2), out


def _env(dsn: str, source: Path) -> dict[str, str]:
    return {**os.environ, "DOCSHIFT_DSN": dsn, "DOCSHIFT_SOURCE": str(source),
            "COLUMNS": "80", "LINES": "60"}


def _run(dsn: str, source: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "docshift", "run", "-c", str(CRM), *args],
                          env=_env(dsn, source), capture_output=True, text=True, timeout=300)


def test_not_a_terminal_gives_timestamped_lines(crm: tuple[Manifest, Path], dsn: str,
                                                tmp_path: Path) -> None:
    manifest, source = crm
    log = tmp_path / "run.log"
    proc = _run(dsn, source, "--log-file", str(log))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for phase in ("prepare", "load", "finalize", "keys", "foreign keys", "analyze"):
        assert re.search(rf"^{STAMP}phase {phase}$", out, re.M), (phase, out)
    loaded = re.search(rf"^{STAMP}loaded ([\d,]+) documents \(([\d,]+) docs/s\)$", out, re.M)
    assert loaded and int(loaded[1].replace(",", "")) == manifest.total_documents
    assert "finalize: add:" not in out  # steps only with --verbose
    text = log.read_text()
    assert re.search(rf"^{STAMP}phase load$", text, re.M)
    assert re.search(rf"^{STAMP}finalize: add:users\.users_pkey$", text, re.M)
    assert re.search(r"^run \d+ done: [\d,]+ documents", text, re.M)


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_quiet_and_verbose(crm: tuple[Manifest, Path], dsn: str, make_dsn) -> None:
    _, source = crm
    quiet = _run(dsn, source, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip().splitlines() == [line for line in quiet.stdout.splitlines()
                                                 if line.startswith(("run ", "warning"))]
    assert re.match(r"run \d+ done: ", quiet.stdout)
    verbose = _run(make_dsn(), source, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert re.search(rf"^{STAMP}finalize: analyze:users$", verbose.stdout, re.M)
    both = _run(dsn, source, "--quiet", "--verbose")
    assert both.returncode == 2 and "not both" in both.stderr


@pytest.mark.slow  # keeps the default suite under 5 minutes; CI runs it with --slow
def test_terminal_progress_fits_80_columns(crm: tuple[Manifest, Path], dsn: str) -> None:
    manifest, source = crm
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "docshift", "run", "-c", str(CRM)],
                            env=_env(dsn, source), stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    screen = ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r", "\n")
    lines = [line for line in screen.split("\n") if line.strip()]
    total = f"{manifest.total_documents:,}"
    assert any(line.startswith("total ") and f"{total}/{total}" in line for line in lines), \
        screen[-3000:]
    assert any(line.startswith("finalize ") and "steps" in line for line in lines)
    assert any(line.startswith("crm_Contacts ") and " done" in line for line in lines)
    # the tables each stream feeds are listed once, above the progress lines
    assert sum(line.startswith("crm_Opportunities → opportunities, opportunity_tags")
               for line in lines) == 1
    bars = [line for line in lines if "━" in line]
    assert bars and max(len(line.rstrip()) for line in bars) <= 80
