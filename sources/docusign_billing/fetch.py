"""Fetching many accounts at once: bounded requests, one rate-limit gate, per-account failures.

One `FetchSession` per run is shared by every resource: its gate, its clients and its limit of
`max_workers` requests at a time hold for all of them together. The resources are fetched at the
same time: each resource's fetch yields None while none of its accounts has answered, so dlt's
extract (which takes items from its resources in turn and skips a None) serves the others
meanwhile, and the request slots stay busy until the last resource's last account.
"""

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from queue import Empty, SimpleQueue

from requests.auth import AuthBase

from . import settings
from .accounts import AccountTarget
from .client import DocuSignClient, HttpSettings, RateLimitGate, account_path
from .errors import ApiError, AuthError
from .resources import Resource
from .shapes import AccountResponse, RawBody
from .windows import Window

PROGRESS_LOGGER = __name__
_log = logging.getLogger(PROGRESS_LOGGER)


@dataclass(frozen=True)
class FetchProgress:
    """Accounts answered so far for one resource of a run, for an operator's progress line."""

    done: int
    total: int
    failed: int
    resource: str = ""


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
    """What all resources of a run share: the gate, the clients, the request slots and the
    threads that fetch (one pool: a thread done with one account takes the next queued one of any
    resource at once, rather than handing its slot to another resource's waiting thread)."""

    auth: AuthBase
    http: HttpSettings
    max_workers: int
    gate: RateLimitGate = field(default_factory=RateLimitGate)
    _clients: dict[str, DocuSignClient] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(max(1, self.max_workers))
        self._threads: ThreadPoolExecutor | None = None
        self._fetches = 0  # resources fetching with `_threads` now

    @contextmanager
    def threads(self) -> Iterator[ThreadPoolExecutor]:
        """The run's fetch threads, for one resource's fetch. They end when no resource fetches
        any more (the CLI ends its process at once only when no other thread runs), and a later
        fetch starts new ones."""
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(
                    max_workers=max(1, self.max_workers), thread_name_prefix="docusign-fetch"
                )
            self._fetches += 1
            threads = self._threads
        try:
            yield threads
        finally:
            with self._lock:
                self._fetches -= 1
                if self._fetches == 0:
                    # queued fetches were cancelled by their resource; a hung request in flight
                    # is not waited for (it could hold a stopped run for minutes)
                    threads.shutdown(wait=False, cancel_futures=True)
                    self._threads = None

    def _client(self, base_url: str) -> DocuSignClient:
        with self._lock:
            if base_url not in self._clients:
                self._clients[base_url] = DocuSignClient(base_url, self.auth, self.http, self.gate)
            return self._clients[base_url]

    def get(self, base_url: str, path: str, account_id: str, params: dict[str, str]) -> RawBody:
        """One response, in one of the run's request slots."""
        with self.slots:
            return self._client(base_url).get(path, account_id, params or None)

    def pages(
        self, base_url: str, path: str, account_id: str, params: dict[str, str]
    ) -> Iterator[RawBody]:
        """Every page of a list (`nextUri`), each request in one of the run's request slots."""
        chain = self._client(base_url).pages(path, account_id, params)
        while True:
            with self.slots:
                page = next(chain, None)
            if page is None:
                return
            yield page


def fetch_accounts(
    targets: list[AccountTarget],
    session: FetchSession,
    resource: Resource,
    windows_of: Callable[[str], list[Window]] | None = None,
) -> Iterator[Fetched | None]:
    """Yields each account's response (or, windowed, its pages) or failure as soon as it arrives,
    and None whenever none has arrived since the last item (nothing to do yet: ask again).

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
        path = account_path(resource.path, target.account_id)
        params = dict(resource.params)
        try:
            if windows_of is None:
                raw = session.get(target.base_url, path, target.account_id, params)
                return AccountResponse(target.account_id, account_name=target.account_name, raw=raw)
            windows = windows_of(target.account_id)
            pages = [
                AccountResponse(target.account_id, account_name=target.account_name, raw=raw)
                for window in windows
                for raw in session.pages(
                    target.base_url,
                    path,
                    target.account_id,
                    {
                        **params,
                        "from_date": window.from_date.isoformat(),
                        "to_date": window.to_date.isoformat(),
                    },
                )
            ]
            return AccountPages(target.account_id, pages, windows[-1].to_date if windows else None)
        except AuthError:
            raise
        except ApiError as ex:
            return AccountFailure(target, ex)

    workers = max(1, session.max_workers)
    waiting = iter(targets)
    answered: SimpleQueue[Future[Fetched]] = SimpleQueue()  # each fetch as it completes
    started: set[Future[Fetched]] = set()

    def start(count: int) -> None:
        """Queues the next `count` accounts' fetches in the run's threads."""
        for target in islice(waiting, count):
            future = threads.submit(fetch, target)
            future.add_done_callback(answered.put)
            started.add(future)

    with session.threads() as threads:
        try:
            # at most two responses per worker wait for the parser: memory stays flat in the accounts
            start(2 * workers)
            done = failed = 0
            while started:
                try:
                    future = answered.get(timeout=settings.ANSWER_WAIT)
                except Empty:
                    yield None  # none answered yet: the caller serves other resources meanwhile
                    continue
                started.discard(future)
                start(1)
                fetched = future.result()
                done += 1
                failed += isinstance(fetched, AccountFailure)
                if _log.isEnabledFor(logging.INFO):
                    count = FetchProgress(done, len(targets), failed, resource.name)
                    _log.info(
                        "%s: accounts %d/%d, %d failed",
                        resource.name,
                        count.done,
                        count.total,
                        count.failed,
                        extra={"progress": count},
                    )
                yield fetched
        finally:
            # nothing is queued after the last result; after an error or a stop (SIGTERM) the queued
            # fetches are dropped and those in flight are not waited for (a hung one could hold the
            # run for minutes)
            for future in started:
                future.cancel()
