"""A user's mistakes through the command line: one `error:` line, a `hint:` where there is
something to do, exit 1 or 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from tests.run.sample import write_dump, write_mapping

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded-server home that no command is expected to create, and a clean cwd."""
    home = tmp_path / "home"
    monkeypatch.setenv("DOCSHIFT_HOME", str(home))
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def check(args: list[str], *, codes: tuple[int, ...] = (1, 2), hint: bool = True) -> str:
    """Run ``docshift ARGS``; assert one error line (and a hint), the exit code, no
    traceback; return the output."""
    res = runner.invoke(app, args)
    out = res.output
    assert res.exit_code in codes, (res.exit_code, out)
    assert "Traceback" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    if hint:
        assert any(line.startswith("hint:") for line in out.splitlines()), out
    return out


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    return write_dump(tmp_path / "dump", 3, 3, bad=False)


@pytest.mark.parametrize("command", [["run"], ["status"], ["rejects"]])
def test_malformed_dsn(home: Path, dump: Path, dsn: str, command: list[str]) -> None:
    mapping = write_mapping(home.parent / "m.yaml", dump, dsn)
    out = check([*command, "-c", str(mapping), "--dsn", "postgres//oops"])
    assert "DSN" in out
    assert not home.exists()


def test_source_path_that_does_not_exist(home: Path, dsn: str) -> None:
    mapping = write_mapping(home.parent / "m.yaml", home.parent / "nowhere", dsn)
    out = check(["run", "-c", str(mapping)])
    assert "nowhere" in out and "does not exist" in out


def test_misspelled_collection(home: Path, dump: Path, dsn: str, conn) -> None:
    mapping = write_mapping(home.parent / "m.yaml", dump, dsn)
    text = mapping.read_text()
    mapping.write_text(text.replace("from: Accounts\n    primary_key", "from: Acounts\n"
                                    "    primary_key"))
    out = check(["run", "-c", str(mapping)])
    assert "Acounts" in out and "Accounts" in out  # the name given and the one meant
    # nothing was created for a mapping that names a collection the source lacks
    assert conn.execute("SELECT to_regclass('users') IS NULL").fetchone()[0]


@pytest.mark.parametrize("scale", ["0", "-1", "nan"])
def test_generate_scale_must_be_positive(home: Path, scale: str) -> None:
    out = check(["generate", "crm", "--out", "dump", f"--scale={scale}"], codes=(2,))
    assert "--scale" in out
    assert not Path("dump").exists()


def test_generate_kv_scale_zero(home: Path) -> None:
    out = check(["generate", "kv", "--out", "kv.jsonl", "--scale", "0"], codes=(2,))
    assert "--scale" in out
    assert not Path("kv.jsonl").exists()


@pytest.mark.parametrize("scale", ["0", "-0.5"])
def test_demo_scale_must_be_positive_and_starts_no_server(home: Path, scale: str) -> None:
    out = check(["demo", f"--scale={scale}"], codes=(2,))
    assert "--scale" in out
    assert not home.exists() and not Path(".docshift").exists()


@pytest.mark.parametrize("command", ["plan", "run", "status", "rejects", "verify"])
def test_mapping_file_that_does_not_exist(home: Path, command: str) -> None:
    out = check([command, "-c", "nope.yaml"], codes=(2,))
    assert "nope.yaml" in out
    assert not home.exists()


@pytest.mark.parametrize("command", ["plan", "run", "status"])
def test_mapping_with_a_yaml_syntax_error(home: Path, command: str) -> None:
    Path("bad.yaml").write_text("source: {kind: mongodump, path: .\ntables: [\n")
    out = check([command, "-c", "bad.yaml"], codes=(2,), hint=False)
    assert "bad.yaml:2" in out and "YAML" in out
    assert not home.exists()


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [["run"], ["status"], ["rejects"], ["verify"],
                                     ["rollback", "--yes"]])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost,127.0.0.1"])
def test_unreachable_server_is_one_error_line_and_one_hint(
        home: Path, dump: Path, dsn: str, command: list[str], host: str) -> None:
    """libpq's message runs over several lines (and one per address tried): the error is
    still one line, the hint another, and nothing else goes to standard error."""
    mapping = write_mapping(home.parent / "m.yaml", dump, dsn)
    port = _closed_port()
    target = f"host={host} port={port} dbname=crm user=alice password=Kx9vQ2mLp"
    res = runner.invoke(app, [*command, "-c", str(mapping), "--dsn", target])
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith("error: cannot reach the target database "), lines
    assert lines[1].startswith("hint: Check the DSN"), lines
    assert f"port {port} failed: Connection refused" in lines[0], lines
    assert "Kx9vQ2mLp" not in res.output
    assert not home.exists()


def test_rollback_refusal_with_a_malformed_dsn_names_the_dsn_error(home: Path, dump: Path,
                                                                   dsn: str) -> None:
    mapping = write_mapping(home.parent / "m.yaml", dump, dsn)
    out = check(["rollback", "-c", str(mapping), "--dsn", "postgres//oops"])
    assert "error: the target DSN (--dsn) cannot be read: postgres//oops" in out, out
    assert "embedded server" not in out and "Refusing" not in out, out
    assert not home.exists()


def test_bench_against_an_unreachable_server_is_one_error_line(home: Path, dump: Path,
                                                               dsn: str) -> None:
    mapping = write_mapping(home.parent / "m.yaml", dump, dsn)
    queries = home.parent / "q.yaml"
    queries.write_text("queries:\n  - name: one\n    sql: SELECT 1\n")
    target = f"host=127.0.0.1 port={_closed_port()} dbname=crm user=alice password=Kx9vQ2mLp"
    res = runner.invoke(app, ["bench", "--queries", str(queries), "-c", str(mapping),
                              "--dsn", target])
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith("error: cannot reach the target database "), lines
    assert "Connection refused" in lines[0] and "Kx9vQ2mLp" not in res.output
