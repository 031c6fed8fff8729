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
