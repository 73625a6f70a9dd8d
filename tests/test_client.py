"""`client.py` without HTTP: `RateLimitGate` fed DocuSign's `X-RateLimit-*` headers directly
(pacing, windows, stale answers, the Retry-After it derives) and the mapping of error responses to
one-line errors. Fast, so mutation testing can run it per mutant (`scripts/mutation.sh client`);
the same over real HTTP is in test_http.py, test_faults.py and test_oauth.py.

Waits are checked on events with wide margins: a thread that must stay blocked is given 0.3 s to
prove it is not admitted (an admitted one is through in microseconds), one that must be admitted
gets 5 s.
"""

import json
import threading
import time
from datetime import timedelta

import pytest
from requests import Response

from sources.docusign_billing import settings
from sources.docusign_billing.auth import BearerAuth
from sources.docusign_billing.client import (
    DocuSignClient,
    HttpSettings,
    RateLimitGate,
    RawBody,
    _api_error,
    account_path,
    next_uri_of,
    throttle_code,
    validate_base_url,
)
from sources.docusign_billing.errors import ApiError, AuthError, ConfigError
from sources.docusign_billing.oauth import CachedTokenAuth
from sources.docusign_billing.sandbox import ACCESS_TOKEN, Sandbox

BLOCKED, ADMITTED = 0.3, 5.0


def _response(status=200, remaining=None, reset=None, limit=None, body=b"", reason="", **headers):
    response = Response()
    response.status_code, response._content, response.reason = status, body, reason
    if remaining is not None:
        response.headers["X-RateLimit-Remaining"] = str(remaining)
    if reset is not None:
        response.headers["X-RateLimit-Reset"] = str(reset)
    if limit is not None:
        response.headers["X-RateLimit-Limit"] = str(limit)
    response.headers.update(headers)
    return response


def _acquire_in_thread(gate):
    """An event set once `gate.acquire()` returned, and the list that receives its result."""
    done, result = threading.Event(), []

    def run():
        result.append(gate.acquire())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, result


def test_no_limit_seen_admits_everything():
    gate = RateLimitGate()
    assert all(gate.acquire() for _ in range(50))


def test_requests_in_flight_count_against_the_remaining_budget():
    gate = RateLimitGate()
    gate.observe(_response(remaining=2, reset=time.time() + 60, limit=3))
    assert gate.acquire() and gate.acquire()
    done, result = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)  # 2 remaining, 2 in flight
    gate.release()
    assert done.wait(ADMITTED) and result == [True]


def test_a_released_request_counts_exactly_once():
    """Killed mutants: `release` setting the count to 1, or taking two off."""
    gate = RateLimitGate()
    gate.observe(_response(remaining=1, reset=time.time() + 60, limit=3))
    assert gate.acquire()
    gate.release()
    done, _ = _acquire_in_thread(gate)
    assert done.wait(ADMITTED)  # nothing in flight any more: the one remaining slot is free
    gate = RateLimitGate()
    gate.observe(_response(remaining=2, reset=time.time() + 60, limit=3))
    assert gate.acquire() and gate.acquire()
    gate.release()
    assert gate.acquire()  # one in flight + this one: the budget of 2 is spent
    done, _ = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)


def test_answers_of_one_window_keep_the_lowest_remaining():
    gate = RateLimitGate()
    reset = time.time() + 60
    gate.observe(_response(remaining=1, reset=reset, limit=5))
    gate.observe(_response(remaining=4, reset=reset, limit=5))  # an earlier answer, arriving late
    assert gate.acquire()
    done, _ = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)
    gate.observe(_response(remaining=3, reset=reset + 1, limit=5))  # a newer window
    assert done.wait(ADMITTED)
    later = RateLimitGate()
    later.observe(_response(remaining=4, reset=reset, limit=5))
    later.observe(_response(remaining=1, reset=reset, limit=5))  # a later answer, lower
    assert later.acquire()
    done, _ = _acquire_in_thread(later)
    assert not done.wait(BLOCKED)


def test_the_next_window_opens_with_the_full_limit():
    gate = RateLimitGate()
    gate.observe(_response(remaining=0, reset=time.time() + 0.3, limit=3))
    started = time.monotonic()
    assert gate.acquire() and gate.acquire() and gate.acquire()  # after the reset: 3 at once
    assert time.monotonic() - started >= 0.2  # they waited for the window, not less
    done, _ = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)  # a 4th exceeds the new window's limit


def test_answers_from_a_window_that_is_over_are_ignored():
    gate = RateLimitGate()
    reset = time.time() + 0.3
    gate.observe(_response(remaining=0, reset=reset, limit=2))
    assert gate.acquire()  # waits for the next window: budget 2, one in flight
    gate.observe(_response(remaining=0, reset=reset, limit=2))  # a late answer of the old window
    done, _ = _acquire_in_thread(gate)
    assert done.wait(ADMITTED)


def test_without_a_limit_header_the_limit_is_remaining_plus_one():
    gate = RateLimitGate()
    gate.observe(_response(remaining=1, reset=time.time() + 0.3))
    assert gate.acquire() and gate.acquire()  # the next window: 1 + 1
    done, _ = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)


def test_a_window_freeing_later_than_max_wait_is_refused_at_once():
    gate = RateLimitGate(max_wait=60)
    gate.observe(_response(remaining=0, reset=time.time() + 3600, limit=1000))
    started = time.monotonic()
    assert gate.acquire() is False
    assert time.monotonic() - started < ADMITTED
    near = RateLimitGate(max_wait=60)
    near.observe(_response(remaining=0, reset=time.time() + 30, limit=1000))
    done, _ = _acquire_in_thread(near)
    assert not done.wait(BLOCKED)  # 30 s is within max_wait: it waits instead


def test_headers_that_are_not_numbers_are_ignored():
    gate = RateLimitGate()
    gate.observe(_response(remaining="many", reset=time.time() + 60))
    gate.observe(_response(remaining=0, reset="soon"))
    gate.observe(_response(reset=time.time() + 60))  # a reset without Remaining: no window known
    assert gate.acquire() and gate.acquire()


def test_x_ratelimit_reset_on_a_429_becomes_retry_after():
    gate = RateLimitGate()
    throttled = gate.observe(_response(429, remaining=0, reset=time.time() + 5.5))
    assert throttled.headers["Retry-After"] == "6"  # whole seconds, rounded up
    kept = gate.observe(
        _response(429, remaining=0, reset=time.time() + 5.5, **{"Retry-After": "2"})
    )
    assert kept.headers["Retry-After"] == "2"  # the server's own Retry-After wins
    assert (
        "Retry-After"
        not in gate.observe(_response(200, remaining=5, reset=time.time() + 5)).headers
    )
    assert "Retry-After" not in gate.observe(_response(429)).headers
    past = gate.observe(_response(429, remaining=0, reset=time.time() - 5))
    assert "Retry-After" not in past.headers  # a reset in the past asks for no wait


ACCOUNT = "acc-1"
ADMIN_HINT = "the user must be an administrator of this account to read its billing"
CREDENTIALS_HINT = (
    "check the credentials (and for production, that they belong to the production host)"
)


@pytest.mark.parametrize(
    "status, body, reason, error_class, message, code",
    [
        (
            400,
            b'{"errorCode": "USER_LACKS_PERMISSIONS", "message": "no admin"}',
            "Bad Request",
            ApiError,
            f"account acc-1: DocuSign answered HTTP 400 (USER_LACKS_PERMISSIONS: no admin); {ADMIN_HINT}",
            "USER_LACKS_PERMISSIONS",
        ),
        (
            401,
            b'{"errorCode": "USER_AUTHENTICATION_FAILED", "message": "bad"}',
            "Unauthorized",
            AuthError,
            f"account acc-1: authentication failed (HTTP 401 USER_AUTHENTICATION_FAILED: bad); {CREDENTIALS_HINT}",
            "USER_AUTHENTICATION_FAILED",
        ),
        (
            400,
            b'{"errorCode": "PARTNER_AUTHENTICATION_FAILED", "message": "key"}',
            "Bad Request",
            AuthError,
            f"account acc-1: authentication failed (HTTP 400 PARTNER_AUTHENTICATION_FAILED: key); {CREDENTIALS_HINT}",
            "PARTNER_AUTHENTICATION_FAILED",
        ),
        (
            404,
            b"<html>not found</html>",
            "Not Found",
            ApiError,
            "account acc-1: DocuSign answered HTTP 404 (Not Found); the base_url or account id is wrong",
            None,
        ),
        (
            502,
            b'["a gateway list"]',
            "Bad Gateway",
            ApiError,
            "account acc-1: DocuSign answered HTTP 502 (Bad Gateway)",
            None,
        ),
        (
            500,
            b'{"errorCode": "UNSPECIFIED_ERROR"}',
            "Server Error",
            ApiError,
            "account acc-1: DocuSign answered HTTP 500 (UNSPECIFIED_ERROR: )",
            "UNSPECIFIED_ERROR",
        ),
        (  # a gateway's 401 without DocuSign's body or a reason: still the credentials
            401,
            b"<html></html>",
            "",
            AuthError,
            f"account acc-1: authentication failed (HTTP 401 ); {CREDENTIALS_HINT}",
            None,
        ),
    ],
    ids=["no-admin", "401", "partner-key", "404-html", "502-list", "500-no-message", "401-bare"],
)
def test_error_responses_become_one_line_naming_account_status_code_and_hint(
    status, body, reason, error_class, message, code
):
    error = _api_error(_response(status, body=body, reason=reason), ACCOUNT)
    assert type(error) is error_class and str(error) == message
    assert (error.account_id, error.status, error.code) == (ACCOUNT, status, code)


def test_base_url_must_be_http_and_loses_its_trailing_slash():
    assert validate_base_url("https://demo.docusign.net/restapi/") == (
        "https://demo.docusign.net/restapi"
    )
    with pytest.raises(ConfigError, match="^base_url 'ftp://x' is not an http"):
        validate_base_url("ftp://x")


def test_account_ids_and_next_uris_are_read_as_documented():
    """Removed to see it fail: `safe=""` in `account_path` (a `/` in an id would change the
    path); the object and blank checks of `next_uri_of`."""
    assert account_path("/v2.1/accounts/{account_id}/billing_plan", "a/b c") == (
        "/v2.1/accounts/a%2Fb%20c/billing_plan"
    )
    for content in (b'["nextUri"]', b'{"nextUri": "  "}', b'{"nextUri": 5}', b"{", b"{}"):
        assert next_uri_of(RawBody(content, "application/json")) is None, content
    assert next_uri_of(RawBody(b'{"nextUri": "/v2.1/x?start_position=5"}', "")) == (
        "/v2.1/x?start_position=5"
    )


def test_a_next_uri_seen_before_is_an_error_naming_the_account():
    """Removed to see it fail: the `seen` check of `pages` (it then loops for ever)."""
    client = DocuSignClient("https://demo.docusign.net/restapi", BearerAuth(ACCESS_TOKEN))
    answers = iter(
        [b'{"nextUri": "/v2.1/p2"}', b'{"nextUri": "/v2.1/p3"}', b'{"nextUri": "/v2.1/p2"}']
    )
    asked: list[tuple[str, str]] = []

    def get(uri, account_id, params=None):
        asked.append((uri, account_id))
        return RawBody(next(answers), "application/json")

    client.get = get  # type: ignore[method-assign]
    with pytest.raises(ApiError) as error:
        list(client.pages("/v2.1/p1", ACCOUNT))
    assert str(error.value) == (
        "account acc-1: DocuSign's nextUri '/v2.1/p2' repeats an earlier page"
    )
    assert error.value.account_id == ACCOUNT
    assert asked == [("/v2.1/p1", ACCOUNT), ("/v2.1/p2", ACCOUNT), ("/v2.1/p3", ACCOUNT)]


# the client's retry settings over real HTTP (the sandbox): each one is handed to dlt's Client
def _client(api, **http):
    settings = HttpSettings(**{"backoff_factor": 0.01, "max_retry_delay": 0.5, **http})
    return DocuSignClient(api.base_url, BearerAuth(ACCESS_TOKEN), settings)


def _plan(api):
    return f"/v2.1/accounts/{api.account_ids[0]}/billing_plan"


def test_a_request_is_tried_max_attempts_times_and_asks_for_json():
    """Removed to see it fail: `request_max_attempts` (dlt's default is 5), the `Accept` header,
    the account handed to `resolve` (named in the error)."""
    with Sandbox(accounts=1, seed=3) as api:
        api.inject("503", times=10)
        with pytest.raises(ApiError) as error:
            _client(api, max_attempts=3).get(_plan(api), api.account_ids[0])
        assert error.value.status == 503 and error.value.account_id == api.account_ids[0]
        assert [r["status"] for r in api.requests] == [503, 503, 503]
        assert {r["headers"].get("Accept") for r in api.requests} == {"application/json"}
        with pytest.raises(ApiError, match=f"^account {api.account_ids[0]}: DocuSign pointed"):
            _client(api).get("https://elsewhere.example/x", api.account_ids[0])


def _within(seconds, call):
    """`call()`'s result, failing if it takes longer than `seconds` (a wait on an event)."""
    done, result = threading.Event(), []

    def run():
        result.append(call())
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(seconds), f"not done within {seconds} s"
    return result[0]


def test_a_hung_request_is_cut_at_request_timeout_and_retried():
    """Removed to see it fail: `request_timeout` (dlt's default is 60 s)."""
    with Sandbox(accounts=1, seed=3) as api:
        api.inject("hang", times=1, seconds=30)
        body = _within(
            10, lambda: _client(api, request_timeout=0.5).get(_plan(api), api.account_ids[0])
        )
        assert b"billingPlan" in body.content


def test_retries_back_off_by_backoff_factor():
    """Two 503s then an answer, `backoff_factor` 0.01 and waits capped at 60 s: done at once.

    Removed to see it fail: `request_backoff_factor` (dlt's default 1 waits 1 s, then 2 s)."""
    with Sandbox(accounts=1, seed=3) as api:
        api.inject("503", times=2)
        client = _client(api, max_attempts=3, max_retry_delay=60)
        body = _within(2.5, lambda: client.get(_plan(api), api.account_ids[0]))
        assert b"billingPlan" in body.content and len(api.requests) == 3


class _RenewedToken(CachedTokenAuth):
    """OAuth without a server: each grant gives the sandbox's valid token."""

    def grant(self):
        return ACCESS_TOKEN, 3600.0


def test_a_token_rejected_mid_run_is_renewed_once_and_the_request_repeated():
    """Removed to see it fail: the repeat after `invalidate` in `DocuSignClient.get` (or its
    URL or parameters)."""
    with Sandbox(accounts=1, seed=3) as api:
        auth = _RenewedToken(None)  # type: ignore[arg-type]
        client = DocuSignClient(api.base_url, auth, HttpSettings(max_attempts=1))
        window = {"from_date": "2025-06-01", "to_date": "2026-05-31"}
        api.inject("401", times=1)
        path = f"/v2.1/accounts/{api.account_ids[0]}/billing_invoices"
        body = client.get(path, api.account_ids[0], window)
        assert b"billingInvoices" in body.content and auth.tokens_obtained == 2
        assert [(r["status"], r["query"]) for r in api.requests] == [(401, window), (200, window)]


def test_refusals_before_sending_and_unreachable_hosts_name_the_account():
    """Removed to see it fail: any field of the two `ApiError`s `DocuSignClient.get` raises."""
    gate = RateLimitGate(max_wait=0)
    gate.observe(_response(remaining=0, reset=time.time() + 3600, limit=3000))
    unreachable = "http://127.0.0.1:9/restapi"  # the discard port: nothing listens
    client = DocuSignClient(unreachable, BearerAuth(ACCESS_TOKEN), HttpSettings(), gate)
    with pytest.raises(ApiError) as error:
        client.get("/v2.1/accounts/acc-1/billing_plan", ACCOUNT)
    assert str(error.value) == (
        "account acc-1: DocuSign's API rate limit window (X-RateLimit-Reset) frees in more than"
        f" {settings.RATE_LIMIT_MAX_WAIT:.0f} s; the account is left for a later run"
    )
    assert (error.value.account_id, error.value.status, error.value.code) == (
        ACCOUNT,
        429,
        "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
    )
    client = DocuSignClient(unreachable, BearerAuth(ACCESS_TOKEN), HttpSettings(max_attempts=1))
    with pytest.raises(ApiError) as error:
        client.get("/v2.1/accounts/acc-1/billing_plan", ACCOUNT)
    assert str(error.value) == (
        f"account acc-1: DocuSign at {unreachable} could not be reached after retries"
        " (ConnectionError)"
    )
    assert (error.value.account_id, error.value.status) == (ACCOUNT, None)


@pytest.mark.parametrize(
    "setting, value, bound",
    [
        ("request_timeout", 0, "more than 0"),
        ("max_attempts", 0, "at least 1"),
        ("backoff_factor", -1, "at least 0"),
        ("max_retry_delay", -0.5, "at least 0"),
    ],
)
def test_http_settings_below_their_bound_name_the_setting(setting, value, bound):
    """Removed to see it fail: any check of `HttpSettings` or its name or bound; the bound
    itself is allowed (a `<=` would refuse `max_attempts = 1` and a zero backoff)."""
    with pytest.raises(ConfigError) as error:
        HttpSettings(**{setting: value})
    assert str(error.value) == f"sources.docusign_billing.{setting} = {value} must be {bound}"
    HttpSettings(request_timeout=0.001, max_attempts=1, backoff_factor=0, max_retry_delay=0)


def test_a_uri_naming_another_host_is_never_followed():
    """Removed to see it fail: `or` between scheme and host in `resolve` (a scheme-less
    `//host/...` would be read as a path), the account in its error."""
    client = DocuSignClient("https://demo.docusign.net/restapi", BearerAuth(ACCESS_TOKEN))
    for uri in ("//elsewhere.example/restapi/v2.1/x", "https://elsewhere.example/restapi/v2.1/x"):
        with pytest.raises(ApiError, match="not followed") as error:
            client.resolve(uri, ACCOUNT)
        assert error.value.account_id == ACCOUNT


def _throttled(code, status=400):
    return _response(status, body=json.dumps({"errorCode": code, "message": "slow down"}).encode())


def test_only_docusigns_throttling_codes_are_throttling():
    """Removed to see it fail: the `THROTTLE_CODES` check of `throttle_code` (every error code
    would be retried as a throttle)."""
    assert throttle_code(_throttled("BURST_APIINVOCATION_LIMIT_EXCEEDED")) == (
        "BURST_APIINVOCATION_LIMIT_EXCEEDED"
    )
    assert throttle_code(_throttled("HOURLY_APIINVOCATION_LIMIT_EXCEEDED", 429)) is not None
    assert throttle_code(_throttled("USER_LACKS_PERMISSIONS")) is None
    assert throttle_code(_throttled("BURST_APIINVOCATION_LIMIT_EXCEEDED", 200)) is None


def test_a_burst_400_waits_out_the_burst_window():
    """DocuSign's burst 400 carries no `X-BurstLimit-*` headers: the gate takes the budget as spent
    from then on, asks dlt to wait until the window surely ended, and holds new requests as long.

    Removed to see it fail: the code handed to `_observe_burst`, the burst branch of the
    `Retry-After` (or its arithmetic), the `+ 1` whole second of a reset under a second away."""
    gate = RateLimitGate(burst_window=30.0)
    waits = gate.observe(_throttled("BURST_APIINVOCATION_LIMIT_EXCEEDED")).headers["Retry-After"]
    assert waits in ("30", "31")  # 30 s less the microseconds since, rounded up to whole seconds
    gate = RateLimitGate(burst_window=1.0)
    gate.observe(_throttled("BURST_APIINVOCATION_LIMIT_EXCEEDED"))
    done, result = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)  # the budget is spent until the window ends
    assert done.wait(ADMITTED) and result == [True]
    soon = gate.observe(_response(429, remaining=0, reset=time.time() + 0.5))
    assert soon.headers["Retry-After"] == "1"


def test_a_base_url_that_is_not_http_names_an_example():
    with pytest.raises(ConfigError) as error:
        validate_base_url("ftp://x")
    assert str(error.value) == (
        f"base_url 'ftp://x' is not an http(s) URL like {settings.DEFAULT_BASE_URL}"
    )


def test_an_answer_is_returned_with_its_content_type_and_any_4xx_is_an_error():
    """Removed to see it fail: the content type handed to `RawBody` (it picks the charset), `>=`
    of the error check (a 400 would be returned as a body)."""
    with Sandbox(accounts=1, seed=3) as api:
        client = _client(api)
        body = client.get(_plan(api), api.account_ids[0])
        assert body.content_type.startswith("application/json"), body.content_type
        api.deny_admin(api.account_ids[0])
        with pytest.raises(ApiError) as error:
            client.get(_plan(api), api.account_ids[0])
        assert error.value.status == 400


def test_a_budget_held_by_requests_in_flight_is_waited_for_not_refused():
    """The last request of the hour is in flight: another one waits for its answer (which may
    leave room) instead of being refused like a spent budget. Removed to see it fail: `<= 0` of
    the refusal (`<= 1`: refused at once)."""
    gate = RateLimitGate(max_wait=0)
    gate.observe(_response(remaining=1, reset=time.time() + 3600, limit=3000))
    assert gate.acquire()
    done, result = _acquire_in_thread(gate)
    assert not done.wait(BLOCKED)
    gate.release()  # its answer did not come (a connection error): the budget is still 1
    assert done.wait(ADMITTED) and result == [True]


def _admitted(events, expected):
    """How many of `events` are set once `expected` of them are (or ADMITTED passed), and still
    BLOCKED later: the ones admitted in this burst window, no more."""
    deadline = time.monotonic() + ADMITTED
    while sum(e.is_set() for e in events) < expected and time.monotonic() < deadline:
        threading.Event().wait(0.02)
    threading.Event().wait(BLOCKED)
    return sum(e.is_set() for e in events)


def test_the_next_burst_window_opens_with_the_burst_limit():
    """A spent burst budget: the next window admits `X-BurstLimit-Limit` requests (3 here), or the
    first `-Remaining` + 1 without the header (1 + 1, one of them still in flight), then holds
    the rest until the window after. Two gates side by side, 2 s windows.

    Removed to see it fail: the limit header (`_observe_burst` 15, 31), the `-Remaining` + 1
    fallback (33, 34, 37)."""
    with_limit, without = RateLimitGate(burst_window=2.0), RateLimitGate(burst_window=2.0)
    with_limit.observe(_response(**{"X-BurstLimit-Remaining": "0", "X-BurstLimit-Limit": "3"}))
    without.observe(_response(**{"X-BurstLimit-Remaining": "1"}))
    first = [_acquire_in_thread(with_limit)[0] for _ in range(4)]
    second = [_acquire_in_thread(without)[0] for _ in range(4)]
    assert _admitted(first, 3) == 3
    assert _admitted(second, 2) == 2


def test_a_burst_answer_sent_before_the_window_turned_over_is_stale(monkeypatch):
    """An answer to a request sent before the gate opened the next burst window says nothing of
    the new window; one sent at the turnover or after does.

    Removed to see it fail: `elapsed` subtracted from the answer time (`_observe_burst` 27: a long
    request then counts as sent later than it was), `<` for `<=` (30: an answer sent at the very
    turnover is dropped)."""
    now = 1_000_000.0
    monkeypatch.setattr("sources.docusign_billing.client.time.time", lambda: now)

    def answer(elapsed_seconds: float) -> Response:
        response = _response(**{"X-BurstLimit-Remaining": "5", "X-BurstLimit-Limit": "10"})
        response.elapsed = timedelta(seconds=elapsed_seconds)
        return response

    stale, at_turnover = RateLimitGate(burst_window=30.0), RateLimitGate(burst_window=30.0)
    for gate in (stale, at_turnover):
        gate._burst_stale_before = now - 1.0  # the gate opened a new window a second ago
    stale.observe(answer(elapsed_seconds=5.0))  # sent 5 s ago: the past window's answer
    at_turnover.observe(answer(elapsed_seconds=1.0))  # sent exactly at the turnover
    assert stale._burst_remaining is None
    assert at_turnover._burst_remaining == 5


def test_an_answer_without_content_type_is_named_so():
    """A body that is not JSON is reported with its content type; without one, the line says so.

    Removed to see it fail: the `unknown content type` default of `DocuSignClient.get` (50/55)."""
    with Sandbox(accounts=1, invoices_per_account=1, seed=2) as api:
        account = api.account_ids[0]
        api.set_response(account, b"<html>oops</html>", content_type=None)
        client = DocuSignClient(api.base_url, BearerAuth(ACCESS_TOKEN))
        raw = client.get(f"/v2.1/accounts/{account}/billing_invoices_past_due", account)
    assert raw.content_type == "unknown content type"
    assert raw.content == b"<html>oops</html>"
