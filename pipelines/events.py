"""What the CLI reports while it runs, as text lines (default) or one JSON object per line.

`--log-format json` is for log collectors: every event is one line on stderr, a JSON object with
`ts` (UTC, ISO 8601), `event` and the event's fields:

- `run_start`: command, destination, dataset (and `accounts` when given on the command line)
- `progress`: message (a step of the run, as the text format prints it)
- `account_done`: account_id, resource, invoices, items, past_due_balance, currency_code: what
  the destination holds for the account after the run
- `account_failed`: account_id, resource, http_status, error_code, message
- `load_done`: destination, dataset, accounts, failed_accounts, invoices, items, seconds
- `error`: exit_code, message (the one line the text format prints)

With `json`, the CLI also sets dlt's `runtime.log_format` to JSON (unless configured), so dlt's
own log lines parse as well (its objects have `msg` instead of `event`).

Fields come from the destination and from the messages of `cli.explain`, which never hold
secrets; nothing here reads credentials.
"""

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from sources.docusign_billing import settings

FORMATS = ("text", "json")


class Events:
    """Writes events to `stream`; text lines keep the CLI's `docusign-billing: ...` form."""

    def __init__(self, log_format: str = "text", stream: TextIO | None = None) -> None:
        self.json = log_format == "json"
        self.stream = stream

    def emit(self, event: str, text: str | None = None, **fields: Any) -> None:
        """One event; in text format only events with a `text` line are printed."""
        stream = self.stream or sys.stderr
        if self.json:
            record = {"ts": datetime.now(UTC).isoformat(), "event": event, **fields}
            print(json.dumps(record, default=_plain), file=stream, flush=True)
        elif text is not None:
            print(f"docusign-billing: {text}", file=stream, flush=True)

    def progress(self, message: str) -> None:
        self.emit("progress", message, message=message)

    def accounts(self, pipeline: dlt.Pipeline) -> None:
        """One `account_done` or `account_failed` per account of the latest run (json only)."""
        if not self.json:
            return
        for fields in account_results(pipeline):
            self.emit(fields.pop("event"), **fields)


def account_results(pipeline: dlt.Pipeline) -> list[dict[str, Any]]:
    """Per account of the latest run: what the destination holds, or why its call failed."""
    results: list[dict[str, Any]] = []
    with pipeline.sql_client() as client:
        snapshots = client.make_qualified_table_name(settings.SNAPSHOTS_TABLE)
        invoices = client.make_qualified_table_name(settings.INVOICES_TABLE)
        items = client.make_qualified_table_name(settings.ITEMS_TABLE)
        latest = f"(SELECT max(snapshot_at) FROM {snapshots})"
        rows = client.execute_sql(
            f"SELECT s.account_id, s.past_due_balance, s.currency_code,"
            f" (SELECT count(*) FROM {invoices} i WHERE i.account_id = s.account_id"
            "   AND i._dlt_valid_to IS NULL),"
            f" (SELECT count(*) FROM {items} t JOIN {invoices} i ON t._dlt_parent_id = i._dlt_id"
            "   WHERE i.account_id = s.account_id AND i._dlt_valid_to IS NULL)"
            f" FROM {snapshots} s WHERE s.snapshot_at = {latest} ORDER BY 1"
        )
        for account_id, balance, currency, invoice_count, item_count in rows or []:
            results.append(
                {
                    "event": "account_done",
                    "account_id": account_id,
                    "resource": settings.INVOICES_TABLE,
                    "invoices": invoice_count,
                    "items": item_count,
                    "past_due_balance": balance,
                    "currency_code": currency,
                }
            )
        if settings.ERRORS_TABLE in pipeline.default_schema.data_table_names():
            errors = client.make_qualified_table_name(settings.ERRORS_TABLE)
            try:
                failed = client.execute_sql(
                    f"SELECT account_id, http_status, error_code, message FROM {errors}"
                    f" WHERE snapshot_at = {latest} ORDER BY 1"
                )
            except DatabaseUndefinedRelation:  # in the schema, not in this (new) destination
                failed = []
            for account_id, status, code, message in failed or []:
                results.append(
                    {
                        "event": "account_failed",
                        "account_id": account_id,
                        "resource": settings.INVOICES_TABLE,
                        "http_status": status,
                        "error_code": code,
                        "message": message,
                    }
                )
    return results


def _plain(value: Any) -> Any:
    """Decimals as strings (exact money), anything else as its text."""
    return str(value) if isinstance(value, Decimal) else repr(value)
