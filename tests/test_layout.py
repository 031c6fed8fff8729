"""The layers of the package point one way: ``report/`` renders what the library returns
and is called by the command line (or through the small protocols the library defines,
such as ``run.migrate.UI``), so nothing below ``cli.py`` imports it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "docshift"
RENDERING = "docshift.report"
# every package below the command line; report/ itself, cli.py and __main__.py may import it
BELOW_CLI = ("spec", "sources", "transform", "target", "run", "verify", "bench", "generate",
             "infer")


def imported_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (at any depth, relative ones made
    absolute); ``from a import b`` counts as importing ``a.b`` too, as ``b`` may be a
    module."""
    module = ".".join(("docshift", *path.relative_to(package).with_suffix("").parts))
    if path.name == "__init__.py":
        module = module.rsplit(".", 1)[0] + ".__init__"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[:-node.level]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def rendering_imports(paths: list[Path], package: Path = PACKAGE) -> list[str]:
    """``file:line imports module`` for each import of ``docshift.report`` in ``paths``."""
    return [f"{p.relative_to(package)}:{line} imports {name}"
            for p in paths for line, name in imported_modules(p, package)
            if name == RENDERING or name.startswith(RENDERING + ".")]


def test_the_check_finds_every_form_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "docshift"
    (pkg / "run").mkdir(parents=True)
    (pkg / "run" / "a.py").write_text(
        "import docshift.report.console\n"
        "from docshift import report\n"
        "def f():\n"
        "    from ..report.verify import print_terminal\n"
        "    from .. import report as r\n"
        "    from docshift.reporting import x\n"
        "    from . import reporter\n")
    assert rendering_imports([pkg / "run" / "a.py"], pkg) == [
        "run/a.py:1 imports docshift.report.console",
        "run/a.py:2 imports docshift.report",
        "run/a.py:4 imports docshift.report.verify",
        "run/a.py:4 imports docshift.report.verify.print_terminal",
        "run/a.py:5 imports docshift.report",
    ]


def test_nothing_below_the_command_line_imports_report() -> None:
    paths = [p for layer in BELOW_CLI for p in sorted((PACKAGE / layer).rglob("*.py"))]
    assert len(paths) > 40  # every layer was found
    wrong = rendering_imports(paths)
    assert not wrong, "\n".join(wrong)


# what a command line may take from rich: a console to print on, markup escaping
CLI_RICH = {"rich", "rich.console", "rich.console.Console", "rich.markup",
            "rich.markup.escape"}


def test_the_command_line_renders_no_table_or_progress_itself() -> None:
    """cli.py parses options, calls the library and maps errors to exit codes; tables,
    progress bars and reports are built in report/ (sqlite-utils' cli.py is the model)."""
    rich = sorted({name for _, name in imported_modules(PACKAGE / "cli.py")
                   if name == "rich" or name.startswith("rich.")} - CLI_RICH)
    assert not rich, f"cli.py builds its own display with {rich}: move it to report/"
