"""Authentication, DocuSign's error classes and retries, over real HTTP against the sandbox."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines.cli import EXIT_CONFIG, EXIT_FAILED, explain
from sources.docusign_billing.auth import BearerAuth, DocuSignCredentials
from sources.docusign_billing.client import DocuSignClient, HttpSettings, RateLimitGate
from sources.docusign_billing.errors import ApiError
from sources.docusign_billing.sandbox import ACCESS_TOKEN, LEGACY_CREDENTIALS, Sandbox
from tests.conftest import LEGACY


def _failure(runner, **source_args):
    with pytest.raises(Exception) as error:
        runner.run(**source_args)
    return explain(error.value)


def _loaded(runner):
    return runner.rows("SELECT count(*) FROM billing.past_due_snapshots")[0][0]


def test_legacy_header_auth(runner, sandbox):
    runner.run(credentials=LEGACY)
    assert _loaded(runner) == len(sandbox.account_ids)
    assert {r["auth"] for r in sandbox.requests} == {"legacy"}


def test_token_auth(runner, sandbox):
    runner.run()
    assert _loaded(runner) == len(sandbox.account_ids)
    assert {r["auth"] for r in sandbox.requests} == {"token"}


@pytest.mark.parametrize(
    "credentials, code",
    [
        (
            DocuSignCredentials(
                auth="legacy", **{**LEGACY_CREDENTIALS, "password": "wrong-password"}
            ),
            "USER_AUTHENTICATION_FAILED",
        ),
        (
            DocuSignCredentials(
                auth="legacy", **{**LEGACY_CREDENTIALS, "integrator_key": "wrong-key"}
            ),
            "PARTNER_AUTHENTICATION_FAILED",
        ),
        (
            DocuSignCredentials(auth="token", access_token="expired-token"),
            "AUTHORIZATION_INVALID_TOKEN",
        ),
    ],
)
def test_rejected_credentials(runner, credentials, code):
    """Removed to see it fail: the `AuthError` branch of `_api_error` (a 401 is then an ordinary
    API error: exit 1)."""
    exit_code, message = _failure(runner, credentials=credentials)
    assert exit_code == EXIT_CONFIG  # running again with the same credentials cannot succeed
    assert (
        "authentication failed" in message
        and code in message
        and "check the credentials" in message
    )
    assert (
        "wrong-password" not in message
        and "wrong-key" not in message
        and "expired-token" not in message
    )
    assert runner.snapshot()["past_due_snapshots"] == []


def test_user_without_admin_rights(runner, sandbox):
    for account_id in sandbox.account_ids:
        sandbox.deny_admin(account_id)
    exit_code, message = _failure(runner)
    assert exit_code == EXIT_FAILED
    assert "USER_LACKS_PERMISSIONS" in message and "administrator" in message
    assert any(account_id in message for account_id in sandbox.account_ids)


def test_one_account_without_admin_rights_does_not_stop_the_others(runner, sandbox):
    denied = sandbox.account_ids[1]
    sandbox.deny_admin(denied)
    runner.run()
    assert runner.rows("SELECT account_id FROM billing.past_due_snapshots ORDER BY 1") == sorted(
        (a,) for a in sandbox.account_ids if a != denied
    )
    [(account, status, code, message)] = runner.rows(
        "SELECT account_id, http_status, error_code, message FROM billing.account_errors"
    )
    assert (account, status, code) == (
        denied,
        400,
        "USER_LACKS_PERMISSIONS",
    ) and "administrator" in message


def test_unknown_account(runner):
    _, message = _failure(runner, account_ids=["12345"])
    assert "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT" in message and "12345" in message


def test_wrong_base_url_path(runner, sandbox):
    _, message = _failure(runner, base_url=sandbox.base_url.replace("/restapi", "/nope"))
    assert "HTTP 404" in message and "base_url" in message


def test_unreachable_host(runner):
    _, message = _failure(runner, base_url="http://127.0.0.1:9/restapi", max_attempts=2)
    assert "could not be reached" in message


@pytest.mark.parametrize(
    "credentials, needs",
    [
        (DocuSignCredentials(auth="token"), "no DocuSign credentials are configured"),
        (DocuSignCredentials(auth="jwt", integration_key="k"), "credentials.user_id"),
        (DocuSignCredentials(auth="legacy", username="u"), "password"),
        (DocuSignCredentials(auth="kerberos"), "is not one of"),
    ],
)
def test_incomplete_credentials_are_configuration_errors(runner, credentials, needs):
    """None set says so (and how to try the sandbox) instead of naming one field of the default
    method; some set names exactly the missing ones."""
    exit_code, message = _failure(runner, credentials=credentials)
    assert exit_code == EXIT_CONFIG and needs in message


@pytest.mark.parametrize("base_url", ["demo.docusign.net/restapi", "ftp://x/restapi", "https://"])
def test_malformed_base_url_is_a_configuration_error(runner, base_url):
    exit_code, message = _failure(runner, base_url=base_url)
    assert exit_code == EXIT_CONFIG and "base_url" in message


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "reset"])
def test_transient_faults_are_retried(runner, sandbox, fault):
    """Removed to see it fail: retries (`request_max_attempts=1` in `DocuSignClient`)."""
    sandbox.inject(fault, times=2, account_id=sandbox.account_ids[0])
    runner.run()
    assert _loaded(runner) == len(sandbox.account_ids)
    statuses = [r["status"] for r in sandbox.requests if r["account_id"] == sandbox.account_ids[0]]
    assert len(statuses) == 3 and statuses[-1] == 200


@pytest.mark.parametrize(
    "header", [{"retry_after": 1}, {"ratelimit_reset": 1}], ids=["Retry-After", "X-RateLimit-Reset"]
)
def test_429_waits_as_the_headers_say(runner, sandbox, header):
    sandbox.inject("429", times=1, **header)
    started = time.monotonic()
    runner.run()
    assert time.monotonic() - started >= 1.0
    assert _loaded(runner) == len(sandbox.account_ids)


def test_hung_request_times_out_and_is_retried(runner, sandbox):
    """Removed to see it fail: `request_timeout` in `DocuSignClient` (dlt's default of 60 s: the
    10 s hang is waited out)."""
    sandbox.inject("hang", times=1, seconds=10)
    started = time.monotonic()
    runner.run(request_timeout=0.5)
    assert time.monotonic() - started < 8
    assert _loaded(runner) == len(sandbox.account_ids)


def test_retries_run_out_leaves_tables_as_they_were(runner, sandbox):
    runner.run()
    before = runner.snapshot()
    sandbox.inject("503", times=50)
    exit_code, message = _failure(runner, max_attempts=3)
    assert exit_code == EXIT_FAILED and "HTTP 503" in message
    assert runner.snapshot() == before
    assert len([r for r in sandbox.requests if r["status"] == 503]) == 3 * len(sandbox.account_ids)


def test_retries_run_out_for_one_account_keeps_its_history(runner, sandbox):
    runner.run()
    flaky = sandbox.account_ids[2]
    history = runner.rows(
        f"SELECT * FROM billing.past_due_invoices WHERE account_id = '{flaky}' ORDER BY ALL"
    )
    sandbox.pay_invoice(flaky, sandbox.response(flaky)["billingInvoices"][0]["invoiceId"])
    sandbox.inject("503", times=50, account_id=flaky)
    runner.run(max_attempts=3)
    assert (
        runner.rows(
            f"SELECT * FROM billing.past_due_invoices WHERE account_id = '{flaky}' ORDER BY ALL"
        )
        == history
    )
    assert runner.rows("SELECT account_id, http_status FROM billing.account_errors") == [
        (flaky, 503)
    ]
    assert (
        len([r for r in sandbox.requests if r["account_id"] == flaky and r["status"] == 503]) == 3
    )


# the client on every billing path: one gate for all resources, DocuSign's burst window, paging
def _client(api, gate=None, **http):
    settings = HttpSettings(**{"backoff_factor": 0.02, "max_retry_delay": 0.5, **http})
    return DocuSignClient(api.base_url, BearerAuth(ACCESS_TOKEN), settings, gate)


def test_burst_headers_slow_the_client_before_it_is_throttled():
    """12 requests over two resources of one account, 4 workers, a burst budget of 4 per second:
    the gate waits out each spent window instead of sending into a 400.

    Removed to see it fail: the burst check of `RateLimitGate.acquire` (`burst_room` always
    true: 16 answers were DocuSign's burst 400)."""
    with Sandbox(accounts=1, seed=3) as api:
        api.limit_accounts(burst=4, burst_seconds=1.0)
        client = _client(api, RateLimitGate(burst_window=1.0))
        paths = [
            f"/v2.1/accounts/{api.account_ids[0]}/{resource}"
            for resource in ("billing_plan", "billing_charges") * 6
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            bodies = list(pool.map(lambda path: client.get(path, api.account_ids[0]), paths))
        assert len(bodies) == 12 and api.throttled == 0
        assert {r["status"] for r in api.requests} == {200}
        arrivals = sorted(r["at"] for r in api.requests)
        assert arrivals[-1] - arrivals[0] >= 1.9  # three windows of at most 4


def test_hourly_budget_spent_for_long_fails_fast_without_sending():
    """Removed to see it fail: `acquire`'s `return False` for a window that frees later than
    `max_wait` (the request then waits for the window: not refused within 10 s). Asserts nothing
    in the last 75 s of a clock hour, when the sandbox's window frees within the gate's wait."""
    with Sandbox(accounts=1, seed=3) as api:
        api.limit_accounts(hourly=2)
        client = _client(api)
        path = f"/v2.1/accounts/{api.account_ids[0]}/billing_plan"
        client.get(path, api.account_ids[0])
        client.get(path, api.account_ids[0])
        if int(api.requests[-1]["at"]) % 3600 < 3600 - 75:  # the window frees after the gate's wait
            refused, done = [], threading.Event()

            def third_request():
                try:
                    client.get(path, api.account_ids[0])
                except ApiError as error:
                    refused.append(str(error))
                finally:
                    done.set()

            threading.Thread(target=third_request, daemon=True).start()
            assert done.wait(10), "not refused at once: the gate waits for the hourly window"
            assert len(refused) == 1 and "left for a later run" in refused[0]
            assert len(api.requests) == 2 and api.throttled == 0


def test_pages_follow_next_uri_relative_or_absolute_on_the_same_host():
    with Sandbox(accounts=1, seed=3, page_size=5) as api:
        account_id = api.account_ids[0]
        client = _client(api)
        path = f"/v2.1/accounts/{account_id}/billing_invoices"
        window = {"from_date": "2025-06-01", "to_date": "2026-05-31"}
        pages = [
            json.loads(p.content)["billingInvoices"] for p in client.pages(path, account_id, window)
        ]
        assert [len(p) for p in pages[:-1]] == [5] * (len(pages) - 1) and len(pages) >= 3
        assert [r["query"].get("start_position") for r in api.requests] == [
            None,
            *(str(5 * n) for n in range(1, len(pages))),
        ]
        assert all(r["query"]["from_date"] == "2025-06-01" for r in api.requests)
        root = api.base_url.removesuffix("/restapi")
        for uri in (path, f"/restapi{path}", f"{api.base_url}{path}"):
            assert client.resolve(uri, account_id) == f"{api.base_url}{path}"
        with pytest.raises(ApiError, match="not followed"):
            client.resolve(f"https://elsewhere.example{path}", account_id)
        assert root.startswith("http://127.0.0.1")
