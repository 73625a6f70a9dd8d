"""Fetched accounts to typed batches, typed in worker threads and yielded in the order they filled.

Decoding, typing and hashing a batch is mostly Arrow kernels, which release the GIL: a second thread
types one batch while the first types the next and dlt writes the one before (at 100k invoices on two
cores, 1.8 s of typing takes 1.1 s in two threads). At most `settings.PARSE_THREADS` batches wait,
so memory stays flat in the number of accounts.
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from . import settings
from .fetch import AccountFailure, AccountPages, Fetched
from .shapes import ParsedBatch
from .tables import BatchParser


def parsed_batches(
    fetched: Iterable[Fetched | None], new_parser: Callable[[], BatchParser]
) -> Iterator[ParsedBatch | None]:
    """Batches of one resource, of about `settings.BATCH_BYTES` of responses; the last names every
    loaded account. A None from `fetched` (nothing arrived yet) is passed on: dlt skips it and
    extracts the other resources meanwhile.

    A failed account is recorded in its batch's errors; when every account failed, the first
    failure is raised instead (nothing to load: the run failed as a whole)."""
    parser, loaded, failures = new_parser(), [], []
    typing: deque[Future[ParsedBatch]] = deque()
    with ThreadPoolExecutor(settings.PARSE_THREADS, thread_name_prefix="docusign-parse") as pool:
        try:
            for account in fetched:
                if account is None:
                    yield None
                    continue
                if isinstance(account, AccountFailure):
                    failures.append(account.error)
                    parser.add_failure(
                        account.target.account_id, account.target.account_name, account.error
                    )
                    continue
                for response in (
                    account.responses if isinstance(account, AccountPages) else [account]
                ):
                    parser.add(response)  # an account's pages stay in one batch
                loaded.append(account.account_id)
                if parser.size >= settings.BATCH_BYTES:
                    typing.append(pool.submit(parser.build))
                    parser = new_parser()
                    yield from _ready(typing, settings.PARSE_THREADS)
            yield from _ready(typing, 0)
        finally:
            for waiting in typing:
                waiting.cancel()  # an error or a closed generator: the rest is not wanted
    if failures and not loaded:
        raise failures[0]
    yield parser.build(completed_accounts=loaded)


def _ready(typing: deque["Future[ParsedBatch]"], keep: int) -> Iterator[ParsedBatch]:
    """The oldest batches: those already typed, and any more than `keep` still being typed."""
    while typing and (len(typing) > keep or typing[0].done()):
        yield typing.popleft().result()  # a bad value's ResponseError surfaces here
