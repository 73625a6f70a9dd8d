"""Fetching many accounts at once: bounded requests, one rate-limit gate, per-account failures.

One `FetchSession` per run is shared by every resource: its gate and its limit of `max_workers`
requests at a time hold for all of them together.
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from urllib.parse import quote, urlencode

from requests.auth import AuthBase

from .accounts import AccountTarget
from .client import DocuSignClient, HttpSettings, RateLimitGate
from .errors import ApiError, AuthError, ResponseError
from .resources import Resource
from .shapes import AccountResponse, RawBody
from .windows import Window

MAX_PAGES = 10_000
"""Pages followed per window before the `nextUri` chain counts as broken (a loop)."""


@dataclass
class AccountFailure:
    """An account whose API call failed; the run goes on with the others."""

    target: AccountTarget
    error: ApiError


@dataclass
class AccountPages:
    """Every page of every window of one account's windowed resource; `reached` is the last
    window's end, where the next run continues (minus the look-back)."""

    account_id: str
    responses: list[AccountResponse]
    reached: date | None


Fetched = AccountResponse | AccountPages | AccountFailure


@dataclass
class FetchSession:
    """What all resources of a run share: the gate, the clients, the request slots."""

    auth: AuthBase
    http: HttpSettings
    max_workers: int
    gate: RateLimitGate = field(default_factory=RateLimitGate)
    _clients: dict[str, DocuSignClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(max(1, self.max_workers))

    def get(self, base_url: str, path: str, account_id: str) -> RawBody:
        with self._lock:
            if base_url not in self._clients:
                self._clients[base_url] = DocuSignClient(base_url, self.auth, self.http, self.gate)
            client = self._clients[base_url]
        with self.slots:
            return client.get(path, account_id)


def _path(resource: Resource, account_id: str, params: list[tuple[str, str]]) -> str:
    path = resource.path.format(account_id=quote(account_id, safe=""))
    query = [*resource.params, *params]
    return f"{path}?{urlencode(query)}" if query else path


def _next_uri(response: AccountResponse, base_url: str) -> str | None:
    """The body's `nextUri` as a path under the REST root or a full URL; None on the last page."""
    link = response.json_body().get("nextUri")
    if not isinstance(link, str) or not link.strip():
        return None
    link = link.strip()
    if link.startswith(("http://", "https://")):
        return link
    if link.startswith("/restapi/") and base_url.endswith("/restapi"):
        link = link[len("/restapi") :]
    return base_url + ("" if link.startswith("/") else "/") + link


def fetch_accounts(
    targets: list[AccountTarget],
    session: FetchSession,
    resource: Resource,
    windows_of: Callable[[str], list[Window]] | None = None,
) -> Iterator[Fetched]:
    """Yields each account's response (or, windowed, its pages) or failure as soon as it arrives.

    Rejected credentials stop everything: every other account would fail the same way.
    """

    def fetch(target: AccountTarget) -> Fetched:
        if target.base_url is None:
            message = (
                f"account {target.account_id}: not among the accounts these credentials can reach"
            )
            return AccountFailure(
                target, ApiError(message, target.account_id, code="ACCOUNT_NOT_VISIBLE")
            )
        try:
            if windows_of is None:
                raw = session.get(
                    target.base_url, _path(resource, target.account_id, []), target.account_id
                )
                return AccountResponse(target.account_id, account_name=target.account_name, raw=raw)
            return _pages(target, windows_of(target.account_id))
        except AuthError:
            raise
        except ApiError as ex:
            return AccountFailure(target, ex)

    def _pages(target: AccountTarget, windows: list[Window]) -> AccountPages:
        assert target.base_url is not None
        responses = []
        for window in windows:
            params = [
                ("from_date", window.from_date.isoformat()),
                ("to_date", window.to_date.isoformat()),
            ]
            link: str | None = _path(resource, target.account_id, params)
            seen = set()
            while link is not None:
                if link in seen or len(seen) >= MAX_PAGES:
                    raise ResponseError(
                        f"account {target.account_id}, {resource.name}: nextUri {link!r} repeats"
                    )
                seen.add(link)
                raw = session.get(target.base_url, link, target.account_id)
                page = AccountResponse(target.account_id, account_name=target.account_name, raw=raw)
                responses.append(page)
                link = _next_uri(page, target.base_url)
        return AccountPages(target.account_id, responses, windows[-1].to_date if windows else None)

    workers = max(1, session.max_workers)
    waiting = iter(targets)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docusign-fetch")
    try:
        # at most two responses per worker wait for the parser: memory stays flat in the accounts
        running = {pool.submit(fetch, t) for t in islice(waiting, 2 * workers)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            running |= {pool.submit(fetch, t) for t in islice(waiting, len(done))}
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
