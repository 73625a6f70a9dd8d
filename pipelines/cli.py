"""`docusign-billing`: run the pipeline, run the demo, report, query the DuckDB file.

Exit codes: 0 success, 1 the run failed (API, response or load error), 2 configuration error,
3 partial failure (some accounts failed, the others loaded), 4 nothing to report (`report` on a
destination without data), 130 interrupted. Failures print one line on stderr; nothing of a
failed run is loaded.
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import DestinationException, UnknownDestinationModule
from dlt.common.exceptions import DltException

from pipelines.docusign_billing_pipeline import format_summary, load, make_pipeline, summarize
from pipelines.events import FORMATS, Events
from sources.docusign_billing import settings
from sources.docusign_billing.dlt_internals import check_dlt
from sources.docusign_billing.errors import ConfigError, DocuSignBillingError
from sources.docusign_billing.resources import RESOURCES

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_NO_DATA = 4
"""`report` found nothing to report: no load yet, or no run at or before `--as-of`."""


_events = Events()
"""Set from `--log-format` by `main()`."""


def _progress(message: str) -> None:
    _events.progress(message)


def _causes(ex: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (dlt wraps errors of each pipeline step)."""
    chain: list[BaseException] = []
    current: BaseException | None = ex
    while current is not None and current not in chain:
        chain.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return chain


def explain(ex: BaseException) -> tuple[int, str]:
    """One line and an exit code for any failure; secrets never reach these messages."""
    chain = _causes(ex)
    for cause in chain:
        if isinstance(cause, ConfigError):
            return EXIT_CONFIG, f"configuration error: {cause}"
        if isinstance(cause, DocuSignBillingError):
            return EXIT_FAILED, str(cause)
        if isinstance(cause, ConfigFieldMissingException):
            fields = ", ".join(f"sources.docusign_billing.{f}" for f in cause.fields)
            return EXIT_CONFIG, (
                f"configuration error: {fields} is not set (in .dlt/config.toml, .dlt/secrets.toml"
                " or as SOURCES__DOCUSIGN_BILLING__... environment variables)"
            )
        if isinstance(cause, UnknownDestinationModule):
            return (
                EXIT_CONFIG,
                f"configuration error: unknown destination: {str(cause).splitlines()[0]}",
            )
    deepest = chain[-1]
    first_line = (str(deepest).strip().splitlines() or [type(deepest).__name__])[0]
    kind = (
        "destination error" if any(isinstance(c, DestinationException) for c in chain) else "error"
    )
    return EXIT_FAILED, f"{kind}: {first_line}"


def _configured_source_args(args: argparse.Namespace) -> dict[str, Any]:
    source_args: dict[str, Any] = {}
    if args.accounts:
        source_args["account_ids"] = args.accounts
    if args.base_url:
        source_args["base_url"] = args.base_url
    if args.resources:
        source_args["resources"] = args.resources
    return source_args


def _sandbox_source_args(sandbox: Any) -> dict[str, Any]:
    from sources.docusign_billing.auth import DocuSignCredentials
    from sources.docusign_billing.sandbox import ACCESS_TOKEN

    _progress(
        f"sandbox API with {len(sandbox.account_ids)} synthetic accounts at {sandbox.base_url}"
    )
    return {
        "account_ids": sandbox.account_ids,
        "base_url": sandbox.base_url,
        "credentials": DocuSignCredentials(auth="token", access_token=ACCESS_TOKEN),
    }


def _load_and_report(args: argparse.Namespace, source_args: dict[str, Any]) -> int:
    pipeline = make_pipeline(args.destination, args.dataset, args.pipelines_dir, args.duckdb_file)
    started = time.monotonic()
    load(pipeline, progress=_progress, **source_args)
    summary = summarize(pipeline)
    summary.seconds = time.monotonic() - started
    print(format_summary(summary, pipeline))
    _events.accounts(pipeline)
    _events.emit(
        "load_done",
        destination=pipeline.destination.destination_name,
        dataset=pipeline.dataset_name,
        accounts=summary.accounts,
        failed_accounts=len(summary.failures),
        invoices=summary.invoices,
        items=summary.items,
        seconds=round(summary.seconds, 3),
    )
    if summary.failures:
        _progress(f"partial failure: {summary.failed_accounts} accounts failed, the others loaded")
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


def _query(args: argparse.Namespace) -> None:
    import duckdb

    try:
        with duckdb.connect(args.duckdb_file, read_only=True) as connection:
            print(connection.sql(args.sql).df().to_string(index=False))
    except duckdb.Error as ex:
        raise DocuSignBillingError(f"query failed: {str(ex).splitlines()[0]}") from None


def _report(args: argparse.Namespace) -> int:
    from pipelines import report

    pipeline = make_pipeline(args.destination, args.dataset, args.pipelines_dir, args.duckdb_file)
    try:
        data = report.read_views(pipeline, report.parse_as_of(args.as_of))
    except report.NoDataError as ex:
        _events.emit("error", str(ex), exit_code=EXIT_NO_DATA, message=str(ex))
        return EXIT_NO_DATA
    print(report.terminal_report(data))
    if args.out:
        for path in report.write_outputs(data, Path(args.out)):
            _progress(f"wrote {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docusign-billing", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add_load_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--destination", help="any dlt destination name (default: duckdb)")
        command.add_argument("--dataset", default=settings.DATASET_NAME, help="dataset/schema name")
        command.add_argument(
            "--duckdb-file", default=settings.DUCKDB_FILE, help="DuckDB file for duckdb"
        )
        command.add_argument(
            "--pipelines-dir", help="where dlt keeps pipeline state (default: dlt's)"
        )

    run = commands.add_parser("run", help="load the configured accounts")
    add_load_options(run)
    run.add_argument("--accounts", help="account ids, comma separated (overrides the config)")
    run.add_argument(
        "--base-url", help="e.g. https://demo.docusign.net/restapi (overrides the config)"
    )
    run.add_argument(
        "--resources",
        help="resources to load, comma separated: " + ", ".join(RESOURCES) + " (default: all)",
    )

    demo = commands.add_parser("demo", help="load synthetic accounts from the bundled sandbox API")
    add_load_options(demo)
    demo.add_argument("--demo-accounts", type=int, default=5, help="number of synthetic accounts")
    demo.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")

    commands.add_parser(
        "accounts", help="list the accounts the OAuth credentials can reach; loads nothing"
    )

    report = commands.add_parser(
        "report", help="print the past-due aging table; --out DIR adds CSVs, charts, report.html"
    )
    add_load_options(report)
    report.add_argument("--out", help="directory for a CSV per view, PNG charts and report.html")
    report.add_argument(
        "--as-of", help="report the state at the last run at or before this UTC time (ISO 8601)"
    )

    query = commands.add_parser("query", help="run SQL against the DuckDB file and print the rows")
    query.add_argument("sql")
    query.add_argument("--duckdb-file", default=settings.DUCKDB_FILE)
    for command in commands.choices.values():  # every command, after its name
        command.add_argument(
            "--log-format", choices=FORMATS, default="text", help="json: one JSON object per event"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    global _events
    _events = Events(args.log_format)
    if args.log_format == "json":  # dlt's own log lines as JSON objects too
        os.environ.setdefault("RUNTIME__LOG_FORMAT", "JSON")
    fields = ("destination", "dataset", "accounts")
    _events.emit(
        "run_start",
        command=args.command,
        **{f: getattr(args, f) for f in fields if getattr(args, f, None)},
    )
    check_dlt(say=lambda line: _events.emit("warning", line, message=line))
    try:
        if args.command == "query":
            _query(args)
        elif args.command == "accounts":
            _accounts()
        elif args.command == "report":
            return _report(args)
        elif args.command == "demo":
            from sources.docusign_billing.sandbox import Sandbox

            with Sandbox(accounts=args.demo_accounts, seed=args.seed) as sandbox:
                return _load_and_report(args, _sandbox_source_args(sandbox))
        else:
            return _load_and_report(args, _configured_source_args(args))
    except KeyboardInterrupt:
        _events.emit("error", "interrupted", exit_code=EXIT_INTERRUPTED, message="interrupted")
        return EXIT_INTERRUPTED
    except (DocuSignBillingError, DltException, OSError) as ex:
        code, message = explain(ex)
        _events.emit("error", message, exit_code=code, message=message)
        return code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
