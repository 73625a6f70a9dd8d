"""Injected faults: a queue of one-off misbehaviours and the replies they make."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .replies import DROP, GATEWAY_HTML, GATEWAY_TITLES, Reply, error

FAULTS = frozenset(
    {
        "401",
        "429",
        "hourly",
        "burst",
        "500",
        "502",
        "503",
        "504",
        "reset",
        "hang",
        "latency",
        "malformed",
    }
)
MALFORMED_BODY = b'{"billingInvoices": [{"invoiceId": '
"""What the `malformed` fault answers with HTTP 200: JSON cut off mid-way."""
THROTTLING = frozenset({"429", "hourly", "burst"})
DEFAULT_HOURLY_LIMIT = 1000
DEFAULT_BURST_LIMIT = 200


@dataclass
class Fault:
    kind: str
    left: int
    account_id: str | None
    resource: str | None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FaultQueue:
    """Faults in the order queued; the oldest one matching a request is used first."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        if fault.kind not in FAULTS:
            raise ValueError(f"unknown fault {fault.kind!r}; expected one of {sorted(FAULTS)}")
        if fault.left < 1:
            raise ValueError("times must be >= 1")
        self.faults.append(fault)

    def take(self, account_id: str, resource: str, query: dict[str, str]) -> Fault | None:
        """Pop one use of the oldest fault matching this request (caller holds the lock); a
        fault with the `next_page` option matches only requests of a `nextUri` page."""
        for fault in self.faults:
            if fault.options.get("next_page") and "start_position" not in query:
                continue
            if fault.account_id in (None, account_id) and fault.resource in (None, resource):
                fault.left -= 1
                if fault.left == 0:
                    self.faults.remove(fault)
                return fault
        return None


def fault_reply(
    fault: Fault, limit_headers: dict[str, str], stopping: threading.Event
) -> Reply | None:
    """Build the fault's reply, or sleep and return None so the request is answered normally."""
    kind, options = fault.kind, fault.options
    if kind == "reset":
        return DROP
    if kind in ("hang", "latency"):
        stopped = stopping.wait(options.get("seconds", 30 if kind == "hang" else 1))
        return DROP if stopped else None
    if kind == "malformed":
        return 200, MALFORMED_BODY, "application/json", limit_headers
    if kind == "401":  # a token revoked or expired early
        return error("token")
    if kind in GATEWAY_TITLES:
        page = GATEWAY_HTML.format(GATEWAY_TITLES[kind]).encode()
        return int(kind), page, "text/html", limit_headers
    headers = dict(limit_headers)
    if kind == "burst":
        headers["X-BurstLimit-Remaining"] = "0"
        headers.setdefault("X-BurstLimit-Limit", str(DEFAULT_BURST_LIMIT))
    if kind == "429" and options.get("retry_after") is not None:
        headers["Retry-After"] = str(options["retry_after"])
    if kind in ("429", "hourly") and options.get("ratelimit_reset") is not None:
        headers.setdefault("X-RateLimit-Limit", str(DEFAULT_HOURLY_LIMIT))
        headers["X-RateLimit-Remaining"] = "0"
        headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + options["ratelimit_reset"]))
    return error(kind, headers)
