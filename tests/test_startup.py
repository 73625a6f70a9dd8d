"""Start-up (issue #12): each command imports only what it uses, in a fresh process as users run it.

The figure itself is `benchmarks/startup.py`'s (no timed tests); these pin what it rests on: the
modules a command's process holds when it exits.
"""

import json
import subprocess
import sys
from pathlib import Path

from sources.docusign_billing.resources import RESOURCES
from tests.conftest import REPO

CLI = str(Path(sys.executable).with_name("docusign-billing"))
NOT_FOR_A_RUN = {"pandas", "matplotlib", "pipelines.report", "pipelines.report_charts"}
"""What only `report` and `query` use."""
SQLGLOT_DIALECT = "sqlglot.generators.duckdb"
"""The views' dialect in sqlglot (dlt imports sqlglot's core itself): only to generate their DDL."""


MODULES = "modules at exit: "
AT_EXIT = (
    "import atexit, json, sys\n"
    f"atexit.register(lambda: print({MODULES!r} + json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
)
CONSOLE_SCRIPT = "from pipelines.cli import main\nsys.exit(main())"
"""What the `docusign-billing` console script runs (`main()` parses `sys.argv`)."""


def imported(
    code: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> set[str]:
    """The modules a fresh `python -c code args` holds when it exits; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-c", AT_EXIT + code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith(MODULES)]
    return set(json.loads(line.removeprefix(MODULES)))


def test_importing_the_cli_imports_no_command_s_own_modules() -> None:
    """Fails if `pipelines/cli.py` imports the pipeline, the views or the report at the top."""
    modules = imported("import pipelines.cli")
    unwanted = NOT_FOR_A_RUN | {"pipelines.docusign_billing_pipeline", "pipelines.views"}
    assert not modules & unwanted, modules & unwanted
    assert SQLGLOT_DIALECT not in modules
    assert "sources.docusign_billing" in modules  # the check reads real output


def test_help_imports_neither_the_pipeline_nor_duckdb_nor_pandas() -> None:
    modules = imported(CONSOLE_SCRIPT, "--help")
    unwanted = NOT_FOR_A_RUN | {"duckdb", "pipelines.views", "pipelines.docusign_billing_pipeline"}
    assert not modules & unwanted, modules & unwanted


def test_a_rerun_imports_neither_pandas_nor_the_views_sql_generator(
    sandbox, cli_env, tmp_path
) -> None:
    """pyarrow would import pandas at the run's first conversion of a Python value
    (`pipelines/arrow_without_pandas.py`); the views' DDL is generated once (`pipelines/views.py`).
    Every resource, so every view exists; the data loaded is checked by the summary line."""
    env = cli_env(sandbox, SOURCES__DOCUSIGN_BILLING__RESOURCES=",".join(RESOURCES))
    first = imported(CONSOLE_SCRIPT, "run", env=env, cwd=tmp_path)
    assert not first & NOT_FOR_A_RUN, first & NOT_FOR_A_RUN
    assert SQLGLOT_DIALECT in first  # the first run generates the views' DDL
    again = imported(CONSOLE_SCRIPT, "run", env=env, cwd=tmp_path)
    assert not again & (NOT_FOR_A_RUN | {SQLGLOT_DIALECT}), again & NOT_FOR_A_RUN
    rows = subprocess.run(
        [CLI, "query", "SELECT count(*) FROM billing.past_due_aging"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert rows.returncode == 0 and rows.stdout.split()[-1] == str(len(sandbox.account_ids))


PYARROW_WITHOUT_PANDAS = """
import sys
from pipelines.arrow_without_pandas import pyarrow_without_pandas
pyarrow_without_pandas()
import pyarrow as pa, pyarrow.compute as pc
pc.equal(pa.array(["a", None]), "a")
pa.scalar(1)
assert "pandas" not in sys.modules, "a conversion imported pandas"
frame = pa.table({"x": [1.5, None]}).to_pandas()  # asked for: pandas is imported
import pandas as pd
assert frame["x"].isna().tolist() == [False, True]
assert pa.array(pd.Series([1.0, None])).null_count == 1  # pyarrow knows pandas again
"""


def test_pyarrow_imports_pandas_only_when_asked_after_pyarrow_without_pandas() -> None:
    """Fails if pyarrow changes how it looks for pandas: the first conversion found no pandas
    and one did import it, or pandas asked for explicitly is no longer found afterwards."""
    result = subprocess.run(
        [sys.executable, "-c", PYARROW_WITHOUT_PANDAS],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


TEARDOWN_PROBE = """
import atexit, os, sys
class Freed:
    def __del__(self, write=os.write):  # print() may be gone by then
        write(2, b"freed by the teardown\\n")
probe = Freed()  # a global of __main__: only Python's teardown frees it
atexit.register(lambda: print("exit handler ran", file=sys.stderr))
"""


def test_the_console_script_ends_without_python_s_teardown_after_its_exit_handlers(
    sandbox, cli_env, tmp_path
) -> None:
    """Fails if `cli._end_process` goes (the teardown costs a run 0.3-0.9 s: benchmarks/RESULTS.md),
    or if it skipped the exit handlers or lost output. `main(argv)` called with arguments (tests,
    a caller's own process) returns as before, and its process tears down: the probe's check."""

    def run(entry: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", TEARDOWN_PROBE + entry, "run"],
            env=cli_env(sandbox),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    console = run(CONSOLE_SCRIPT)
    assert console.returncode == 0, console.stderr
    assert f"loaded {len(sandbox.account_ids)} accounts" in console.stdout  # flushed
    assert "exit handler ran" in console.stderr
    assert "freed by the teardown" not in console.stderr
    called = run("from pipelines.cli import main\nsys.exit(main(sys.argv[1:]))")
    assert called.returncode == 0, called.stderr
    assert "exit handler ran" in called.stderr and "freed by the teardown" in called.stderr
