"""`billing_invoices__invoice_items` follows each invoice's latest state, over HTTP against the
sandbox, on DuckDB and on a real PostgreSQL: an invoice corrected to fewer items keeps only the
new ones, one corrected to none keeps none, the others keep theirs untouched."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dlt
import pytest

from pipelines.docusign_billing_pipeline import load, make_pipeline
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import FAST_RETRIES, TOKEN_CREDENTIALS

TODAY = datetime.now(UTC).date()
ITEMS = "billing_invoices__invoice_items"
_DATABASES = itertools.count(1)


class Destination:
    """The real pipeline of `billing_invoices` into one destination, read back by dlt's client."""

    def __init__(self, sandbox: Sandbox, pipeline: dlt.Pipeline) -> None:
        self.sandbox, self.pipeline = sandbox, pipeline

    def run(self) -> None:
        load(
            self.pipeline,
            account_ids=self.sandbox.account_ids,
            base_url=self.sandbox.base_url,
            credentials=TOKEN_CREDENTIALS,
            resources="billing_invoices",
            history_start=(TODAY - timedelta(days=120)).isoformat(),
            **FAST_RETRIES,
        )

    def rows(self, sql: str) -> set[tuple]:
        with self.pipeline.sql_client() as client:
            rows = client.execute_sql(sql.format(dataset=client.dataset_name)) or []
            return {tuple(row) for row in rows}

    def items(self) -> set[tuple]:
        return self.rows(
            "SELECT account_id, invoice_id, invoice_item_id, charge_amount, _dlt_load_id"
            f" FROM {{dataset}}.{ITEMS}"
        )


@pytest.fixture(params=["duckdb", "postgres"])
def destination(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    with Sandbox(accounts=2, seed=3) as api:
        pipelines_dir = str(tmp_path / "pipelines")
        if request.param == "duckdb":
            pipeline = make_pipeline(
                pipelines_dir=pipelines_dir, duckdb_file=str(tmp_path / "items.duckdb")
            )
        else:
            url = request.getfixturevalue("postgres").create_database(f"items_{next(_DATABASES)}")
            pipeline = make_pipeline(
                destination=dlt.destinations.postgres(credentials=url), pipelines_dir=pipelines_dir
            )
        yield Destination(api, pipeline)


def _expected(sandbox: Sandbox) -> set[tuple]:
    """Every item the API serves now, of the invoices issued since the history start."""
    start = TODAY - timedelta(days=120)
    return {
        (account, i.invoice_id, item["invoiceItemId"], Decimal(item["chargeAmount"]))
        for account in sandbox.account_ids
        for i in sandbox.ledger(account).all_invoices(sandbox.today)
        if i.issued >= start
        for item in i.body["invoiceItems"]
    }


def test_a_changed_invoice_replaces_its_items_and_one_without_items_keeps_none(destination):
    """Removed to see it fail: the marker rows (`BatchParser(..., clears_items=False)` in
    `__init__.py`): the invoice corrected to no items keeps its two old rows."""
    api = destination.sandbox
    destination.run()
    before = destination.items()
    assert {row[:4] for row in before} == _expected(api)
    emptied, fewer = (
        # each account's latest invoice, issued within the look-back: the next run reads it
        api.ledger(account).all_invoices(api.today)[-1]
        for account in api.account_ids
    )
    assert len(emptied.body["invoiceItems"]) == len(fewer.body["invoiceItems"]) == 2
    assert TODAY - emptied.issued < timedelta(days=30) and TODAY - fewer.issued < timedelta(days=30)
    api.set_invoice_items(api.account_ids[0], emptied.invoice_id, keep=0)
    api.set_invoice_items(api.account_ids[1], fewer.invoice_id, keep=1)

    destination.run()
    after = destination.items()
    assert {row[:4] for row in after} == _expected(api)
    assert not [row for row in after if row[1] == emptied.invoice_id]
    assert [row[2] for row in after if row[1] == fewer.invoice_id] == ["1"]
    changed = {emptied.invoice_id, fewer.invoice_id}
    # the other invoices' rows are the first run's, untouched (same `_dlt_load_id`)
    assert {row for row in after if row[1] not in changed} == {
        row for row in before if row[1] not in changed
    }
    # no item row of an older invoice version; no marker row stored
    assert destination.rows(
        f"SELECT count(*) FROM {{dataset}}.{ITEMS} t WHERE NOT EXISTS (SELECT 1 FROM"
        " {dataset}.billing_invoices i WHERE i._dlt_id = t._dlt_parent_id)"
        " OR t._clears_items IS NOT NULL"
    ) == {(0,)}

    destination.run()  # unchanged data: the invoice without items sends its marker again
    assert destination.items() == after
