"""Shared fixtures: an isolated dlt home, a live sandbox API, and pipeline runs against it."""

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.docusign_billing_pipeline import load, make_pipeline
from sources.docusign_billing.auth import DocuSignCredentials
from sources.docusign_billing.sandbox import ACCESS_TOKEN, LEGACY_CREDENTIALS, Sandbox

REPO = Path(__file__).resolve().parents[1]
FAST_RETRIES: dict[str, Any] = {
    "backoff_factor": 0.05,
    "max_retry_delay": 2.0,
    "request_timeout": 5.0,
}

PAST_DUE_ONLY = "past_due"
"""What `Runner` and `cli_env` load unless a test names resources: the tests written for one
request per account stay exact; `test_billing_resources.py` covers the other resources."""
TOKEN_CREDENTIALS = DocuSignCredentials(auth="token", access_token=ACCESS_TOKEN)
LEGACY = DocuSignCredentials(auth="legacy", **LEGACY_CREDENTIALS)


def _isolate(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__", "NORMALIZE__", "LOAD__")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DLT_DATA_DIR", str(directory / "dlt"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.chdir(directory)


@pytest.fixture(autouse=True)
def isolated_dlt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dlt state and config never leak between tests, nor from the developer's machine."""
    _isolate(tmp_path, monkeypatch)
    return tmp_path


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(accounts=3, invoices_per_account=(2, 5), seed=11) as api:
        yield api


class Runner:
    """Runs the real pipeline against a sandbox into a DuckDB file and reads it back."""

    def __init__(self, sandbox: Sandbox, directory: Path) -> None:
        self.sandbox = sandbox
        self.duckdb_file = str(directory / "invoices.duckdb")
        self.pipelines_dir = str(directory / "pipelines")

    def run(self, **source_args: Any) -> Any:
        args: dict[str, Any] = {
            "account_ids": self.sandbox.account_ids,
            "base_url": self.sandbox.base_url,
            "credentials": TOKEN_CREDENTIALS,
            "resources": PAST_DUE_ONLY,  # the HTTP, fault and kill tests count its requests
            **FAST_RETRIES,
            **source_args,
        }
        pipeline = make_pipeline(pipelines_dir=self.pipelines_dir, duckdb_file=self.duckdb_file)
        return load(pipeline, **args)

    def run_plain(self, **source_args: Any) -> Any:
        """A user's own pipeline: `pipeline.run(docusign_billing(...))`, no CLI, no `load()`.

        Called again when the first call only loaded what an interrupted run left pending: dlt's
        `run` then returns without extracting (as in dlt's docs: "run the pipeline again")."""
        import dlt

        from sources.docusign_billing import docusign_billing

        args: dict[str, Any] = {
            "account_ids": self.sandbox.account_ids,
            "base_url": self.sandbox.base_url,
            "credentials": TOKEN_CREDENTIALS,
            **FAST_RETRIES,
            **source_args,
        }
        pipeline = dlt.pipeline(
            pipeline_name="docusign_billing",
            destination=dlt.destinations.duckdb(self.duckdb_file),
            dataset_name="billing",
            pipelines_dir=self.pipelines_dir,
        )
        resumed = pipeline.has_pending_data
        info = pipeline.run(docusign_billing(**args))
        return pipeline.run(docusign_billing(**args)) if resumed else info

    def rows(self, sql: str) -> list[tuple]:
        if not os.path.exists(self.duckdb_file):
            return []
        with duckdb.connect(self.duckdb_file, read_only=True) as connection:
            return connection.sql(sql).fetchall()

    def table(self, name: str, order: str = "1") -> list[tuple]:
        """Every row of a table, for before/after comparisons; empty if it does not exist yet."""
        exists = self.rows(
            f"SELECT 1 FROM information_schema.tables WHERE table_schema = 'billing' AND table_name = '{name}'"
        )
        return self.rows(f"SELECT * FROM billing.{name} ORDER BY {order}") if exists else []

    def snapshot(self) -> dict[str, list[tuple]]:
        return {
            name: self.table(name, "ALL")
            for name in (
                "past_due_invoices",
                "past_due_invoices__invoice_items",
                "past_due_snapshots",
            )
        }


@pytest.fixture
def runner(sandbox: Sandbox, tmp_path: Path) -> Runner:
    return Runner(sandbox, tmp_path)


@pytest.fixture
def cli_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Environment for the `docusign-billing` console script pointed at a sandbox."""

    def make(sandbox: Sandbox, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
        env.update(
            DLT_DATA_DIR=str(tmp_path / "dlt"),
            SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS=",".join(sandbox.account_ids),
            SOURCES__DOCUSIGN_BILLING__BASE_URL=sandbox.base_url,
            SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH="token",
            SOURCES__DOCUSIGN_BILLING__CREDENTIALS__ACCESS_TOKEN=ACCESS_TOKEN,
            SOURCES__DOCUSIGN_BILLING__BACKOFF_FACTOR="0.05",
            SOURCES__DOCUSIGN_BILLING__MAX_RETRY_DELAY="2",
            SOURCES__DOCUSIGN_BILLING__RESOURCES=PAST_DUE_ONLY,
        )
        env.update(extra)
        return env

    return make


# reporting views and report: the real pipeline into DuckDB or a real PostgreSQL ---------------------
_VIEW_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One PostgreSQL server for the whole session (each test makes its own database): the
    server's start and stop cost seconds. Raises `PostgresNotInstalled`, with the install hint,
    when the binaries are missing."""
    from tests.postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def two_accounts() -> Iterator[Sandbox]:
    with Sandbox(accounts=2, seed=3) as api:
        yield api


def _engine(kind: str, sandbox: Sandbox, directory: Path, request: pytest.FixtureRequest) -> Any:
    import dlt

    from tests.helpers_views import Engine

    pipelines_dir = str(directory / "pipelines")
    if kind == "duckdb":
        duckdb_file = str(directory / "views.duckdb")
        return Engine(
            sandbox, lambda: make_pipeline(pipelines_dir=pipelines_dir, duckdb_file=duckdb_file)
        )
    server = request.getfixturevalue("postgres")
    url = server.create_database(f"views_{next(_VIEW_DATABASES)}")
    return Engine(
        sandbox,
        lambda: make_pipeline(
            destination=dlt.destinations.postgres(credentials=url), pipelines_dir=pipelines_dir
        ),
    )


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, two_accounts: Sandbox, tmp_path: Path) -> Any:
    """An `Engine` (tests/helpers_views.py) on a DuckDB file or on its own PostgreSQL database."""
    return _engine(request.param, two_accounts, tmp_path, request)


@pytest.fixture
def two_runs(engine: Any) -> tuple[Any, str, str, Any, Any]:
    """`engine` after `Engine.two_runs`: (engine, account a, account b, first, second run)."""
    return (engine, *engine.two_runs())


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def two_runs_to_read(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str, str, Any, Any]]:
    """`two_runs` made once per test module and destination, for tests that only read it (each
    pair of runs costs ~2 s)."""
    directory = tmp_path_factory.mktemp("two_runs")
    with pytest.MonkeyPatch.context() as monkeypatch, Sandbox(accounts=2, seed=3) as api:
        _isolate(directory, monkeypatch)
        engine = _engine(request.param, api, directory, request)
        yield (engine, *engine.two_runs())
