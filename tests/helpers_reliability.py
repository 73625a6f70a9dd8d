"""Shared checks of the reliability suite: dataset invariants and content comparisons."""

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO, Runner

CLI = str(Path(sys.executable).with_name("docusign-billing"))
INVOICES = "billing.past_due_invoices"
ITEMS = "billing.past_due_invoices__invoice_items"
SNAPSHOTS = "billing.past_due_snapshots"
TABLES = ("past_due_invoices", "past_due_invoices__invoice_items", "past_due_snapshots")
TIMESTAMPS = ("_dlt_valid_from", "_dlt_valid_to", "snapshot_at", "_dlt_load_id")


def cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def cli_in_process(monkeypatch, capsys, *args: str, env: dict[str, str]):
    """`docusign-billing ARGS` through `cli.main` in this process, with exactly `env`: the
    exit code (argparse's too) and what it printed, like `cli()` without a process start."""
    from pipelines import cli as command_line

    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = command_line.main(list(args))
    except SystemExit as ex:  # argparse refusing an argument (its code is an int)
        code = ex.code if isinstance(ex.code, int) else -1
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def with_repo_on_path(env: dict[str, str]) -> dict[str, str]:
    """For `python -m tests.helpers_...` subprocesses: the test package must be importable."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))}


def windows_asked(api, resource: str, account_id: str) -> list[tuple[str, str]]:
    """The (`from_date`, `to_date`) windows of `resource` the sandbox answered for an account, in
    order (each window's first page: the others carry a `start_position`)."""
    return [
        (r["query"]["from_date"], r["query"]["to_date"])
        for r in api.requests
        if r["resource"] == resource
        and r["account_id"] == account_id
        and r["status"] == 200
        and "start_position" not in r["query"]
    ]


def unrecorded_jobs(working: Path, table: str) -> list[str]:
    """Load jobs of `table` that dlt started but recorded no outcome for, in the pipeline folder
    `working`: what a kill right after a committed COPY leaves. Only package folders are read
    (a kill inside dlt's atomic write leaves a temp file beside them)."""
    packages = [
        p for p in (working / "load" / "normalized").iterdir() if (p / "started_jobs").is_dir()
    ]
    return [
        job.name
        for package in packages
        for job in (package / "started_jobs").iterdir()
        if job.name.startswith(f"{table}.")
        and not (package / ".pending_transitions" / job.name).exists()
    ]


def columns(runner, table: str) -> list[str]:
    return [
        name
        for (name,) in runner.rows(
            "SELECT column_name FROM information_schema.columns"
            f" WHERE table_schema = 'billing' AND table_name = '{table}' ORDER BY ordinal_position"
        )
    ]


def content(runner, table: str, exclude: Sequence[str] = TIMESTAMPS) -> list[tuple]:
    """Every row of `table` without the run-time columns, sorted: comparable across datasets."""
    kept = [c for c in columns(runner, table) if c not in exclude]
    if not kept:
        return []
    select = ", ".join(f'"{c}"' for c in kept)
    return sorted(runner.rows(f"SELECT {select} FROM billing.{table}"), key=repr)


def current_invoices(runner) -> list[tuple]:
    """The current versions without timestamps: what "past due now" means."""
    kept = [c for c in columns(runner, "past_due_invoices") if c not in TIMESTAMPS]
    select = ", ".join(f'"{c}"' for c in kept)
    return sorted(
        runner.rows(f"SELECT {select} FROM {INVOICES} WHERE _dlt_valid_to IS NULL"), key=repr
    )


def assert_consistent(runner) -> None:
    """Dataset invariants that hold after any sequence of successful, failed or killed runs."""
    # no duplicate snapshot rows
    assert (
        runner.rows(
            f"SELECT account_id, snapshot_at FROM {SNAPSHOTS} GROUP BY ALL HAVING count(*) > 1"
        )
        == []
    )
    # no invoice has two current versions, and a version row is never stored twice
    assert (
        runner.rows(
            f"SELECT account_id, invoice_id FROM {INVOICES} WHERE _dlt_valid_to IS NULL GROUP BY ALL HAVING count(*) > 1"
        )
        == []
    )
    assert runner.rows(f"SELECT _dlt_id FROM {INVOICES} GROUP BY ALL HAVING count(*) > 1") == []
    # items: never twice, never orphaned (each joins its invoice version by plain keys and linkage)
    assert runner.rows(f"SELECT _dlt_id FROM {ITEMS} GROUP BY ALL HAVING count(*) > 1") == []
    assert runner.rows(
        f"SELECT count(*) FROM {ITEMS} t LEFT JOIN {INVOICES} i"
        " ON i.account_id = t.account_id AND i.invoice_id = t.invoice_id AND i._dlt_id = t._dlt_parent_id"
        " WHERE i._dlt_id IS NULL"
    ) == [(0,)]
    # every snapshot of a run covers the same accounts as its invoices' history boundary
    assert runner.rows(
        f"SELECT count(*) FROM (SELECT DISTINCT _dlt_valid_from FROM {INVOICES}) v"
        f" WHERE _dlt_valid_from NOT IN (SELECT snapshot_at FROM {SNAPSHOTS})"
    ) == [(0,)]


@contextmanager
def loaded_runner(directory: Path) -> Iterator[Runner]:
    """A sandbox like the `sandbox` fixture's and a dataset loaded once: for module-scoped fixtures
    whose tests each make one run fail and check that the tables did not move."""
    from sources.docusign_billing.sandbox import Sandbox

    with (
        pytest.MonkeyPatch.context() as patch,
        Sandbox(accounts=3, invoices_per_account=(2, 5), seed=11) as api,
    ):
        patch.setenv("DLT_DATA_DIR", str(directory / "dlt"))
        patch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        runner = Runner(api, directory)
        runner.run()
        yield runner


CREDENTIAL_HEADERS = frozenset({"authorization", "x-docusign-authentication"})


def secrets_outside_credentials(requests: list[dict], secrets: Sequence[str]) -> list[tuple]:
    """(target, place, secret) for each secret the server received anywhere but a credential
    header or the form of a token request (where grants travel): the query string, another
    header, another request's body. Reads the sandbox's log of what it received."""
    leaks = []
    for request in requests:
        places = {"target": request["target"]}
        places.update(
            (f"header {name}", value)
            for name, value in request["headers"].items()
            if name.lower() not in CREDENTIAL_HEADERS
        )
        if request["path"] != "/oauth/token":
            places["body"] = request["body"]
        leaks += [
            (request["target"], place, secret)
            for place, text in places.items()
            for secret in secrets
            if secret in text
        ]
    return leaks


def secrets_in_credential_headers(requests: list[dict], secrets: Sequence[str]) -> set[str]:
    """The secrets the server received in credential headers: shows a search found where they travel."""
    return {
        secret
        for request in requests
        for name, value in request["headers"].items()
        if name.lower() in CREDENTIAL_HEADERS
        for secret in secrets
        if secret in value
    }


def exact_amount(text: str) -> Decimal | None:
    """The amount a sandbox string stands for, read without the code under test: the sandbox
    formats exact decimals with at most `$`, `,` and a sign around them; blank is NULL."""
    return Decimal(text.replace("$", "").replace(",", "")) if text.strip() else None
