"""The command line: parses options, calls the library, turns errors into messages and exit
codes (0 ok, 1 failure, 2 usage/mapping error, 3 finished with quarantined documents,
130 interrupted — re-run to resume)."""

from __future__ import annotations

import json
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console

from docshift.errors import DocshiftError, MappingError, RunAborted
from docshift.spec import Mapping, load_mapping

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUARANTINED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

HELP = """Move MongoDB or key-value data into normalized PostgreSQL, resumably.

\b
The loop: docshift infer SOURCE (propose a mapping file; or docshift
init for a commented starter), docshift plan (check it, show the DDL),
docshift run, docshift verify, docshift rollback if needed; docshift
demo shows it all on generated data. Every command takes --help, with
an example.
"""

EPILOG = """\b
Mapping file (docshift.yaml, -c FILE on every command):
  source:  kind (mongodb, mongodump, json, postgres_kv) and where to
           read (path, uri or dsn, database, table)
  target:  dsn (default: an embedded PostgreSQL under ./.docshift/),
           schema, mode (create: docshift creates the tables;
           existing: it loads into yours)
  tables:  per table its columns (type, from, nullable, default, map,
           references), where rows come from (from a collection, keys
           patterns, feeds; unnest for child rows), primary_key, indexes
  `docshift init` writes a commented starter; `docshift plan` names
  what is wrong.

\b
Exit codes:
  0    success
  1    failure (the run aborted, or verification found a problem)
  2    usage or mapping-file error
  3    the migration finished, but some documents were quarantined
  130  interrupted: re-run the same command to resume
"""

app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, help=HELP, epilog=EPILOG)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Config = Annotated[Path, typer.Option("-c", "--config", help="Mapping file.")]
Dsn = Annotated[str | None, typer.Option("--dsn", help="Target DSN (overrides the mapping "
                                         "and $DOCSHIFT_DSN; default: embedded server).")]
DEFAULT_CONFIG = Path("docshift.yaml")


def main() -> None:
    """Console-script entry point."""
    import gc

    try:
        app()
    finally:
        # what the command imported and built lives until the process ends: left out of
        # the final collections, the interpreter exits in milliseconds, not a quarter second
        gc.freeze()


def _print_version(value: bool) -> None:
    if value:
        from docshift import __version__

        typer.echo(f"docshift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print docshift's version and exit.")] = False,
) -> None:
    """Move MongoDB or key-value data into normalized PostgreSQL, resumably."""


@contextmanager
def _errors() -> Iterator[None]:
    """Every error becomes a message with a hint and the right exit code: no traceback for a
    user's mistake or Ctrl+C, and no secret of any DSN the command was given, ever."""
    from rich.markup import escape

    from docshift.dsn import ENCODE_HINT, parse_dsn, scrub
    from docshift.run.migrate import Interrupted
    from docshift.target.connect import DSN_ENV, UNREACHABLE_HINT, missing_database, one_line

    def given_dsns() -> list[str]:
        """Every DSN this command may have used: its options, $DOCSHIFT_DSN, the mapping's."""
        import os

        found = [os.environ.get(DSN_ENV) or ""]
        try:
            from typer._click.globals import get_current_context
        except ImportError:  # typer before 0.20 uses click itself
            from click import get_current_context
        ctx = get_current_context(silent=True)
        params = dict(ctx.params) if ctx is not None else {}
        found += [v for v in params.values() if isinstance(v, str) and ("://" in v or "=" in v)]
        if isinstance(params.get("config"), Path):
            try:
                m = load_mapping(params["config"])
            except Exception:  # noqa: BLE001 - the mapping's own error is being reported
                pass
            else:
                found += [m.target.dsn or "", m.source.dsn or "", m.source.uri or ""]
        return [d for d in found if d]

    def fail(message: str, hint: str | None, code: int = EXIT_FAILED) -> typer.Exit:
        dsns = given_dsns()
        err.print(f"[red]error:[/] {escape(scrub(message, *dsns))}", highlight=False)
        if hint:
            err.print(f"hint: {escape(scrub(hint, *dsns))}", highlight=False)
        return typer.Exit(code)

    def unreachable_hint() -> str:
        for d in given_dsns():
            if d.startswith(("postgres://", "postgresql://")):
                try:
                    parse_dsn(d)
                except DocshiftError:  # e.g. an '@' in the password split the URI elsewhere
                    return ENCODE_HINT
        return UNREACHABLE_HINT

    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except MappingError as exc:
        raise fail(exc.message, exc.hint, EXIT_USAGE) from None
    except Interrupted as exc:
        err.print(f"[yellow]{escape(scrub(exc.message, *given_dsns()))}[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; re-run the same command to resume[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (RunAborted, DocshiftError) as exc:
        raise fail(exc.message, exc.hint) from None
    except psycopg.OperationalError as exc:
        for d in given_dsns():
            missing = None if d.startswith("mongodb") else missing_database(d, exc)
            if missing is not None:
                raise fail(missing.message, missing.hint) from None
        raise fail(f"cannot reach the database ({one_line(str(exc))})", unreachable_hint()
                   ) from None
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:
            # raised by libpq before connecting: a DSN it cannot read
            raise fail(f"cannot read the DSN: {str(exc).strip()}", ENCODE_HINT) from None
        state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        raise fail(f"the database reported: {str(exc).strip()}{state}",
                   "Check the database and the user's privileges, then re-run.") from None
    except Exception as exc:
        from pymongo.errors import PyMongoError

        try:
            from typer._click import ClickException
        except ImportError:  # typer before 0.20 uses click itself
            from click import ClickException
        if isinstance(exc, ClickException):
            raise
        if isinstance(exc, PyMongoError):
            raise fail(f"MongoDB: {exc}", "Check the mongodb:// URI (host, port, user, "
                       "password, options) and that the server is reachable.") from None
        if isinstance(exc, ValueError):
            raise fail(str(exc), None) from None
        # A bug: show where it happened, without any secret the messages might quote.
        import traceback

        dsns = given_dsns()
        lines = traceback.format_exception(exc)
        err.print(escape(scrub("".join(lines), *dsns)), highlight=False, end="")
        raise fail(f"unexpected {type(exc).__name__}: {exc}",
                   "This is a bug in docshift; please report it with the lines above.") from None


@contextmanager
def _ctrl_c_stops(ui: object) -> Iterator[threading.Event]:
    """The first Ctrl+C asks the run to stop at the next batch boundary (or between two
    finalization steps); a second one, or SIGTERM, stops at once (the batch or step in
    flight rolls back). Installed by the command line only: the library never touches
    signal handlers."""
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        ui.message("Stopping after the current batch or step… (Ctrl+C again to stop at "  # type: ignore[attr-defined]
                   "once)")
        stop.set()

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # stop at once, as a second Ctrl+C does

    previous = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def _mapping(config: Path) -> Mapping:
    return load_mapping(config)


def _connect(m: Mapping, dsn: str | None, *, start: bool = False
             ) -> tuple[str, psycopg.Connection]:
    """The target DSN and an autocommit connection to it (errors never show the password).

    Commands that only read docshift's state use it as it is: they never start the embedded
    server (``start=False``)."""
    from docshift.target.connect import connect, target_dsn

    d = target_dsn(m, dsn, start=start)
    return d, connect(d)


Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print only warnings, errors and "
                                    "a one-line result.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Also print detail on "
                                      "standard error: the mapping and target used, each "
                                      "item.")]
RunVerbose = Annotated[bool, typer.Option("-v", "--verbose", help="Also print every step "
                                         "(each finalization step, each table --restart "
                                         "drops).")]


def _quiet_or_verbose(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        err.print("error: give --quiet or --verbose, not both", highlight=False)
        raise typer.Exit(EXIT_USAGE)


class _Output:
    """What a command prints besides errors: everything (the default); with ``--quiet`` only
    its one-line result; with ``--verbose`` also the context it works in and each item,
    on standard error, so that standard output stays the result."""

    def __init__(self, quiet: bool, verbose: bool) -> None:
        _quiet_or_verbose(quiet, verbose)
        self.quiet, self.verbose = quiet, verbose
        self.console = Console(quiet=True) if quiet else console
        """Where the detailed output (tables, progress) goes: nowhere with --quiet."""

    def detail(self, text: str) -> None:
        """A line only --verbose prints."""
        if self.verbose:
            err.print(text, highlight=False, markup=False)

    def result(self, text: str) -> None:
        """The one line --quiet keeps."""
        console.print(text, highlight=False, markup=False)

    def context(self, m: Mapping, config: Path, dsn: str | None = None) -> None:
        """--verbose: the mapping file and the target a command works on."""
        from docshift.target.connect import redact

        self.detail(f"mapping {config}: {m.source.kind} source, {len(m.tables)} table(s), "
                    f"schema {m.target.schema_} ({m.target.mode} mode)")
        if dsn:
            self.detail(f"target {redact(dsn)}")


@app.command(epilog="Example: docshift plan -c docshift.yaml --json > plan.json")
def plan(
    config: Config = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON (load "
                                          "order, tables, statements) for scripts.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Print the DDL and the load order. Writes nothing, connects to nothing."""
    from docshift.run.plan import render_plan

    out = _Output(quiet, verbose)
    with _errors():
        m = _mapping(config)
        out.context(m, config)
        out.detail(f"load order: {', '.join(m.tables_in_load_order())}")
        if as_json:
            from docshift.report.plan import plan_json

            typer.echo(json.dumps(plan_json(m), indent=2))
            return
        if quiet:
            out.result(f"plan ok: {len(m.tables)} table(s) in {config}")
            return
        typer.echo(render_plan(m), nl=False)


def _executor_name(value: str) -> str:
    """``--executor``: one of the executors ``docshift.run.executors`` knows."""
    from docshift.run.executors import EXECUTORS

    if value not in EXECUTORS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(EXECUTORS)}")
    return value


@app.command(epilog="Example: docshift run -c docshift.yaml --workers 4 --summary run.json")
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
                                                 "as JSON here (also when the run was "
                                                 "already complete).")] = None,
    split_min_docs: Annotated[int | None, typer.Option(
        "--split-min-docs", min=2, help="With several workers, split streams of at least this "
        "many documents into key ranges (default 50000).")] = None,
    quiet: Quiet = False,
    verbose: RunVerbose = False,
    log_file: Annotated[Path | None, typer.Option("--log-file", help="Also write the plain, "
                                                  "timestamped progress log here.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Verify the result against the "
                                         "source right after the run (as `docshift verify`; "
                                         "exit 1 if a check fails).")] = False,
    executor: Annotated[str, typer.Option(
        "--executor", metavar="local|dask", callback=_executor_name,
        help="Where work units load: local worker processes, or a Dask cluster "
        '(needs pip install "docshift[dask]").')] = "local",
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", metavar="ADDRESS|local:N", help="With --executor dask: the Dask "
        "scheduler's address (tcp://host:8786), or local:N to start a cluster of N worker "
        "processes here (default local:<--workers>).")] = None,
    columnar: Annotated[bool | None, typer.Option(
        "--columnar/--no-columnar", help="Build the rows of mongodump sources in columns "
        "where the mapping allows (needs pip install \"docshift[fast]\"; by default for "
        "streams of 20,000 documents or more); --no-columnar builds every row one "
        "document at a time. The result is the same.", show_default=False)] = None,
) -> None:
    """Migrate (or resume migrating) the source into the target."""
    from contextlib import ExitStack

    from docshift.report.console import RichUI, print_findings, summary_line, summary_table
    from docshift.run.migrate import RunOptions, migrate
    from docshift.target.connect import redact, target_dsn
    from docshift.transform.rows import compile_streams

    _quiet_or_verbose(quiet, verbose)
    with _errors(), ExitStack() as stack:
        m = _mapping(config)
        if dry_run:
            _dry_run(m, dsn)
            return
        _check_file_source(m)
        d = target_dsn(m, dsn)
        log = stack.enter_context(log_file.open("a", encoding="utf-8")) if log_file else None
        header = (f"{m.source.kind} → {redact(d)} (schema {m.target.schema_}, "
                  f"{m.target.mode} mode)")
        if not quiet:
            console.print(header, highlight=False, markup=False)
        if log is not None:
            log.write(f"docshift run -c {config}: {header}\n")
        tables_of = {s: p.tables for s, p in compile_streams(m).items()}
        opts = RunOptions(workers=workers, batch_size=batch_size, restart=restart,
                          max_errors=max_errors, split_min_docs=split_min_docs,
                          executor=executor, scheduler=scheduler, columnar=columnar)
        with RichUI(console, tables_of, mapping=m, quiet=quiet, verbose=verbose,
                    log=log) as ui, _ctrl_c_stops(ui) as stop:
            res = migrate(m, d, opts, ui, stop)
        if summary:
            summary.write_text(json.dumps(res.as_json(), indent=2, default=str))
        if log is not None:
            log.write(summary_line(res) + "\n")
        console.print(summary_line(res) if quiet else summary_table(res), highlight=False)
        if res.already_complete and not quiet:
            console.print(f"Run {res.run_id} is already complete: nothing to do "
                          "(use --restart to migrate again from scratch).")
        if not res.already_complete:
            print_findings(console, res)
        if res.finalize and res.finalize.failures:
            raise typer.Exit(EXIT_FAILED)
        if verify and not _verified(m, d, quiet):
            raise typer.Exit(EXIT_FAILED)
        if res.already_complete:
            return
        if res.quarantined:
            console.print(f"[yellow]{res.quarantined} document(s) quarantined[/]: "
                          "see them with `docshift rejects`.")
            raise typer.Exit(EXIT_QUARANTINED)


def _write_reports(rep: Any, report: Path | None, markdown: Path | None,
                   html_out: Path | None, render_markdown: Callable[[Any], str],
                   render_html: Callable[[Any], str]) -> None:
    """``--report`` (JSON), ``--markdown`` and ``--html`` of ``verify`` and ``bench``."""
    if report:
        report.write_text(json.dumps(rep.as_json(), indent=2, default=str))
    if markdown:
        markdown.write_text(render_markdown(rep))
    if html_out:
        html_out.write_text(render_html(rep))


def _check_file_source(m: Mapping) -> None:
    """A dump or export that cannot be opened is an error before any server is started."""
    if m.source.kind in ("mongodump", "json"):
        from docshift.sources import open_source

        open_source(m.source).close()


def _verified(m: Mapping, dsn: str, quiet: bool) -> bool:
    """``docshift run --verify``: the default verification, its table, True if it passed."""
    from docshift.report.verify import print_terminal
    from docshift.verify import VerifyOptions
    from docshift.verify import verify as run_verify

    if not quiet:
        console.print("Verifying the result against the source…")
    rep = run_verify(m, dsn, VerifyOptions())
    if not quiet:
        print_terminal(console, rep)
    console.print(f"verification {rep.status} ({rep.seconds:.1f} s)")
    return rep.ok


def _dry_run(m: Mapping, dsn: str | None) -> None:
    """``docshift run --dry-run``: exit 3 if some documents would be quarantined."""
    from docshift.report.dryrun import print_dry_run
    from docshift.run.dryrun import dry_run

    rep = dry_run(m, dsn)
    print_dry_run(console, rep)
    if rep.rejects:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command(short_help="Show whether the last run is running or interrupted, and what next.",
             epilog="Example: docshift status -c docshift.yaml --json")
def status(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON for "
                                          "scripts.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Show whether the last run is running, interrupted or complete, and what to do next."""
    from docshift.report.status import print_status
    from docshift.run.status import run_status

    out = _Output(quiet, verbose)
    with _errors():
        m = _mapping(config)
        d, conn = _connect(m, dsn)
        out.context(m, config, d)
        with conn:
            st = run_status(conn, m, d)
        if as_json:
            typer.echo(json.dumps(st.as_json(), indent=2, default=str))
            return
        if quiet:
            out.result("no run yet" if st.run_id is None else
                       f"run {st.run_id}: {st.status} ({st.quarantined:,} quarantined)")
            return
        print_status(console, st)


@app.command(short_help="List quarantined documents by cause, or export them.",
             epilog="Example: docshift rejects --all --export rejects.jsonl")
def rejects(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    export: Annotated[Path | None, typer.Option("--export", help="Write every quarantined "
                                                "document as JSON Lines here.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Also the rows a policy removed or "
                                       "changed (keep_first, on_orphan: null / drop).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups (with --all, also "
                                          "the removals) as JSON for scripts.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """List quarantined documents grouped by cause, or export them."""
    from docshift.report.rejects import print_rejects, rejects_json
    from docshift.run.rejects import export_rejects, group_rejects, group_removals

    out = _Output(quiet, verbose)
    if as_json and export:
        err.print("error: give --json or --export, not both", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    with _errors():
        m = _mapping(config)
        d, conn = _connect(m, dsn)
        out.context(m, config, d)
        with conn:
            if export:
                n = export_rejects(conn, export, removals=all_)
                what = "line(s) (quarantined documents, then removals)" if all_ else \
                    "quarantined document(s)"
                console.print(f"wrote {n:,} {what} to {export}")
                return
            groups = group_rejects(conn)
            removed = group_removals(conn) if all_ else None
        if as_json:
            typer.echo(json.dumps(rejects_json(groups, removed), indent=2, default=str))
            return
        if quiet:
            out.result(f"{sum(g.count for g in groups):,} quarantined document(s) in "
                       f"{len(groups)} group(s)")
            return
        print_rejects(console, groups, removed)


@app.command(short_help="Undo exactly what the migration did to the target.",
             epilog="Example: docshift rollback -c docshift.yaml --yes")
def rollback(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really do it.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Drop what the migration created (existing mode: remove the rows it loaded)."""
    from docshift.run.rollback import rollback as roll_back
    from docshift.target.connect import target_dsn

    out = _Output(quiet, verbose)
    with _errors():
        m = _mapping(config)
        what = ("drops the tables docshift created" if m.target.mode == "create" else
                "removes the rows this migration loaded from the mapped tables ("
                + ", ".join(m.tables) + ") and restores their keys and indexes")
        if not yes:
            err.print(f"rollback {what}, and drops docshift's state (schema docshift, with "
                      f"the quarantine) in {_rollback_target(m, dsn)}; the source is never "
                      "touched.", highlight=False, markup=False)
            if m.target.mode == "create":
                err.print(f"Tables: {', '.join(f'{m.target.schema_}.{t}' for t in m.tables)}.",
                          highlight=False, markup=False)
            err.print("Refusing without --yes.")
            raise typer.Exit(EXIT_USAGE)
        d = target_dsn(m, dsn)
        out.context(m, config, d)
        _print_rollback(out, roll_back(m, d))


def _rollback_target(m: Mapping, dsn: str | None) -> str:
    """The database a rollback would change, for its refusal (never starts a server)."""
    from docshift.errors import TargetError
    from docshift.target.connect import given_dsn, redact, target_dsn

    try:
        return f"the target {redact(target_dsn(m, dsn, start=False))}"
    except TargetError:
        if given_dsn(m, dsn) is not None:
            raise  # a DSN that cannot be read: that is the error to report
        return "the embedded server's database (not running now)"


PER_TABLE = ("dropped table ", "removed ", "re-created index ")
"""How the lines of a rollback about one table or index start: counted, listed with -v."""


def _print_rollback(out: _Output, lines: list[str]) -> None:
    """A rollback's lines: each table's only with --verbose, else their count."""
    each = [line for line in lines if line.startswith(PER_TABLE)]
    for line in lines:
        if line.startswith(PER_TABLE):
            out.detail(line)
        elif not out.quiet:
            out.result(line)
    if each and not out.verbose:
        out.result(f"rolled back {len(each)} table(s) and index(es)"
                   + ("" if out.quiet else " (--verbose lists them)"))
    elif not each and out.quiet:
        out.result(lines[-1] if lines else "nothing to roll back")


@app.command(short_help="Write a commented starter mapping file (or infer one).",
             epilog="Example: docshift init --from ./dump -o docshift.yaml")
def init(
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write it.")] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite.")] = False,
    from_: Annotated[str | None, typer.Option("--from", help="Propose the mapping from this "
                                              "source instead (same as `docshift infer "
                                              "SOURCE`).")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write a commented starter mapping file (or, with --from, one inferred from a source)."""
    from docshift.spec.starter import STARTER

    output = _Output(quiet, verbose)
    if out.exists() and not force:
        err.print(f"{out} exists; use --force to overwrite it.")
        raise typer.Exit(EXIT_USAGE)
    if from_ is not None:
        _infer_to(from_, out, output=output)
        return
    out.write_text(STARTER)
    output.detail(f"the starter has {len(STARTER.splitlines())} lines; `docshift --help` "
                  "describes the mapping file's sections")
    output.result(f"wrote {out}" if quiet else
                  f"wrote {out}; edit it, then `docshift plan -c {out}`.")


def _infer_to(source: str, out: Path, opts: object = None,
              output: _Output | None = None) -> None:
    """Infer a mapping from ``source`` and write it to ``out``, with a progress bar (with
    --verbose, a line per stream sampled; with --quiet, neither)."""
    from docshift.infer import InferOptions, infer_mapping
    from docshift.report.console import SamplingProgress

    output = output or _Output(False, False)
    bar_console = Console(quiet=True) if output.quiet else err
    with _errors(), SamplingProgress(bar_console, output.detail) as progress:
        text = infer_mapping(source, opts if isinstance(opts, InferOptions) else None,
                             progress)
        out.write_text(text)
    output.result(f"wrote {out}" if output.quiet else
                  f"wrote {out}; review it, then `docshift plan -c {out}`.")


@app.command(short_help="Propose a mapping file from a sample of the source.",
             epilog="Example: docshift infer ./dump -o docshift.yaml")
def infer(
    source: Annotated[str, typer.Argument(help="A mongodump folder, an export file or "
                                          "folder, a mongodb:// URI or a PostgreSQL DSN.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the mapping.")
                   ] = DEFAULT_CONFIG,
    sample: Annotated[int, typer.Option("--sample", min=1, help="Documents sampled per "
                                        "stream (key-value: per key pattern).")] = 1000,
    kind: Annotated[str | None, typer.Option("--kind", help="mongodump, json, mongodb or "
                                             "postgres_kv (default: detected).")] = None,
    database: Annotated[str | None, typer.Option("--database", help="mongodb: the database "
                                                 "(default: the one in the URI).")] = None,
    table: Annotated[str | None, typer.Option("--table", help="postgres_kv: the key-value "
                                              "table (default: the only one).")] = None,
    arrays: Annotated[str, typer.Option("--arrays", help="Arrays of scalars: child (a child "
                                        "table) or inline (a T[] column).")] = "child",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")
                     ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sample a source and propose a mapping file (types, references, junctions, child
    tables). Only reads the source."""
    from docshift.infer import InferOptions
    from docshift.infer.detect import KINDS

    output = _Output(quiet, verbose)
    if kind is not None and kind not in KINDS:
        err.print(f"--kind takes one of {', '.join(KINDS)}, not {kind!r}")
        raise typer.Exit(EXIT_USAGE)
    if arrays not in ("child", "inline"):
        err.print(f"--arrays takes child or inline, not {arrays!r}")
        raise typer.Exit(EXIT_USAGE)
    if out.exists() and not force:
        err.print(f"{out} exists; use --force to overwrite it.")
        raise typer.Exit(EXIT_USAGE)
    _infer_to(source, out, InferOptions(sample=sample, arrays=arrays, kind=kind,
                                        database=database, table=table), output)


def _check_scale(factor: float, given: str, also: str = "") -> None:
    """``--scale`` of ``generate`` and ``demo``: a finite number above 0, checked before
    anything is written or started."""
    from rich.markup import escape

    from docshift.errors import UsageError
    from docshift.generate.arguments import check_scale

    try:
        check_scale(factor)  # the generators' own rule
        return
    except UsageError:
        pass
    err.print(f"[red]error:[/] --scale takes a number greater than 0{' ' + also if also else ''}"
              f", not {escape(repr(given))}", highlight=False)
    err.print("hint: --scale 1 is the standard size; use e.g. --scale 0.1 for a smaller "
              "dataset.", highlight=False)
    raise typer.Exit(EXIT_USAGE)


@app.command(epilog="Example: docshift generate crm --scale 2 --bad-rate 0.05 --out ./dump")
def generate(
    kind: Annotated[str, typer.Argument(help="crm or kv")],
    out: Annotated[str, typer.Option("--out", help="Directory (crm), mongodb:// URI (crm), "
                                     "DSN or .jsonl file (kv).")],
    scale: Annotated[str, typer.Option("--scale", help="Size factor, or 'large'.")] = "1",
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed and scale give "
                                      "the same dataset.")] = 0,
    edge_cases: Annotated[bool, typer.Option("--edge-cases", help="Add edge cases: nulls, "
                                             "empty arrays, unicode, very long text, "
                                             "boundary dates, every enum value.")] = False,
    bad_rate: Annotated[float, typer.Option("--bad-rate", min=0.0, max=1.0, help="Share "
                                            "of documents (0 to 1) given bad data of each "
                                            "kind, to be quarantined.")] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="crm: mongodump, mongodump-gz or "
                                     "mongoexport.")] = "mongodump",
    table: Annotated[str | None, typer.Option("--table", help="kv: the key-value table to "
                                              "write (default kv_store_demo).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="kv: replace the table if it "
                                          "exists.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write a deterministic synthetic dataset (and its manifest)."""
    from docshift import generate as gen
    from docshift.dsn import mask

    output = _Output(quiet, verbose)

    if kind not in ("crm", "kv"):
        err.print(f"unknown dataset {kind!r}; choose crm or kv")
        raise typer.Exit(EXIT_USAGE)
    try:
        factor = gen.LARGE_SCALE if scale == "large" else float(scale)
    except ValueError:
        factor = math.nan
    _check_scale(factor, scale, "or 'large'")
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
    for name, n in man.documents.items():
        output.detail(f"{name}: {n:,} document(s)")
    output.result(f"generated {kind} dataset: {total:,} documents in {mask(out)}")


@app.command(short_help="Generate data, migrate it into the embedded PostgreSQL, verify.",
             epilog="Example: docshift demo --scale 0.5")
def demo(
    scale: Annotated[float, typer.Option("--scale", help="Dataset size factor.")] = 1.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 2,
    quiet: Quiet = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Also print every "
                                          "finalization step of both migrations, and where "
                                          "the demo works.")] = False,
    log_file: Annotated[Path | None, typer.Option("--log-file", help="Also write the plain, "
                                                  "timestamped progress log of both "
                                                  "migrations here.")] = None,
) -> None:
    """Generate data, migrate it into the embedded PostgreSQL, and show where it went."""
    import os
    from contextlib import ExitStack

    from docshift.report.console import DemoConsole
    from docshift.run.demo import run_demo
    from docshift.target.embedded import DEFAULT_HOME

    out = _Output(quiet, verbose)
    _check_scale(scale, f"{scale:g}")
    out.detail(f"embedded server and datasets under "
               f"{Path(os.environ.get('DOCSHIFT_HOME', DEFAULT_HOME)).resolve()}; "
               f"scale {scale:g}, {workers} worker(s)")
    with _errors(), ExitStack() as stack:
        log = stack.enter_context(log_file.open("a", encoding="utf-8")) if log_file else None
        view = DemoConsole(out.console, quiet=quiet, verbose=verbose, log=log)
        code = run_demo(view, scale=scale, workers=workers)
    if quiet:
        out.result("demo ok" if code == EXIT_OK else f"demo failed (exit {code})")
    raise typer.Exit(code)


@app.command(short_help="Time queries on the new schema (and the source), advise indexes.",
             epilog="Example: docshift bench --queries examples/kv/queries.yaml --report "
             "bench.json")
def bench(
    queries: Annotated[Path, typer.Option("--queries", help="The queries file (see "
                                          "docs/bench.md).")],
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Measured runs per query, each "
                                      "with the next parameter values.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Unmeasured runs per query "
                                        "first.")] = 2,
    seq_scan_rows: Annotated[int, typer.Option("--seq-scan-rows", min=0, help="Report "
                                               "sequential scans of tables of at least this "
                                               "many rows, with an index proposal.")] = 10_000,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report "
                                                "here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown "
                                                  "report here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write a self-contained "
                                                  "HTML report (with a bar chart) here.")
                        ] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Time each query of a queries file on the target (and its equivalent on the source),
    explain it, and advise indexes; exit 1 if a query errors or misses its expect_ms."""
    from docshift.bench import BenchOptions, load_queries
    from docshift.bench import bench as run_bench
    from docshift.report.bench import print_terminal, render_html, render_markdown
    from docshift.target.connect import target_dsn

    out = _Output(quiet, verbose)
    with _errors():
        m = _mapping(config)
        qf = load_queries(queries)
        opts = BenchOptions(runs=runs, warmup=warmup, seq_scan_rows=seq_scan_rows)
        d = target_dsn(m, dsn)
        out.context(m, config, d)

        def started(name: str) -> None:
            status.update(f"benchmarking {name}…")
            out.detail(f"benchmarking {name}")

        with (Console(quiet=True) if quiet else err).status("benchmarking…") as status:
            rep = run_bench(m, d, qf, opts, started)
        print_terminal(out.console, rep)
        _write_reports(rep, report, markdown, html_out, render_markdown, render_html)
        console.print(f"bench {'ok' if rep.ok else 'failed'}: {len(rep.queries)} queries, "
                      f"{len(rep.advice)} advice item(s) ({rep.seconds:.1f} s)")
    if not rep.ok:
        raise typer.Exit(EXIT_FAILED)


@app.command(short_help="Prove the migration correct against the source.",
             epilog="Example: docshift verify --full --markdown verify.md --report verify.json")
def verify(
    config: Config = DEFAULT_CONFIG,
    dsn: Dsn = None,
    sample: Annotated[int | None, typer.Option("--sample", min=1, help="Documents per stream "
                                               "whose every mapped field is compared "
                                               "(default 1000).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Compare every document.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample.")] = 0,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report "
                                                "here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown "
                                                  "sign-off report here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write a self-contained "
                                                  "HTML report here.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Prove the migration correct against the source; exit 1 if any check fails."""
    from docshift.report.verify import print_terminal, render_html, render_markdown
    from docshift.target.connect import target_dsn
    from docshift.verify import VerifyOptions
    from docshift.verify import verify as run_verify

    out = _Output(quiet, verbose)
    if sample is not None and full:
        err.print("give --sample N or --full, not both")
        raise typer.Exit(EXIT_USAGE)
    with _errors():
        m = _mapping(config)
        opts = VerifyOptions(full=full, seed=seed)
        if sample is not None:
            opts.sample = sample
        d = target_dsn(m, dsn)
        out.context(m, config, d)
        out.detail("comparing every document" if full else
                   f"comparing a sample of {opts.sample:,} document(s) per stream (seed {seed})")
        rep = run_verify(m, d, opts)
        print_terminal(out.console, rep)
        _write_reports(rep, report, markdown, html_out, render_markdown, render_html)
        console.print(f"verification {rep.status} ({rep.seconds:.1f} s)")
    if not rep.ok:
        raise typer.Exit(EXIT_FAILED)


server_app = typer.Typer(help="The embedded PostgreSQL server under ./.docshift/.",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("start", epilog="Example: psql \"$(docshift server start)\"")
def server_start(quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Start the embedded server (if needed) and print its DSN."""
    from docshift.target.embedded import running_server_dsn, server_dsn

    out = _Output(quiet, verbose)
    with _errors():
        out.detail("the embedded server was already running" if running_server_dsn()
                   else "starting the embedded server")
        out.result(server_dsn())


@server_app.command("stop", epilog="Example: docshift server stop")
def server_stop(quiet: Quiet = False, verbose: Verbose = False) -> None:
    """Stop the embedded server."""
    from docshift.target.embedded import stop_server

    out = _Output(quiet, verbose)
    with _errors():
        stopped = stop_server()
        if not quiet:
            out.result("stopped" if stopped else "no embedded server was running here")

