"""The built wheel works on its own: installed into a fresh virtualenv, `docshift demo` runs
from an empty folder (the example mappings ship inside the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import docshift

# building the wheel and a fresh virtualenv takes most of a minute; CI runs it with --slow
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the wheel, the ``docshift`` script of a fresh venv where only the wheel is installed).

    The project is copied first so that building leaves nothing in the checkout. The venv's
    dependencies come from this interpreter's site-packages through a ``.pth`` file (pip's
    network is not needed); this checkout's editable install is not visible there, since
    ``.pth`` files of a directory added that way are not read.
    """
    root = tmp_path_factory.mktemp("packaging")
    project = root / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(project)], check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("docshift-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, text=True)
    yield wheel, venv / "bin" / "docshift"


def _run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSHIFT_")}
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_wheel_carries_the_example_mappings(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("crm", "kv", "kv-existing"):
        assert f"docshift/examples/{kind}/docshift.yaml" in names
    assert "docshift/examples/kv-existing/schema.sql" in names


def test_installed_version(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, script = installed
    res = _run(script, "--version", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"docshift {docshift.__version__}"


def test_installed_demo_runs_from_an_empty_folder(installed: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    _, script = installed
    folder = tmp_path / "empty"
    folder.mkdir()
    try:
        res = _run(script, "demo", "--scale", "1", cwd=folder)
    finally:
        _run(script, "server", "stop", cwd=folder)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("✓ every table holds exactly") == 2, res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_init_starter_points_at_reachable_documentation(installed: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    _, script = installed
    res = _run(script, "init", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    head = "\n".join((tmp_path / "docshift.yaml").read_text().splitlines()[:6])
    assert "docs/" not in head and ".md" not in head
    assert "docshift --help" in head
    topics = _run(script, "--help", cwd=tmp_path).stdout
    assert "Mapping file" in topics
