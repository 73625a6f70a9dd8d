"""Fetching many accounts at once: bounded workers, one rate-limit gate, per-account failures."""

import logging
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice

from requests.auth import AuthBase

from .accounts import AccountTarget
from .bodies import AccountResponse
from .client import DocuSignClient, HttpSettings, RateLimitGate
from .errors import ApiError, AuthError

PROGRESS_LOGGER = __name__
_log = logging.getLogger(PROGRESS_LOGGER)


@dataclass(frozen=True)
class FetchProgress:
    """Accounts answered so far in a run, for an operator's progress line."""

    done: int
    total: int
    failed: int


@dataclass
class AccountFailure:
    """An account whose API call failed; the run goes on with the others."""

    target: AccountTarget
    error: ApiError


Fetched = AccountResponse | AccountFailure


def fetch_accounts(
    targets: list[AccountTarget], auth: AuthBase, http: HttpSettings, max_workers: int
) -> Iterator[Fetched]:
    """Yields each account's response or failure as soon as it arrives.

    Rejected credentials stop everything: every other account would fail the same way.
    """
    gate = RateLimitGate()
    clients = {
        url: DocuSignClient(url, auth, http, gate) for url in {t.base_url for t in targets} if url
    }

    def fetch(target: AccountTarget) -> Fetched:
        if target.base_url is None:
            message = (
                f"account {target.account_id}: not among the accounts these credentials can reach"
            )
            return AccountFailure(
                target, ApiError(message, target.account_id, code="ACCOUNT_NOT_VISIBLE")
            )
        try:
            raw = clients[target.base_url].past_due_invoices(target.account_id)
        except AuthError:
            raise
        except ApiError as ex:
            return AccountFailure(target, ex)
        return AccountResponse(target.account_id, account_name=target.account_name, raw=raw)

    workers = max(1, max_workers)
    waiting = iter(targets)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="docusign-fetch")
    try:
        # at most two responses per worker wait for the parser: memory stays flat in the accounts
        running = {pool.submit(fetch, t) for t in islice(waiting, 2 * workers)}
        answered = failed = 0
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            running |= {pool.submit(fetch, t) for t in islice(waiting, len(done))}
            for future in done:
                fetched = future.result()
                answered += 1
                failed += isinstance(fetched, AccountFailure)
                if _log.isEnabledFor(logging.INFO):
                    count = FetchProgress(answered, len(targets), failed)
                    _log.info(
                        "accounts %d/%d, %d failed",
                        count.done,
                        count.total,
                        count.failed,
                        extra={"progress": count},
                    )
                yield fetched
    finally:
        # nothing is in flight after the last result; after an error or a stop (SIGTERM) the
        # requests in flight are not waited for (a hung one could hold the run for minutes)
        pool.shutdown(wait=False, cancel_futures=True)
