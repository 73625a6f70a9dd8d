"""What a scheduler and an operator rely on: no package blocks later runs, exit codes tell the
truth, SIGINT/SIGTERM end a run cleanly at any stage, the demo stays apart, config edges are
one clear line."""

import argparse
import copy
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from pipelines.docusign_billing_pipeline import load, make_pipeline
from sources.docusign_billing import bodies
from tests.conftest import FAST_RETRIES, TOKEN_CREDENTIALS, Runner
from tests.helpers_reliability import (
    CLI,
    assert_consistent,
    cli,
    cli_in_process,
    content,
    current_invoices,
    with_repo_on_path,
)
from tests.test_interrupted import _assert_like_reference, _change_data, reference  # noqa: F401


def _latin1_item_name(body):
    body = copy.deepcopy(body)
    body["billingInvoices"][0]["invoiceItems"][0]["chargeName"] = "@@"
    return json.dumps(body).encode().replace(b"@@", "Gebühr".encode("latin-1"))


def _pending(runner: Runner) -> list[str]:
    pipeline = make_pipeline(pipelines_dir=runner.pipelines_dir, duckdb_file=runner.duckdb_file)
    return list(pipeline.list_normalized_load_packages()) + list(
        pipeline.list_extracted_load_packages()
    )


# -- a package that cannot load never blocks later runs -------------------------------------------


def test_package_failing_to_load_again_is_set_aside_and_the_run_proceeds(
    runner, sandbox, tmp_path, monkeypatch
):
    """Any data-caused load failure, not only the one the text rule now catches before staging:
    with that rule switched off, invalid UTF-8 reaches DuckDB's Parquet reader, which dlt treats as
    a transient error and keeps the package pending for every later run.

    Removed to see it fail: `pipelines/pending.py` re-raising instead of setting the package aside
    (the run then fails)."""
    runner.run()
    clean = Runner(sandbox, tmp_path / "clean")  # what the same data gives without any failure
    (tmp_path / "clean").mkdir()
    account = sandbox.account_ids[1]
    sandbox.set_response(account, _latin1_item_name(sandbox.response(account)))
    with monkeypatch.context() as patch:
        patch.setattr(bodies, "is_clean", lambda content: True)
        with pytest.raises(Exception, match="not valid UTF8"):
            runner.run()
    assert _pending(runner), "the failed load must have left its package pending"
    sandbox.reset()
    _change_data(sandbox)  # the next run carries real history work
    messages: list[str] = []
    runner_pipeline = make_pipeline(
        pipelines_dir=runner.pipelines_dir, duckdb_file=runner.duckdb_file
    )
    load(
        runner_pipeline,
        progress=messages.append,
        account_ids=sandbox.account_ids,
        base_url=sandbox.base_url,
        credentials=TOKEN_CREDENTIALS,
        **FAST_RETRIES,
    )
    assert any("failed to load again" in m and "set aside" in m for m in messages), messages
    assert _pending(runner) == []
    assert_consistent(runner)
    sandbox.reset()
    clean.run()
    _change_data(sandbox)
    clean.run()
    assert current_invoices(runner) == current_invoices(clean)
    assert content(runner, "past_due_invoices__invoice_items") == content(
        clean, "past_due_invoices__invoice_items"
    )
    # the set-aside package's SCD2 merge had committed before its items failed: its invoice
    # version stays in history, retired by the run after it (documented in the README)
    extra = set(content(runner, "past_due_invoices")) - set(content(clean, "past_due_invoices"))
    assert set(content(clean, "past_due_invoices")) <= set(content(runner, "past_due_invoices"))
    assert len(extra) <= 1
    assert runner.rows(
        "SELECT count(*) FROM billing.past_due_invoices i WHERE _dlt_valid_to IS NULL AND NOT"
        " EXISTS (SELECT 1 FROM billing.past_due_invoices__invoice_items t"
        " WHERE t._dlt_parent_id = i._dlt_id)"
    ) == [(0,)]  # every current version has its items
    # and the run after it is an ordinary one
    runner.run()
    assert_consistent(runner)


# -- exit codes -------------------------------------------------------------------------------


def test_summary_reads_only_what_exists_a_loaded_run_exits_0(sandbox, cli_env, tmp_path):
    """A pipeline folder that once recorded a failed account, then a new DuckDB file: the summary
    must not fail on the `account_errors` table the new file never got.

    Removed to see it fail: `summarize` catching `DatabaseUndefinedRelation` for missing tables."""
    env = cli_env(sandbox)
    folder = ["--pipelines-dir", str(tmp_path / "p")]
    sandbox.deny_admin(sandbox.account_ids[0])
    first = cli("run", *folder, "--duckdb-file", str(tmp_path / "a.duckdb"), env=env, cwd=tmp_path)
    assert first.returncode == 3, first.stderr
    sandbox.reset()
    fresh = cli("run", *folder, "--duckdb-file", str(tmp_path / "b.duckdb"), env=env, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert f"loaded {len(sandbox.account_ids)} accounts" in fresh.stdout
    assert "Catalog Error" not in fresh.stderr


@pytest.mark.parametrize("failed_accounts, code", [(0, 0), (1, 3)])
def test_summary_failing_after_the_load_keeps_the_runs_exit_code(
    sandbox, runner, cli_env, tmp_path, failed_accounts, code
):
    for account_id in sandbox.account_ids[:failed_accounts]:
        sandbox.deny_admin(account_id)
    args = ["run", "--pipelines-dir", runner.pipelines_dir, "--duckdb-file", runner.duckdb_file]
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers_killer", "summary-fails", *args],
        env=with_repo_on_path(cli_env(sandbox)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == code, result.stderr
    assert (
        "loaded; the summary could not be read (destination error: the destination went away)"
        in (result.stderr)
    )
    loaded = len(sandbox.account_ids) - failed_accounts
    assert runner.rows("SELECT count(*) FROM billing.past_due_snapshots") == [(loaded,)]


@pytest.mark.parametrize(
    "config, setting",
    [
        ('max_workers = "many"', "max_workers = 'many' is not a valid int"),
        ("request_timeout = -1", "sources.docusign_billing.request_timeout = -1.0 must be more"),
        ("max_workers = 0", "sources.docusign_billing.max_workers = 0 must be at least 1"),
        ("max_attempts = 0", "sources.docusign_billing.max_attempts = 0 must be at least 1"),
        ("account_ids = []", "no account ids"),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(sandbox, cli_env, tmp_path, config, setting):
    env = cli_env(sandbox)
    del env["SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS"]
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(f"[sources.docusign_billing]\n{config}\n")
    result = cli("run", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert setting in result.stderr.strip().splitlines()[-1]


def test_malformed_toml_names_the_file_and_line(sandbox, cli_env, tmp_path):
    (tmp_path / ".dlt").mkdir()
    config = tmp_path / ".dlt" / "config.toml"
    config.write_text('[sources.docusign_billing]\nmax_workers = 4\naccounts = "all\n')
    result = cli("run", env=cli_env(sandbox), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert str(config) in last and "line 3" in last and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, extra_env, expected",
    [
        (["--duckdb-file", "no/such/folder/x.duckdb"], {}, "no/such/folder/x.duckdb"),
        (["--accounts", ","], {}, "no account ids"),
        ([], {"SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS": ""}, "no account ids"),
        (["--destination", "postgres"], {}, "destination.postgres.credentials"),
        (["--destination", "nosuchdest"], {}, "unknown destination 'nosuchdest' (a dlt"),
        (
            ["--destination", "snowflake"],
            {
                "DESTINATION__SNOWFLAKE__CREDENTIALS": "snowflake://u:p@account/db",
            },
            "pip install",
        ),
    ],
)
def test_cli_configuration_edges_exit_2(
    sandbox, cli_env, monkeypatch, capsys, args, extra_env, expected
):
    """In-process (`cli.main`): what differs from the console script is only the process, and
    the tests above check the console script's one line and exit code.

    Removed to see it fail: `ConfigError` explained as exit 1 instead of 2."""
    result = cli_in_process(monkeypatch, capsys, "run", *args, env=cli_env(sandbox, **extra_env))
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "configuration error" in last and expected in last, last
    assert "Traceback" not in result.stderr
    assert not sandbox.requests  # nothing was fetched


def test_bare_number_account_id_in_toml(sandbox, cli_env, tmp_path):
    """`account_ids = 12345678` (a TOML integer) is an account id like "12345678"."""
    env = cli_env(sandbox)
    del env["SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS"]
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        "[sources.docusign_billing]\naccount_ids = 12345678\n"
    )
    result = cli("run", env=env, cwd=tmp_path)
    # the sandbox does not know account 12345678: the call is made for it (exit 1, named)
    assert result.returncode == 1, result.stderr
    assert "account 12345678" in result.stderr and "Traceback" not in result.stderr


def test_dataset_name_is_printed_as_the_destination_normalized_it(sandbox, cli_env, tmp_path):
    result = cli("run", "--dataset", "Billing-2024", env=cli_env(sandbox), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dataset billing_2024 " in result.stdout


# -- the demo stays apart; stale accounts are visible ---------------------------------------------


def test_demo_and_run_never_share_pipeline_state_or_data(
    sandbox, cli_env, tmp_path, monkeypatch, capsys
):
    demo = cli("demo", "--demo-accounts", "2", env=cli_env(sandbox), cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "docusign_billing_demo.duckdb" in demo.stdout
    run = cli("run", env=cli_env(sandbox), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"loaded {len(sandbox.account_ids)} accounts" in run.stdout and "stale" not in run.stdout
    rows = cli_in_process(
        monkeypatch,
        capsys,
        "query",
        "SELECT DISTINCT account_id FROM billing.past_due_snapshots ORDER BY 1",
        env=cli_env(sandbox),
    )
    assert rows.stdout.split()[1:] == sorted(sandbox.account_ids)
    pipelines = os.listdir(tmp_path / "dlt" / "pipelines")
    assert sorted(pipelines) == ["docusign_billing", "docusign_billing_demo"]


@pytest.mark.parametrize("count", ["0", "-3", "two"])
def test_demo_accounts_must_be_a_positive_number(tmp_path, monkeypatch, capsys, count):
    result = cli_in_process(
        monkeypatch, capsys, "demo", "--demo-accounts", count, env=dict(os.environ)
    )
    assert result.returncode == 2 and "--demo-accounts" in result.stderr
    assert not (tmp_path / "docusign_billing_demo.duckdb").exists()


def test_account_removed_from_account_ids_is_shown_as_stale(runner, sandbox, cli_env, tmp_path):
    env = cli_env(sandbox)
    assert cli("run", env=env, cwd=tmp_path).returncode == 0
    removed = sandbox.account_ids[0]
    kept = ",".join(sandbox.account_ids[1:])
    result = cli("run", env={**env, "SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS": kept}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stale: 1 accounts not in this run still have current invoices" in result.stdout
    assert removed in result.stdout


# -- query: read-only, no local files unless asked ------------------------------------------------


def test_query_is_read_only_and_cannot_touch_other_files(
    sandbox, cli_env, tmp_path, monkeypatch, capsys
):
    """The load through the console script; the queries in-process (`cli.main`)."""
    assert cli("run", env=cli_env(sandbox), cwd=tmp_path).returncode == 0

    def query(*args):
        return cli_in_process(monkeypatch, capsys, "query", *args, env=cli_env(sandbox))

    secret = tmp_path / "secret.txt"
    secret.write_text("not for SQL")
    for sql in (
        f"SELECT * FROM read_text('{secret}')",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        "SET enable_external_access = true",
        "DELETE FROM billing.past_due_snapshots",
    ):
        result = query(sql)
        assert result.returncode == 1, (sql, result.stdout)
        assert "query failed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()
    allowed = query(f"SELECT content FROM read_text('{secret}')", "--allow-files")
    assert allowed.returncode == 0 and "not for SQL" in allowed.stdout
    empty = query("SELECT * FROM billing.past_due_snapshots WHERE false")
    assert empty.returncode == 0 and empty.stdout.strip() == "(no rows)"
    missing = query("SELECT 1", "--duckdb-file", "nope.duckdb")
    assert missing.returncode == 2 and "nope.duckdb" in missing.stderr
    assert not (tmp_path / "nope.duckdb").exists()


# -- --help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "demo", "accounts", "query"])
def test_every_command_and_option_has_help_and_defaults(command):
    from pipelines.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub = commands.choices[command]  # argparse has no public accessor for a subcommand
    assert sub.description and len(sub.description) > 20
    for action in sub._actions:
        if action.dest in ("help",):
            continue
        assert action.help, (command, action.dest)
    text = sub.format_help()
    if command in ("run", "demo"):
        assert "(default: duckdb)" in text
    if command == "query":
        assert "read-only" in text.lower()


# -- SIGINT / SIGTERM -----------------------------------------------------------------------------

STOP_POINTS = [
    ("SIGINT", "extract"),
    ("SIGTERM", "extract"),
    ("SIGTERM", "normalize-mid"),
    ("SIGINT", "load-copy:past_due_invoices"),
    ("SIGTERM", "load-copy:past_due_invoices__invoice_items"),
    ("SIGTERM", "load-merge"),
    ("SIGINT", "summary"),
]


@pytest.mark.parametrize("name, point", STOP_POINTS, ids=[f"{n}@{p}" for n, p in STOP_POINTS])
def test_signal_at_any_stage_is_one_line_and_its_exit_code(
    sandbox,
    runner,
    reference,  # noqa: F811
    cli_env,
    tmp_path,
    name,
    point,
):
    """The real console script, sent SIGINT or SIGTERM at a precise point of each stage."""
    runner.run()
    _change_data(sandbox)
    args = ["run", "--pipelines-dir", runner.pipelines_dir, "--duckdb-file", runner.duckdb_file]
    stopped = subprocess.run(
        [sys.executable, "-m", "tests.helpers_killer", f"{name}@{point}", *args],
        env=with_repo_on_path(cli_env(sandbox)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stopped.returncode == 128 + signal.Signals[name], stopped.stderr
    assert "Traceback" not in stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert (
        lines[-1]
        == f"docusign-billing: stopped by {name}: the next run completes what this run left"
    )
    assert [line for line in lines if not line.startswith("docusign-billing: ")] == []
    runner.run()
    _assert_like_reference(runner, reference)


@pytest.mark.parametrize("stall", ["latency", "hang"])
def test_sigterm_from_outside_during_a_slow_extract(sandbox, cli_env, tmp_path, stall):
    """What a scheduler does: SIGTERM while requests are in flight (slow, or hung for 30 s with
    a 30 s timeout); the run ends promptly, not after the hung request."""
    if stall == "latency":
        sandbox.latency = 0.5
    else:
        sandbox.inject("hang", times=len(sandbox.account_ids), seconds=30)
    process = subprocess.Popen(
        [CLI, "run"],
        env=cli_env(sandbox, SOURCES__DOCUSIGN_BILLING__REQUEST_TIMEOUT="30"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not sandbox.requests and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # the request is in flight (slow or hung) when the signal comes
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - started < 10  # the hang would hold it 30 s
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith("docusign-billing: stopped by SIGTERM")
    assert "Traceback" not in stderr
    sandbox.reset()  # no latency, no hang left queued
    again = cli("run", env=cli_env(sandbox), cwd=tmp_path)
    assert again.returncode == 0 and f"loaded {len(sandbox.account_ids)} accounts" in again.stdout


# -- progress on a terminal -----------------------------------------------------------------------


def test_account_progress_on_a_terminal_only(sandbox, cli_env, tmp_path):
    """Two resources fetched at once: one line of their summed counts. Removed to see it fail:
    the sum over resources in `progress._CountLine` (the line showed whichever resource counted
    last: `accounts 3/3, 1 failed`)."""
    import pty

    sandbox.deny_admin(sandbox.account_ids[0])
    env = cli_env(sandbox, SOURCES__DOCUSIGN_BILLING__RESOURCES="past_due,billing_plan")
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [CLI, "run"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    total = 2 * len(sandbox.account_ids)
    assert result.returncode == 3
    assert f"accounts {total}/{total} (2 resources), 2 failed".encode() in shown, shown
    piped = cli("run", env=env, cwd=tmp_path)  # stderr is a pipe: no count line
    assert piped.returncode == 3 and f"accounts {total}/{total}" not in piped.stderr
    assert "partial failure: 1 account failed, the others loaded" in piped.stderr


def test_account_progress_of_one_resource(monkeypatch, capsys):
    from pipelines import progress
    from sources.docusign_billing.fetch import FetchProgress

    line = progress._CountLine()
    for done in (1, 2, 3):
        record = logging.LogRecord("fetch", logging.INFO, "", 0, "", None, None)
        record.progress = FetchProgress(done, 3, 1, "past_due")
        line.emit(record)
    assert capsys.readouterr().err.endswith(f"{progress.PREFIX}accounts 3/3, 1 failed\x1b[K")


@pytest.mark.parametrize(
    "name, value",
    [("request_timeout", "nan"), ("request_timeout", "inf"), ("backoff_factor", "nan")],
)
def test_a_setting_that_is_not_a_finite_number_exits_2_naming_it(
    sandbox, cli_env, monkeypatch, capsys, name, value
):
    """TOML (and the environment) take `nan` and `inf` as floats; they passed the minimum checks
    and failed mid-run with exit 1 ('Invalid value NaN', 'timestamp out of range'), or were
    used as a backoff. Removed to see it fail: the `isfinite` check in `client.check_setting`."""
    env = cli_env(sandbox, **{f"SOURCES__DOCUSIGN_BILLING__{name.upper()}": value})
    result = cli_in_process(monkeypatch, capsys, "run", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"docusign-billing: configuration error: sources.docusign_billing.{name} = {value}"
        " must be a finite number"
    ]
    assert not sandbox.requests
