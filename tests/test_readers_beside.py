"""`report` and `query` beside a BI tool that holds the DuckDB file open read-only, and how
`query` shows NULL. The real console script on a file the real pipeline loaded."""

import os

import duckdb

from tests.helpers_reliability import cli


def test_report_and_query_while_a_reader_holds_the_file(runner, tmp_path):
    """Both open the file read-only, as README's BI section asks of BI tools: readers share it.
    (`report` opened it read-write and failed with "Could not set lock", exit 1.)"""
    runner.run()
    where = ["--duckdb-file", runner.duckdb_file]
    with duckdb.connect(runner.duckdb_file, read_only=True) as bi_tool:
        report = cli(
            "report",
            *where,
            "--pipelines-dir",
            runner.pipelines_dir,
            env=dict(os.environ),
            cwd=tmp_path,
        )
        query = cli(
            "query",
            "SELECT count(*) AS n FROM billing.past_due_invoices",
            *where,
            env=dict(os.environ),
            cwd=tmp_path,
        )
        assert bi_tool.execute("SELECT count(*) FROM billing.past_due_invoices").fetchall()
    assert report.returncode == 0, report.stderr
    assert "Could not set lock" not in report.stderr and report.stdout.strip()
    assert query.returncode == 0, query.stderr
    assert query.stdout.split()[0] == "n" and int(query.stdout.split()[1]) > 0


def test_query_shows_null_as_null_and_money_exactly(runner, tmp_path):
    runner.run()
    sql = (
        "SELECT NULL::DECIMAL(18, 2) AS amount, NULL::TIMESTAMPTZ AS due, NULL::DATE AS day,"
        " 0.10::DECIMAL(18, 2) AS exact"
    )
    query = cli(
        "query", sql, "--duckdb-file", runner.duckdb_file, env=dict(os.environ), cwd=tmp_path
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.split() == ["amount", "due", "day", "exact", "NULL", "NULL", "NULL", "0.10"]


def test_query_escapes_control_characters_from_the_data(tmp_path, capsys):
    """Text from the API (an ANSI escape, a carriage return in a name) is printed escaped, never
    sent to the terminal as a command. Removed to see it fail: `_shown`'s translate."""
    from pipelines import cli as command_line

    database = str(tmp_path / "odd.duckdb")
    with duckdb.connect(database) as connection:
        connection.execute("CREATE TABLE t AS SELECT chr(27) || '[2J' || 'Acme' || chr(13) AS name")
    code = command_line.main(["query", "SELECT name FROM t", "--duckdb-file", database])
    shown = capsys.readouterr().out
    assert code == 0 and "\\x1b[2JAcme\\r" in shown
    assert "\x1b" not in shown and "\r" not in shown
