"""SIGKILL during extract, normalize and load; the next run must end where an uninterrupted one does.

Every scenario: a first good run (history exists), then the sandbox data changes (an invoice is
paid, another one's balance changes: the interrupted run carries real SCD2 work), then a run that
is killed for real with SIGKILL, then a normal run. The end state is compared with a reference
dataset that saw the same two data versions without any kill:
- invoices (every version, without timestamps) and items are equal;
- snapshots: equal content per run, never two rows for one (account_id, snapshot_at);
- no orphan items, no invoice with two current versions, no pending dlt package left.

Kills during extract come from outside (the real console script, slowed by sandbox latency).
Kills inside normalize and load come from `tests/helpers_killer.py`: the real CLI in a subprocess
with one dlt function patched to SIGKILL its own process at a precise point. Each of those checks
that the kill left the state it targets (e.g. a started load job without a recorded outcome), so a
change in dlt that moves the window shows up here instead of silently testing nothing.

Two of those states need `sources/docusign_billing/recovery.py`; the end of this module tests that repair on
synthetic package folders, including a kill at every step of the repair itself.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.common.schema import Schema
from dlt.common.schema.typing import TWriteDisposition
from dlt.common.schema.utils import new_column, new_table

from sources.docusign_billing import recovery
from sources.docusign_billing.dlt_internals import FileStorage, PackageStorage
from sources.docusign_billing.sandbox import Sandbox
from tests.conftest import Runner
from tests.helpers_reliability import (
    CLI,
    assert_consistent,
    content,
    current_invoices,
    unrecorded_jobs,
    with_repo_on_path,
)


def _cli_args(tmp_path: Path):
    return [
        "run",
        "--pipelines-dir",
        str(tmp_path / "pipelines"),
        "--duckdb-file",
        str(tmp_path / "invoices.duckdb"),
    ]


def _change_data(sandbox) -> None:
    """What the interrupted run must load: one invoice paid, one balance changed."""
    first, second = sandbox.account_ids[:2]
    sandbox.pay_invoice(first, sandbox.response(first)["billingInvoices"][0]["invoiceId"])
    sandbox.set_balance(
        second, sandbox.response(second)["billingInvoices"][0]["invoiceId"], "$1,000.01"
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same two data versions loaded without interruption, once for the module.

    Its own sandbox has the `sandbox` fixture's arguments, hence the same (deterministic) data.
    """
    directory = tmp_path_factory.mktemp("reference")
    with (
        pytest.MonkeyPatch.context() as patch,
        Sandbox(accounts=3, invoices_per_account=(2, 5), seed=11) as api,
    ):
        patch.setenv("DLT_DATA_DIR", str(directory / "dlt"))
        patch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        runner = Runner(api, directory)
        runner.run()
        _change_data(api)
        runner.run()
        yield runner


def _working(tmp_path: Path) -> Path:
    return tmp_path / "pipelines" / "docusign_billing"


def _pending_packages(tmp_path: Path):
    working = _working(tmp_path)
    folders = [
        working / "normalize" / "extracted",
        working / "load" / "new",
        working / "load" / "normalized",
    ]
    return [str(p) for folder in folders if folder.exists() for p in folder.iterdir()]


def _assert_like_reference(runner: Runner, reference: Runner) -> None:
    assert_consistent(runner)
    for table in ("past_due_invoices", "past_due_invoices__invoice_items"):
        assert content(runner, table) == content(reference, table), table
    assert current_invoices(runner) == current_invoices(reference)
    # every run's snapshot is whole; the killed run may have one of its own if its package
    # survived the kill (it then holds the same data version as the run after it)
    per_run = runner.rows("SELECT snapshot_at, count(*) FROM billing.past_due_snapshots GROUP BY 1")
    assert len(per_run) in (2, 3) and {n for _, n in per_run} == {len(runner.sandbox.account_ids)}
    assert set(content(runner, "past_due_snapshots")) == set(
        content(reference, "past_due_snapshots")
    )


def _scenario(
    sandbox, runner: Runner, reference: Runner, tmp_path: Path, kill, plain: bool = False
) -> None:
    """`plain`: every run is a user's own `pipeline.run(docusign_billing(...))`, not the CLI."""
    assert sandbox.account_ids == reference.sandbox.account_ids
    run = runner.run_plain if plain else runner.run
    run()
    _change_data(sandbox)
    before = runner.snapshot()
    killed = kill()
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if "loading into" not in killed.stderr:
        assert runner.snapshot() == before  # killed before load: nothing of it is visible
    try:
        run()
    except Exception as ex:  # noqa: BLE001 - the failure is the finding, reported with dlt's message
        from pipelines.cli import explain

        raise AssertionError(f"the run after the kill failed: {explain(ex)[1]}") from None
    assert _pending_packages(tmp_path) == []
    _assert_like_reference(runner, reference)
    assert runner.snapshot() != before


def test_sigkill_during_extract_then_rerun_equals_uninterrupted(
    sandbox, runner, reference, tmp_path, cli_env
):
    """The real console script, killed from outside while it waits on the (slow) API."""

    def kill():
        sandbox.latency = 0.3
        seen = len(sandbox.requests)
        process = subprocess.Popen(
            [CLI, *_cli_args(tmp_path)],
            env=cli_env(sandbox),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while (
            len(sandbox.requests) < seen + 2 and time.monotonic() < deadline
        ):  # second account in flight
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed during extract"
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
        sandbox.latency = 0.0
        assert "extracting" in stderr and "normalizing" not in stderr
        return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)

    _scenario(sandbox, runner, reference, tmp_path, kill)


KILL_POINTS = [
    pytest.param("normalize-mid", id="normalize-after-writing-files"),
    # dlt renamed the normalized package but did not delete its extracted copy (sources/docusign_billing/recovery.py)
    pytest.param("normalize-commit", id="normalize-between-commit-and-cleanup"),
    # a staging COPY committed but not recorded: dlt would re-run it on the non-truncated staging table
    pytest.param("load-copy:past_due_snapshots", id="load-after-snapshot-staging-committed"),
    pytest.param("load-copy:past_due_invoices", id="load-after-invoice-staging-committed"),
    # the items' append committed but not recorded: dlt would append the same rows again
    pytest.param(
        "load-copy:past_due_invoices__invoice_items", id="load-after-items-append-committed"
    ),
    pytest.param("load-merge", id="load-after-scd2-merge-committed"),
    pytest.param("load-complete", id="load-after-loads-row-written"),
]


def _dataset_rows(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "invoices.duckdb"), read_only=True) as connection:
        return connection.sql(sql).fetchall()


def _assert_kill_hit_its_window(tmp_path: Path, point: str) -> None:
    """The state each kill point exists to produce (the ones `sources/docusign_billing/recovery.py` repairs).

    Checked to fail: with `helpers_killer` killing *before* the patched dlt function instead of
    after it, every kill point's check fails (normalize-mid: no normalized files; load-merge: the
    new version not merged; load-complete: no `_dlt_loads` row).
    """
    working = _working(tmp_path)
    if point == "normalize-commit":
        extracted = {p.name for p in (working / "normalize" / "extracted").iterdir()}
        normalized = {p.name for p in (working / "load" / "normalized").iterdir()}
        assert extracted & normalized, (extracted, normalized)
    elif point.startswith("load-copy:"):
        assert unrecorded_jobs(working, point.split(":", 1)[1]), (
            "the kill did not land between the committed COPY and dlt recording it"
        )
    elif point == "normalize-mid":
        extracted = {p.name for p in (working / "normalize" / "extracted").iterdir()}
        written = {
            p.name
            for p in (working / "load" / "new").iterdir()
            if any((p / "new_jobs").glob("past_due_invoices.*"))
        }
        assert extracted and extracted == written, (
            extracted,
            written,
        )  # files written, not committed
        assert not (working / "load" / "normalized").exists() or not any(
            (working / "load" / "normalized").iterdir()
        )
    elif point in ("load-merge", "load-complete"):
        # the killed package (a plain `pipeline.run` may have left a second one pending beside it)
        pending = ", ".join(f"'{p.name}'" for p in (working / "load" / "normalized").iterdir())
        loads = _dataset_rows(
            tmp_path,
            f"SELECT count(*) FROM billing._dlt_loads WHERE load_id IN ({pending or 'NULL'})",
        )
        assert loads == [(1 if point == "load-complete" else 0,)], loads
        merged = _dataset_rows(
            tmp_path,
            "SELECT count(*) FROM billing.past_due_invoices"
            " WHERE balance = 1000.01 AND _dlt_valid_to IS NULL",
        )
        assert merged == [(1,)], "the kill came before the SCD2 merge committed"


@pytest.mark.parametrize("plain", [False, True], ids=["cli", "plain-pipeline-run"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_inside_dlt_step_then_rerun_equals_uninterrupted(
    sandbox, runner, reference, tmp_path, cli_env, point, plain
):
    """`plain`: killed and resumed in a user's own pipeline: the source repairs its folder.

    Removed to see it fail: `recovery.recover` returning at once (the load-copy and
    normalize-commit kill points then end with duplicated or failing runs); each kill's window is
    checked first."""
    run_args = (
        ["--plain", runner.pipelines_dir, runner.duckdb_file] if plain else _cli_args(tmp_path)
    )

    def kill():
        result = subprocess.run(
            [sys.executable, "-m", "tests.helpers_killer", point, *run_args],
            env=with_repo_on_path(cli_env(sandbox)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        step = point.split("-")[0]
        assert ("loading into duckdb" in result.stderr) == (step == "load"), result.stderr
        _assert_kill_hit_its_window(tmp_path, point)
        return result

    _scenario(sandbox, runner, reference, tmp_path, kill, plain)
    if point != "load-complete":
        # a replayed package writes its `_dlt_loads` row once (dlt writes it after the last job).
        # A kill right after that row (load-complete) gets a second one from dlt: README.md, Guarantees
        assert (
            runner.rows("SELECT load_id FROM billing._dlt_loads GROUP BY 1 HAVING count(*) > 1")
            == []
        )


# The repair of sources/docusign_billing/recovery.py on synthetic package folders (milliseconds each): which jobs
# go back, which stay, and that a kill at any step of the repair is finished by the next run.

LOAD_ID = "1700000000.5"


def _package_schema(items: bool) -> Schema:
    schema = Schema("docusign_billing")
    dispositions: list[tuple[str, TWriteDisposition]] = [
        ("invoices", "merge"),
        ("snapshots", "merge"),
        ("errors", "append"),
    ]
    for name, disposition in dispositions:
        schema.update_table(
            new_table(name, write_disposition=disposition, columns=[new_column("id", "text")])
        )
    if items:  # appended without staging, rows marked with their load id
        columns = [new_column("id", "text"), new_column("_dlt_load_id", "text")]
        schema.update_table(new_table("items", write_disposition="append", columns=columns))
    return schema


def _no_rows(load_id: str, tables) -> None:
    raise AssertionError(f"asked to delete rows of {tables} ({load_id}): no such append table here")


def _interrupted_package(
    root: Path, state: dict | None = None, items: bool = False
) -> PackageStorage:
    """Like the kill in a staging COPY: the invoices copy committed unrecorded, the snapshots chain
    merged already, one append job done and one interrupted (with `items`: also an items-like
    append table with one job done and recorded, one started)."""
    packages = PackageStorage(FileStorage(str(root), makedirs=True), "normalized")
    packages.create_package(LOAD_ID, schema=_package_schema(items))
    if state:
        packages.save_load_package_state(
            LOAD_ID, {**packages.get_load_package_state(LOAD_ID), **state}
        )
    jobs = {
        "started_jobs": ["invoices.a1.0.parquet", "snapshots.b1.0.parquet", "errors.c1.0.parquet"],
        "completed_jobs": ["snapshots.b2.0.parquet", "snapshots.m1.0.sql", "errors.c2.0.parquet"],
        "new_jobs": ["invoices.a2.0.parquet"],
    }
    if items:
        jobs["started_jobs"].append("items.d2.0.parquet")
        jobs["completed_jobs"].append("items.d1.0.parquet")
    for folder, names in jobs.items():
        for name in names:
            packages.storage.save(packages.get_job_file_path(LOAD_ID, folder, name), "data")  # type: ignore[arg-type]
    packages.save_pending_transition(LOAD_ID, "snapshots.b1.0.parquet", "completed")
    packages.storage.save(
        os.path.join(LOAD_ID, PackageStorage.APPLIED_SCHEMA_UPDATES_FILE_NAME),
        json.dumps({"invoices": {}}),
    )
    return packages


def _layout(packages: PackageStorage) -> dict[str, list[str]]:
    package = Path(packages.storage.make_full_path(LOAD_ID))
    layout = {
        folder: sorted(p.name for p in (package / folder).iterdir())
        for folder in ("new_jobs", "started_jobs", "completed_jobs", ".pending_transitions")
    }
    layout["files"] = sorted(
        p.name for p in package.iterdir() if p.name.endswith("schema_updates.json")
    )
    return layout


RESTARTED = {
    # every merge job redone on a truncated staging table; its merge SQL will be created again
    "new_jobs": [
        "invoices.a1.0.parquet",
        "invoices.a2.0.parquet",
        "snapshots.b1.0.parquet",
        "snapshots.b2.0.parquet",
    ],
    # append jobs stay where dlt left them
    "started_jobs": ["errors.c1.0.parquet"],
    "completed_jobs": ["errors.c2.0.parquet"],
    ".pending_transitions": [],
    # initialize_package runs again (and truncates the staging tables of the jobs above)
    "files": ["schema_updates.json"],
}


def test_restart_redoes_staging_jobs_and_leaves_append_jobs(tmp_path):
    packages = _interrupted_package(tmp_path / "normalized")
    assert recovery.restart_interrupted_loads(str(tmp_path / "normalized"), _no_rows) == [LOAD_ID]
    assert _layout(packages) == RESTARTED
    assert packages.get_schema_update_file(LOAD_ID) == {"invoices": {}}
    # nothing left to repair: a second call (the next run) changes nothing
    assert recovery.restart_interrupted_loads(str(tmp_path / "normalized"), _no_rows) == []
    assert _layout(packages) == RESTARTED


def test_restart_deletes_the_appended_rows_of_the_package_first_and_redoes_their_jobs(tmp_path):
    packages = _interrupted_package(tmp_path / "normalized", items=True)
    deleted = []

    def remove_rows(load_id, tables):
        assert _layout(packages)["started_jobs"] == [  # before any job moved
            "errors.c1.0.parquet",
            "invoices.a1.0.parquet",
            "items.d2.0.parquet",
            "snapshots.b1.0.parquet",
        ]
        deleted.append((load_id, tables))

    assert recovery.restart_interrupted_loads(str(tmp_path / "normalized"), remove_rows) == [
        LOAD_ID
    ]
    assert deleted == [(LOAD_ID, {"items"})]
    layout = _layout(packages)
    assert layout["new_jobs"] == sorted(
        RESTARTED["new_jobs"] + ["items.d1.0.parquet", "items.d2.0.parquet"]
    )
    assert {k: v for k, v in layout.items() if k != "new_jobs"} == {
        k: v for k, v in RESTARTED.items() if k != "new_jobs"
    }


def test_package_whose_jobs_all_recorded_an_outcome_is_left_to_dlt(tmp_path):
    packages = _interrupted_package(tmp_path / "normalized")
    packages.save_pending_transition(LOAD_ID, "invoices.a1.0.parquet", "completed")
    before = _layout(packages)
    assert recovery.restart_interrupted_loads(str(tmp_path / "normalized"), _no_rows) == []
    assert _layout(packages) == before


def test_package_with_refresh_is_left_to_dlt(tmp_path):
    packages = _interrupted_package(
        tmp_path / "normalized", state={"dropped_tables": [{"name": "invoices"}]}
    )
    before = _layout(packages)
    assert recovery.restart_interrupted_loads(str(tmp_path / "normalized"), _no_rows) == []
    assert _layout(packages) == before


@pytest.mark.parametrize("killed_after", range(9))
def test_restart_killed_at_any_step_is_finished_by_the_next_run(
    tmp_path, monkeypatch, killed_after
):
    packages = _interrupted_package(tmp_path / "normalized")
    steps: list[str] = []

    class Killed(BaseException):
        pass

    def counted(operation):
        def run(self, *args, **kwargs):
            if len(steps) == killed_after:
                raise Killed()
            steps.append(operation)
            return original[operation](self, *args, **kwargs)

        return run

    original = {name: getattr(FileStorage, name) for name in ("save", "atomic_rename", "delete")}
    with monkeypatch.context() as patch:
        for name in original:
            patch.setattr(FileStorage, name, counted(name))
        try:
            recovery.restart_interrupted_loads(str(tmp_path / "normalized"), _no_rows)
            killed = False
        except Killed:
            killed = True
    assert killed == (killed_after < 7), steps  # the repair is 7 file operations: a kill after each
    assert recovery.restart_interrupted_loads(str(tmp_path / "normalized"), _no_rows) in (
        [LOAD_ID],
        [],
    )
    assert _layout(packages) == RESTARTED


def test_stale_extracted_copy_is_removed_only_once_its_package_moved_on(tmp_path):
    pipeline = dlt.pipeline(pipeline_name="stale", pipelines_dir=str(tmp_path))
    working = Path(pipeline.working_dir)
    for folder in (
        "normalize/extracted/1.1",
        "normalize/extracted/2.2",
        "normalize/extracted/3.3",
        "load/normalized/1.1",
        "load/new/1.1",
        "load/loaded/2.2",
        "load/new/3.3",
    ):
        (working / folder).mkdir(parents=True)
        (working / folder / "schema.json").write_text("{}")
    stale = recovery.stale_extracted(pipeline)
    assert stale == ["1.1", "2.2"]
    recovery.remove_stale_extracted(str(working / "normalize"), str(working / "load"), stale)
    assert sorted(p.name for p in (working / "normalize/extracted").iterdir()) == [
        "3.3"
    ]  # still to normalize
    assert sorted(p.name for p in (working / "load/new").iterdir()) == ["3.3"]  # dlt's scratch copy
    assert (working / "load/normalized/1.1/schema.json").exists()
    assert (working / "load/loaded/2.2").is_dir()


def test_atomic_write_leftovers_are_removed_and_packages_kept(tmp_path):
    from sources.docusign_billing.recovery import remove_atomic_write_leftovers

    (tmp_path / "e516f1c6eb242be5").write_text("{}")  # a kill inside FileStorage.save_atomic
    (tmp_path / "1795661266.796036").mkdir()  # a package
    (tmp_path / "notes.txt").write_text("not dlt's")
    remove_atomic_write_leftovers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1795661266.796036", "notes.txt"]
