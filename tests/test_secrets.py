"""Secrets in DSNs are never printed, and a bad DSN is an error line, never a traceback.

Distinctive passwords — malformed ones as people paste them (a bare ``%``, ``@`` and ``/``
inside a URI) and well-formed ones — go through every command that takes a DSN, by every
way a DSN arrives (``--dsn``, ``$DOCSHIFT_DSN``, the mapping, a ``${VAR}`` in the mapping, a
key-value source DSN, a MongoDB URI). No output may contain a password, whole, decoded or in
pieces. Only unreachable ports on 127.0.0.1 are used.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.dsn import mask, parse_dsn, scrub, secrets
from docshift.errors import SourceError, TargetError

PASSWORDS = ["s3cr%ZZet", "p@ss:w/rd", "hunter2%", "pQz@sXs:wYw/rZd", "Kx9vQ2mLp"]
DEAD = "127.0.0.1:1"  # nothing listens on port 1 of the loopback: refused at once
MONGO_OPTIONS = "serverSelectionTimeoutMS=100&connectTimeoutMS=100"


def forbidden(password: str) -> list[str]:
    """The strings that must never be printed for ``password``: itself, decoded, and its
    distinctive pieces (a driver that splits a password at '@' or '/' may quote one)."""
    pieces = [p for p in re.split(r"[@/:%]", password) if len(p) >= 3]
    return sorted({password, unquote(password), *pieces})


def target_dsns(pw: str) -> list[str]:
    """Target DSNs holding ``pw``, malformed and well-formed, URI and key/value."""
    return [
        f"postgresql://alice:{pw}@{DEAD}/crm",
        f"postgres://alice:{pw}@/crm?host=127.0.0.1&port=1",          # no host in the URI
        f"postgresql://alice:{quote(pw, safe='')}@{DEAD}/crm",         # well-formed
        f"postgresql://alice@{DEAD}/crm?password={quote(pw, safe='')}",
        f"host=127.0.0.1 port=1 user=alice password={pw}",
        f"host=127.0.0.1 port=1 password='{pw} x' user=alice",
        f"host=127.0.0.1 port=1 user=alice password='{pw}",             # unterminated quote
    ]


def mongo_uris(pw: str) -> list[str]:
    return [f"mongodb://alice:{pw}@{DEAD}/?{MONGO_OPTIONS}",
            f"mongodb://alice:{quote(pw, safe='')}@{DEAD}/?{MONGO_OPTIONS}"]


def assert_clean(out: str, pw: str, what: object) -> None:
    for s in forbidden(pw):
        assert s not in out, f"{s!r} printed for {what}:\n{out}"
    assert "Traceback" not in out, f"traceback for {what}:\n{out}"


KV_MAPPING = """\
source:
  kind: postgres_kv
  table: kv_store_demo
{source_extra}
{target}
tables:
  clients:
    keys: "client:{{id}}"
    primary_key: id
    columns: {{id: text, name: text}}
"""

MONGO_MAPPING = """\
source: {{kind: mongodb, uri: '{uri}', database: crm}}
tables:
  users:
    from: Users
    primary_key: id
    columns: {{id: {{type: text, from: _id}}, name: text}}
"""


def yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def kv_mapping(path: Path, *, target: str | None = None, source_dsn: str | None = None) -> Path:
    path.write_text(KV_MAPPING.format(
        source_extra=f"  dsn: {yaml_str(source_dsn)}" if source_dsn else "",
        target=f"target:\n  dsn: {yaml_str(target)}" if target else ""))
    return path


TARGET_COMMANDS = [["run"], ["run", "--dry-run"], ["status"], ["rejects"],
                   ["rollback", "--yes"]]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _no_inherited_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCSHIFT_DSN", raising=False)


def invoke(runner: CliRunner, args: list[str], env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args}: {result.exception!r}")
    assert result.exit_code in (0, 1, 2, 3), (args, result.exit_code, result.output)
    return result.stdout + result.stderr


# --- the library ---------------------------------------------------------------------------

@pytest.mark.parametrize(("dsn", "masked"), [
    ("postgresql://alice:s3cr%ZZet@127.0.0.1:1/crm", "postgresql://alice:***@127.0.0.1:1/crm"),
    ("postgresql://alice:p@ss:w/rd@127.0.0.1:1/crm", "postgresql://alice:***@127.0.0.1:1/crm"),
    ("postgres://alice:hunter2%@/crm", "postgres://alice:***@/crm"),
    ("postgresql://alice@db/crm?sslmode=require&password=hunter2",
     "postgresql://alice@db/crm?sslmode=require&password=***"),
    ("postgresql://alice@db/crm?pasword=hunter2", "postgresql://alice@db/crm?pasword=***"),
    ("postgresql://db:5432/crm", "postgresql://db:5432/crm"),
    ("mongodb://alice:p@ss@127.0.0.1:1/?authSource=admin",
     "mongodb://alice:***@127.0.0.1:1/?authSource=admin"),
    ("mongodb+srv://alice:s3cr%ZZet@cluster0.example.net/crm",
     "mongodb+srv://alice:***@cluster0.example.net/crm"),
    ("host=db user=alice password=hunter2% dbname=crm",
     "host=db user=alice password=*** dbname=crm"),
    ("host=db password = 'p@ss w\\'rd' user=alice", "host=db password = *** user=alice"),
    ("host=db pasword=hunter2", "host=db pasword=***"),
    ("host=db user=alice password='hunter2", "host=db user=alice password=***"),
    ("", ""),
])
def test_mask(dsn: str, masked: str) -> None:
    assert mask(dsn) == masked


@pytest.mark.parametrize("pw", PASSWORDS)
def test_mask_and_secrets_of_every_form(pw: str) -> None:
    for dsn in target_dsns(pw) + mongo_uris(pw):
        assert_clean(mask(dsn), pw, dsn)
        assert any(pw in s or unquote(pw) in s for s in secrets(dsn)), dsn


def test_scrub_removes_raw_decoded_and_split_off_pieces() -> None:
    dsn = "postgresql://alice:pQz@sXs:wYw/rZd@127.0.0.1:1/crm"
    text = (f'cannot connect with {dsn}: failed to resolve host "sXs"; port "wYw" invalid; '
            'invalid percent-encoded token: "s3cr%ZZet" (p@ss w/rd)')
    out = scrub(text, dsn, "postgresql://bob:s3cr%ZZet@h/db",
                "postgresql://carol:p%40ss%20w%2Frd@h/db")
    assert out == ("cannot connect with postgresql://alice:***@127.0.0.1:1/crm: failed to "
                   'resolve host "***"; port "***" invalid; invalid percent-encoded token: '
                   '"***" (***)')
    # a short secret is only replaced where it stands alone, not inside words
    assert scrub("password authentication failed for ab (ab)",
                 "host=h password=ab") == "password authentication failed for *** (***)"
    # URI passwords and password= values are masked even from a DSN nobody named
    assert scrub("use mongodb://u:p@ss@h/ or host=h password='x y' now") == (
        "use mongodb://u:***@h/ or host=h password=*** now")


@pytest.mark.parametrize("pw", PASSWORDS)
def test_parse_dsn_refuses_malformed_without_the_password(pw: str) -> None:
    for dsn in target_dsns(pw):
        try:
            params = parse_dsn(dsn, what="the target DSN (--dsn)")
        except TargetError as exc:
            assert exc.message.startswith("the target DSN (--dsn) cannot be read"), exc.message
            assert exc.hint
            assert_clean(f"{exc.message}\n{exc.hint}", pw, dsn)
        else:
            assert unquote(pw) in params["password"], dsn
    with pytest.raises(SourceError, match="percent-escape"):
        parse_dsn("postgresql://alice:50%off@h/db", what="the source DSN", error=SourceError)
    assert parse_dsn("postgresql://alice:50%25off@h/db")["password"] == "50%off"


# --- every command, in process -------------------------------------------------------------

@pytest.mark.slow  # every command, every way of giving a DSN; CI runs it with --slow
def test_target_dsn_by_every_way_through_every_command(runner: CliRunner,
                                                       tmp_path: Path) -> None:
    """Every password in every form reaches the commands; the four ways a target DSN
    arrives and the five commands take turns so that every way meets every command."""
    plain = kv_mapping(tmp_path / "plain.yaml")
    var = kv_mapping(tmp_path / "var.yaml", target="${SECRET_TARGET_DSN}")
    turn = 0
    for n, pw in enumerate(PASSWORDS):
        for shape, bad in enumerate(target_dsns(pw)):
            inline = kv_mapping(tmp_path / f"inline{turn}.yaml", target=bad)
            ways: list[tuple[list[str], dict[str, str]]] = [
                (["-c", str(plain), "--dsn", bad], {}),
                (["-c", str(plain)], {"DOCSHIFT_DSN": bad}),
                (["-c", str(inline)], {}),
                (["-c", str(var)], {"SECRET_TARGET_DSN": bad}),
            ]
            args, env = ways[turn % len(ways)]
            for command in (TARGET_COMMANDS[turn % 5], TARGET_COMMANDS[(turn + 2) % 5]):
                out = invoke(runner, [*command, *args], env)
                assert_clean(out, pw, (command, args, env))
                assert "error:" in out, (command, args, env, out)
            if args[-1] != bad:
                out = invoke(runner, ["plan", *args], env)
                assert_clean(out, pw, ("plan", args, env))
            if shape % len(PASSWORDS) == n:  # each form once, passwords taking turns: it is slow
                out = invoke(runner, ["generate", "kv", "--out", bad])
                assert_clean(out, pw, ("generate", bad))
                assert "error:" in out, ("generate", bad, out)
            turn += 1


def test_malformed_dsn_is_one_error_line_with_a_hint_exit_1(runner: CliRunner,
                                                            tmp_path: Path) -> None:
    plain = kv_mapping(tmp_path / "plain.yaml")
    result = runner.invoke(app, ["status", "-c", str(plain), "--dsn",
                                 f"postgresql://alice:s3cr%ZZet@{DEAD}/crm"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "error: the target DSN (--dsn) cannot be read: its user name or password holds a '%' "
        f"that does not start a percent-escape: postgresql://alice:***@{DEAD}/crm")
    assert "hint: Percent-encode" in result.stderr
    result = runner.invoke(app, ["run", "-c", str(plain)],
                           env={"DOCSHIFT_DSN": f"postgresql://alice:p@ss:w/rd@{DEAD}/crm"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the target DSN ($DOCSHIFT_DSN) cannot be read: "
                                    "its password holds '@' or '/'")


@pytest.mark.slow  # every command over two sources; CI runs it with --slow
def test_source_dsn_and_mongodb_uri(runner: CliRunner, tmp_path: Path,
                                    make_dsn: Callable[[], str]) -> None:
    """A key-value source DSN (in the mapping or by ``${VAR}``) and a MongoDB URI, read by
    ``run`` (into a real target) and ``run --dry-run``, taking turns."""
    target = make_dsn()
    var = kv_mapping(tmp_path / "kvvar.yaml", source_dsn="${SECRET_SOURCE_DSN}")
    commands = [["run"], ["run", "--dry-run"]]
    turn = 0
    for pw in PASSWORDS:
        for bad in target_dsns(pw):
            path = var if turn % 2 else kv_mapping(tmp_path / f"kv{turn}.yaml", source_dsn=bad)
            command = commands[turn // 2 % 2]
            turn += 1
            out = invoke(runner, [*command, "-c", str(path), "--dsn", target],
                         {"SECRET_SOURCE_DSN": bad})
            assert_clean(out, pw, (command, bad))
            assert "key-value source" in out, (command, bad, out)
        for uri in mongo_uris(pw):
            path = tmp_path / f"mongo{turn}.yaml"
            path.write_text(MONGO_MAPPING.format(uri=uri.replace("'", "''")))
            args = [[*commands[turn % 2], "-c", str(path), "--dsn", target],
                    ["generate", "crm", "--scale", "0.01", "--out", uri]][turn // 2 % 2]
            turn += 1
            out = invoke(runner, args)
            assert_clean(out, pw, (args, uri))
            assert "error:" in out, (args, uri, out)


def test_ctrl_c_is_a_message_and_exit_130(runner: CliRunner, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(path: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("docshift.cli.load_mapping", interrupted)
    result = runner.invoke(app, ["status", "-c", str(kv_mapping(tmp_path / "m.yaml"))])
    assert result.exit_code == 130
    assert "interrupted; re-run the same command to resume" in result.stderr


# --- real processes: what reaches the terminal, tracebacks included ------------------------

@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.slow  # a dozen real docshift processes; CI runs it with --slow
def test_real_processes(tmp_path: Path, make_dsn: Callable[[], str],
                        processes: list[subprocess.Popen[str]]) -> None:
    target = make_dsn()
    plain = kv_mapping(tmp_path / "plain.yaml")
    var = kv_mapping(tmp_path / "var.yaml", target="${SECRET_TARGET_DSN}")
    source = kv_mapping(tmp_path / "source.yaml", source_dsn="postgresql://alice:hunter2%@/crm")
    mongo = tmp_path / "mongo.yaml"
    mongo.write_text(MONGO_MAPPING.format(uri=mongo_uris("p@ss:w/rd")[0]))
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("s3cr%ZZet", ["run", "-c", str(plain), "--dsn", target_dsns("s3cr%ZZet")[0]], {}),
        ("hunter2%", ["status", "-c", str(plain)], {"DOCSHIFT_DSN": target_dsns("hunter2%")[6]}),
        ("p@ss:w/rd", ["rollback", "--yes", "-c", str(var)],
         {"SECRET_TARGET_DSN": target_dsns("p@ss:w/rd")[1]}),
        ("s3cr%ZZet", ["generate", "kv", "--out", target_dsns("s3cr%ZZet")[1]], {}),
        ("hunter2%", ["run", "--dry-run", "-c", str(source)], {}),
        ("p@ss:w/rd", ["run", "-c", str(mongo), "--dsn", target], {}),
    ]
    env = {k: v for k, v in os.environ.items() if k != "DOCSHIFT_DSN"}
    for _, args, extra in cases:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "docshift", *args], cwd=tmp_path, env={**env, **extra},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for (pw, args, extra), p in zip(cases, processes, strict=True):
        stdout, stderr = p.communicate(timeout=60)
        assert_clean(stdout + stderr, pw, (args, extra))
        assert p.returncode == 1, (args, extra, p.returncode, stdout, stderr)
        assert stderr.startswith("error: "), (args, extra, stderr)


def test_a_bug_shows_where_it_happened_without_the_password(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = f"postgresql://alice:s3cr%ZZet@{DEAD}/crm"

    def broken(path: object) -> None:
        raise RuntimeError(f"cannot open {bad} (token 's3cr%ZZet')")

    monkeypatch.setattr("docshift.cli.load_mapping", broken)
    result = runner.invoke(app, ["status", "-c", str(kv_mapping(tmp_path / "m.yaml")),
                                 "--dsn", bad])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr  # a bug keeps its traceback, scrubbed
    assert "error: unexpected RuntimeError: cannot open postgresql://alice:***@" in result.stderr
    assert_clean(result.stdout, "s3cr%ZZet", "stdout")
    for s in forbidden("s3cr%ZZet"):
        assert s not in result.stderr
