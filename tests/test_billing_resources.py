"""The billing resources over real HTTP against the sandbox: back-fill, incremental windows, merges,
paging, plan history, charges per run, no card data, per-resource failures, the data dictionary."""

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from sources.docusign_billing import settings
from sources.docusign_billing.dictionary import all_tables, render
from sources.docusign_billing.sandbox import Sandbox
from sources.docusign_billing.sandbox.ledger import month_of
from tests.conftest import REPO, Runner
from tests.helpers_reliability import windows_asked

NEW = ("billing_invoices", "billing_payments", "billing_plan", "billing_charges")
TODAY = datetime.now(UTC).date()


def _requests(api, resource):
    return [r for r in api.requests if r["resource"] == resource and r["status"] == 200]


def _issued_since(api, account_id, start):
    today = api.today
    return {
        i.invoice_id
        for i in api.ledger(account_id).all_invoices(today)
        if start <= i.issued <= today
    }


def _history_start():
    try:
        return TODAY.replace(year=TODAY.year - 3)
    except ValueError:
        return TODAY.replace(year=TODAY.year - 3, day=28)


@pytest.fixture
def billing():
    with Sandbox(accounts=3, seed=31) as api:
        yield api


def test_backfill_then_incremental_runs_fetch_only_new_windows(billing, tmp_path):
    """Removed to see it fail: the `- 1` of a window's end in `windows.windows` (366-day
    windows); the start from the state (`history_start` every run)."""
    runner = Runner(billing, tmp_path)
    runner.run(resources=["billing_invoices", "billing_payments"])
    account = billing.account_ids[0]
    first = windows_asked(billing, "billing_invoices", account)
    assert first[0][0] == _history_start().isoformat() and first[-1][1] == TODAY.isoformat()
    for (_start, end), (following, _) in zip(first, first[1:]):
        assert date.fromisoformat(following) == date.fromisoformat(end) + timedelta(days=1)
    assert all(
        (date.fromisoformat(end) - date.fromisoformat(start)).days < 365 for start, end in first
    )
    assert windows_asked(billing, "billing_payments", account) == first
    loaded = {
        i
        for (i,) in runner.rows(
            f"SELECT invoice_id FROM billing.billing_invoices WHERE account_id = '{account}'"
        )
    }
    assert loaded == _issued_since(billing, account, _history_start())

    billing.requests.clear()
    runner.run(resources=["billing_invoices", "billing_payments"])
    lookback = (TODAY - timedelta(days=settings.LOOKBACK_DAYS)).isoformat()
    for account_id in billing.account_ids:
        assert windows_asked(billing, "billing_invoices", account_id) == [
            (lookback, TODAY.isoformat())
        ]
        assert windows_asked(billing, "billing_payments", account_id) == [
            (lookback, TODAY.isoformat())
        ]
    expected = sum(len(_issued_since(billing, a, _history_start())) for a in billing.account_ids)
    assert runner.rows(
        "SELECT count(*), count(DISTINCT (account_id, invoice_id)) FROM billing.billing_invoices"
    ) == [(expected, expected)]
    assert runner.rows(
        "SELECT count(*) = count(DISTINCT (account_id, payment_id)) FROM billing.billing_payments"
    ) == [(True,)]


def _sandbox_with_a_payment_to_come(days: int) -> tuple[int, str, str]:
    """(how many days back the sandbox's clock starts, account, invoice): an invoice owed then and
    paid within `days` (the ledger's own schedule), so the next run sees a late change."""
    for back in range(days + 1, days + 60):
        api = Sandbox(accounts=3, seed=5, today=TODAY - timedelta(days=back))
        later = api.today + timedelta(days=days)
        for account in api.account_ids:
            for invoice in api.ledger(account).all_invoices(api.today):
                recent = invoice.issued >= TODAY - timedelta(days=settings.LOOKBACK_DAYS - 1)
                if recent and invoice.balance(api.today) > 0 and invoice.balance(later) == 0:
                    return back, account, invoice.invoice_id
    raise AssertionError("no invoice of the sandbox is paid late")


def test_late_payment_is_picked_up_through_the_look_back_without_duplicates(tmp_path):
    """Removed to see it fail: the look-back in `windows.windows` (`timedelta(0)`: the paid
    invoice keeps its old balance)."""
    incremental = {"resources": ["billing_invoices", "billing_payments"]}
    back, account, invoice_id = _sandbox_with_a_payment_to_come(days=20)
    with Sandbox(accounts=3, seed=5, today=TODAY - timedelta(days=back)) as api:
        runner = Runner(api, tmp_path)
        runner.run(**incremental)
        where = f"WHERE account_id = '{account}' AND invoice_id = '{invoice_id}'"
        assert runner.rows(f"SELECT balance > 0 FROM billing.billing_invoices {where}") == [(True,)]
        payments_before = runner.rows("SELECT count(*) FROM billing.billing_payments")[0][0]
        api.advance(20)  # the ledger's late payment happens
        api.requests.clear()
        runner.run(**incremental)
        assert (
            len(windows_asked(api, "billing_invoices", account)) == 1
        )  # only the look-back window
        assert runner.rows(f"SELECT balance FROM billing.billing_invoices {where}") == [(0,)]
        assert runner.rows("SELECT count(*) FROM billing.billing_payments")[0][0] > payments_before
        for table, key in (("billing_invoices", "invoice_id"), ("billing_payments", "payment_id")):
            assert runner.rows(
                f"SELECT count(*) = count(DISTINCT (account_id, {key})) FROM billing.{table}"
            ) == [(True,)]
        orphans = runner.rows(
            "SELECT count(*) FROM billing.billing_invoices__invoice_items t WHERE NOT EXISTS"
            " (SELECT 1 FROM billing.billing_invoices i WHERE t._dlt_parent_id = i._dlt_id)"
        )
        assert orphans == [(0,)]


def test_next_uri_pages_are_followed(tmp_path):
    """Removed to see it fail: `next_uri_of` in `DocuSignClient.pages` (first pages only)."""
    with Sandbox(accounts=2, seed=9, page_size=3) as api:
        runner = Runner(api, tmp_path)
        runner.run(resources=["billing_invoices", "billing_payments"])
        assert any("start_position" in r["query"] for r in _requests(api, "billing_invoices"))
        for account in api.account_ids:
            expected = _issued_since(api, account, _history_start())
            assert len(expected) > 3
            assert {
                i
                for (i,) in runner.rows(
                    f"SELECT invoice_id FROM billing.billing_invoices WHERE account_id = '{account}'"
                )
            } == expected


def test_plan_changes_are_kept_as_history_and_charges_per_run(tmp_path):
    """Removed to see it fail: the plan's `history="scd2"` (merged in place: no closed version)."""
    with Sandbox(accounts=3, seed=13, today=TODAY - timedelta(days=700)) as api:
        runner = Runner(api, tmp_path)
        runner.run(resources=["billing_plan", "billing_charges"])
        api.advance(630)  # plans change every 8 to 20 months: every account changed at least once
        runner.run(resources=["billing_plan", "billing_charges"])
        versions = runner.rows(
            "SELECT account_id, count(*), count(_dlt_valid_to) FROM billing.billing_plan GROUP BY 1"
        )
        assert sorted(v[1:] for v in versions) == [(2, 1)] * 3
        current = runner.rows(
            "SELECT account_id, plan_id FROM billing.billing_plan WHERE _dlt_valid_to IS NULL"
        )
        assert {(a, api.ledger(a).plan_in(month_of(api.today)).plan_id) for a, _ in current} == set(
            current
        )
        assert runner.rows(
            "SELECT count(*) FROM billing.billing_plan__seat_discounts d"
            " JOIN billing.billing_plan p ON d._dlt_parent_id = p._dlt_id"
        ) == [(12,)]
        charges = runner.rows(
            "SELECT account_id, charge_name, count(DISTINCT snapshot_at) FROM billing.billing_charges"
            " GROUP BY 1, 2"
        )
        assert len(charges) == 6 and {c[2] for c in charges} == {2}


def test_no_card_bank_tax_or_personal_data_reaches_any_table(tmp_path):
    """Removed to see it fail: `parse.is_sensitive` (always False: the tax-exempt id is stored)."""
    with Sandbox(accounts=2, seed=3, leak_payment_details=True) as api:
        runner = Runner(api, tmp_path)
        runner.run(resources=["billing_plan"])
        asked = [r["query"] for r in _requests(api, "billing_plan")]
        assert asked and all(q["include_credit_card_information"] == "false" for q in asked)
        assert all(q["include_tax_exempt_id"] == "false" for q in asked)
    with duckdb.connect(runner.duckdb_file, read_only=True) as db:
        tables = db.sql("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        text = " ".join(
            str(row)
            for schema, table in tables
            for row in db.sql(f'SELECT * FROM "{schema}"."{table}"').fetchall()
        )
        columns = " ".join(
            c for (c,) in db.sql("SELECT column_name FROM information_schema.columns").fetchall()
        )
    assert "billing_plan" in {t for _, t in tables}
    for secret in (
        "4242",
        "Example St",
        "TAX-EXEMPT",
        "DE89",
        "example.com",
        "Example Bank",
        "Pat Doe",
    ):
        assert secret not in text
    for name in ("credit", "card", "bank", "tax_exempt", "address", "email", "iban"):
        assert name not in columns


def test_a_failing_resource_is_recorded_and_its_state_not_advanced(billing, tmp_path):
    """Removed to see it fail: the resource of `BatchParser.add_failure`'s row (None)."""
    runner = Runner(billing, tmp_path)
    account = billing.account_ids[1]
    billing.inject("500", times=2, account_id=account, resource="billing_payments")  # both tries
    runner.run(resources=["billing_invoices", "billing_payments"], max_attempts=2)
    assert runner.rows("SELECT account_id, resource, http_status FROM billing.account_errors") == [
        (account, "billing_payments", 500)
    ]
    assert runner.rows(
        f"SELECT count(*) > 0 FROM billing.billing_invoices WHERE account_id = '{account}'"
    ) == [(True,)]
    billing.requests.clear()
    runner.run(resources=["billing_invoices", "billing_payments"])
    assert windows_asked(billing, "billing_payments", account)[0][0] == _history_start().isoformat()
    lookback = (TODAY - timedelta(days=settings.LOOKBACK_DAYS)).isoformat()
    assert windows_asked(billing, "billing_invoices", account) == [(lookback, TODAY.isoformat())]


def test_demo_loads_every_resource_and_the_dictionary_matches_the_destination(tmp_path):
    env = {"DLT_DATA_DIR": str(tmp_path / "dlt"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "demo",
            "--duckdb-file",
            str(tmp_path / "d.duckdb"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True) as db:
        held: dict[str, list[str]] = {}
        for table, column in db.sql(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE table_schema = 'billing' AND t.table_type = 'BASE TABLE'"
            " AND c.table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\'"
        ).fetchall():
            held.setdefault(table, []).append(column)
        for table in held:
            assert db.sql(f"SELECT count(*) FROM billing.{table}").fetchall()[0][0] > 0, table
    described = {t.name: [c.name for c in t.columns] for t in all_tables()}
    del described[settings.ERRORS_TABLE]  # no account failed
    assert {t: sorted(c) for t, c in held.items()} == {t: sorted(c) for t, c in described.items()}
    assert (REPO / "docs" / "data-dictionary.md").read_text() == render()


def test_resources_option_loads_only_the_named_resources(billing, cli_env, tmp_path):
    from tests.test_cli import cli

    result = cli(
        "run", "--resources", "billing_plan,billing_charges", env=cli_env(billing), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert {r["resource"] for r in billing.requests if r["resource"]} == {
        "billing_plan",
        "billing_charges",
    }
    assert "billing_plan: 3" in result.stdout and "billing_charges: 6" in result.stdout
    with duckdb.connect(str(tmp_path / settings.DUCKDB_FILE), read_only=True) as db:
        tables = {
            t
            for (t,) in db.sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'billing'"
                " AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\'"
            ).fetchall()
        }
    assert tables == {"billing_plan", "billing_plan__seat_discounts", "billing_charges"}
    bad = cli("run", "--resources", "billing_plans", env=cli_env(billing), cwd=tmp_path)
    assert bad.returncode == 2 and "unknown resource(s) billing_plans" in bad.stderr
