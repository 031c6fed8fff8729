"""The dataset generators refuse a bad argument with docshift's own error and a hint, as a
library, and the command line shows it as one `error:` line and a `hint:` line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docshift.cli import app
from docshift.errors import DocshiftError
from docshift.generate import generate_crm, generate_kv


@pytest.mark.parametrize("scale", [0, -1, math.nan, math.inf])
@pytest.mark.parametrize("generate", [generate_crm, generate_kv])
def test_a_bad_scale_is_a_docshift_error_with_a_hint(tmp_path: Path, generate, scale: float
                                                     ) -> None:
    out = tmp_path / ("dump" if generate is generate_crm else "kv.jsonl")
    with pytest.raises(DocshiftError) as caught:
        generate(str(out), scale=scale)
    assert "scale" in caught.value.message and repr(scale) in caught.value.message
    assert caught.value.hint and "scale=1" in caught.value.hint
    assert isinstance(caught.value, ValueError)  # callers that caught ValueError still do
    assert not out.exists()


@pytest.mark.parametrize("generate", [generate_crm, generate_kv])
def test_a_bad_rate_is_a_docshift_error_with_a_hint(tmp_path: Path, generate) -> None:
    out = tmp_path / ("dump" if generate is generate_crm else "kv.jsonl")
    with pytest.raises(DocshiftError, match="bad_rate") as caught:
        generate(str(out), bad_rate=1.5)
    assert caught.value.hint


@pytest.mark.parametrize("kind", ["crm", "kv"])
@pytest.mark.parametrize("scale", ["0", "inf", "nan", "-2"])
def test_the_cli_keeps_one_error_and_one_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              kind: str, scale: str) -> None:
    monkeypatch.chdir(tmp_path)
    out = "dump" if kind == "crm" else "kv.jsonl"
    res = CliRunner().invoke(app, ["generate", kind, "--out", out, "--scale", scale])
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], res.output
    assert "--scale" in lines[0] and "Traceback" not in res.output
    assert not Path(out).exists()
