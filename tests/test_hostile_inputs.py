"""Hostile inputs found by a fresh-clone test: each one a clean line and a documented exit code."""

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from requests.exceptions import InvalidHeader

from pipelines.cli import EXIT_CONFIG, EXIT_FAILED, explain
from sources.docusign_billing.auth import DocuSignCredentials, make_auth
from sources.docusign_billing.errors import ConfigError, ResponseError
from sources.docusign_billing.resources import RESOURCES
from sources.docusign_billing.sandbox import ACCESS_TOKEN, LEGACY_CREDENTIALS
from sources.docusign_billing.shapes import AccountResponse, RawBody
from sources.docusign_billing.tables import BatchParser
from tests.conftest import REPO
from tests.helpers_reliability import cli, cli_in_process

_READ_NULL = """
from sources.docusign_billing.bodies import read_known
from sources.docusign_billing.shapes import AccountResponse, RawBody
raw = RawBody({body!r}, "application/json")
print(read_known([AccountResponse("acc-1", raw=raw)]))
"""


@pytest.mark.parametrize("body", [b"null", b" null", b"\\n null \\n"])
def test_a_body_that_is_not_an_object_never_reaches_arrow(body):
    """Arrow's JSON reader crashes the process (SIGSEGV) on a bare `null`: run it apart."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_NULL.format(body=body)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr


@pytest.mark.parametrize("body", ["null", " null"])
def test_a_null_body_is_one_clear_error_naming_the_account(runner, sandbox, body):
    account = sandbox.account_ids[1]
    sandbox.set_response(account, body)
    with pytest.raises(Exception) as error:
        runner.run()
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert message.startswith(f"account {account}"), message
    assert message.endswith("expected a JSON object, got NoneType"), message


def test_a_token_with_surrounding_whitespace_is_sent_stripped(runner, sandbox):
    """`cat token` leaves a trailing newline; requests would refuse the header, printing it."""
    runner.run(credentials=DocuSignCredentials(auth="token", access_token=f" {ACCESS_TOKEN}\n"))
    assert runner.rows("SELECT count(DISTINCT account_id) FROM billing.past_due_snapshots") == [
        (len(sandbox.account_ids),)
    ]


SECRET = "s3cr3t"


@pytest.mark.parametrize(
    "auth, field, fields",
    [
        ("token", "access_token", {}),
        ("legacy", "password", LEGACY_CREDENTIALS),
        ("legacy", "integrator_key", LEGACY_CREDENTIALS),
        ("jwt", "integration_key", {"user_id": "u", "private_key": "k"}),
        ("refresh_token", "client_secret", {"client_id": "c", "refresh_token": "r"}),
        ("refresh_token", "refresh_token", {"client_id": "c", "client_secret": "s"}),
    ],
)
@pytest.mark.parametrize("inside", ["\n", " ", "\x00", "\t"])
def test_a_secret_with_a_control_character_inside_is_a_config_error_naming_the_field(
    auth, field, fields, inside
):
    credentials = DocuSignCredentials(auth=auth, **{**fields, field: f"{SECRET}{inside}x\n"})
    with pytest.raises(ConfigError) as error:
        make_auth(credentials)
    code, message = explain(error.value)
    assert code == EXIT_CONFIG
    assert f"credentials.{field} holds whitespace or a control character" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "refused",
    [
        ValueError(f"Invalid header value b'Bearer {SECRET}\\n'"),  # http.client
        InvalidHeader(f"Invalid leading whitespace in header value: ' {SECRET}'"),  # requests
    ],
)
def test_a_refused_header_is_explained_without_its_value(refused):
    try:
        try:
            raise refused
        except ValueError as ex:
            raise RuntimeError("extraction failed") from ex
    except RuntimeError as wrapped:
        code, message = explain(wrapped)
    assert code == EXIT_CONFIG
    assert SECRET not in message
    assert "HTTP header" in message


@pytest.mark.parametrize(
    "file, line, expected",
    [
        (
            "config.toml",
            b'note = "caf\xe9"',
            "config.toml is not UTF-8 (TOML files must be): byte 0xE9",
        ),
        (
            "secrets.toml",
            b'note = "caf\xe9"',
            "secrets.toml is not UTF-8 (TOML files must be): byte 0xE9",
        ),
        (
            "config.toml",
            b'resources = ["past_due", 5]',
            "resources = ['past_due', 5] is not a resource name",
        ),
        ("config.toml", b"resources = 5", "resources = 5 is not a resource name"),
    ],
)
def test_a_bad_config_file_is_one_line_exit_2(sandbox, cli_env, tmp_path, file, line, expected):
    """The console script: dlt reads the TOML files once per process."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / file).write_bytes(b"[sources.docusign_billing]\n" + line + b"\n")
    env = cli_env(sandbox)
    del env["SOURCES__DOCUSIGN_BILLING__RESOURCES"]
    _assert_configuration_error(cli("run", env=env, cwd=tmp_path), expected)
    assert not sandbox.requests


def _assert_configuration_error(result, expected):
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "configuration error" in last and expected in last, last


def _not_duckdb(tmp_path):
    (tmp_path / "notes.duckdb").write_text("not a database\n" * 10)
    return "notes.duckdb"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--destination", ""], "--destination is empty"),
        (["--duckdb-file", ""], "the DuckDB file '' is not a file name"),
        (["--duckdb-file", "."], "the DuckDB file '.' is not a file name"),
        (["--duckdb-file", _not_duckdb], "notes.duckdb is not a DuckDB database file"),
        (["--pipelines-dir", "/proc/nope"], "the pipelines folder '/proc/nope' cannot be created"),
        (["--resources", ","], "resources = ',' names no resource"),
        (["--resources", ""], "--resources '' names no resource"),
    ],
)
def test_a_bad_command_line_value_is_one_line_exit_2(
    sandbox, cli_env, monkeypatch, capsys, tmp_path, args, expected
):
    args = [a(tmp_path) if callable(a) else a for a in args]
    result = cli_in_process(monkeypatch, capsys, "run", *args, env=cli_env(sandbox))
    _assert_configuration_error(result, expected)
    assert not sandbox.requests


def _invoice(**fields):
    return {"invoiceId": "inv-1", "amount": "1.00", **fields}


@pytest.mark.parametrize("as_bytes", [False, True], ids=["records", "arrow"])
@pytest.mark.parametrize(
    "invoice, expected",
    [
        (
            _invoice(dueDate="9999-12-31T23:59:59-14:00"),
            "invoice inv-1, field dueDate: cannot read '9999-12-31T23:59:59-14:00': date value out of range",
        ),
        (
            _invoice(dueDate="0001-01-01T00:00:00+14:00"),
            "invoice inv-1, field dueDate: cannot read '0001-01-01T00:00:00+14:00': date value out of range",
        ),
        (
            _invoice(**{"": "x"}),
            "invoice inv-1, field '' ('x'): a field name that cannot be a column",
        ),
        (_invoice(invoiceId=12345), "invoice #0: invoiceId 12345 is a JSON number, not a string"),
        (_invoice(invoiceId=""), "invoice #0: invoiceId '' is blank"),
        (_invoice(amount="1.2.3"), "invoice inv-1, field amount: cannot read '1.2.3'"),
    ],
)
@pytest.mark.parametrize("resource", ["past_due", "billing_invoices"])
def test_a_bad_value_names_account_resource_record_field_and_value(
    resource, invoice, expected, as_bytes
):
    described = RESOURCES[resource]
    body = {"billingInvoices": [invoice]}
    response = (
        AccountResponse("acc-1", raw=RawBody(json.dumps(body).encode(), "application/json"))
        if as_bytes
        else AccountResponse("acc-1", body)
    )
    parser = BatchParser(datetime(2026, 1, 1, tzinfo=UTC), "1.5", None, described)
    parser.add(response)
    with pytest.raises(ResponseError) as error:
        parser.build(["acc-1"])
    assert str(error.value).startswith(f"account acc-1, {described.endpoint}, {expected}")


def test_a_toml_file_with_a_byte_order_mark_says_so(sandbox, cli_env, tmp_path):
    """Some Windows editors save UTF-8 with a BOM, which TOML forbids; dlt's parser then reports
    "Invalid statement (at line 1, column 1)". Removed to see it fail: the BOM branch of
    `failures.unreadable_toml`."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_bytes(
        b"\xef\xbb\xbf[sources.docusign_billing]\nmax_workers = 4\n"
    )
    result = cli("run", env=cli_env(sandbox), cwd=tmp_path)
    _assert_configuration_error(result, "config.toml starts with a UTF-8 byte-order mark")
    assert not sandbox.requests


def test_the_secrets_example_copied_as_it_is_names_its_placeholders():
    """`cp .dlt/secrets.toml.example .dlt/secrets.toml`, then a run: every auth block of the
    example (the commented ones uncommented) is refused naming a field that is still a `<...>`
    placeholder, not as "whitespace inside" (the placeholders hold spaces). Removed to see it
    fail: the placeholder check in `auth._sendable`."""
    import tomllib

    example = (REPO / ".dlt" / "secrets.toml.example").read_text(encoding="utf-8")
    section = example.split("[sources.docusign_billing.credentials]")[1].split("\n[")[0]
    blocks = [block.split("\n\n")[0] for block in section.split("# ---")[1:]]
    assert len(blocks) == 4
    for block in blocks:
        lines = [line.removeprefix("# ") for line in block.splitlines()[1:]]
        values = tomllib.loads("\n".join(line for line in lines if " = " in line))
        with pytest.raises(ConfigError) as error:
            make_auth(DocuSignCredentials(**values))
        message = str(error.value)
        assert "is still a placeholder of .dlt/secrets.toml.example" in message, message
