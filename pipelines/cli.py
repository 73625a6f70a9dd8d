"""`docusign-billing`: run the pipeline, run the demo, report, query the DuckDB file.

Exit codes: 0 loaded, 1 the run failed (worth a retry), 2 needs a human
(configuration, rejected credentials), 3 some accounts failed and the others loaded, 4 nothing to
report (`report` on a destination without data), 130 / 143 stopped by SIGINT / SIGTERM. Failures
print one line on stderr.
"""

import argparse
import atexit
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlt.common.exceptions import DltException

from pipelines import progress
from pipelines.arrow_without_pandas import pyarrow_without_pandas
from pipelines.console import stopped_message
from pipelines.events import FORMATS
from pipelines.failures import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_DATA,
    EXIT_OK,
    EXIT_PARTIAL,
    explain,
)
from pipelines.signals import Stopped, stop_of, stop_on_signals
from sources.docusign_billing import settings
from sources.docusign_billing.dlt_internals import check_dlt
from sources.docusign_billing.errors import ConfigError, DocuSignBillingError
from sources.docusign_billing.resources import RESOURCES

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NO_DATA",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "explain",
]


def _configured_source_args(args: argparse.Namespace) -> dict[str, Any]:
    source_args: dict[str, Any] = {}
    if args.accounts is not None:
        source_args["account_ids"] = args.accounts
    if args.base_url:
        source_args["base_url"] = args.base_url
    if args.resources is not None:
        if not args.resources.strip():  # in config an empty value means the default; here not
            raise ConfigError("--resources '' names no resource; leave it out to load all")
        source_args["resources"] = args.resources
    return source_args


def _sandbox_source_args(sandbox: Any) -> dict[str, Any]:
    from sources.docusign_billing.auth import DocuSignCredentials
    from sources.docusign_billing.sandbox import ACCESS_TOKEN

    progress.say(
        f"sandbox API with {len(sandbox.account_ids)} synthetic accounts at {sandbox.base_url}"
    )
    return {
        "account_ids": sandbox.account_ids,
        "base_url": sandbox.base_url,
        "credentials": DocuSignCredentials(auth="token", access_token=ACCESS_TOKEN),
    }


def _load_and_report(
    args: argparse.Namespace, source_args: dict[str, Any], pipeline_name: str
) -> int:
    from pipelines.docusign_billing_pipeline import (
        format_summary,
        load,
        make_pipeline,
        recorded_failures,
        summarize,
    )

    pipeline = make_pipeline(
        args.destination, args.dataset, args.pipelines_dir, args.duckdb_file, pipeline_name
    )
    started = time.monotonic()
    info = load(pipeline, progress=progress.say, **source_args)
    # the load has committed: nothing after this line may turn the run into a failed one
    try:
        summary = summarize(pipeline)
        progress.events.accounts(pipeline)
    except Exception as ex:  # the data is in; only the report of it is missing
        progress.say(f"loaded; the summary could not be read ({explain(ex)[1]})")
        return EXIT_PARTIAL if recorded_failures(info) else EXIT_OK
    summary.seconds = time.monotonic() - started
    where = f" (file {os.path.abspath(args.duckdb_file)})" if args.destination == "duckdb" else ""
    print(format_summary(summary, pipeline, where))
    progress.emit(
        "load_done",
        destination=pipeline.destination.destination_name,
        dataset=summary.dataset or pipeline.dataset_name,
        accounts=summary.accounts,
        failed_accounts=len(summary.failures),
        invoices=summary.invoices,
        items=summary.items,
        seconds=round(summary.seconds, 3),
    )
    if summary.failures:
        failed = summary.failed_accounts
        progress.say(
            f"partial failure: {failed} account{'s' if failed != 1 else ''} failed,"
            " the others loaded"
        )
        return EXIT_PARTIAL
    return EXIT_OK


def _accounts() -> None:
    from sources.docusign_billing import reachable_accounts

    rows = [("ACCOUNT ID", "NAME", "BASE URI", "DEFAULT")] + [
        (a.account_id, a.account_name or "", a.base_uri or "", "yes" if a.is_default else "")
        for a in reachable_accounts()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


# C0/C1 control characters and DEL as escapes: text from the API must not move the cursor,
# recolour or clear the terminal (an ANSI escape in an invoice's name is data, not a command)
_ESCAPED = {c: ascii(chr(c))[1:-1] for c in [*range(0x20), *range(0x7F, 0xA0)]}


def _shown(value: object) -> object:
    """A query result value as printed: NULL for None (not pandas' NaN/NaT), control characters
    in text escaped."""
    if value is None:
        return "NULL"
    return value.translate(_ESCAPED) if isinstance(value, str) else value


def _query(args: argparse.Namespace) -> None:
    import duckdb
    import pandas as pd

    if _only_the_demo_was_loaded(args):
        args.duckdb_file = settings.DEMO_DUCKDB_FILE
        progress.say(
            f"no {settings.DUCKDB_FILE} here: querying the demo's {args.duckdb_file}"
            " (--duckdb-file chooses another file)"
        )
    if not os.path.isfile(args.duckdb_file):
        raise ConfigError(f"the DuckDB file {args.duckdb_file!r} does not exist")
    # read-only, and unless asked no access to other files: the SQL cannot COPY ... TO a file,
    # read_text() or ATTACH; `lock_configuration` keeps the SQL from switching it back on
    config: dict[str, str | bool | int | float | list[str]] = {
        "enable_external_access": bool(args.allow_files),
        "lock_configuration": True,
    }
    try:
        with duckdb.connect(args.duckdb_file, read_only=True, config=config) as connection:
            result = connection.sql(args.sql)
            if result is None:
                return
            frame = pd.DataFrame(result.fetchall(), columns=result.columns, dtype=object)
            shown = frame.map(_shown)
            print(shown.to_string(index=False) if len(frame) else "(no rows)")
    except duckdb.Error as ex:
        raise DocuSignBillingError(f"query failed: {str(ex).splitlines()[0]}") from None


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (options without one say in their help what applies) and
    keeps the descriptions' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in help_text:
            help_text += " (default: %(default)s)"
        return help_text


def _report(args: argparse.Namespace) -> int:
    from pipelines import report
    from pipelines.docusign_billing_pipeline import make_pipeline

    duckdb_file, pipeline_name = args.duckdb_file, settings.PIPELINE_NAME
    if _only_the_demo_was_loaded(args):
        duckdb_file, pipeline_name = settings.DEMO_DUCKDB_FILE, settings.DEMO_PIPELINE_NAME
        progress.say(
            f"no {settings.DUCKDB_FILE} here: reporting the demo's {duckdb_file}"
            " (--duckdb-file chooses another file)"
        )
    pipeline = make_pipeline(
        args.destination, args.dataset, args.pipelines_dir, duckdb_file, pipeline_name, True
    )
    try:
        data = report.read_views(pipeline, report.parse_as_of(args.as_of))
    except report.NoDataError as ex:
        progress.emit("error", str(ex), exit_code=EXIT_NO_DATA, message=str(ex))
        return EXIT_NO_DATA
    print(report.terminal_report(data))
    if args.out:
        for path in report.write_outputs(data, Path(args.out)):
            progress.say(f"wrote {path}")
    return EXIT_OK


def _only_the_demo_was_loaded(args: argparse.Namespace) -> bool:
    """`report` or `query` with the default DuckDB file, which does not exist, beside the demo's
    file: what a new user has after `demo` (the demo never writes into the real file)."""
    return (
        getattr(args, "destination", "duckdb") == "duckdb"
        and args.duckdb_file == settings.DUCKDB_FILE
        and not Path(settings.DUCKDB_FILE).exists()
        and Path(settings.DEMO_DUCKDB_FILE).exists()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docusign-billing", description=__doc__, formatter_class=_Formatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=f"{summary}.\n\n{description}",
            formatter_class=_Formatter,
        )

    def add_load_options(
        parser: argparse.ArgumentParser, duckdb_file: str, dataset: str | None
    ) -> None:
        parser.add_argument(
            "--destination",
            default="duckdb",
            help="any dlt destination name (postgres, bigquery, ...; install its extra)",
        )
        parser.add_argument(
            "--dataset",
            default=dataset,
            help="dataset (schema) name; the destination may normalize it (printed as it became)"
            + (
                ""
                if dataset
                else f" (default: {settings.DATASET_NAME} in the demo's DuckDB file,"
                f" {settings.DEMO_DATASET_NAME} on other destinations)"
            ),
        )
        parser.add_argument(
            "--duckdb-file",
            type=os.path.expanduser,
            default=duckdb_file,
            help="DuckDB file, with --destination duckdb",
        )
        parser.add_argument(
            "--pipelines-dir",
            type=os.path.expanduser,
            help="folder where dlt keeps the pipeline state (default: dlt's, ~/.dlt/pipelines; /var/dlt/pipelines as root)",
        )

    run = command(
        "run",
        "load the configured accounts",
        "Reads .dlt/config.toml, .dlt/secrets.toml and SOURCES__DOCUSIGN_BILLING__* variables.",
    )
    add_load_options(run, settings.DUCKDB_FILE, settings.DATASET_NAME)
    run.add_argument(
        "--accounts",
        metavar="ID,ID",
        help="account ids, comma separated (overrides account_ids in the config)",
    )
    run.add_argument(
        "--base-url",
        metavar="URL",
        help="API host for all accounts, e.g. https://demo.docusign.net/restapi (overrides the config)",
    )
    run.add_argument(
        "--resources",
        help="resources to load, comma separated: " + ", ".join(RESOURCES) + " (default: all)",
    )

    demo = command(
        "demo",
        "load synthetic accounts from the bundled sandbox API",
        "Kept apart from real data: its own pipeline state and its own DuckDB file (on another"
        f" destination, dataset {settings.DEMO_DATASET_NAME})."
        " Prints where it wrote.",
    )
    add_load_options(demo, settings.DEMO_DUCKDB_FILE, None)
    demo.add_argument(
        "--demo-accounts", type=_positive_int, default=5, help="number of synthetic accounts"
    )
    demo.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")

    command(
        "accounts",
        "list the accounts the OAuth credentials can reach",
        "Prints id, name, base URI and whether it is the default account; loads nothing.",
    )

    report = command(
        "report",
        "print the past-due aging table; --out DIR adds CSVs, charts, report.html",
        "Reads the SQL views of the loaded dataset; loads nothing.",
    )
    add_load_options(report, settings.DUCKDB_FILE, settings.DATASET_NAME)
    report.add_argument(
        "--out",
        type=os.path.expanduser,
        help="directory for a CSV per view, PNG charts and report.html",
    )
    report.add_argument(
        "--as-of",
        help="report the state at the last run at or before this UTC time (ISO 8601; default: now)",
    )

    query = command(
        "query",
        "run SQL against a DuckDB file and print the rows",
        "Read-only: the file cannot be changed, and the SQL cannot read or write other files"
        " (COPY ... TO, read_text, ATTACH) unless --allow-files is given.",
    )
    query.add_argument("sql", help='the SQL, e.g. "SELECT * FROM billing.past_due_snapshots"')
    query.add_argument(
        "--duckdb-file",
        type=os.path.expanduser,
        default=settings.DUCKDB_FILE,
        help="the DuckDB file",
    )
    query.add_argument(
        "--allow-files",
        action="store_true",
        help="let the SQL read and write local files (COPY ... TO 'x.csv', read_csv, ...)",
    )
    for subcommand in commands.choices.values():  # every command, after its name
        subcommand.add_argument(
            "--log-format",
            choices=FORMATS,
            default="text",
            help="json: one JSON object per event on stderr",
        )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "query":
        _query(args)
    elif args.command == "accounts":
        _accounts()
    elif args.command == "report":
        return _report(args)
    elif args.command == "demo":
        from sources.docusign_billing.sandbox import Sandbox

        if args.dataset is None:  # the DuckDB file keeps the demo apart; elsewhere the dataset
            args.dataset = (
                settings.DATASET_NAME
                if args.destination == "duckdb"
                else settings.DEMO_DATASET_NAME
            )
        with Sandbox(accounts=args.demo_accounts, seed=args.seed) as sandbox:
            return _load_and_report(
                args, _sandbox_source_args(sandbox), settings.DEMO_PIPELINE_NAME
            )
    else:
        return _load_and_report(args, _configured_source_args(args), settings.PIPELINE_NAME)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command and returns its exit code.

    Args:
        argv: The command's arguments; None: the process's own command line (the console
            script), and then the process also ends here (`_end_process`).
    """
    code = _command(argv)
    if argv is None:
        _end_process(code)
    return code


def _command(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("run", "demo"):
        pyarrow_without_pandas()  # a load never needs pandas (pipelines/arrow_without_pandas.py)
    if args.log_format == "json":  # dlt's own log lines as JSON objects too
        os.environ.setdefault("RUNTIME__LOG_FORMAT", "JSON")
    with stop_on_signals() as signals, progress.shown(args.log_format):
        fields = ("destination", "dataset", "accounts")
        progress.emit(
            "run_start",
            command=args.command,
            **{f: getattr(args, f) for f in fields if getattr(args, f, None)},
        )
        stopped = None
        try:
            try:
                check_dlt(say=lambda line: progress.emit("warning", line, message=line))
                code = _dispatch(args)
            finally:
                signals.hold()  # the run is over: a signal now only changes the exit code
        except (Stopped, KeyboardInterrupt, DocuSignBillingError, DltException, OSError) as ex:
            stopped = stop_of(ex)
            if stopped is None:
                code, message = explain(ex)
                progress.emit("error", message, exit_code=code, message=message)
        stopped = stopped or signals.received()
        if stopped is not None:
            code = stopped.exit_code
            message = stopped_message(str(stopped))
            progress.emit("error", message, exit_code=code, message=message)
            _exit_now_if_threads_remain(code)
    return code


def _exit_now_if_threads_remain(code: int) -> None:
    """Ends a stopped run at once even when fetch threads still wait on a hung request (Python
    would join them at exit, for up to the request timeout times its retries). Safe like any
    kill: the kernel releases the run lock and the files; the next run completes the data."""
    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _end_process(code: int) -> None:
    """Ends the console script's process once its command is done, without Python's teardown.

    The teardown frees every module and object of dlt, pyarrow, numpy and DuckDB one by one:
    0.3-0.9 s on the 2-core machine, more than `import dlt` itself pays at exit, and nothing on
    disk changes by it (`benchmarks/RESULTS.md`). By now everything the command wrote is
    committed and closed (and the product survives a kill at any point); exit handlers still run
    (dlt's telemetry, logging, temporary files) and the output is flushed. While other threads
    still run, or the output cannot be flushed, Python's own exit does the rest as usual."""
    if threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()  # what Python's exit runs; it clears them (no second run)
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. the reader of a pipe went away: Python's exit reports it
        return
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
