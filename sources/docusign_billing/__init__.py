"""DocuSign eSignature billing: past-due invoices with SCD2 history, their items, per-run snapshots."""

import json
import re
from datetime import datetime, timezone
from typing import Any, Iterator, List, Sequence

import dlt
from dlt.common.schema.typing import TWriteDispositionConfig
from dlt.extract.resource import DltResource

from . import settings
from .auth import DocuSignCredentials, make_auth
from .client import DocuSignClient
from .errors import ConfigError
from .tables import AccountResponse, BatchParser, ParsedBatch

_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_SCD2: TWriteDispositionConfig = {"disposition": "merge", "strategy": "scd2"}


def normalize_account_ids(account_ids: Any) -> List[str]:
    """One id, a list, or a string holding a JSON list or comma/space separated ids; each once."""
    if isinstance(account_ids, str):
        text = account_ids.strip()
        try:
            items = json.loads(text) if text.startswith("[") else re.split(r"[\s,]+", text)
        except ValueError:
            raise ConfigError(f"account_ids {text!r} is neither a JSON list nor comma separated ids") from None
    else:
        items = list(account_ids or [])
    ids = list(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    if not ids:
        raise ConfigError("no account ids: set sources.docusign_billing.account_ids")
    bad = [i for i in ids if not _ACCOUNT_ID.match(i)]
    if bad:
        raise ConfigError(f"account id {bad[0]!r} is not a DocuSign account id (GUID or number)")
    return ids


def history_hints(accounts: Sequence[str], snapshot_at: datetime) -> TWriteDispositionConfig:
    """SCD2 that retires only invoices of the accounts this run extracted, as of `snapshot_at`.

    A `destination_scope` rather than a `merge_key`: an account whose last invoice was paid
    sends no rows, and a merge key would then never retire its invoices.
    """
    scope = "account_id IN ({})".format(", ".join(f"'{a}'" for a in accounts) or "NULL")
    return {**_SCD2, "destination_scope": scope, "boundary_timestamp": snapshot_at}  # type: ignore[typeddict-item]


@dlt.source(name="docusign_billing", max_table_nesting=0)
def docusign_billing(
    account_ids: Any = dlt.config.value,  # Any: dlt cannot resolve Union[str, List[str]]
    credentials: DocuSignCredentials = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    request_timeout: float = settings.REQUEST_TIMEOUT,
    max_attempts: int = settings.MAX_ATTEMPTS,
    backoff_factor: float = settings.BACKOFF_FACTOR,
    max_retry_delay: float = settings.MAX_RETRY_DELAY,
) -> Sequence[DltResource]:
    """Past-due invoices of `account_ids`; one API call per account, parsed once for all tables."""
    accounts = normalize_account_ids(account_ids)
    client = DocuSignClient(
        base_url,
        make_auth(credentials),
        request_timeout=request_timeout,
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
        max_retry_delay=max_retry_delay,
    )
    snapshot_at = datetime.now(timezone.utc)

    @dlt.resource(selected=False)
    def account_batches() -> Iterator[ParsedBatch]:
        """Fetches and types each account; the last batch lists the accounts of the run."""
        parser = BatchParser(snapshot_at)
        for account_id in accounts:
            parser.add(AccountResponse(account_id, client.past_due_invoices(account_id)))
            if parser.invoice_count >= settings.BATCH_INVOICES:
                yield parser.build()
                parser = BatchParser(snapshot_at)
        yield parser.build(completed_accounts=accounts)

    @dlt.transformer(name=settings.INVOICES_TABLE, write_disposition=_SCD2)
    def past_due_invoices(batch: ParsedBatch) -> Iterator[object]:
        """One row per invoice version; `_dlt_valid_to` NULL means past due as of the latest run."""
        if batch.completed_accounts is None:
            yield batch.invoices
        else:
            hints = dlt.mark.make_hints(write_disposition=history_hints(batch.completed_accounts, snapshot_at))
            yield dlt.mark.with_hints(batch.invoices, hints)

    @dlt.transformer(
        name=settings.ITEMS_TABLE,
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
        primary_key="_dlt_id",
    )
    def invoice_items(batch: ParsedBatch) -> Iterator[object]:
        """Items of each invoice version, linked like dlt's nested tables and by plain keys."""
        yield batch.items

    @dlt.transformer(name=settings.SNAPSHOTS_TABLE, write_disposition="append")
    def past_due_snapshots(batch: ParsedBatch) -> Iterator[object]:
        """One row per account and run: the time series of what was past due when."""
        yield batch.snapshots

    return (
        account_batches | past_due_invoices,
        account_batches | invoice_items,
        account_batches | past_due_snapshots,
    )
