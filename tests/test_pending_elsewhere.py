"""A package left pending for one dataset is never loaded into another one.

dlt loads pending packages into the pipeline's current dataset. A package extracted for dataset A
sends the items A did not hold; loaded into B, which holds them already, they were appended twice
(found with `--dataset information_schema`, whose load fails and leaves the package pending).
The real console script, the sandbox over HTTP and a real DuckDB file.
"""

import os
import subprocess
import sys
from pathlib import Path

import dlt
import duckdb

from sources.docusign_billing.dlt_internals import pending_package_targets
from tests.helpers_reliability import cli, cli_in_process, with_repo_on_path

ITEMS = "past_due_invoices__invoice_items"


def _items(duckdb_file: str, dataset: str) -> tuple[int, int]:
    """(rows, distinct items) of the dataset's past-due items."""
    with duckdb.connect(duckdb_file, read_only=True) as db:
        (row,) = db.execute(
            f"SELECT count(*), count(DISTINCT (_dlt_parent_id, invoice_item_id)) FROM {dataset}.{ITEMS}"
        ).fetchall()
    return row[0], row[1]


def _killed_while_copying_items(*run_args: str, env: dict[str, str], cwd: Path) -> None:
    """`docusign-billing run RUN_ARGS` killed (SIGKILL) while it copies the items into place:
    committed, not recorded, its package left pending."""
    killed = subprocess.run(
        [sys.executable, "-m", "tests.helpers_killer", f"load-copy:{ITEMS}", "run", *run_args],
        env=with_repo_on_path(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr


def test_a_system_schema_as_dataset_is_refused_before_anything_runs(
    sandbox, cli_env, tmp_path, monkeypatch, capsys
):
    """The hostile sequence: `other`, then a system schema (failed at load and left its package
    pending), then `other` again (appended every item a second time). The refusals in-process
    (`cli.main`): they happen before any pipeline exists."""
    env, duckdb_file = cli_env(sandbox), str(tmp_path / "invoices.duckdb")
    common = ["--duckdb-file", duckdb_file]
    assert cli("run", *common, "--dataset", "other", env=env, cwd=tmp_path).returncode == 0
    requests = len(sandbox.requests)
    monkeypatch.chdir(tmp_path)
    for name in ["information_schema", "Information_Schema", "pg_catalog", "temp"]:
        refused = cli_in_process(monkeypatch, capsys, "run", *common, "--dataset", name, env=env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().splitlines() == [
            f"docusign-billing: configuration error: the dataset name {name!r} is a system schema"
            " of the databases (information_schema, pg_catalog, pg_toast, system, temp are"
            " reserved): choose another"
        ]
    assert len(sandbox.requests) == requests  # refused before the API was asked
    again = cli("run", *common, "--dataset", "other", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rows, distinct = _items(duckdb_file, "other")
    assert rows == distinct > 0


def test_a_package_pending_for_another_dataset_is_refused_until_finished(
    sandbox, cli_env, tmp_path
):
    """Killed while loading into `elsewhere` (items committed, not recorded); a run into `other`
    refuses with one line (exit 2) and loads nothing; a run into `elsewhere` finishes the
    package, and then `other` loads again; no item twice in either dataset."""
    env = cli_env(sandbox)
    pipelines_dir, duckdb_file = str(tmp_path / "pipelines"), str(tmp_path / "invoices.duckdb")
    common = ["--pipelines-dir", pipelines_dir, "--duckdb-file", duckdb_file]
    assert cli("run", *common, "--dataset", "other", env=env, cwd=tmp_path).returncode == 0
    before = _items(duckdb_file, "other")
    _killed_while_copying_items(*common, "--dataset", "elsewhere", env=env, cwd=tmp_path)
    pipeline = dlt.attach("docusign_billing", pipelines_dir=pipelines_dir)
    assert [t.dataset_name for t in pending_package_targets(pipeline)] == ["elsewhere"]

    refused = cli("run", *common, "--dataset", "other", env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("docusign-billing: configuration error: pipeline docusign_billing")
    assert "pending for dataset 'elsewhere'" in line and "not dataset 'other'" in line
    assert (
        f"dlt -y pipeline --pipelines-dir {pipelines_dir} docusign_billing abort-packages" in line
    )
    assert _items(duckdb_file, "other") == before

    finished = cli("run", *common, "--dataset", "elsewhere", env=env, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    again = cli("run", *common, "--dataset", "other", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _items(duckdb_file, "other") == before
    rows, distinct = _items(duckdb_file, "elsewhere")
    assert rows == distinct == before[1]


def test_a_package_pending_for_another_duckdb_file_is_refused_until_finished(
    sandbox, cli_env, tmp_path
):
    """The same dataset name in another DuckDB file: killed while loading into `a.duckdb`, a run
    into `b.duckdb` refuses with one line naming this run's file (exit 2) and loads nothing; a
    run into `a.duckdb` finishes the package, then `b.duckdb` loads; no item twice in either.
    The run that finishes it names a.duckdb by a relative symbolic link: the same file, not
    refused. Removed to see it fail: `run_guard.record_location` (the package then loaded into b);
    the `realpath` in `run_guard.destination_location` (the link was refused as another file)."""
    env = cli_env(sandbox)
    pipelines_dir = str(tmp_path / "pipelines")
    file_a, file_b = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")

    def run(duckdb_file: str) -> subprocess.CompletedProcess:
        args = ["--pipelines-dir", pipelines_dir, "--duckdb-file", duckdb_file]
        return cli("run", *args, env=env, cwd=tmp_path)

    assert run(file_b).returncode == 0
    before = _items(file_b, "billing")
    _killed_while_copying_items(
        "--pipelines-dir", pipelines_dir, "--duckdb-file", file_a, env=env, cwd=tmp_path
    )

    refused = run(file_b)
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "pending for dataset 'billing' in another duckdb location" in line
    assert f"not this run's (dataset 'billing' in {file_b})" in line
    assert _items(file_b, "billing") == before

    os.symlink(file_a, tmp_path / "link-to-a.duckdb")  # the same file by another name
    finished = run("link-to-a.duckdb")
    assert finished.returncode == 0, finished.stderr
    assert run(file_b).returncode == 0
    assert _items(file_b, "billing") == before
    rows, distinct = _items(file_a, "billing")
    assert rows == distinct == before[1]
