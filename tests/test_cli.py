"""The `docusign-billing` console script as a user runs it: demo, run, exit codes, no secrets."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sources.docusign_billing.sandbox import LEGACY_CREDENTIALS
from tests.conftest import REPO
from tests.helpers_reliability import secrets_in_credential_headers, secrets_outside_credentials

CLI = str(Path(sys.executable).with_name("docusign-billing"))
README_SQL = re.findall(r"```sql\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def cli(*args, env=None, cwd=None):
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def _one_line_error(result, code):
    assert result.returncode == code, result.stderr
    errors = [
        line
        for line in result.stderr.splitlines()
        if not line.startswith("docusign-billing: ")
        or "error" in line
        or "failed" in line
        or "HTTP" in line
    ]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 4  # progress lines at most, then the error
    return result.stderr.strip().splitlines()[-1], errors


def test_demo_loads_duckdb_and_readme_queries_return_rows(tmp_path):
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    demo_file = tmp_path / "docusign_billing_demo.duckdb"
    assert re.search(r"loaded 5 accounts into duckdb dataset billing", result.stdout)
    assert f"(file {demo_file})" in result.stdout  # says where it wrote
    assert re.search(r"past-due invoices: [1-9]\d*\s+invoice items: [1-9]\d*", result.stdout)
    # kept apart from real data: its own DuckDB file and its own pipeline state
    assert demo_file.exists() and not (tmp_path / "docusign_billing.duckdb").exists()
    assert len(README_SQL) == 4
    for sql in README_SQL[:3]:
        rows = cli("query", sql, "--duckdb-file", str(demo_file), cwd=tmp_path)
        assert rows.returncode == 0, rows.stderr
        assert len(rows.stdout.strip().splitlines()) >= 2, sql  # header and at least one row


def test_readme_retired_invoices_query_after_a_payment(runner, sandbox):
    runner.run()
    account = sandbox.account_ids[0]
    invoice = sandbox.response(account)["billingInvoices"][0]
    sandbox.pay_invoice(account, invoice["invoiceId"])
    runner.run()
    rows = runner.rows(README_SQL[3])
    assert [(r[0], r[1]) for r in rows] == [(account, invoice["invoiceNumber"])]


def test_run_with_environment_config(sandbox, cli_env, tmp_path):
    result = cli("run", env=cli_env(sandbox), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"loaded {len(sandbox.account_ids)} accounts" in result.stdout
    assert "extracting" in result.stderr and "loading into duckdb" in result.stderr
    again = cli("run", "--accounts", sandbox.account_ids[0], env=cli_env(sandbox), cwd=tmp_path)
    assert again.returncode == 0 and "loaded 1 accounts" in again.stdout


@pytest.mark.parametrize(
    "args, extra_env, expected",
    [
        (
            ["run"],
            {
                "SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS": "",
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "legacy",
            },
            "no account ids",
        ),
        (["run"], {"SOURCES__DOCUSIGN_BILLING__ACCOUNTS": "some"}, "is not one of all, default"),
        (["run", "--accounts", "not an id!"], {}, "is not a DocuSign account id"),
        (["run"], {"SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "kerberos"}, "is not one of"),
        (["run", "--base-url", "demo.docusign.net"], {}, "base_url"),
        (["run", "--destination", "no_such_destination"], {}, "destination"),
        (
            ["run", "--dataset", "same", "--duckdb-file", "same.duckdb"],
            {},
            "must not be named like the dataset",
        ),
    ],
)
def test_configuration_errors_exit_2_with_one_line(
    sandbox, cli_env, tmp_path, args, extra_env, expected
):
    result = cli(*args, env=cli_env(sandbox, **extra_env), cwd=tmp_path)
    last, _ = _one_line_error(result, 2)
    assert "configuration error" in last and expected in last


def test_missing_account_ids_names_the_setting(sandbox, cli_env, tmp_path):
    env = cli_env(sandbox, SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH="legacy")
    del env["SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS"]
    last, _ = _one_line_error(cli("run", env=env, cwd=tmp_path), 2)
    assert "sources.docusign_billing.account_ids" in last


def test_api_failure_of_every_account_exits_1_with_one_line(sandbox, cli_env, tmp_path):
    for account_id in sandbox.account_ids:
        sandbox.deny_admin(account_id)
    last, _ = _one_line_error(cli("run", env=cli_env(sandbox), cwd=tmp_path), 1)
    assert "USER_LACKS_PERMISSIONS" in last and "administrator" in last


def test_one_failing_account_is_a_partial_failure_exit_3(sandbox, cli_env, tmp_path):
    denied = sandbox.account_ids[0]
    sandbox.deny_admin(denied)
    result = cli("run", env=cli_env(sandbox), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert f"loaded {len(sandbox.account_ids) - 1} accounts" in result.stdout
    assert "FAILED accounts: 1" in result.stdout and f"account {denied}" in result.stdout
    assert "USER_LACKS_PERMISSIONS" in result.stdout and "partial failure" in result.stderr
    # and nothing but the product's own lines (dlt warned on every such run that the errors' Arrow
    # schema differed from the table's hints: `resource`, a key column, was declared nullable)
    assert all(line.startswith("docusign-billing: ") for line in result.stderr.splitlines())


def _files_containing(root: Path, secrets):
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), s) for s in secrets if s.encode() in data]
    return found


def test_secrets_never_in_output_or_files(sandbox, cli_env, tmp_path):
    """Outputs, files and what the sandbox received (each secret only in its credential header).

    Removed to see it fail: `BearerAuth` also sending the token as an `access_token` query
    parameter (the sandbox's log of request targets then holds it).
    """
    password, key, token = "Pw-7f3e9a-secret", "IK-51c0d2-secret", "TK-9a8b7c-secret"
    sandbox.add_token(token)
    secrets = [password, key, token]
    outputs = []
    # a good token run, then legacy runs that fail on the password, all at DEBUG level
    for extra in (
        {"SOURCES__DOCUSIGN_BILLING__CREDENTIALS__ACCESS_TOKEN": token},
        {
            "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "legacy",
            "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__USERNAME": LEGACY_CREDENTIALS["username"],
            "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__PASSWORD": password,
            "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__INTEGRATOR_KEY": key,
        },
    ):
        result = cli("run", env=cli_env(sandbox, RUNTIME__LOG_LEVEL="DEBUG", **extra), cwd=tmp_path)
        outputs.append(result)
    assert outputs[0].returncode == 0 and outputs[1].returncode == 2  # rejected: exit 2
    for result in outputs:
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr
    assert _files_containing(tmp_path, secrets) == []
    # what the sandbox received: each secret only in the header that carries credentials
    assert secrets_outside_credentials(sandbox.requests, secrets) == []
    assert secrets_in_credential_headers(sandbox.requests, secrets) == set(secrets)


def test_pipeline_script_runs_like_the_cli(sandbox, cli_env, tmp_path):
    script = str(REPO / "pipelines" / "docusign_billing_pipeline.py")
    result = subprocess.run(
        [sys.executable, script],
        env=cli_env(sandbox),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"loaded {len(sandbox.account_ids)} accounts" in result.stdout
    broken = subprocess.run(
        [sys.executable, script, "--base-url", "nope"],
        env=cli_env(sandbox),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        broken.returncode == 2 and "Traceback" not in broken.stderr and "base_url" in broken.stderr
    )
