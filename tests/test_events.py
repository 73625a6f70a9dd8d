"""`--log-format json`: one JSON object per event on stderr, for log collectors; no secrets."""

import json

import duckdb
import pytest

from sources.docusign_billing.sandbox import ACCESS_TOKEN
from tests.helpers_reliability import cli


def _events(stderr: str) -> list[dict]:
    lines = stderr.strip().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(e, dict) and e["event"] and e["ts"].endswith("+00:00") for e in events)
    return events


def test_run_events_name_each_account_and_the_load(sandbox, cli_env, tmp_path):
    denied = sandbox.account_ids[0]
    sandbox.deny_admin(denied)
    result = cli("run", "--log-format", "json", env=cli_env(sandbox), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    events = _events(result.stderr)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and events[0]["command"] == "run"
    assert "progress" in kinds and kinds[-2:] == ["load_done", "progress"]  # "partial failure"
    done = {e["account_id"]: e for e in events if e["event"] == "account_done"}
    failed = {e["account_id"]: e for e in events if e["event"] == "account_failed"}
    assert set(done) == set(sandbox.account_ids) - {denied} and set(failed) == {denied}
    for account_id, event in done.items():
        invoices = sandbox.response(account_id)["billingInvoices"]
        assert event["resource"] == "past_due_invoices"
        assert event["invoices"] == len(invoices)
        assert event["items"] == sum(len(i.get("invoiceItems") or []) for i in invoices)
        assert isinstance(event["past_due_balance"], str)  # exact decimal, not a float
    assert failed[denied]["error_code"] == "USER_LACKS_PERMISSIONS"
    load_done = events[kinds.index("load_done")]
    assert load_done["accounts"] == len(done) and load_done["failed_accounts"] == 1
    assert load_done["invoices"] == sum(e["invoices"] for e in done.values())
    assert ACCESS_TOKEN not in result.stderr + result.stdout


def test_error_is_one_json_event_with_the_exit_code(sandbox, cli_env, tmp_path):
    env = cli_env(sandbox)
    del env["SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS"]
    env["SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH"] = "legacy"
    result = cli("run", "--log-format", "json", env=env, cwd=tmp_path)
    assert result.returncode == 2
    events = _events(result.stderr)
    assert [e["event"] for e in events] == ["run_start", "error"]
    assert events[-1]["exit_code"] == 2 and "account_ids" in events[-1]["message"]


def test_every_command_takes_the_option(tmp_path, capsys):
    from pipelines.cli import build_parser

    parser = build_parser()
    for name in ("run", "demo", "accounts", "query"):
        with pytest.raises(SystemExit):  # --help exits after printing the command's options
            parser.parse_args([name, "--help"])
        assert "--log-format {text,json}" in capsys.readouterr().out, name
    duckdb.connect(str(tmp_path / "x.duckdb")).close()
    result = cli(
        "query", "SELECT 1", "--duckdb-file", str(tmp_path / "x.duckdb"), "--log-format", "json",
        env={}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [e["event"] for e in _events(result.stderr)] == ["run_start"]
