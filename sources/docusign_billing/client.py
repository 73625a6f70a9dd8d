"""HTTP access to the DocuSign billing API: dlt's retrying client plus DocuSign's error codes."""

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dlt.sources.helpers.requests import Client
from requests import RequestException, Response
from requests.auth import AuthBase

from . import settings
from .errors import ApiError, AuthError, ConfigError
from .oauth import CachedTokenAuth
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
}
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
    """Raises a `ConfigError` naming `sources.docusign_billing.<name>` when `value` is too small."""
    if value < minimum or (not inclusive and value == minimum):
        bound = f"at least {minimum}" if inclusive else f"more than {minimum}"
        raise ConfigError(f"sources.docusign_billing.{name} = {value} must be {bound}")


def _reset_at(response: Response) -> float | None:
    try:
        return float(response.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return None


class RateLimitGate:
    """Slows all workers down before DocuSign's rate limit is hit, not only after a 429.

    Every response's `X-RateLimit-Limit` / `-Remaining` / `-Reset` update the gate; a request
    starts only while the window has room for it beside the requests already in flight. DocuSign's
    windows are fixed: at `X-RateLimit-Reset` the next one starts with the full limit. A window that
    frees later than `max_wait` seconds (DocuSign's are hourly) is not waited for: `acquire` returns
    False and the account fails for this run instead of stalling it.
    """

    def __init__(self, max_wait: float = settings.RATE_LIMIT_MAX_WAIT) -> None:
        self._max_wait = max_wait
        self._changed = threading.Condition()
        self._limit: int | None = None
        self._remaining: int | None = None  # None: no limit seen yet
        self._reset_at = 0.0  # end of the current window; 0.0 while a new window's end is unknown
        self._ended = 0.0  # end of the last window that ran out: its late answers are stale
        self._in_flight = 0

    def acquire(self) -> bool:
        """Waits for room in the window; False when the window frees too late to wait for."""
        with self._changed:
            while True:
                now = time.time()
                if self._reset_at and now >= self._reset_at:  # the next window: full budget
                    self._ended, self._reset_at, self._remaining = self._reset_at, 0.0, self._limit
                if self._remaining is None or self._remaining - self._in_flight > 0:
                    self._in_flight += 1
                    return True
                if (
                    self._reset_at - now > self._max_wait + 1.0 and self._remaining <= 0
                ):  # +1: whole seconds
                    return False
                self._changed.wait(
                    timeout=max(0.01, min(1.0, self._reset_at - now)) if self._reset_at else 0.05
                )

    def release(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def observe(self, response: Response, *args: Any, **kwargs: Any) -> Response:
        """`requests` response hook: records the window, and lets dlt's retry honour
        `X-RateLimit-Reset` (epoch seconds) on a 429 like a `Retry-After`."""
        reset_at, remaining = _reset_at(response), response.headers.get("X-RateLimit-Remaining", "")
        limit = response.headers.get("X-RateLimit-Limit", "")
        if reset_at is not None and remaining.isdigit():
            with self._changed:
                if reset_at <= self._ended:
                    pass  # an answer from a window that is over
                elif reset_at > self._reset_at or self._remaining is None:  # a newer window
                    self._remaining, self._reset_at = int(remaining), reset_at
                elif reset_at == self._reset_at:  # answers of one window arrive in any order
                    self._remaining = min(int(remaining), self._remaining)
                self._limit = int(limit) if limit.isdigit() else self._limit or int(remaining) + 1
                self._changed.notify_all()
        if (
            response.status_code == 429
            and "Retry-After" not in response.headers
            and reset_at is not None
        ):
            wait = int(reset_at - time.time()) + 1
            if wait > 0:
                response.headers["Retry-After"] = str(wait)
        return response


@dataclass
class RawBody:
    """A successful response's body as received: decoded where it is parsed, off the HTTP path."""

    content: bytes
    content_type: str


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
            session_attrs={
                "auth": auth,
                "headers": {"Accept": "application/json"},
                "hooks": {"response": [self._gate.observe]},
            },
        )

    def past_due_invoices(self, account_id: str) -> RawBody:
        """The account's `billing_invoices_past_due` body, undecoded (`bodies.py` reads a batch of them)."""
        path = settings.PAST_DUE_PATH.format(account_id=quote(account_id, safe=""))
        return self._get(path, account_id)

    def _get(self, path: str, account_id: str) -> RawBody:
        if not self._gate.acquire():
            raise ApiError(
                f"account {account_id}: DocuSign's API rate limit window (X-RateLimit-Reset) frees"
                f" in more than {settings.RATE_LIMIT_MAX_WAIT:.0f} s; the account is left for a later run",
                account_id,
                429,
                "HOURLY_APIINVOCATION_LIMIT_EXCEEDED",
            )
        try:
            response = self._http.get(self.base_url + path)
            if response.status_code == 401 and isinstance(self._auth, CachedTokenAuth):
                self._auth.invalidate(response.request)
                response = self._http.get(self.base_url + path)  # once, with a renewed token
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
