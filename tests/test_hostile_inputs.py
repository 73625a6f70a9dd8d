"""Hostile inputs found by a fresh-clone test: each one a clean line and a documented exit code."""

import subprocess
import sys

import pytest

from pipelines.cli import EXIT_FAILED, explain
from tests.conftest import REPO

_READ_NULL = """
from sources.docusign_billing.bodies import read_known
from sources.docusign_billing.shapes import AccountResponse, RawBody
raw = RawBody({body!r}, "application/json")
print(read_known([AccountResponse("acc-1", raw=raw)]))
"""


@pytest.mark.parametrize("body", [b"null", b" null", b"\\n null \\n"])
def test_a_body_that_is_not_an_object_never_reaches_arrow(body):
    """Arrow's JSON reader crashes the process (SIGSEGV) on a bare `null`: run it apart."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_NULL.format(body=body)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr


@pytest.mark.parametrize("body", ["null", " null"])
def test_a_null_body_is_one_clear_error_naming_the_account(runner, sandbox, body):
    account = sandbox.account_ids[1]
    sandbox.set_response(account, body)
    with pytest.raises(Exception) as error:
        runner.run()
    code, message = explain(error.value)
    assert code == EXIT_FAILED
    assert message.startswith(f"account {account}"), message
    assert message.endswith("expected a JSON object, got NoneType"), message
