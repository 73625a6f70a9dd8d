"""The sandbox's rate limiters: fixed windows aligned to the clock, like DocuSign's.

`HostLimit` is one window for every request to the host (answers 429 with `Retry-After`);
`AccountLimits` is DocuSign's real pair per account: an hourly window (`X-RateLimit-*`) and a
30-second burst window (`X-BurstLimit-*`), both answered with HTTP 400 and the errorCode
`HOURLY_APIINVOCATION_LIMIT_EXCEEDED` / `BURST_APIINVOCATION_LIMIT_EXCEEDED` once spent. Window
lengths are settable so tests run in seconds. A throttled request does not use up the budget.
Callers hold the sandbox's lock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

HOURLY = "HOURLY_APIINVOCATION_LIMIT_EXCEEDED"
BURST = "BURST_APIINVOCATION_LIMIT_EXCEEDED"


@dataclass
class FixedWindow:
    """Up to `limit` requests per clock-aligned window of `seconds`."""

    limit: int
    seconds: float
    _used: dict[object, tuple[int, int]] = field(default_factory=dict)  # key -> (window, used)

    def used(self, key: object, now: float) -> tuple[int, float]:
        """(requests admitted in the current window, when it ends)."""
        window = math.floor(now / self.seconds)
        number, used = self._used.get(key, (window, 0))
        return (used if number == window else 0), (window + 1) * self.seconds

    def take(self, key: object, now: float) -> None:
        window = math.floor(now / self.seconds)
        self._used[key] = (window, self.used(key, now)[0] + 1)


@dataclass
class Admission:
    """The limiter's verdict: `throttled` is None or the errorCode; headers go on every answer."""

    headers: dict[str, str]
    throttled: str | None = None


@dataclass
class HostLimit:
    window: FixedWindow

    def admit(self) -> Admission:
        now = time.time()
        used, resets_at = self.window.used(None, now)
        throttled = used >= self.window.limit
        if not throttled:
            self.window.take(None, now)
            used += 1
        headers = {
            "X-RateLimit-Limit": str(self.window.limit),
            "X-RateLimit-Remaining": str(self.window.limit - used),
            "X-RateLimit-Reset": str(math.ceil(resets_at)),
        }
        if throttled:
            headers["Retry-After"] = str(max(1, math.ceil(resets_at - now)))
        return Admission(headers, HOURLY if throttled else None)


@dataclass
class AccountLimits:
    hourly: FixedWindow
    burst: FixedWindow

    def admit(self, account_id: str) -> Admission:
        now = time.time()
        hourly_used, resets_at = self.hourly.used(account_id, now)
        burst_used, _ = self.burst.used(account_id, now)
        throttled = (
            HOURLY
            if hourly_used >= self.hourly.limit
            else BURST
            if burst_used >= self.burst.limit
            else None
        )
        if throttled is None:
            self.hourly.take(account_id, now)
            self.burst.take(account_id, now)
            hourly_used, burst_used = hourly_used + 1, burst_used + 1
        return Admission(
            {
                "X-RateLimit-Limit": str(self.hourly.limit),
                "X-RateLimit-Remaining": str(self.hourly.limit - hourly_used),
                "X-RateLimit-Reset": str(math.ceil(resets_at)),
                "X-BurstLimit-Limit": str(self.burst.limit),
                "X-BurstLimit-Remaining": str(self.burst.limit - burst_used),
            },
            throttled,
        )
