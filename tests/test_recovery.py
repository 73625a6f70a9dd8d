"""`recovery.recover` and the row deletes of `recovery.py` on real pipeline folders and a real
DuckDB file, in-process and in about a second: the states a kill leaves are made by hand (the
kill tests that produce them for real are in test_interrupted.py, minutes each). These are the
tests `scripts/mutation.sh recovery` runs per mutant, beside test_interrupted.py's synthetic
package tests.

A tiny pipeline stands in for the product's: `invoices` merged through staging (like every
keyed table), `items` appended with `_dlt_load_id` (like the invoice items), and dlt's own
`_dlt_pipeline_state` (dlt 1.31 writes its row at load time, not as a job of the package).
"""

import logging
import os
import shutil
from pathlib import Path

import dlt
import pytest

from sources.docusign_billing import recovery

INVOICES, ITEMS, STATE = "invoices", "items", "_dlt_pipeline_state"


@dlt.source(name="tiny")
def _tiny(version: int):
    dlt.current.source_state()["version"] = version  # a state row in every package

    @dlt.resource(write_disposition="merge", primary_key="id")
    def invoices():
        yield [{"id": str(n), "version": version} for n in range(3)]

    @dlt.resource(write_disposition="append")
    def items():
        yield [{"id": str(n), "version": version} for n in range(2)]

    return invoices, items


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="tiny",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "tiny.duckdb")),
        dataset_name="data",
    )


def _rows(pipeline: dlt.Pipeline, sql: str) -> list[tuple]:
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(sql) or []]


def _count(pipeline: dlt.Pipeline, table: str, load_id: str) -> int:
    sql = f"SELECT count(*) FROM data.{table} WHERE _dlt_load_id = '{load_id}'"
    return _rows(pipeline, sql)[0][0]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str, str]:
    """A pipeline folder and DuckDB file with one loaded run, and a second run extracted and
    normalized, not loaded; made once, copied by each test (dlt's steps take seconds)."""
    root = tmp_path_factory.mktemp("template")
    pipeline = _pipeline(root)
    pipeline.run(_tiny(1))
    (first,) = pipeline.list_completed_load_packages()
    second = _normalized(pipeline, 2)
    return root, first, second


def _second_package(tmp_path: Path, template) -> tuple[dlt.Pipeline, str, str]:
    """A copy of `template`: the pipeline, the loaded run's id and the normalized one's."""
    root, first, second = template
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    return _pipeline(tmp_path), first, second


def _normalized(pipeline: dlt.Pipeline, version: int) -> str:
    """Extracts and normalizes one more run (not loaded); its load id."""
    before = set(pipeline.list_normalized_load_packages())
    pipeline.extract(_tiny(version))
    pipeline.normalize()
    (load_id,) = set(pipeline.list_normalized_load_packages()) - before
    return load_id


def _package(pipeline: dlt.Pipeline, load_id: str) -> Path:
    return Path(pipeline.working_dir) / "load" / "normalized" / load_id


def _jobs(package: Path, folder: str) -> list[str]:
    return sorted(p.name.split(".")[0] for p in (package / folder).iterdir())


def _committed_unrecorded(pipeline: dlt.Pipeline, load_id: str) -> None:
    """What a kill during the load leaves: the schema update applied, the invoices' staging COPY
    and the items' append started (the items' rows committed) and neither outcome recorded."""
    package = _package(pipeline, load_id)
    os.rename(package / "schema_updates.json", package / "applied_schema_updates.json")
    for job in (package / "new_jobs").iterdir():
        if job.name.split(".")[0] in (INVOICES, ITEMS):
            job.rename(package / "started_jobs" / job.name)
    _insert_rows(pipeline, load_id)


def _insert_rows(pipeline: dlt.Pipeline, load_id: str) -> None:
    """Rows carrying `load_id` in every table: appended items, a merged invoice, a state row."""
    with pipeline.sql_client() as client:
        for n in range(2):
            client.execute_sql(
                "INSERT INTO data.items (id, version, _dlt_load_id, _dlt_id) VALUES (%s, 2, %s, %s)",
                str(n),
                load_id,
                f"replayed-{n}",
            )
        client.execute_sql(
            "UPDATE data.invoices SET _dlt_load_id = %s WHERE id = '0'",
            load_id,
        )
        client.execute_sql(
            "INSERT INTO data._dlt_pipeline_state SELECT * REPLACE (%s AS _dlt_load_id,"
            " 'replayed' AS _dlt_id) FROM data._dlt_pipeline_state LIMIT 1",
            load_id,
        )


def test_a_folder_without_leftovers_is_left_as_it_is(template, tmp_path, caplog):
    """Removed to see it fail: `_needs_restart` answering True for every package (the clean
    package is then restarted and reported)."""
    pipeline, _, second = _second_package(tmp_path, template)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with caplog.at_level(logging.INFO, logger=recovery.__name__):
        done = recovery.recover(pipeline)
    assert done == recovery.Recovery() and done.messages() == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert caplog.records == []
    pipeline.load()
    assert _count(pipeline, ITEMS, second) == 2


def test_recover_repairs_both_leftovers_says_so_and_the_load_then_happens_once(
    template, tmp_path, caplog
):
    """A kill in dlt's normalize window (extracted copy left beside the normalized package) and
    one during its load (staging COPY and items append committed, unrecorded): `recover` removes
    the stale copy, deletes the package's appended item rows (never dlt's state rows, never
    merged rows), restarts the staging work, logs one line per repair, and the load that
    follows leaves exactly one copy of the run.

    Removed to see it fail: the `if stale:` repair in `recover` (the copy stays); the
    `remove_appended_rows` call in `restart_interrupted_loads` (items loaded twice); the
    `log.info` of `recover` (no line).
    """
    pipeline, first, second = _second_package(tmp_path, template)
    working = Path(pipeline.working_dir)
    shutil.copytree(_package(pipeline, second), working / "normalize/extracted" / second)
    (working / "load/new" / second).mkdir(parents=True)  # a failed re-normalization's scratch
    _committed_unrecorded(pipeline, second)
    (working / "load/normalized/0123456789abcdef").write_text("{}")  # a kill in save_atomic

    with caplog.at_level(logging.INFO, logger=recovery.__name__):
        done = recovery.recover(pipeline)

    assert done == recovery.Recovery(stale_extracted=[second], restarted_loads=[second])
    assert done.messages() == [
        f"removed the stale extracted copy of already normalized package(s) {second}",
        f"an interrupted load is restarted from a clean staging dataset: package(s) {second}",
    ]
    assert [r.getMessage() for r in caplog.records] == done.messages()
    assert not (working / "normalize/extracted" / second).exists()
    assert not (working / "load/new" / second).exists()
    assert sorted(p.name for p in (working / "load/normalized").iterdir()) == [second]
    package = _package(pipeline, second)
    assert _jobs(package, "new_jobs") == [INVOICES, ITEMS]
    assert _jobs(package, "started_jobs") == []
    assert (package / "schema_updates.json").exists()
    assert not (package / "applied_schema_updates.json").exists()
    assert _count(pipeline, ITEMS, second) == 0  # the replayed append is gone
    assert _count(pipeline, ITEMS, first) == 2  # an earlier run's rows are not
    assert _count(pipeline, INVOICES, second) == 1  # merged rows are the merge's to replace
    assert _count(pipeline, STATE, second) == 1  # dlt restores state from one row anyway
    assert recovery.recover(pipeline) == recovery.Recovery()  # nothing left to repair

    pipeline.load()
    assert _count(pipeline, ITEMS, second) == 2
    assert _rows(pipeline, "SELECT id, version FROM data.invoices ORDER BY id") == [
        ("0", 2),
        ("1", 2),
        ("2", 2),
    ]


@pytest.mark.parametrize("leftovers", ["stale", "interrupted", "both"])
def test_on_an_untested_dlt_a_needed_repair_is_refused_and_nothing_touched(
    template, tmp_path, monkeypatch, leftovers
):
    """Either leftover alone is refused too; the error names every package once, in order.

    Removed to see it fail: the `repairs_vouched_for()` check in `recover` (the repair runs), or
    `and` for its `or`."""
    pipeline, _, second = _second_package(tmp_path, template)
    third = _normalized(pipeline, 3)
    named = []
    if leftovers != "interrupted":  # the third run's normalize was killed in dlt's window
        working = Path(pipeline.working_dir)
        shutil.copytree(_package(pipeline, third), working / "normalize/extracted" / third)
        named.append(third)
    if leftovers != "stale":
        _committed_unrecorded(pipeline, second)
        named.insert(0, second)
    monkeypatch.setattr(recovery, "repairs_vouched_for", lambda: False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(recovery.UnrepairedPackageError) as error:
        recovery.recover(pipeline)
    assert str(error.value) == (
        f"pipeline tiny holds load package(s) {', '.join(named)} of an interrupted run that"
        f" this dlt version ({dlt.__version__}) cannot be trusted to resume without loading"
        " data twice; run once with the dlt version pinned in pyproject.toml, or discard the"
        " package(s) with `dlt pipeline tiny drop-pending-packages` (the next run extracts"
        " their data again)"
    )
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_pipeline_that_never_ran_needs_nothing(tmp_path):
    """Removed to see it fail: the `isdir` check of `recover` (no `load/normalized` yet)."""
    assert recovery.recover(_pipeline(tmp_path)) == recovery.Recovery()


def test_messages_name_every_package():
    done = recovery.Recovery(stale_extracted=["1.1", "2.2"], restarted_loads=["3.3", "4.4"])
    assert done.messages() == [
        "removed the stale extracted copy of already normalized package(s) 1.1, 2.2",
        "an interrupted load is restarted from a clean staging dataset: package(s) 3.3, 4.4",
    ]


def test_on_an_untested_dlt_a_folder_without_leftovers_runs(template, tmp_path, monkeypatch):
    """Removed to see it fail: `(stale or interrupted)` in the refusal's condition."""
    pipeline, _, _ = _second_package(tmp_path, template)
    monkeypatch.setattr(recovery, "repairs_vouched_for", lambda: False)
    assert recovery.recover(pipeline) == recovery.Recovery()


def test_remove_appended_rows_deletes_only_the_packages_appended_rows(template, tmp_path):
    """What a package set aside (`pipelines/failures.py`) leaves: its appended rows are deleted
    by `_dlt_load_id`; merged tables and dlt's own tables are not touched.

    Removed to see it fail: the `_dlt_load_id` condition of `remove_rows` (every row deleted); the
    `!= "append"` test of `_restartable_tables` (the merged invoice deleted)."""
    pipeline, first, second = _second_package(tmp_path, template)
    _insert_rows(pipeline, second)
    recovery.remove_appended_rows(pipeline, second)
    assert (_count(pipeline, ITEMS, second), _count(pipeline, ITEMS, first)) == (0, 2)
    assert _count(pipeline, INVOICES, second) == 1
    assert _count(pipeline, STATE, second) == 1


def test_remove_rows_skips_a_table_never_created(template, tmp_path):
    """Removed to see it fail: the `except DatabaseUndefinedRelation` of `remove_rows`."""
    pipeline, first, second = _second_package(tmp_path, template)
    _insert_rows(pipeline, second)
    recovery.remove_rows(pipeline, second, {"never_created", ITEMS, "a_table_after_it"})
    assert (_count(pipeline, ITEMS, second), _count(pipeline, ITEMS, first)) == (0, 2)


def test_only_packages_that_may_hold_a_replayed_copy_are_restarted(template, tmp_path, caplog):
    """Five interrupted packages, in load order: a started merge `.sql` job without an outcome
    (re-running it is idempotent), a started job whose failure was recorded, a package
    `abort_packages()` was asked for, one made with a refresh mode (truncated tables), then one
    that needs the repair. Only the last is restarted; the refresh one is named in a warning.

    Removed to see it fail: the `== "sql"` skip of `_needs_restart`; `"failed"` among the
    recorded outcomes; the abort-flag skip of `_interrupted` (or `break` for its `continue`);
    the `truncated_tables` check of `restart_interrupted_loads` (or `break` for its
    `continue`); its warning.
    """
    pipeline, _, merge_sql = _second_package(tmp_path, template)
    failed, aborted, refresh, needed = (_normalized(pipeline, n) for n in range(3, 7))
    packages = recovery.normalized_packages(str(Path(pipeline.working_dir) / "load/normalized"))
    for load_id in (merge_sql, failed, aborted, refresh, needed):
        package = _package(pipeline, load_id)
        os.rename(package / "schema_updates.json", package / "applied_schema_updates.json")
        for job in sorted((package / "new_jobs").iterdir()):
            if job.name.startswith(INVOICES) and load_id != merge_sql:
                job.rename(package / "started_jobs" / job.name)
                if load_id == failed:
                    packages.save_pending_transition(load_id, job.name, "failed", "a bad row")
            else:
                job.rename(package / "completed_jobs" / job.name)
    (_package(pipeline, merge_sql) / "started_jobs/invoices.0123456789.0.sql").write_text("--")
    packages.set_abort_flag(aborted)
    state = packages.get_load_package_state(refresh)
    packages.save_load_package_state(refresh, {**state, "truncated_tables": [{"name": INVOICES}]})
    before = {
        n: sorted(p.name for p in _package(pipeline, n).rglob("*"))
        for n in (merge_sql, failed, aborted, refresh)
    }

    with caplog.at_level(logging.INFO, logger=recovery.__name__):
        done = recovery.recover(pipeline)

    assert done == recovery.Recovery(restarted_loads=[needed])
    assert {n: sorted(p.name for p in _package(pipeline, n).rglob("*")) for n in before} == before
    assert [(r.levelname, r.getMessage()) for r in caplog.records][0] == (
        "WARNING",
        f"load package {refresh} was interrupted after a load job may have committed, but it"
        " drops or truncates tables (refresh): left to dlt, which may load that job twice",
    )
