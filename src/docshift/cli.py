"""The command line: parses options, calls the library, turns errors into messages and exit
codes (0 ok, 1 failure, 2 usage/mapping error, 3 finished with quarantined documents,
130 interrupted — re-run to resume)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from docshift.errors import DocshiftError, MappingError, RunAborted
from docshift.spec import Mapping, load_mapping

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUARANTINED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Move MongoDB or key-value data into normalized PostgreSQL, resumably.")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Config = Annotated[Path, typer.Option("-c", "--config", help="Mapping file.")]
Dsn = Annotated[str | None, typer.Option("--dsn", help="Target DSN (overrides the mapping "
                                         "and $DOCSHIFT_DSN; default: embedded server).")]
DEFAULT_CONFIG = Path("docshift.yaml")


def main() -> None:
    """Console-script entry point."""
    app()


@contextmanager
def _errors() -> Iterator[None]:
    """Every library error becomes a message with a hint and the right exit code."""
    from docshift.run.migrate import Interrupted

    try:
        yield
    except MappingError as exc:
        err.print(f"[red]error:[/] {exc.message}", markup=True, highlight=False,
                  soft_wrap=True)
        if exc.hint:
            err.print(f"hint: {exc.hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except Interrupted as exc:
        err.print(f"[yellow]{exc.message}[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (RunAborted, DocshiftError) as exc:
        err.print(f"[red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err.print(f"hint: {exc.hint}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    except psycopg.OperationalError as exc:
        err.print(f"[red]error:[/] cannot reach the target database: {str(exc).strip()}")
        err.print("hint: check the DSN; docshift resumes from its last checkpoint on re-run.")
        raise typer.Exit(EXIT_FAILED) from None


@contextmanager
def _ctrl_c_stops(ui: object) -> Iterator[threading.Event]:
    """The first Ctrl+C asks the run to stop at the next batch boundary; a second one stops
    at once (the batch in flight rolls back). Installed by the command line only: the
    library never touches signal handlers."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        ui.message("Stopping after the current batch… (Ctrl+C again to stop at once)")  # type: ignore[attr-defined]
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _mapping(config: Path) -> Mapping:
    return load_mapping(config)


def _connect(m: Mapping, dsn: str | None) -> tuple[str, psycopg.Connection]:
    from docshift.target.connect import target_dsn

    d = target_dsn(m, dsn)
    return d, psycopg.connect(d, autocommit=True)


@app.command()
def plan(config: Config = DEFAULT_CONFIG) -> None:
    """Print the DDL and the load order. Writes nothing, connects to nothing."""
    from docshift.run.plan import render_plan

    with _errors():
        typer.echo(render_plan(_mapping(config)), nl=False)


@app.command()
def run(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and convert everything; "
                                          "write nothing to the target.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Documents per committed batch.")] = 5000,
    restart: Annotated[bool, typer.Option("--restart", help="Undo the previous run's effect "
                                          "on the target and start over.")] = False,
    max_errors: Annotated[int | None, typer.Option("--max-errors", min=0, help="Abort once "
                                                   "more documents than this are quarantined."
                                                   )] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="Write the run summary "
                                                 "as JSON here.")] = None,
    split_min_docs: Annotated[int | None, typer.Option(
        "--split-min-docs", min=2, help="With several workers, split streams of at least this "
        "many documents into key ranges (default 50000).")] = None,
) -> None:
    """Migrate (or resume migrating) the source into the target."""
    from docshift.report.console import RichUI, print_findings, summary_table
    from docshift.run.migrate import RunOptions, migrate
    from docshift.target.connect import redact, target_dsn
    from docshift.transform.rows import compile_streams

    with _errors():
        m = _mapping(config)
        if dry_run:
            _dry_run(m, dsn)
            return
        d = target_dsn(m, dsn)
        console.print(f"{m.source.kind} → {redact(d)} (schema {m.target.schema_}, "
                      f"{m.target.mode} mode)", highlight=False, markup=False)
        tables_of = {s: p.tables for s, p in compile_streams(m).items()}
        opts = RunOptions(workers=workers, batch_size=batch_size, restart=restart,
                          max_errors=max_errors, split_min_docs=split_min_docs)
        with RichUI(console, tables_of) as ui, _ctrl_c_stops(ui) as stop:
            res = migrate(m, d, opts, ui, stop)
        console.print(summary_table(res))
        if res.already_complete:
            console.print(f"Run {res.run_id} is already complete: nothing to do "
                          "(use --restart to migrate again from scratch).")
            return
        print_findings(console, res)
        if summary:
            summary.write_text(json.dumps(res.as_json(), indent=2, default=str))
        if res.finalize and res.finalize.failures:
            raise typer.Exit(EXIT_FAILED)
        if res.quarantined:
            console.print(f"[yellow]{res.quarantined} document(s) quarantined[/]: "
                          "see them with `docshift rejects`.")
            raise typer.Exit(EXIT_QUARANTINED)


def _dry_run(m: Mapping, dsn: str | None) -> None:
    from docshift.run.dryrun import dry_run

    rep = dry_run(m, dsn)
    t = Table(title="dry run: nothing was written")
    for col in ("table", "rows that would be written"):
        t.add_column(col)
    for table, n in rep.rows.items():
        t.add_row(table, f"{n:,}")
    console.print(t)
    if rep.rejects:
        r = Table(title="would be quarantined")
        for col in ("source", "table", "field", "error", "documents", "example key"):
            r.add_column(col)
        for (src, table, fld, ec), (n, key) in sorted(rep.rejects.items(),
                                                      key=lambda kv: -kv[1][0]):
            r.add_row(src, table or "", fld or "", ec, f"{n:,}", key)
        console.print(r)
    console.print(f"{rep.documents:,} documents read; duplicates and orphans are resolved "
                  "after loading and are not counted by a dry run.")
    if rep.unmatched:
        console.print(f"[yellow]{rep.unmatched} key(s) matched no table[/]")
    if rep.rejects:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
def status(config: Config = DEFAULT_CONFIG, dsn: Dsn = None) -> None:
    """Show per-stream progress of the current or last run."""
    from docshift.run.status import run_status

    with _errors():
        m = _mapping(config)
        _, conn = _connect(m, dsn)
        with conn:
            st = run_status(conn)
        if st.run_id is None:
            console.print("No run yet in this database. Start one with `docshift run`.")
            return
        finished = f", finished {st.finished_at:%H:%M:%S}" if st.finished_at else ""
        console.print(f"Run {st.run_id}: [bold]{st.status}[/] "
                      f"(started {st.started_at:%Y-%m-%d %H:%M:%S}{finished})")
        t = Table()
        for col in ("stream", "documents read", "of about", "quarantined", "done", "rows"):
            t.add_column(col)
        for s in st.streams or []:
            t.add_row(s.stream, f"{s.docs_read:,}", f"{s.estimate:,}" if s.estimate else "?",
                      str(s.rejected), "yes" if s.done else "no",
                      ", ".join(f"{k}: {v:,}" for k, v in sorted(s.rows.items())))
        console.print(t)
        if st.status == "interrupted":
            console.print("Re-run `docshift run` to resume from the last checkpoint.")


@app.command()
def rejects(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    export: Annotated[Path | None, typer.Option("--export", help="Write every quarantined "
                                                "document as JSON Lines here.")] = None,
) -> None:
    """List quarantined documents grouped by cause, or export them."""
    from docshift.run.rejects import export_rejects, group_rejects

    with _errors():
        m = _mapping(config)
        _, conn = _connect(m, dsn)
        with conn:
            if export:
                n = export_rejects(conn, export)
                console.print(f"wrote {n:,} quarantined document(s) to {export}")
                return
            groups = group_rejects(conn)
        if not groups:
            console.print("Nothing quarantined.")
            return
        total = sum(g.count for g in groups)
        console.print(f"{total:,} quarantined document(s), by cause:")
        for g in groups:
            where = f"{g.table or g.source}.{g.field}" if g.field else (g.table or g.source)
            console.print(f"  [bold]{g.count:>7,}[/]  {g.error_class:<18} {where}  "
                          f"[dim](source {g.source}, e.g. key {g.example_key})[/]",
                          highlight=False, soft_wrap=True)
            console.print(f"           {g.example_message}", highlight=False, soft_wrap=True,
                          markup=False)
        console.print("Export them with `docshift rejects --export rejects.jsonl`.")


@app.command()
def rollback(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really do it.")] = False,
) -> None:
    """Drop what the migration created (existing mode: remove the rows it loaded)."""
    from docshift.run.rollback import rollback as roll_back
    from docshift.target.connect import target_dsn

    with _errors():
        m = _mapping(config)
        what = ("drops the tables docshift created" if m.target.mode == "create" else
                "removes the rows this migration loaded from the mapped tables ("
                + ", ".join(m.tables) + ") and restores their keys and indexes")
        if not yes:
            err.print(f"rollback {what}, and drops docshift's state (schema docshift, with "
                      "the quarantine) in the target; the source is never touched.\n"
                      "Refusing without --yes.")
            raise typer.Exit(EXIT_USAGE)
        for line in roll_back(m, target_dsn(m, dsn)):
            console.print(line, highlight=False, markup=False)


@app.command()
def init(
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write it.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite.")] = False,
) -> None:
    """Write a commented starter mapping file."""
    from docshift.spec.starter import STARTER

    if out.exists() and not force:
        err.print(f"{out} exists; use --force to overwrite it.")
        raise typer.Exit(EXIT_USAGE)
    out.write_text(STARTER)
    console.print(f"wrote {out}; edit it, then `docshift plan -c {out}`.")


@app.command()
def generate(
    kind: Annotated[str, typer.Argument(help="crm or kv")],
    out: Annotated[str, typer.Option("--out", help="Directory (crm), mongodb:// URI (crm), "
                                     "DSN or .jsonl file (kv).")],
    scale: Annotated[str, typer.Option("--scale", help="Size factor, or 'large'.")] = "1",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    edge_cases: Annotated[bool, typer.Option("--edge-cases")] = False,
    bad_rate: Annotated[float, typer.Option("--bad-rate", min=0.0, max=1.0)] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="crm: mongodump, mongodump-gz or "
                                     "mongoexport.")] = "mongodump",
    table: Annotated[str | None, typer.Option("--table", help="kv: the key-value table to "
                                              "write (default kv_store_demo).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="kv: replace the table if it "
                                          "exists.")] = False,
) -> None:
    """Write a deterministic synthetic dataset (and its manifest)."""
    from docshift import generate as gen

    if kind not in ("crm", "kv"):
        err.print(f"unknown dataset {kind!r}; choose crm or kv")
        raise typer.Exit(EXIT_USAGE)
    try:
        factor = gen.LARGE_SCALE if scale == "large" else float(scale)
    except ValueError:
        err.print(f"--scale takes a number or 'large', not {scale!r}")
        raise typer.Exit(EXIT_USAGE) from None
    with _errors():
        if kind == "crm":
            man = gen.generate_crm(out, scale=factor, seed=seed, edge_cases=edge_cases,
                                   bad_rate=bad_rate, fmt=fmt)  # type: ignore[arg-type]
        else:
            if out == "embedded":
                from docshift.target.embedded import server_dsn
                out = server_dsn()
            man = gen.generate_kv(out, scale=factor, seed=seed, edge_cases=edge_cases,
                                  bad_rate=bad_rate, table=table, replace=replace)
    total = sum(man.documents.values())
    console.print(f"generated {kind} dataset: {total:,} documents")


@app.command()
def demo(
    scale: Annotated[float, typer.Option("--scale", help="Dataset size factor.")] = 1.0,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 2,
) -> None:
    """Generate data, migrate it into the embedded PostgreSQL, and show where it went."""
    from docshift.run.demo import run_demo

    with _errors():
        code = run_demo(console, scale=scale, workers=workers)
    raise typer.Exit(code)


@app.command()
def verify(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    sample: Annotated[int, typer.Option("--sample", min=1, help="Documents per stream whose "
                                        "every mapped field is compared.")] = 1000,
    full: Annotated[bool, typer.Option("--full", help="Compare every document.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report "
                                                "here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown "
                                                  "sign-off report here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write a self-contained "
                                                  "HTML report here.")] = None,
) -> None:
    """Prove the migration correct against the source; exit 1 if any check fails."""
    from docshift.report.verify import print_terminal, render_html, render_markdown
    from docshift.target.connect import target_dsn
    from docshift.verify import VerifyOptions
    from docshift.verify import verify as run_verify

    with _errors():
        m = _mapping(config)
        rep = run_verify(m, target_dsn(m, dsn), VerifyOptions(sample=sample, full=full,
                                                               seed=seed))
        print_terminal(console, rep)
        if report:
            report.write_text(json.dumps(rep.as_json(), indent=2, default=str))
        if markdown:
            markdown.write_text(render_markdown(rep))
        if html_out:
            html_out.write_text(render_html(rep))
        console.print(f"verification {rep.status} ({rep.seconds:.1f} s)")
    if not rep.ok:
        raise typer.Exit(EXIT_FAILED)


server_app = typer.Typer(help="The embedded PostgreSQL server under ./.docshift/.",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("start")
def server_start() -> None:
    """Start the embedded server (if needed) and print its DSN."""
    from docshift.target.embedded import server_dsn

    console.print(server_dsn(), highlight=False)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the embedded server."""
    from docshift.target.embedded import stop_server

    console.print("stopped" if stop_server() else "no embedded server was running here")

