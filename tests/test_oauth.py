"""OAuth JWT and refresh-token grants, account discovery across hosts, concurrency and rate limits."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipelines.cli import EXIT_CONFIG, EXIT_FAILED, explain
from sources.docusign_billing.auth import DocuSignCredentials
from sources.docusign_billing.sandbox import CLIENT_ID, INTEGRATION_KEY, USER_ID, Sandbox
from tests.conftest import Runner
from tests.helpers_reliability import secrets_in_credential_headers, secrets_outside_credentials

CLI = str(Path(sys.executable).with_name("docusign-billing"))


def _key_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


PRIVATE_KEY, PUBLIC_KEY = _key_pair()


@pytest.fixture
def hosts():
    """Five accounts spread over two hosts, like DocuSign's naX hosts, with an account server."""
    with Sandbox(accounts=5, invoices_per_account=(1, 4), seed=23, hosts=2) as api:
        api.oauth.public_key = PUBLIC_KEY
        yield api


@pytest.fixture
def oauth_runner(hosts, tmp_path):
    return Runner(hosts, tmp_path)


def jwt_credentials(api, **overrides):
    fields = dict(
        auth="jwt",
        integration_key=INTEGRATION_KEY,
        user_id=USER_ID,
        private_key=PRIVATE_KEY,
        oauth_base_url=api.oauth_base_url,
    )
    return DocuSignCredentials(**{**fields, **overrides})


def refresh_credentials(api, **overrides):
    fields = dict(
        auth="refresh_token",
        client_id=CLIENT_ID,
        client_secret=api.oauth.client_secret,
        refresh_token=next(iter(api.oauth.refresh_tokens)),
        oauth_base_url=api.oauth_base_url,
    )
    return DocuSignCredentials(**{**fields, **overrides})


def discovered(runner, credentials, **source_args):
    """A run with no account ids and no base_url: everything comes from /oauth/userinfo."""
    return runner.run(account_ids=None, base_url=None, credentials=credentials, **source_args)


def _snapshots(runner):
    return runner.rows("SELECT account_id, account_name FROM billing.past_due_snapshots ORDER BY 2")


def test_jwt_grant_discovers_all_accounts_on_their_own_hosts(oauth_runner, hosts):
    discovered(oauth_runner, jwt_credentials(hosts))
    assert _snapshots(oauth_runner) == [
        (a, f"Sandbox Co {i + 1}") for i, a in enumerate(hosts.account_ids)
    ]
    assert hosts.base_url_for(hosts.account_ids[0]) != hosts.base_url_for(hosts.account_ids[1])
    fetched = [r for r in hosts.requests if r["account_id"]]
    assert (
        len(fetched) == 5
        and {r["status"] for r in fetched} == {200}
        and {r["auth"] for r in fetched} == {"token"}
    )
    assert hosts.oauth.tokens_issued == 1  # cached for the run


def test_jwt_private_key_from_a_file(oauth_runner, hosts, tmp_path):
    key_file = tmp_path / "docusign.pem"
    key_file.write_text(PRIVATE_KEY)
    discovered(
        oauth_runner, jwt_credentials(hosts, private_key=None, private_key_path=str(key_file))
    )
    assert len(_snapshots(oauth_runner)) == 5


def test_default_account_only(oauth_runner, hosts):
    discovered(oauth_runner, jwt_credentials(hosts), accounts="default")
    assert _snapshots(oauth_runner) == [(hosts.account_ids[0], "Sandbox Co 1")]


def test_configured_ids_are_called_on_their_discovered_hosts(oauth_runner, hosts):
    chosen = hosts.account_ids[1:3]
    oauth_runner.run(account_ids=chosen, base_url=None, credentials=jwt_credentials(hosts))
    assert sorted(a for a, _ in _snapshots(oauth_runner)) == sorted(chosen)


def test_refresh_token_grant(oauth_runner, hosts):
    discovered(oauth_runner, refresh_credentials(hosts))
    assert len(_snapshots(oauth_runner)) == 5


def test_token_renewed_in_a_run_that_outlives_it(tmp_path):
    # a 3 s token is renewed 0.6 s before it expires: far more than a request's 0.25 s latency
    with Sandbox(accounts=14, invoices_per_account=1, seed=5, token_lifetime=3.0) as api:
        api.oauth.public_key = PUBLIC_KEY
        api.latency = 0.25
        runner = Runner(api, tmp_path)
        started = time.monotonic()
        discovered(runner, jwt_credentials(api), max_workers=1)
        assert time.monotonic() - started > 3.0  # outlives the first token
        assert api.oauth.tokens_issued >= 2
        assert not [r for r in api.requests if r["status"] == 401]  # renewed before expiry
        assert len(_snapshots(runner)) == 14


def test_token_revoked_mid_run_is_renewed_once(oauth_runner, hosts):
    hosts.inject("401", times=1, account_id=hosts.account_ids[2])
    discovered(oauth_runner, jwt_credentials(hosts))
    assert len(_snapshots(oauth_runner)) == 5
    assert hosts.oauth.tokens_issued == 2
    assert [r["status"] for r in hosts.requests if r["account_id"] == hosts.account_ids[2]] == [
        401,
        200,
    ]


def test_static_token_rejected_mid_run_is_an_auth_error(oauth_runner, hosts):
    hosts.inject("401", times=1, account_id=hosts.account_ids[0])
    with pytest.raises(Exception) as error:
        oauth_runner.run(
            account_ids=hosts.account_ids[:1], base_url=hosts.base_url_for(hosts.account_ids[0])
        )
    code, message = explain(error.value)
    assert code == EXIT_CONFIG and "AUTHORIZATION_INVALID_TOKEN" in message  # rejected: a human


def _failure(runner, credentials):
    with pytest.raises(Exception) as error:
        discovered(runner, credentials)
    return explain(error.value)


def test_consent_required_gives_the_consent_url(oauth_runner, hosts):
    hosts.oauth.consented = False
    code, message = _failure(oauth_runner, jwt_credentials(hosts))
    assert code == EXIT_CONFIG and "consent" in message
    assert (
        f"{hosts.oauth_base_url}/oauth/auth?response_type=code" in message
        and f"client_id={INTEGRATION_KEY}" in message
    )
    assert "scope=signature+impersonation" in message


def test_assertion_signed_with_another_key_is_refused(oauth_runner, hosts):
    """Removed to see it fail: the `AuthError` branch of the client's error mapping, or the
    `rejected` branch of `explain` (exit 1 instead of 2)."""
    other_key, _ = _key_pair()
    code, message = _failure(oauth_runner, jwt_credentials(hosts, private_key=other_key))
    assert code == EXIT_CONFIG and "invalid_grant" in message and "BEGIN" not in message


def test_wrong_user_id_is_refused(oauth_runner, hosts):
    code, message = _failure(
        oauth_runner, jwt_credentials(hosts, user_id="00000000-0000-0000-0000-000000000000")
    )
    assert code == EXIT_CONFIG and "invalid_grant" in message


def test_wrong_client_secret_is_refused(oauth_runner, hosts):
    code, message = _failure(
        oauth_runner, refresh_credentials(hosts, client_secret="not-the-secret")
    )
    assert code == EXIT_CONFIG and "invalid_client" in message and "not-the-secret" not in message


def test_bad_refresh_token_is_refused(oauth_runner, hosts):
    code, message = _failure(oauth_runner, refresh_credentials(hosts, refresh_token="RT-revoked"))
    assert code == EXIT_CONFIG and "credentials rejected" in message and "RT-revoked" not in message


def test_unreachable_oauth_server_is_worth_a_retry(oauth_runner, hosts, monkeypatch):
    """Not a rejection: nothing to fix in the credentials, so exit 1 (a scheduler retries).

    The OAuth calls retry with dlt's runtime settings (5 attempts, 1-2-4-8 s by default).
    Removed to see it fail: `AuthError.rejected` always true (exit 2)."""
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    unreachable = "http://127.0.0.1:9"  # the discard port: connection refused
    code, message = _failure(oauth_runner, jwt_credentials(hosts, oauth_base_url=unreachable))
    assert code == EXIT_FAILED and "could not be reached" in message


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"private_key": "-----BEGIN NOTHING-----"}, "not an unencrypted PEM RSA private key"),
        ({"private_key": None, "private_key_path": "/nonexistent/key.pem"}, "cannot be read"),
        ({"private_key": None}, "private_key"),
        ({"user_id": None}, "user_id"),
        ({"oauth_base_url": "account-d.docusign.com"}, "oauth_base_url"),
    ],
)
def test_bad_jwt_configuration(oauth_runner, hosts, overrides, expected):
    code, message = _failure(oauth_runner, jwt_credentials(hosts, **overrides))
    assert code == EXIT_CONFIG and expected in message


def test_concurrency_is_bounded_and_faster_than_sequential(tmp_path):
    with Sandbox(accounts=12, invoices_per_account=1, seed=3) as api:
        api.latency = 0.2
        runner = Runner(api, tmp_path)
        runner.run(max_workers=4)
        # never more than 4 at once, and 4 at once did happen: the deterministic proof
        assert api.max_in_flight == 4
        # the requests' own span, not the run's (dlt's normalize and load are no part of it):
        # one after another they would span 11 x 0.2 s; 4 at a time ~0.4 s (5x margin)
        arrivals = sorted(r["at"] for r in api.requests)
        assert arrivals[-1] - arrivals[0] < 11 * 0.2
        assert len(runner.rows("SELECT * FROM billing.past_due_snapshots")) == 12


def test_rate_limit_is_respected_before_a_429(tmp_path):
    with Sandbox(accounts=30, invoices_per_account=1, seed=4) as api:
        api.rate_limit(max_requests=10, per_seconds=1.0)
        runner = Runner(api, tmp_path)
        runner.run(max_workers=8)
        assert api.throttled == 0
        assert len(runner.rows("SELECT * FROM billing.past_due_snapshots")) == 30
        arrivals = sorted(r["at"] for r in api.requests)
        assert (
            arrivals[-1] - arrivals[0] >= 1.0
        )  # 30 requests at 10 per 1-s window span three windows


def test_one_failing_account_across_hosts_the_others_load(oauth_runner, hosts):
    denied = hosts.account_ids[3]
    hosts.deny_admin(denied)
    discovered(oauth_runner, jwt_credentials(hosts))
    assert (
        denied not in {a for a, _ in _snapshots(oauth_runner)}
        and len(_snapshots(oauth_runner)) == 4
    )
    assert oauth_runner.rows(
        "SELECT account_id, account_name, error_code FROM billing.account_errors"
    ) == [(denied, "Sandbox Co 4", "USER_LACKS_PERMISSIONS")]


def test_accounts_command_lists_what_the_credentials_reach(hosts, tmp_path, cli_env):
    env = cli_env(
        hosts,
        SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH="jwt",
        SOURCES__DOCUSIGN_BILLING__CREDENTIALS__INTEGRATION_KEY=INTEGRATION_KEY,
        SOURCES__DOCUSIGN_BILLING__CREDENTIALS__USER_ID=USER_ID,
        SOURCES__DOCUSIGN_BILLING__CREDENTIALS__PRIVATE_KEY=PRIVATE_KEY,
        SOURCES__DOCUSIGN_BILLING__CREDENTIALS__OAUTH_BASE_URL=hosts.oauth_base_url,
    )
    result = subprocess.run(
        [CLI, "accounts"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["ACCOUNT", "ID", "NAME", "BASE", "URI", "DEFAULT"]
    assert len(lines) == 6 and lines[1].rstrip().endswith("yes")
    for account_id in hosts.account_ids:
        assert any(
            account_id in line and hosts.base_url_for(account_id).removesuffix("/restapi") in line
            for line in lines
        )
    assert not (tmp_path / "docusign_billing.duckdb").exists()


def _duckdb_dlt_tables_text(path):
    import duckdb

    with duckdb.connect(str(path), read_only=True) as connection:
        names = [
            r[0]
            for r in connection.sql(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_name LIKE '\\_dlt%' ESCAPE '\\'"
            ).fetchall()
        ]
        return " ".join(str(connection.sql(f"SELECT * FROM {name}").fetchall()) for name in names)


def test_no_secret_of_any_auth_method_leaks(hosts, tmp_path, cli_env):
    """Whole runs at DEBUG level with distinctive secrets; every output, every written file and
    what the servers received are searched.

    Removed to see it fail: `CachedTokenAuth` also sending the access token in an `X-Trace`
    header (found in the sandbox's log of request headers).
    """
    client_secret, refresh_token = "CS-e1f2a3-distinctive", "RT-b4c5d6-distinctive"
    hosts.oauth.client_secret = client_secret
    hosts.oauth.refresh_tokens.add(refresh_token)
    key_line = PRIVATE_KEY.splitlines()[5]
    secrets = [
        client_secret,
        refresh_token,
        key_line,
        "sandbox-oauth-",
    ]  # the last: every issued access token
    common = {
        "RUNTIME__LOG_LEVEL": "DEBUG",
        "SOURCES__DOCUSIGN_BILLING__BASE_URL": "",
        "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__OAUTH_BASE_URL": hosts.oauth_base_url,
    }
    runs = [
        (
            {
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "jwt",
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__INTEGRATION_KEY": INTEGRATION_KEY,
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__USER_ID": USER_ID,
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__PRIVATE_KEY": PRIVATE_KEY,
            },
            0,
        ),
        (
            {
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "refresh_token",
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__CLIENT_ID": CLIENT_ID,
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__CLIENT_SECRET": client_secret,
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__REFRESH_TOKEN": refresh_token,
            },
            0,
        ),
        (
            {
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "refresh_token",
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__CLIENT_ID": CLIENT_ID,
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__CLIENT_SECRET": client_secret + "-wrong",
                "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__REFRESH_TOKEN": refresh_token,
            },
            2,  # rejected credentials
        ),
    ]
    env = cli_env(hosts)
    del env["SOURCES__DOCUSIGN_BILLING__CREDENTIALS__ACCESS_TOKEN"]
    del env["SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS"]  # discovered (set but empty is an error)
    for extra, expected in runs:
        result = subprocess.run(
            [CLI, "run"],
            env={**env, **common, **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == expected, result.stderr[-2000:]
        assert "DEBUG" in result.stderr or expected == 2  # the runs did log at DEBUG level
        for secret in secrets:
            assert secret not in result.stdout and secret not in result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "docusign_billing.duckdb" for p in written) and any(
        "trace" in p.name for p in written
    )
    for path in written:
        data = path.read_bytes()
        assert not [s for s in secrets if s.encode() in data], path
    dlt_tables = _duckdb_dlt_tables_text(tmp_path / "docusign_billing.duckdb")
    assert "docusign_billing" in dlt_tables and not [s for s in secrets if s in dlt_tables]
    # what the servers received: access tokens only as `Authorization`, the refresh token only in
    # the token request's form, the client secret only base64-encoded, the private key never
    assert secrets_outside_credentials(hosts.requests, secrets) == []
    assert secrets_in_credential_headers(hosts.requests, secrets) == {"sandbox-oauth-"}
    assert any(refresh_token in r["body"] for r in hosts.requests if r["path"] == "/oauth/token")


def test_discovered_account_ids_must_be_guids(oauth_runner, hosts, monkeypatch):
    listed = hosts._userinfo_accounts()
    listed[0]["account_id"] = "x'); DROP TABLE billing.past_due_invoices; --"
    monkeypatch.setattr(hosts.oauth, "accounts", lambda: listed)
    code, message = _failure(oauth_runner, jwt_credentials(hosts))
    assert code == EXIT_FAILED and "not a GUID or number" in message


def test_rate_limit_spent_for_long_fails_the_rest_fast_instead_of_stalling(tmp_path):
    until_hour = 3600 - time.time() % 3600
    if until_hour < 75:  # the window would free within the gate's 60 s wait, or during the test
        time.sleep(until_hour + 0.1)
    with Sandbox(accounts=8, invoices_per_account=1, seed=6) as api:
        api.rate_limit(max_requests=5, per_seconds=3600)  # hourly, like DocuSign
        runner = Runner(api, tmp_path)
        started = time.monotonic()
        runner.run(max_workers=2)
        assert time.monotonic() - started < 10
        assert len(runner.rows("SELECT * FROM billing.past_due_snapshots")) == 5
        errors = runner.rows("SELECT http_status, error_code, message FROM billing.account_errors")
        assert len(errors) == 3 and {(s, c) for s, c, _ in errors} == {
            (429, "HOURLY_APIINVOCATION_LIMIT_EXCEEDED")
        }
        assert all("left for a later run" in m for _, _, m in errors)
        assert api.throttled == 0
