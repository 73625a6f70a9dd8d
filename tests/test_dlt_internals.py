"""One test per use of dlt's non-public API (sources/docusign_billing/dlt_internals.py): each fails
when dlt changes what the project relies on, so a dlt upgrade shows up here, not in a table."""

import ast
import importlib
import os
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import dlt
import pytest
from packaging.requirements import Requirement

from sources.docusign_billing import dlt_internals, docusign_billing
from tests.conftest import FAST_RETRIES, REPO, TOKEN_CREDENTIALS

PUBLIC = ("dlt", "dlt.sources", "dlt.destinations", "dlt.common.configuration")
"""Import paths the code outside dlt_internals.py may use (plus exception and typing modules)."""
INTERNAL = (
    "dlt.common.storages",
    "dlt.common.configuration.inject",
    "dlt.common.configuration.container",
    "dlt.common.normalizers",
    "dlt.common.runtime",
    "dlt.common.schema.utils",
    "dlt.destinations.impl",
    "dlt.extract",
    "dlt.normalize",
    "dlt.load",
)


def _dlt_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlt"):
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [a.name for a in node.names if a.name.startswith("dlt")]
    return modules


def test_dlt_internals_are_used_in_one_module_only():
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for folder in ("sources", "pipelines", "dags")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "dlt_internals.py"
        for module in _dlt_imports(path)
        if module.startswith(INTERNAL)
    ]
    assert offenders == []


def test_the_dlt_pin_is_the_tested_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [
        Requirement(r).specifier
        for r in project["dependencies"] + sum(project["optional-dependencies"].values(), [])
        if Requirement(r).name == "dlt"
    ]
    assert pins and all(pin == dlt_internals.TESTED_DLT for pin in pins)
    assert dlt_internals.repairs_vouched_for()  # the suite runs on a tested dlt


@pytest.fixture
def pipeline(tmp_path, sandbox):
    """A real pipeline extracted and normalized once, not loaded."""
    pipeline = dlt.pipeline(
        pipeline_name="internals",
        destination=dlt.destinations.duckdb(str(tmp_path / "x.duckdb")),
        dataset_name="billing",
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    source = docusign_billing(
        account_ids=sandbox.account_ids,
        base_url=sandbox.base_url,
        credentials=TOKEN_CREDENTIALS,
        **FAST_RETRIES,
    )
    pipeline.extract(source)
    pipeline.normalize()
    return pipeline


def test_load_package_layout(pipeline):
    """The folders and files recovery.py reads and moves."""
    working = Path(pipeline.working_dir)
    (load_id,) = pipeline.list_normalized_load_packages()
    package = working / "load" / dlt_internals.NORMALIZED_FOLDER / load_id
    assert (working / "normalize" / dlt_internals.EXTRACTED_FOLDER).is_dir()
    assert {"new_jobs", "started_jobs", "completed_jobs", "failed_jobs"} <= {
        p.name for p in package.iterdir()
    }
    assert (package / "schema_updates.json").is_file()
    packages = dlt_internals.normalized_packages(str(package.parent))
    assert packages.list_packages() == [load_id]
    (job_path, *_) = packages.list_new_jobs(load_id)
    name, job = dlt_internals.parse_job_file_name(job_path)
    assert job.table_name in pipeline.default_schema.tables
    assert name.startswith(f"{job.table_name}.{job.file_id}.{job.retry_count}.{job.file_format}")
    # the outcome a load worker records before dlt moves the job
    packages.save_pending_transition(load_id, name, "completed")
    assert (packages.load_pending_transition(load_id, name) or [None])[0] == "completed"
    packages.clear_pending_transition(load_id, name)
    assert packages.load_pending_transition(load_id, name) is None

    pipeline.load()
    loaded = working / "load" / dlt_internals.LOADED_FOLDER / load_id
    assert pipeline.list_completed_load_packages() == [load_id]
    # applying the schema update renames the file: `initialize_package` (staging truncation)
    # runs only while schema_updates.json is there, which is what the restart relies on
    assert (loaded / "applied_schema_updates.json").is_file()
    assert not (loaded / "schema_updates.json").exists()


def test_dlt_still_fails_on_a_stale_extracted_copy(pipeline):
    """The normalize window recovery.py repairs: when this passes no more, dlt fixed it."""
    working = Path(pipeline.working_dir)
    (load_id,) = pipeline.list_normalized_load_packages()
    shutil.copytree(
        working / "load/normalized" / load_id, working / "normalize/extracted" / load_id
    )
    with pytest.raises(Exception) as error:
        pipeline.normalize()
    assert "Directory not empty" in str(error.value)


def test_atomic_write_temp_file_name(tmp_path, monkeypatch):
    seen = []
    replace = os.replace

    def spy(source, target):
        seen.append(os.path.basename(source))
        return replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    dlt_internals.FileStorage(str(tmp_path)).save("marker.json", "{}")
    assert len(seen) == 1 and dlt_internals.ATOMIC_TEMP_NAME.fullmatch(seen[0])


def test_load_package_state_outside_extract_raises_the_known_error():
    with pytest.raises(dlt_internals.CurrentLoadPackageStateNotAvailable):
        dlt.current.load_package_state()


def test_nested_tables_inherit_the_write_disposition():
    schema = dlt.Schema("x")
    schema.update_table({"name": "parent", "write_disposition": "merge", "columns": {}})
    schema.update_table({"name": "parent__child", "parent": "parent", "columns": {}})
    assert dlt_internals.get_write_disposition(schema.tables, "parent__child") == "merge"


def test_naming_convention_is_dlts_default():
    assert dlt_internals.NamingConvention().normalize_identifier("invoiceItemId") == (
        "invoice_item_id"
    )


def test_duckdb_credentials_carry_global_config():
    credentials = dlt_internals.DuckDbCredentials()
    credentials.global_config = {"threads": 1}
    assert dlt.destinations.duckdb(credentials).config_params["credentials"] is credentials


def test_with_config_resolves_the_sources_section(monkeypatch):
    monkeypatch.setenv("SOURCES__DOCUSIGN_BILLING__SETTING", "from-env")

    @dlt_internals.with_config(sections=("sources", "docusign_billing"))
    def read(setting: str = dlt.config.value) -> str:
        return setting

    assert read() == "from-env"


def test_active_pipeline(tmp_path):
    pipeline = dlt.pipeline(pipeline_name="active", pipelines_dir=str(tmp_path))
    assert dlt_internals.active_pipeline() is pipeline
    pipeline.deactivate()
    assert dlt_internals.active_pipeline() is None


@pytest.mark.parametrize("point", sorted(dlt_internals.STEP_COMMITS))
def test_kill_point_targets_exist(point):
    module, attribute, _ = dlt_internals.STEP_COMMITS[point]
    owner = importlib.import_module(module)
    for part in attribute.split("."):
        owner = getattr(owner, part)
    assert callable(owner)


def test_dlt_signal_flag_and_job_exception_are_where_the_cli_reads_them() -> None:
    """`pipelines/signals.py` asks dlt whether its handlers swallowed a stop signal, and
    `pipelines/pending.py` tells a load job that failed on its content by its exception class."""
    from dlt.common.destination.exceptions import WithJobError

    from sources.docusign_billing.dlt_internals import LoadClientJobException, dlt_signals

    assert dlt_signals.was_signal_received() is False  # no signal in this test process
    assert issubclass(LoadClientJobException, WithJobError)  # carries the failed job's error


def test_pending_package_targets_are_the_datasets_the_packages_were_extracted_for(tmp_path):
    """`pending_package_targets` reads dlt's state snapshot in each package (`run_guard`)."""
    from sources.docusign_billing.dlt_internals import pending_package_targets

    def pipeline(dataset: str) -> dlt.Pipeline:
        target = dlt.destinations.duckdb(str(tmp_path / "targets.duckdb"))
        return dlt.pipeline(
            "targets", destination=target, dataset_name=dataset, pipelines_dir=str(tmp_path)
        )

    @dlt.resource(table_name="t")
    def noted() -> Iterator[dict]:
        # what `run_guard.record_location` does: a key in the package's own state, kept with it
        dlt.current.load_package_state()["state"]["noted_location"] = "here"  # type: ignore[typeddict-unknown-key]
        yield {"a": 1}

    first = pipeline("first")
    first.extract(noted())
    extracted = pending_package_targets(first, "noted_location")
    assert [(t.dataset_name, t.destination_type, t.location) for t in extracted] == [
        ("first", "dlt.destinations.duckdb", "here")
    ]
    first.normalize()
    assert pending_package_targets(pipeline("second"), "noted_location") == extracted


def test_state_versions_are_equal_after_each_load_that_changed_the_state(tmp_path):
    """`state_versions` (`loaded.holds_history`): dlt stores each changed state, version
    included, with the load that carries it; a load without a change stores none. If dlt stopped
    doing either, every daily run would back-fill three years, or a restored file would not."""
    from sources.docusign_billing.dlt_internals import state_versions

    @dlt.resource(table_name="t")
    def counted(value: int) -> Iterator[dict]:
        dlt.current.resource_state()["seen"] = value
        yield {"a": value}

    pipeline = dlt.pipeline(
        "versions",
        destination=dlt.destinations.duckdb(str(tmp_path / "versions.duckdb")),
        dataset_name="d",
        pipelines_dir=str(tmp_path),
    )
    seen = []
    for value in (1, 1, 2):
        pipeline.run(counted(value))
        with pipeline.sql_client() as client:
            local, stored = state_versions(pipeline, client)
        seen.append((local, stored))
    assert seen[0][0] == seen[0][1] and seen[1] == seen[0]  # unchanged state: no new version
    assert seen[2][0] == seen[2][1] and seen[2][0] > seen[1][0]


def test_data_location_tells_duckdb_files_apart_and_paths_of_one_file_together(tmp_path):
    """`data_location` (`run_guard.record_location`): one location per file, whichever way its
    path is written."""
    from sources.docusign_billing.dlt_internals import data_location

    def location(database: str) -> str | None:
        return data_location(_duckdb_pipeline(database, tmp_path))

    os.chdir(tmp_path)
    absolute = location(str(tmp_path / "a.duckdb"))
    assert absolute is not None and absolute == location("a.duckdb")
    assert location(str(tmp_path / "b.duckdb")) != absolute
    assert data_location(dlt.pipeline("unset", pipelines_dir=str(tmp_path))) is None


def test_one_duckdb_file_has_one_recorded_location_whatever_its_path(tmp_path):
    """`run_guard.destination_location`: `..` and symlinks lead to the same file, so to the same
    location (a run into it is not refused as another file's); another file differs."""
    from sources.docusign_billing.run_guard import destination_location

    def location(database: str) -> str | None:
        return destination_location(_duckdb_pipeline(database, tmp_path))

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.duckdb").touch()
    (tmp_path / "link.duckdb").symlink_to(tmp_path / "a.duckdb")
    one = location(str(tmp_path / "a.duckdb"))
    assert one is not None
    assert location(str(tmp_path / "sub" / ".." / "a.duckdb")) == one
    assert location(str(tmp_path / "link.duckdb")) == one
    assert location(str(tmp_path / "b.duckdb")) not in (None, one)


def _duckdb_pipeline(database: str, pipelines_dir: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        "located",
        destination=dlt.destinations.duckdb(database),
        dataset_name="d",
        pipelines_dir=str(pipelines_dir),
    )


def test_dlt_creates_no_table_once_the_destination_holds_the_schema_version(tmp_path):
    """`create_missing_tables`: a schema that knows tables `a` and `b` (loaded into one file),
    stored into a second file by a load of `a` alone: dlt's migration is then skipped for a
    package of `b` (its hash is stored), and `create_missing_tables` creates `b`."""

    def into(file_name: str) -> dlt.Pipeline:
        destination = dlt.destinations.duckdb(str(tmp_path / file_name))
        return dlt.pipeline("internals_tables", destination=destination, dataset_name="d")

    into("first.duckdb").run(
        [dlt.resource([{"x": 1}], name="a"), dlt.resource([{"y": 1}], name="b")]
    )
    second = into("second.duckdb")
    second.run(dlt.resource([{"x": 2}], name="a"))
    second.extract(dlt.resource([{"y": 2}], name="b"))
    second.normalize()

    def tables() -> set[str]:
        with second.sql_client() as client:
            rows = client.execute_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'd'"
            )
        return {name for (name,) in rows or []}

    assert "b" not in tables()  # dlt's own migration of `b` is skipped: its hash is stored
    assert dlt_internals.create_missing_tables(second)
    assert "b" in tables()
    second.load()
    with second.sql_client() as client:
        assert client.execute_sql("SELECT y FROM b") == [(2,)]
    assert not dlt_internals.create_missing_tables(second)  # nothing missing: nothing done
