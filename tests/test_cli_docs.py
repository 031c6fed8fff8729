"""Every command and option of the CLI is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from docshift.cli import app

DOCS = Path(__file__).parents[1] / "docs"


def commands() -> dict[str, object]:
    group = typer.main.get_command(app)
    out = {}
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(cmd, "commands"):
            out.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            out[name] = cmd
    return out


def test_every_command_is_in_the_docs() -> None:
    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    missing = [name for name in commands() if f"docshift {name}" not in text]
    assert not missing, f"commands without documentation: {missing}"


def test_every_run_option_is_in_the_operations_guide() -> None:
    text = (DOCS / "operations.md").read_text()
    run = commands()["run"]
    options = {o for p in run.params for o in p.opts if o.startswith("--")}  # type: ignore[attr-defined]
    missing = sorted(o for o in options if not re.search(rf"`{o}\b", text))
    assert not missing, f"run options not in docs/operations.md: {missing}"


ROOT = Path(__file__).parents[1]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`(docshift [^`]+)`")
# a shell line stops at a comment, a pipe or the next command
SHELL_END = re.compile(r"\s(?:#|\||&&|;|>)")


def _invocations(text: str) -> list[str]:
    """Every ``docshift …`` command line in a Markdown text: lines of code blocks (with
    ``\\`` continuations and synopsis lines that go on with ``[…]``), and inline code."""
    found = []
    for block in FENCE.findall(text):
        lines: list[str] = []
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("docshift "):
                lines.append(line)
            elif line.startswith("[") and lines:
                lines[-1] += " " + line
        for line in lines:
            # a synopsis: [--sample N | --full] offers two options, it is not a pipe
            line = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).replace("|", " "), line)
            found.append(SHELL_END.split(line, maxsplit=1)[0])
    found += [s.replace("\n", " ") for s in SPAN.findall(FENCE.sub("", text))]
    return found


def _strings_in_code() -> list[tuple[Path, str]]:
    """Every string constant of the package (hints, messages, help), with its file."""
    import ast

    out = []
    for path in sorted((ROOT / "src" / "docshift").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append((path, node.value))
    return out


def _help_options(command: str) -> set[str]:
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, (command, res.output)
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", res.output))


def _wrong(invocations: list[tuple[str, str]]) -> list[str]:
    """The (where, invocation) pairs that name a command or an option the CLI lacks."""
    known = commands()
    helps: dict[str, set[str]] = {}
    wrong = []
    for where, inv in invocations:
        words = inv.split()
        name = words[1] if len(words) > 1 else ""
        if name == "server" and len(words) > 2:
            name = f"server {words[2]}"
        if name.startswith("-"):
            name = ""  # an option of docshift itself: docshift --help, --version
        elif not re.fullmatch(r"[a-z]+( [a-z]+)?", name):
            continue  # a placeholder such as docshift <command>
        elif name not in known:
            wrong.append(f"{where}: {inv!r}: no command {name!r}")
            continue
        options = {re.split(r"[=\[\]),.:]", w)[0] for w in words if w.startswith("--")}
        if name not in helps:
            helps[name] = _help_options(name)
        wrong += [f"{where}: {inv!r}: {name or 'docshift'} has no {o}"
                  for o in sorted(options - helps[name])]
    return wrong


def test_the_check_finds_a_wrong_command_or_option() -> None:
    text = """
```bash
docshift run -c m.yaml --workers 2 --no-such-option   # comment --ignored
docshift verify [-c FILE] [--sample N | --full]
                [--nowhere X]
docshift plan --json | jq --raw-output .
```
Then `docshift infre ./dump` and `docshift rejects --all`, `docshift --version`.
"""
    found = [("t.md", inv) for inv in _invocations(text)]
    assert len(found) == 6, found
    assert [w.split(": ", 2)[2] for w in _wrong(found)] == [
        "run has no --no-such-option", "verify has no --nowhere", "no command 'infre'"]


def test_every_documented_command_and_option_exists() -> None:
    """Each `docshift <command> --option` in the README, docs/*.md and the package's hints
    and messages names a command and an option its --help shows."""
    sources = [(p, p.read_text()) for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]]
    invocations = [(str(p.relative_to(ROOT)), inv) for p, text in sources
                   for inv in _invocations(text)]
    invocations += [(str(p.relative_to(ROOT)), s.replace("\n", " "))
                    for p, text in _strings_in_code() for s in SPAN.findall(text)]
    assert len(invocations) > 30  # the extraction finds the docs' commands
    wrong = _wrong(invocations)
    assert not wrong, "\n".join(wrong)
