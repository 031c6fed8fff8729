"""Migrate a generated dataset with an example mapping, then verify it."""

from __future__ import annotations

from pathlib import Path

import pytest

from docshift.generate import generate_crm, generate_kv
from docshift.run.migrate import RunOptions, migrate
from docshift.spec import Mapping, load_mapping
from docshift.verify import VerifyOptions, VerifyReport, verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KV_TABLE = "kv_store_9e1f"


def migrated_crm(dsn: str, tmp: Path, monkeypatch: pytest.MonkeyPatch, *, scale: float = 0.1,
                 bad_rate: float = 0.0, seed: int = 3) -> Mapping:
    out = tmp / "crm"
    generate_crm(str(out), scale=scale, seed=seed, bad_rate=bad_rate)
    monkeypatch.setenv("DOCSHIFT_SOURCE", str(out))
    m = load_mapping(EXAMPLES / "crm" / "docshift.yaml")
    migrate(m, dsn, RunOptions(batch_size=500))
    return load_mapping(EXAMPLES / "crm" / "docshift.yaml")


def migrated_kv(dsn: str, tmp: Path, monkeypatch: pytest.MonkeyPatch, *, scale: float = 0.1,
                bad_rate: float = 0.0, seed: int = 3, example: str = "kv") -> Mapping:
    generate_kv(dsn, scale=scale, seed=seed, bad_rate=bad_rate, table=KV_TABLE,
                manifest_path=str(tmp / "manifest.json"))
    monkeypatch.setenv("DOCSHIFT_KV_TABLE", KV_TABLE)
    m = load_mapping(EXAMPLES / example / "docshift.yaml")
    migrate(m, dsn, RunOptions(batch_size=500))
    return load_mapping(EXAMPLES / example / "docshift.yaml")


def run_verify(m: Mapping, dsn: str, **kw: object) -> VerifyReport:
    return verify(m, dsn, VerifyOptions(**kw))  # type: ignore[arg-type]


def problems(rep: VerifyReport) -> list[str]:
    """Every failing check, one line each with its first differences (for assertions)."""
    out = []
    for c in rep.checks:
        if c.status == "fail":
            first = [(d.key, d.field, d.source_value, d.target_value)
                     for d in c.differences[:3]]
            out.append(f"{c.layer}/{c.table}/{c.name}: {c.message} {first}")
    return out
