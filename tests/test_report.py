"""`docusign-billing report`: the terminal table, the files of `--out`, `--as-of`, no data, and the
filesystem (Parquet) destination, over the known runs of `test_views.py`."""

from __future__ import annotations

import csv
import re
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from pipelines import cli, report, views
from pipelines.docusign_billing_pipeline import load, make_pipeline, summarize
from sources.docusign_billing import settings
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import FAST_RETRIES, TOKEN_CREDENTIALS
from tests.helpers_views import A_FIRST, A_SECOND, B_BOTH, Engine, body


def cli_args(tmp_path: Path) -> list[str]:
    """The DuckDB file and pipeline folder of the `engine` fixture's DuckDB runs."""
    return [
        "--duckdb-file",
        str(tmp_path / "views.duckdb"),
        "--pipelines-dir",
        str(tmp_path / "pipelines"),
    ]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_report_prints_the_aging_table_and_writes_every_file(
    two_runs: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, a, b, _, second = two_runs
    out = tmp_path / "reports"
    assert cli.main(["report", *cli_args(tmp_path), "--out", str(out)]) == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert second.strftime("%Y-%m-%d %H:%M:%S") in printed
    lines = {
        line.split()[0] + " " + line.split()[1]: line.split()[2:]
        for line in printed.splitlines()[4:]
    }
    assert lines[f"{a} USD"] == ["0.00", "150.50", "300.00", "400.00", "850.50", "3"]
    assert lines[f"{b} EUR"] == ["50.25", "0.00", "0.00", "1,000.00", "1,050.25", "2"]
    assert lines["TOTAL EUR"] == ["EUR", "50.25", "0.00", "0.00", "1,000.00", "1,050.25", "2"]
    names = {p.name for p in out.iterdir()}
    assert names == {f"{v}.csv" for v in views.VIEW_NAMES} | {
        "past_due_over_time.png",
        "aging_by_currency.png",
        "report.html",
    }
    for png in ("past_due_over_time.png", "aging_by_currency.png"):
        with Image.open(out / png) as image:
            assert image.format == "PNG"
            assert 600 <= image.width <= 2000 and 300 <= image.height <= 3000, image.size


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_report_html_is_self_contained(two_runs: tuple, tmp_path: Path) -> None:
    _, a, _, _, _ = two_runs
    out = tmp_path / "reports"
    assert cli.main(["report", *cli_args(tmp_path), "--out", str(out)]) == cli.EXIT_OK
    page = (out / "report.html").read_text(encoding="utf-8")
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert len(references) == 2  # the two charts, and nothing else is referenced
    assert all(ref.startswith("data:image/png;base64,") for ref in references)
    assert not re.search(r"<(link|script|iframe)|@import|url\(", page)
    assert "INV-3" in page and "850.50" in page and a in page


def test_csv_numbers_equal_the_views(engine: Engine, two_runs: tuple, tmp_path: Path) -> None:
    data = report.read_views(engine.make())
    out = tmp_path / "reports"
    report.write_outputs(data, out)
    for name in views.VIEW_NAMES:
        rows = read_csv(out / f"{name}.csv")
        in_view = engine.rows(f"SELECT * FROM {settings.DATASET_NAME}.{name}")
        assert len(rows) == len(in_view), name
        columns = list(rows[0])
        as_text = sorted(tuple(map(report.csv_value, row)) for row in in_view)
        assert sorted(tuple(row[c] for c in columns) for row in rows) == as_text, name
    aging = {row["account_id"]: row for row in read_csv(out / "past_due_aging.csv")}
    assert Decimal(aging[two_runs[1]]["balance_total"]) == Decimal("850.50")


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_report_as_of_an_earlier_run_and_before_any(
    two_runs: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, a, _, first, _ = two_runs
    as_of = first.isoformat()
    assert cli.main(["report", *cli_args(tmp_path), "--as-of", as_of]) == cli.EXIT_OK
    printed = capsys.readouterr().out
    usd = next(line for line in printed.splitlines() if line.startswith(a))
    assert usd.split()[2:] == ["100.00", "200.50", "300.00", "400.00", "1,000.50", "4"]
    before = (first - timedelta(seconds=1)).isoformat()
    assert cli.main(["report", *cli_args(tmp_path), "--as-of", before]) == cli.EXIT_NO_DATA
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "no past-due data" in captured.err
    assert cli.main(["report", *cli_args(tmp_path), "--as-of", "last tuesday"]) == cli.EXIT_CONFIG


def test_report_on_a_destination_without_data_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", *cli_args(tmp_path), "--out", str(tmp_path / "r")]) == 4
    captured = capsys.readouterr()
    assert captured.err == (
        "docusign-billing: no past-due data in duckdb dataset billing (load some with `run` or `demo`)\n"
    )
    assert not (tmp_path / "views.duckdb").exists()  # reporting created no empty database
    assert not (tmp_path / "r").exists()


def test_filesystem_destination_loads_every_table_as_parquet_and_reports_its_history(
    two_accounts: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt has no SCD2 on the filesystem (it appends); the history is rebuilt from the runs."""
    lake = tmp_path / "lake"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(lake))
    a, b = two_accounts.account_ids

    def run() -> None:
        pipeline = make_pipeline("filesystem", pipelines_dir=str(tmp_path / "pipelines"))
        load(pipeline, account_ids=[a, b], base_url=two_accounts.base_url,
             credentials=TOKEN_CREDENTIALS, **FAST_RETRIES)  # fmt: skip

    two_accounts.set_response(a, body("USD", A_FIRST))
    two_accounts.set_response(b, body("EUR", B_BOTH))
    run()
    two_accounts.set_response(a, body("USD", A_SECOND))
    latest = two_accounts.ledger(a).all_invoices(two_accounts.today)[-1].invoice_id
    two_accounts.set_invoice_items(a, latest, keep=0)  # no merge there: no marker row stored
    run()
    run()  # unchanged
    for table in (settings.INVOICES_TABLE, settings.ITEMS_TABLE, settings.SNAPSHOTS_TABLE):
        assert list((lake / settings.DATASET_NAME / table).glob("*.parquet")), table
    files = str(lake / settings.DATASET_NAME / settings.SNAPSHOTS_TABLE / "*.parquet")
    assert duckdb.connect().execute(f"SELECT count(*) FROM '{files}'").fetchall() == [(6,)]
    pipeline = make_pipeline("filesystem", pipelines_dir=str(tmp_path / "pipelines"))
    summary = summarize(pipeline)
    assert (summary.accounts, summary.invoices) == (2, 5)
    data = report.read_views(pipeline)
    aging = data.frames["past_due_aging"].set_index("account_id")
    assert aging.loc[a, "balance_total"] == Decimal("850.50")
    assert aging.loc[a, "balance_31_60"] == Decimal("150.50")
    assert aging.loc[b, "invoices_total"] == 2
    resolution = data.frames["invoice_resolution"].set_index("invoice_number")
    assert resolution.loc["INV-1", "status"] == "resolved"
    assert resolution.loc["INV-1", "balance_at_resolution"] == Decimal(100)
    assert resolution.loc["INV-2", "status"] == "past due"
    first = report.read_views(
        pipeline, as_of=min(data.frames["invoice_resolution"]["first_seen_past_due_at"])
    )
    assert first.frames["past_due_aging"].set_index("account_id").loc[a, "invoices_total"] == 4
    # the billing tables are appended per run there: each invoice and payment counts once
    lake_files = lake / settings.DATASET_NAME
    invoiced = (
        duckdb.connect()
        .execute(
            "SELECT sum(amount), count(*) FROM (SELECT DISTINCT account_id, invoice_id, amount"
            f" FROM '{lake_files}/billing_invoices/*.parquet')"
        )
        .fetchall()[0]
    )
    appended = (
        duckdb.connect()
        .execute(f"SELECT count(*) FROM '{lake_files}/billing_invoices/*.parquet'")
        .fetchall()[0][0]
    )
    assert appended > invoiced[1]  # the later runs appended rows again
    items = f"'{lake_files}/billing_invoices__invoice_items/*.parquet'"
    assert duckdb.connect().execute(
        f"SELECT count(*), count(_clears_items) FROM {items} WHERE invoice_id = '{latest}'"
    ).fetchall() == [(2, 0)]  # its first version's two items, no marker (join on the version)
    payments = data.frames["invoice_payments"]
    assert payments["invoice_id"].nunique() == invoiced[1]
    assert not payments.duplicated(["account_id", "invoice_id", "payment_id"]).any()
    assert sum(data.frames["collections_monthly"]["invoiced"]) == invoiced[0]
    out = tmp_path / "reports"
    report.write_outputs(data, out)
    assert (out / "report.html").stat().st_size > 10_000


def test_demo_then_report_out_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's first steps, in a fresh working directory (the `isolated_dlt` fixture's)."""
    assert cli.main(["demo"]) == cli.EXIT_OK
    capsys.readouterr()
    # no docusign_billing.duckdb exists: report reads the demo's own file and says so
    assert cli.main(["report", "--out", "reports/"]) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert "reporting the demo's docusign_billing_demo.duckdb" in captured.err
    assert "TOTAL EUR" in captured.out and "TOTAL USD" in captured.out
    assert not (tmp_path / "docusign_billing.duckdb").exists()  # the real file is never created
    written = {p.name for p in (tmp_path / "reports").iterdir()}
    assert {"report.html", "aging_by_currency.png", "past_due_current.csv"} <= written
    # the demo loads the billing history: its two views have their sections on the page too
    page = (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    assert "(collections_monthly)</h2>" in page and "(invoice_payments)</h2>" in page
    # `query` falls back to the demo's file the same way
    assert cli.main(["query", "SELECT count(*) AS n FROM billing.past_due_snapshots"]) == 0
    captured = capsys.readouterr()
    assert "querying the demo's docusign_billing_demo.duckdb" in captured.err
    assert captured.out.split() == ["n", "5"]
    # a `~` the shell left as it is (`--out=~/x`) is the home folder, not a folder named `~`
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    shutil.copyfile("docusign_billing_demo.duckdb", tmp_path / "home" / "demo.duckdb")
    home_report = [
        "report",
        "--duckdb-file=~/demo.duckdb",
        "--out=~/reports",
        "--pipelines-dir=~/p",
    ]
    assert cli.main(home_report) == cli.EXIT_OK
    assert (tmp_path / "home" / "reports" / "report.html").exists()
    assert not (tmp_path / "~").exists()
