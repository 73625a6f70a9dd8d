"""Known runs for the reporting views' and report's tests: hand-written responses of two accounts
and an `Engine` that runs the real pipeline into DuckDB or PostgreSQL and reads it back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dlt

from pipelines.docusign_billing_pipeline import load
from pipelines.views import VIEW_NAMES
from sources.docusign_billing import settings
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import FAST_RETRIES, TOKEN_CREDENTIALS

TODAY = datetime.now(UTC).date()


def invoice(number: int, days_past_due: int, balance: str) -> dict[str, Any]:
    due = TODAY - timedelta(days=days_past_due)
    return {
        "invoiceId": f"inv-{number}",
        "invoiceNumber": f"INV-{number}",
        "amount": balance,
        "balance": balance,
        "dueDate": f"{due.isoformat()}T00:00:00Z",
        "invoiceItems": [],
    }


def body(currency: str, invoices: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum((Decimal(i["balance"]) for i in invoices), Decimal(0))
    return {
        "pastDueBalance": str(total),
        "accountBalance": str(total),
        "currencyCode": currency,
        "paymentAllowed": "true",
        "billingInvoices": invoices,
    }


A_FIRST = [
    invoice(1, 10, "100.00"),
    invoice(2, 45, "200.50"),
    invoice(3, 75, "300"),
    invoice(4, 120, "400"),
]
A_SECOND = [invoice(2, 45, "150.50"), invoice(3, 75, "300"), invoice(4, 120, "400")]  # 1 paid
B_BOTH = [invoice(5, 5, "50.25"), invoice(6, 95, "1000")]


class Engine:
    """One destination: runs the real pipeline into it and reads SQL back through dlt's client."""

    def __init__(self, sandbox: Sandbox, make: Callable[[], dlt.Pipeline]) -> None:
        self.sandbox = sandbox
        self.make = make

    def run(self, progress: Callable[[str], None] = lambda _: None, **source_args: Any) -> None:
        load(
            self.make(),
            progress=progress,
            account_ids=self.sandbox.account_ids,
            base_url=self.sandbox.base_url,
            credentials=TOKEN_CREDENTIALS,
            **FAST_RETRIES,
            **source_args,
        )

    def rows(self, sql: str) -> list[tuple]:
        with self.make().sql_client() as client:
            return [tuple(row) for row in client.execute_sql(sql) or []]

    def view(self, name: str, columns: str, order: str = "1, 2") -> list[tuple]:
        return self.rows(f"SELECT {columns} FROM {settings.DATASET_NAME}.{name} ORDER BY {order}")

    def views_present(self) -> set[str]:
        """The reporting views in the dataset."""
        names = ", ".join(f"'{name}'" for name in VIEW_NAMES)
        return {
            name
            for (name,) in self.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema ="
                f" '{settings.DATASET_NAME}' AND table_name IN ({names})"
            )
        }

    def two_runs(self) -> tuple[str, str, datetime, datetime]:
        """Run 1: A_FIRST and B_BOTH; run 2: A_SECOND (INV-1 paid, INV-2 part paid) and B_BOTH.
        Returns the two accounts and the two runs' snapshot_at."""
        a, b = self.sandbox.account_ids
        self.sandbox.set_response(a, body("USD", A_FIRST))
        self.sandbox.set_response(b, body("EUR", B_BOTH))
        self.run()
        self.sandbox.set_response(a, body("USD", A_SECOND))
        self.run()
        first, second = (
            at
            for (at,) in self.rows(
                f"SELECT DISTINCT snapshot_at FROM {settings.DATASET_NAME}.{settings.SNAPSHOTS_TABLE} ORDER BY 1"
            )
        )
        return a, b, first, second
