"""HTTP access to the DocuSign billing API: dlt's retrying client plus DocuSign's error codes."""

import json
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from dlt.sources.helpers.requests import Client
from requests import RequestException, Response
from requests.auth import AuthBase

from . import settings
from .errors import ApiError, AuthError, ConfigError
from .oauth import CachedTokenAuth
from .shapes import RawBody
from .urls import http_url

AUTH_ERROR_CODES = frozenset(
    {
        "USER_AUTHENTICATION_FAILED",
        "PARTNER_AUTHENTICATION_FAILED",
        "AUTHORIZATION_INVALID_TOKEN",
        "INVALID_TOKEN_FORMAT",
    }
)
HINTS = {
    "USER_LACKS_PERMISSIONS": "the user must be an administrator of this account to read its billing",
    "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT": "the account id is wrong or the user is not a member of it",
    "ACCOUNT_LACKS_PERMISSIONS": "the account's plan does not allow this call",
    "HOURLY_APIINVOCATION_LIMIT_EXCEEDED": "DocuSign's API rate limit was hit on every retry; run again later",
    "BURST_APIINVOCATION_LIMIT_EXCEEDED": "DocuSign's 30-second burst limit was hit on every retry; run again later",
}
THROTTLE_CODES = frozenset(
    {"HOURLY_APIINVOCATION_LIMIT_EXCEEDED", "BURST_APIINVOCATION_LIMIT_EXCEEDED"}
)
"""DocuSign answers throttling with these, with HTTP 400 (or 429): retried whatever the status."""
AUTH_HINT = "check the credentials (and for production, that they belong to the production host)"


def validate_base_url(base_url: str) -> str:
    """Returns `base_url` without a trailing slash, or raises a `ConfigError`."""
    return http_url(base_url, "base_url", settings.DEFAULT_BASE_URL)


@dataclass(frozen=True)
class HttpSettings:
    """Timeout and retry policy of every API request."""

    request_timeout: float = settings.REQUEST_TIMEOUT
    max_attempts: int = settings.MAX_ATTEMPTS
    backoff_factor: float = settings.BACKOFF_FACTOR
    max_retry_delay: float = settings.MAX_RETRY_DELAY

    def __post_init__(self) -> None:
        check_setting("request_timeout", self.request_timeout, minimum=0, inclusive=False)
        check_setting("max_attempts", self.max_attempts, minimum=1)
        check_setting("backoff_factor", self.backoff_factor, minimum=0)
        check_setting("max_retry_delay", self.max_retry_delay, minimum=0)


def check_setting(name: str, value: float, minimum: float, inclusive: bool = True) -> None:
    """Raises a `ConfigError` naming `sources.docusign_billing.<name>` when `value` is too small,
    or not a finite number (TOML's `nan` and `inf` are floats: they broke the waits mid-run)."""
    if not math.isfinite(value):
        raise ConfigError(f"sources.docusign_billing.{name} = {value} must be a finite number")
    if value < minimum or (not inclusive and value == minimum):
        bound = f"at least {minimum}" if inclusive else f"more than {minimum}"
        raise ConfigError(f"sources.docusign_billing.{name} = {value} must be {bound}")


def _reset_at(response: Response) -> float | None:
    try:
        return float(response.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return None


def throttle_code(response: Response) -> str | None:
    """DocuSign's throttling errorCode in an error answer, whatever its status; else None."""
    if response.status_code < 400:
        return None
    code, _ = _error_body(response)
    return code if code in THROTTLE_CODES else None


def _retry_throttled(response: Response | None, exception: BaseException | None) -> bool:
    """dlt's retry predicate: DocuSign's 400 throttling answers are retried like a 429."""
    return response is not None and throttle_code(response) is not None


class RateLimitGate:
    """Slows all workers down before DocuSign's rate limits are hit, not only after a throttle.

    Hourly window: every response's `X-RateLimit-Limit` / `-Remaining` / `-Reset` update the gate;
    a request starts only while the window has room for it beside the requests already in flight.
    DocuSign's windows are fixed: at `X-RateLimit-Reset` the next one starts with the full limit. A
    window that frees later than `max_wait` seconds is not waited for: `acquire` returns False and
    the account fails for this run instead of stalling it.

    Burst window (`X-BurstLimit-Limit` / `-Remaining`, 30 s, no reset header): when the budget is
    spent (or DocuSign answers BURST_APIINVOCATION_LIMIT_EXCEEDED) requests wait until
    `burst_window` seconds after the window was first seen, when it has surely ended, and then
    start with the full budget. (A rising `-Remaining` is no sign of a new window: answers of one
    window arrive in any order.)

    One gate serves every account and resource of a run: the tightest window any answer reports
    paces all workers (never too fast for any account; as fast as the freest one while budgets are
    far from spent, which they are at DocuSign's 3,000/hour and 200 per 30 s per account).
    """

    def __init__(
        self,
        max_wait: float = settings.RATE_LIMIT_MAX_WAIT,
        burst_window: float | None = None,
    ) -> None:
        self._max_wait = max_wait
        # read when the gate is made (not when this module loads), so a test can shorten it
        self._burst_window = settings.BURST_WINDOW if burst_window is None else burst_window
        self._changed = threading.Condition()
        self._limit: int | None = None
        self._remaining: int | None = None  # None: no limit seen yet
        self._reset_at = 0.0  # end of the current window; 0.0 while a new window's end is unknown
        self._ended = 0.0  # end of the last window that ran out: its late answers are stale
        self._burst_limit: int | None = None
        self._burst_remaining: int | None = None  # None: no burst limit seen yet
        self._burst_seen = 0.0  # when the current burst window was first seen
        self._burst_stale_before = 0.0  # answers to requests sent earlier belong to a past window
        self._in_flight = 0

    def acquire(self) -> bool:
        """Waits for room in both windows; False when the hourly one frees too late to wait for."""
        with self._changed:
            while True:
                now = time.time()
                if self._reset_at and now >= self._reset_at:  # the next window: full budget
                    self._ended, self._reset_at, self._remaining = self._reset_at, 0.0, self._limit
                burst_ends = self._burst_seen + self._burst_window
                if self._burst_remaining is not None and now >= burst_ends:  # surely a new window
                    self._burst_remaining, self._burst_seen = self._burst_limit, now
                    self._burst_stale_before = now
                hourly_room = self._remaining is None or self._remaining - self._in_flight > 0
                burst_room = (
                    self._burst_remaining is None or self._burst_remaining - self._in_flight > 0
                )
                if hourly_room and burst_room:
                    self._in_flight += 1
                    return True
                if not hourly_room and self._remaining is not None:
                    if self._reset_at - now > self._max_wait + 1.0 and self._remaining <= 0:
                        return False  # +1: whole seconds
                    until = self._reset_at - now if self._reset_at else 0.05
                else:
                    until = burst_ends - now
                self._changed.wait(timeout=max(0.01, min(1.0, until)))

    def release(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def observe(self, response: Response, *args: Any, **kwargs: Any) -> Response:
        """`requests` response hook: records both windows, and gives a throttling answer (429, or
        DocuSign's 400 with a throttling errorCode) the `Retry-After` dlt's retry waits for:
        until `X-RateLimit-Reset` (epoch seconds), or the burst window for a burst error."""
        reset_at, remaining = _reset_at(response), response.headers.get("X-RateLimit-Remaining", "")
        limit = response.headers.get("X-RateLimit-Limit", "")
        code = throttle_code(response)
        with self._changed:
            if reset_at is not None and remaining.isdigit():
                if reset_at <= self._ended:
                    pass  # an answer from a window that is over
                elif reset_at > self._reset_at or self._remaining is None:  # a newer window
                    self._remaining, self._reset_at = int(remaining), reset_at
                elif reset_at == self._reset_at:  # answers of one window arrive in any order
                    self._remaining = min(int(remaining), self._remaining)
                self._limit = int(limit) if limit.isdigit() else self._limit or int(remaining) + 1
            self._observe_burst(response, code)
            self._changed.notify_all()
        if "Retry-After" not in response.headers and (response.status_code == 429 or code):
            if code == "BURST_APIINVOCATION_LIMIT_EXCEEDED":
                wait = int(self._burst_seen + self._burst_window - time.time()) + 1
            else:
                wait = int(reset_at - time.time()) + 1 if reset_at is not None else 0
            if wait > 0:
                response.headers["Retry-After"] = str(wait)
        return response

    def _observe_burst(self, response: Response, code: str | None) -> None:
        """Records `X-BurstLimit-*` (caller holds the lock). Answers of one window arrive in any
        order, so its budget is the lowest `-Remaining` seen; answers to requests sent before
        the gate moved on to the next window are stale."""
        remaining = response.headers.get("X-BurstLimit-Remaining", "")
        limit = response.headers.get("X-BurstLimit-Limit", "")
        if code == "BURST_APIINVOCATION_LIMIT_EXCEEDED" and not remaining.isdigit():
            remaining = "0"
        sent = time.time() - response.elapsed.total_seconds()
        if not remaining.isdigit() or sent < self._burst_stale_before:
            return
        if limit.isdigit():
            self._burst_limit = int(limit)
        elif self._burst_limit is None:
            self._burst_limit = int(remaining) + 1
        if self._burst_remaining is None:
            self._burst_remaining, self._burst_seen = int(remaining), time.time()
        else:
            self._burst_remaining = min(int(remaining), self._burst_remaining)


class DocuSignClient:
    """Reads the billing endpoints of one DocuSign host for any account on it."""

    def __init__(
        self,
        base_url: str,
        auth: AuthBase,
        http: HttpSettings = HttpSettings(),
        gate: RateLimitGate | None = None,
    ) -> None:
        self.base_url = validate_base_url(base_url)
        self._auth = auth
        self._gate = gate or RateLimitGate()
        self._http = Client(
            request_timeout=http.request_timeout,
            raise_for_status=False,
            request_max_attempts=http.max_attempts,
            request_backoff_factor=http.backoff_factor,
            request_max_retry_delay=http.max_retry_delay,
            retry_condition=_retry_throttled,
            session_attrs={
                "auth": auth,
                "headers": {"Accept": "application/json"},
                "hooks": {"response": [self._gate.observe]},
            },
        )

    def get(self, uri: str, account_id: str, params: Mapping[str, str] | None = None) -> RawBody:
        """One GET of any billing endpoint, through the gate, retries and error mapping.

        Args:
            uri: a path under the REST root (`/v2.1/accounts/...`, like DocuSign's `invoiceUri`
                and `nextUri`), or an absolute URL on this client's host (a `nextUri` may be one).
            account_id: the account the request is for (named in errors).
            params: query parameters.

        Returns:
            The body as received; raises `ApiError` (`AuthError` for rejected credentials).
        """
        url = self.resolve(uri, account_id)
        if not self._gate.acquire():
            raise ApiError(
                f"account {account_id}: DocuSign's API rate limit window (X-RateLimit-Reset) frees"
                f" in more than {settings.RATE_LIMIT_MAX_WAIT:.0f} s; the account is left for a later run",
                account_id,
                429,
                "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
            )
        try:
            response = self._http.get(url, params=params)
            if response.status_code == 401 and isinstance(self._auth, CachedTokenAuth):
                self._auth.invalidate(response.request)
                response = self._http.get(url, params=params)  # once, with a renewed token
        except RequestException as ex:
            raise ApiError(
                f"account {account_id}: DocuSign at {self.base_url} could not be reached"
                f" after retries ({type(ex).__name__})",
                account_id,
            ) from None
        finally:
            self._gate.release()
        if response.status_code >= 400:
            raise _api_error(response, account_id)
        return RawBody(
            response.content, response.headers.get("Content-Type", "unknown content type")
        )

    def pages(
        self, uri: str, account_id: str, params: Mapping[str, str] | None = None
    ) -> Iterator[RawBody]:
        """The first page and every page its `nextUri` chain points to, in order.

        A page that is not a JSON object ends the chain (its reader reports it); a `nextUri` seen
        before is an error rather than an endless loop.
        """
        seen: set[str] = set()
        page = self.get(uri, account_id, params)
        while True:
            yield page
            next_uri = next_uri_of(page)
            if not next_uri:
                return
            if next_uri in seen:
                raise ApiError(
                    f"account {account_id}: DocuSign's nextUri {next_uri!r} repeats an earlier page",
                    account_id,
                )
            seen.add(next_uri)
            page = self.get(next_uri, account_id)

    def resolve(self, uri: str, account_id: str) -> str:
        """The absolute URL of `uri`: relative to the REST root (`/v2.1/...`), to the host
        (`/restapi/v2.1/...`), or absolute on this host (credentials never go to another one)."""
        root = urlsplit(self.base_url)
        parts = urlsplit(uri)
        if parts.scheme or parts.netloc:
            if (parts.scheme, parts.netloc) != (root.scheme, root.netloc):
                raise ApiError(
                    f"account {account_id}: DocuSign pointed to {parts.scheme}://{parts.netloc},"
                    f" not the configured host {root.netloc}; not followed",
                    account_id,
                )
            return uri
        if root.path and uri.startswith(root.path + "/"):
            return f"{root.scheme}://{root.netloc}{uri}"
        return self.base_url + uri


def account_path(template: str, account_id: str) -> str:
    """An endpoint path of `settings` (`{account_id}` placeholder) for this account, escaped."""
    return template.format(account_id=quote(account_id, safe=""))


def next_uri_of(page: RawBody) -> str | None:
    """A list page's `nextUri` (None when absent, null, empty or the page is not a JSON object)."""
    try:
        body = json.loads(page.content)
    except ValueError:
        return None
    value = body.get("nextUri") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def _error_body(response: Response) -> tuple[str | None, str]:
    """DocuSign's `{"errorCode", "message"}`, or whatever a gateway sent instead."""
    try:
        body = response.json()
        return body.get("errorCode"), str(body.get("message") or "")
    except (ValueError, AttributeError):
        return None, (response.reason or "")


def _api_error(response: Response, account_id: str) -> ApiError:
    code, message = _error_body(response)
    status = response.status_code
    detail = f"{code}: {message}" if code else message
    if status == 401 or code in AUTH_ERROR_CODES:
        return AuthError(
            f"account {account_id}: authentication failed (HTTP {status} {detail}); {AUTH_HINT}",
            account_id,
            status,
            code,
        )
    hint = HINTS.get(code or "")
    if hint is None and status == 404:
        hint = "the base_url or account id is wrong"
    suffix = f"; {hint}" if hint else ""
    return ApiError(
        f"account {account_id}: DocuSign answered HTTP {status} ({detail}){suffix}",
        account_id,
        status,
        code,
    )
