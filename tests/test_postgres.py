"""The real pipeline into a real PostgreSQL: column types, exact values, SCD2 history, secrets.

A throwaway cluster (tests/postgres_server.py) is started once per session; each test gets its
own empty database. Missing server binaries fail the session with a pointer to
`bash scripts/install-postgres.sh`; these tests never skip.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import pytest

from pipelines import cli, failures
from pipelines.docusign_billing_pipeline import load, make_pipeline, summarize
from sources.docusign_billing import recovery, settings
from sources.docusign_billing.sandbox import ACCESS_TOKEN, Sandbox
from tests.conftest import FAST_RETRIES, PAST_DUE_ONLY, REPO, TOKEN_CREDENTIALS
from tests.postgres_server import PostgresNotInstalled, PostgresServer

DATASET = settings.DATASET_NAME
MONEY = ("numeric", 38, 9)
TEXT = ("character varying", None, None)
TIMESTAMPTZ = ("timestamp with time zone", None, None)
BOOLEAN = ("boolean", None, None)
BIGINT = ("bigint", 64, 0)

EXPECTED_COLUMNS: dict[str, dict[str, tuple]] = {
    settings.INVOICES_TABLE: {
        "account_id": TEXT,
        "invoice_id": TEXT,
        "invoice_number": TEXT,
        "invoice_uri": TEXT,
        "amount": MONEY,
        "taxable_amount": MONEY,
        "non_taxable_amount": MONEY,
        "balance": MONEY,
        "due_date": TIMESTAMPTZ,
        "pdf_available": BOOLEAN,
        "_dlt_id": TEXT,
        "_dlt_valid_from": TIMESTAMPTZ,
        "_dlt_valid_to": TIMESTAMPTZ,
    },
    settings.ITEMS_TABLE: {
        "account_id": TEXT,
        "invoice_id": TEXT,
        "invoice_item_id": TEXT,
        "charge_name": TEXT,
        "charge_amount": MONEY,
        "quantity": MONEY,
        "unit_price": MONEY,
        "_dlt_id": TEXT,
        "_dlt_parent_id": TEXT,
        "_dlt_root_id": TEXT,
        "_dlt_list_idx": BIGINT,
        "_dlt_load_id": TEXT,
    },
    settings.SNAPSHOTS_TABLE: {
        "account_id": TEXT,
        "account_name": TEXT,
        "snapshot_at": TIMESTAMPTZ,
        "currency_code": TEXT,
        "past_due_balance": MONEY,
        "account_balance": MONEY,
        "payment_allowed": BOOLEAN,
        "invoice_count": BIGINT,
    },
}
INVOICE_COLUMNS = "account_id, invoice_id, invoice_number, invoice_uri, amount, taxable_amount, non_taxable_amount, balance, due_date, pdf_available"
ITEM_COLUMNS = (
    "account_id, invoice_id, invoice_item_id, charge_name, charge_amount, quantity, unit_price"
)


# expected values, computed from the sandbox's string bodies independently of the project's parsers
def money(text: str) -> Decimal | None:
    cleaned = text.replace("$", "").replace(",", "")
    return Decimal(cleaned) if cleaned.strip() else None


def moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # DocuSign: no offset means UTC


def flag(text: str) -> bool:
    assert text.lower() in ("true", "false"), text
    return text.lower() == "true"


def expected_invoice(account_id: str, invoice: dict[str, Any]) -> tuple:
    return (
        account_id,
        invoice["invoiceId"],
        invoice["invoiceNumber"],
        invoice["invoiceUri"],
        money(invoice["amount"]),
        money(invoice["taxableAmount"]),
        money(invoice["nonTaxableAmount"]),
        money(invoice["balance"]),
        moment(invoice["dueDate"]),
        flag(invoice["pdfAvailable"]),
    )


def expected_items(account_id: str, invoice: dict[str, Any]) -> list[tuple]:
    return [
        (
            account_id,
            invoice["invoiceId"],
            item["invoiceItemId"],
            item["chargeName"],
            money(item["chargeAmount"]),
            money(item["quantity"]),
            money(item["unitPrice"]),
        )
        for item in invoice["invoiceItems"]
    ]


# fixtures ----------------------------------------------------------------------------------------
_DATABASES = itertools.count(1)


class PgRunner:
    """Runs the real pipeline against a sandbox into its own PostgreSQL database and reads it back."""

    def __init__(self, server: PostgresServer, sandbox: Sandbox, directory: Path) -> None:
        self.server = server
        self.sandbox = sandbox
        self.database = f"billing_{next(_DATABASES)}"
        self.url = server.create_database(self.database)
        self.pipelines_dir = str(directory / "pipelines")
        self.connection = server.connect(self.database)

    def pipeline(self, password: str | None = None) -> dlt.Pipeline:
        url = self.url if password is None else self.server.url_with(password, self.database)
        return make_pipeline(
            destination=dlt.destinations.postgres(credentials=url), pipelines_dir=self.pipelines_dir
        )

    def run(self, password: str | None = None) -> dlt.Pipeline:
        pipeline = self.pipeline(password)
        info = load(
            pipeline,
            account_ids=self.sandbox.account_ids,
            base_url=self.sandbox.base_url,
            credentials=TOKEN_CREDENTIALS,
            resources=PAST_DUE_ONLY,
            **FAST_RETRIES,
        )
        assert not info.has_failed_jobs
        return pipeline

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def table(self, name: str) -> list[tuple]:
        """Every row, in a total order (keyed reloads rewrite rows, so their physical order moves)."""
        return sorted(self.rows(f"SELECT * FROM {DATASET}.{name}"), key=repr)

    def latest_snapshot_at(self) -> datetime:
        return self.rows(f"SELECT max(snapshot_at) FROM {DATASET}.{settings.SNAPSHOTS_TABLE}")[0][0]

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def pg(postgres: PostgresServer, sandbox: Sandbox, tmp_path: Path) -> Iterator[PgRunner]:
    runner = PgRunner(postgres, sandbox, tmp_path)
    yield runner
    runner.close()


def files_containing(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose bytes contain `needle` (pickles, JSON, parquet, logs alike)."""
    data = needle.encode()
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()
    )


# the helper and the install script ---------------------------------------------------------------
def test_missing_server_binaries_fail_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.postgres_server as helper

    monkeypatch.setattr(helper.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(helper.shutil, "which", lambda name: None)
    server = PostgresServer()
    with pytest.raises(PostgresNotInstalled, match=r"bash scripts/install-postgres\.sh"):
        server.start()
    assert server.root is None  # nothing was created


def test_install_script_is_silent_when_postgres_is_installed(postgres: PostgresServer) -> None:
    """Needs `postgres`: with the binaries present the script must do nothing and say nothing."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-postgres.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_server_requires_the_password_over_tcp(postgres: PostgresServer) -> None:
    import psycopg2

    connection = postgres.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, inet_server_addr()::text, current_setting('fsync')"
            )
            assert cursor.fetchone() == (postgres.user, "127.0.0.1/32", "off")
    finally:
        connection.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(postgres.url_with("not-the-password"), connect_timeout=5)


# types and values ---------------------------------------------------------------------------------
def test_column_types_in_information_schema(pg: PgRunner) -> None:
    pg.run()
    found: dict[str, dict[str, tuple]] = {}
    for table, column, data_type, precision, scale in pg.rows(
        "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale"
        " FROM information_schema.columns WHERE table_schema = %s AND table_name NOT LIKE '\\_dlt\\_%%'"
        " AND table_name NOT IN (SELECT table_name FROM information_schema.views)"  # the reporting views
        " ORDER BY table_name, ordinal_position",
        DATASET,
    ):
        found.setdefault(table, {})[column] = (data_type, precision, scale)
    assert found == EXPECTED_COLUMNS
    # the keys the pipeline and dlt's SCD2 rely on are NOT NULL
    not_null = pg.rows(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND is_nullable = 'NO' AND table_name NOT LIKE '\\_dlt\\_%%'",
        DATASET,
    )
    assert {
        (settings.INVOICES_TABLE, "_dlt_id"),
        (settings.INVOICES_TABLE, "account_id"),
        (settings.ITEMS_TABLE, "_dlt_parent_id"),
        (settings.SNAPSHOTS_TABLE, "snapshot_at"),
    } <= set(not_null)


def test_values_equal_the_api_response_exactly(pg: PgRunner, sandbox: Sandbox) -> None:
    pg.run()
    bodies = {account_id: sandbox.response(account_id) for account_id in sandbox.account_ids}
    invoices = sorted(
        expected_invoice(a, i) for a, body in bodies.items() for i in body["billingInvoices"]
    )
    items = sorted(
        row
        for a, body in bodies.items()
        for i in body["billingInvoices"]
        for row in expected_items(a, i)
    )
    assert any(row[6] is None for row in invoices), "sandbox data should include a blank amount"

    loaded_invoices = pg.rows(
        f"SELECT {INVOICE_COLUMNS} FROM {DATASET}.{settings.INVOICES_TABLE} ORDER BY 1, 2"
    )
    assert loaded_invoices == invoices
    for row in loaded_invoices:  # exact decimals: no float ever touched them
        assert all(isinstance(v, Decimal) for v in row[4:8] if v is not None)
    assert sorted(pg.rows(f"SELECT {ITEM_COLUMNS} FROM {DATASET}.{settings.ITEMS_TABLE}")) == items
    # item order within an invoice is the API's
    ordered = pg.rows(
        f"SELECT invoice_id, invoice_item_id FROM {DATASET}.{settings.ITEMS_TABLE} ORDER BY invoice_id, _dlt_list_idx"
    )
    assert ordered == sorted(
        (
            (i["invoiceId"], item["invoiceItemId"])
            for b in bodies.values()
            for i in b["billingInvoices"]
            for item in i["invoiceItems"]
        ),
        key=lambda pair: pair[0],
    )

    snapshots = pg.rows(
        "SELECT account_id, currency_code, past_due_balance, account_balance, payment_allowed, invoice_count"
        f" FROM {DATASET}.{settings.SNAPSHOTS_TABLE} ORDER BY 1"
    )
    assert snapshots == sorted(
        (
            a,
            b["currencyCode"],
            money(b["pastDueBalance"]),
            money(b["accountBalance"]),
            flag(b["paymentAllowed"]),
            len(b["billingInvoices"]),
        )
        for a, b in bodies.items()
    )
    # one run, one snapshot time: it is every version's valid_from
    (snapshot_at,) = {
        row[0] for row in pg.rows(f"SELECT snapshot_at FROM {DATASET}.{settings.SNAPSHOTS_TABLE}")
    }
    assert pg.rows(
        f"SELECT DISTINCT _dlt_valid_from, _dlt_valid_to FROM {DATASET}.{settings.INVOICES_TABLE}"
    ) == [(snapshot_at, None)]


def test_summarize_reads_postgres(pg: PgRunner, sandbox: Sandbox) -> None:
    pipeline = pg.run()
    summary = summarize(pipeline)
    bodies = [sandbox.response(a) for a in sandbox.account_ids]
    totals: dict[str, Decimal] = {}
    for body in bodies:
        balance = money(body["pastDueBalance"])
        assert balance is not None
        totals[body["currencyCode"]] = totals.get(body["currencyCode"], Decimal(0)) + balance
    assert summary.accounts == len(bodies)
    assert summary.invoices == sum(len(b["billingInvoices"]) for b in bodies)
    assert summary.items == sum(
        len(i["invoiceItems"]) for b in bodies for i in b["billingInvoices"]
    )
    assert summary.past_due == totals
    assert pipeline.destination.destination_name == "postgres"


# history ---------------------------------------------------------------------------------------------
def test_history_over_runs(pg: PgRunner, sandbox: Sandbox) -> None:
    invoices, items = f"{DATASET}.{settings.INVOICES_TABLE}", f"{DATASET}.{settings.ITEMS_TABLE}"
    pg.run()
    first_at = pg.latest_snapshot_at()
    paid_account, changed_account, cleared_account = sandbox.account_ids
    paid = sandbox.response(paid_account)["billingInvoices"][0]["invoiceId"]
    changed = sandbox.response(changed_account)["billingInvoices"][0]
    old_balance = money(changed["balance"])
    new_balance = Decimal("12.34") if old_balance != Decimal("12.34") else Decimal("56.78")
    cleared = [i["invoiceId"] for i in sandbox.response(cleared_account)["billingInvoices"]]
    (old_version,) = pg.rows(
        f"SELECT _dlt_id FROM {invoices} WHERE invoice_id = %s", changed["invoiceId"]
    )[0]

    sandbox.pay_invoice(paid_account, paid)
    sandbox.set_balance(changed_account, changed["invoiceId"], str(new_balance))
    for invoice_id in cleared:  # the account's last invoice paid: it sends no rows at all
        sandbox.pay_invoice(cleared_account, invoice_id)
    pipeline = pg.run()
    second_at = pg.latest_snapshot_at()
    assert second_at > first_at

    def versions(invoice_id: str) -> list[tuple]:
        return pg.rows(
            f"SELECT _dlt_id, balance, _dlt_valid_from, _dlt_valid_to FROM {invoices}"
            " WHERE invoice_id = %s ORDER BY _dlt_valid_from",
            invoice_id,
        )

    # paid: one version, retired as of the second run
    assert [(v[2], v[3]) for v in versions(paid)] == [(first_at, second_at)]
    for invoice_id in cleared:
        assert [(v[2], v[3]) for v in versions(invoice_id)] == [(first_at, second_at)]
    # changed balance: the old version retired, a new one current from the second run
    (old, new) = versions(changed["invoiceId"])
    assert old == (old_version, old_balance, first_at, second_at)
    assert new[1:] == (new_balance, second_at, None) and new[0] != old_version
    # current rows are exactly what the API says now
    current = pg.rows(
        f"SELECT {INVOICE_COLUMNS} FROM {invoices} WHERE _dlt_valid_to IS NULL ORDER BY 1, 2"
    )
    now = {a: sandbox.response(a) for a in sandbox.account_ids}
    assert current == sorted(
        expected_invoice(a, i) for a, b in now.items() for i in b["billingInvoices"]
    )
    assert not [r for r in current if r[0] == cleared_account]
    # items of current invoices join through _dlt_parent_id = _dlt_id and match the API
    joined = pg.rows(
        f"SELECT {', '.join('it.' + c.strip() for c in ITEM_COLUMNS.split(','))} FROM {items} it"
        f" JOIN {invoices} inv ON it._dlt_parent_id = inv._dlt_id WHERE inv._dlt_valid_to IS NULL"
    )
    assert sorted(joined) == sorted(
        row for a, b in now.items() for i in b["billingInvoices"] for row in expected_items(a, i)
    )
    new_items = pg.rows(f"SELECT count(*) FROM {items} WHERE _dlt_parent_id = %s", new[0])[0][0]
    assert new_items == len(changed["invoiceItems"]) > 0
    # every item belongs to some invoice version (old versions keep their items)
    assert pg.rows(
        f"SELECT count(*) FROM {items} it LEFT JOIN {invoices} inv ON it._dlt_parent_id = inv._dlt_id"
        " WHERE inv._dlt_id IS NULL"
    ) == [(0,)]
    summary = summarize(pipeline)
    assert (summary.accounts, summary.invoices, summary.items) == (
        3,
        sum(len(b["billingInvoices"]) for b in now.values()),
        sum(len(i["invoiceItems"]) for b in now.values() for i in b["billingInvoices"]),
    )

    # an unchanged rerun adds a snapshot per account and nothing else
    before = {name: pg.table(name) for name in (settings.INVOICES_TABLE, settings.ITEMS_TABLE)}
    snapshots_before = len(pg.table(settings.SNAPSHOTS_TABLE))
    pg.run()
    assert {name: pg.table(name) for name in before} == before
    assert len(pg.table(settings.SNAPSHOTS_TABLE)) == snapshots_before + 3
    assert pg.latest_snapshot_at() > second_at


def test_recovery_deletes_a_packages_item_rows_in_postgres(pg: PgRunner, sandbox: Sandbox) -> None:
    """What `sources/docusign_billing/recovery.py` runs before it reloads a crashed package's appended items."""
    items = f"{DATASET}.{settings.ITEMS_TABLE}"
    pipeline = pg.run()
    (first,) = pg.rows(f"SELECT DISTINCT _dlt_load_id FROM {items}")[0]
    account = sandbox.account_ids[0]
    invoice = next(i for i in sandbox.response(account)["billingInvoices"] if i["invoiceItems"])
    sandbox.set_balance(account, invoice["invoiceId"], "3.21")
    pg.run()
    per_load = dict(pg.rows(f"SELECT _dlt_load_id, count(*) FROM {items} GROUP BY 1"))
    assert len(per_load) == 2 and per_load.pop(first) > 0
    recovery.remove_rows(pipeline, first, {settings.ITEMS_TABLE, "never_created"})
    assert dict(pg.rows(f"SELECT _dlt_load_id, count(*) FROM {items} GROUP BY 1")) == per_load


# secrets ----------------------------------------------------------------------------------------------
def test_password_is_not_written_to_disk(pg: PgRunner, sandbox: Sandbox, tmp_path: Path) -> None:
    password = pg.server.password
    assert password in pg.url
    pg.run()
    dlt_data_dir = tmp_path / "dlt"
    pipelines_dir = Path(pg.pipelines_dir)
    assert pipelines_dir.is_dir()
    # the scan does read dlt's files: the data and the (masked) destination location are in there
    assert files_containing(pipelines_dir, sandbox.account_ids[0])
    assert files_containing(pipelines_dir, f"{pg.server.user}:***@")
    for root in {tmp_path, dlt_data_dir, pipelines_dir}:
        if root.exists():
            assert files_containing(root, password) == []


def test_wrong_password_fails_without_revealing_it(pg: PgRunner, tmp_path: Path) -> None:
    wrong = "wrong-pw-7c1e4f0a9b"
    with pytest.raises(Exception) as failure:
        pg.run(password=wrong)
    code, line = cli.explain(failure.value)
    assert code == cli.EXIT_FAILED
    assert "password authentication failed" in line
    chain = failures.causes(failure.value)
    for secret in (wrong, pg.server.password):
        assert secret not in line
        assert all(secret not in str(cause) and secret not in repr(cause) for cause in chain)
    assert files_containing(tmp_path, wrong) == []
    # nothing was loaded
    assert pg.rows(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", DATASET
    ) == [(0,)]


def test_cli_run_into_postgres_with_password_from_the_environment(
    pg: PgRunner,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The way a deployment passes the secret: DESTINATION__POSTGRES__CREDENTIALS."""
    monkeypatch.setenv("SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS", ",".join(sandbox.account_ids))
    monkeypatch.setenv("SOURCES__DOCUSIGN_BILLING__BASE_URL", sandbox.base_url)
    monkeypatch.setenv("SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH", "token")
    monkeypatch.setenv("SOURCES__DOCUSIGN_BILLING__CREDENTIALS__ACCESS_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("SOURCES__DOCUSIGN_BILLING__BACKOFF_FACTOR", "0.05")
    args = ["run", "--destination", "postgres", "--pipelines-dir", pg.pipelines_dir]

    monkeypatch.setenv(
        "DESTINATION__POSTGRES__CREDENTIALS", pg.server.url_with("wrong-pw-env-31d7", pg.database)
    )
    assert cli.main(args) == cli.EXIT_FAILED
    failed = capsys.readouterr()
    assert "password authentication failed" in failed.err
    assert "wrong-pw-env-31d7" not in failed.out + failed.err

    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", pg.url)
    assert cli.main(args) == cli.EXIT_OK
    done = capsys.readouterr()
    assert f"loaded 3 accounts into postgres dataset {DATASET}" in done.out
    assert pg.server.password not in done.out + done.err
    assert pg.rows(
        f"SELECT count(DISTINCT account_id) FROM {DATASET}.{settings.SNAPSHOTS_TABLE}"
    ) == [(3,)]
    assert files_containing(tmp_path, pg.server.password) == []
