"""One run at a time per pipeline folder: an exclusive, non-blocking `flock` held for all of `load()`.

A second run started while the first still holds the lock fails at once with `RunInProgressError`
(the CLI prints it as one line and exits 1, "the run failed": the scheduler's next run simply
proceeds). The kernel drops the lock when the holder exits or is killed (even by SIGKILL), so a
crashed run never leaves a stale lock behind; the file itself stays and is reused.

`held_here()` tells whether this process holds it: the source then leaves the pipeline folder's
repairs to the holder (`load()` runs them itself, `run_guard.py`).
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

import dlt

from .errors import DocuSignBillingError

LOCK_FILE = "run.lock"
"""Inside `pipeline.working_dir`, next to dlt's own state."""

_held: set[str] = set()
"""Lock files this process holds."""


class RunInProgressError(DocuSignBillingError):
    """Another run of the same pipeline (same pipeline folder) is in progress."""


def lock_path(pipeline: dlt.Pipeline) -> str:
    return os.path.join(pipeline.working_dir, LOCK_FILE)


def held_here(pipeline: dlt.Pipeline) -> bool:
    """This process holds the pipeline's run lock."""
    return lock_path(pipeline) in _held


@contextmanager
def run_lock(pipeline: dlt.Pipeline) -> Iterator[str]:
    """Holds the pipeline's run lock for the `with` block; raises `RunInProgressError` if taken."""
    path = lock_path(pipeline)
    os.makedirs(pipeline.working_dir, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInProgressError(
                f"another run of pipeline {pipeline.pipeline_name} is in progress (lock {path});"
                " this run did nothing"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # the file may have been removed and re-created between open and flock (e.g. dlt wiping
        # the working folder): a lock on an unlinked inode guards nothing, so take the new file
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for humans only; the flock is the lock
        _held.add(path)
        yield path
    finally:
        _held.discard(path)
        os.close(fd)  # releases the flock
