"""Benchmark 3: start-up cost of `docusign-billing run` for one small account vs `import dlt`.

Every command runs once unmeasured first (page cache, .pyc files), then `RUNS` times; medians
are compared. The runs share one working folder like a scheduled job does, so they are repeat
runs of an existing pipeline. `import pipelines.cli` is printed between the two to split import
cost from work.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import common

RUNS = 5
TARGET_DELTA = 1.0

# A plain dlt pipeline loading one row into each of N merge tables of a DuckDB file: what any
# dlt pipeline of that shape pays beyond `import dlt` (dlt's extract, normalize and load modules,
# config resolution, a job and a merge per table). A one-account run loads 12 tables (every
# resource; 3 with `--resources past_due`), so `run` minus this is the product's own cost.
PLAIN_DLT = """
import sys, dlt
tables = int(sys.argv[1])
rows = [dlt.resource([{"id": 1, "v": "x"}], name=f"t{i}", write_disposition="merge",
        primary_key="id") for i in range(tables)]
dlt.pipeline("plain", destination=dlt.destinations.duckdb("plain.duckdb"), dataset_name="d").run(rows)
"""


def main(runs: int = RUNS) -> bool:
    from sources.docusign_billing.sandbox import ACCESS_TOKEN, Sandbox

    script = Path(sys.executable).parent / "docusign-billing"
    with (
        tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp,
        Sandbox(accounts=1, invoices_per_account=3, seed=5) as sandbox,
    ):
        env = common.isolate(Path(tmp))
        env.update(
            SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS=sandbox.account_ids[0],
            SOURCES__DOCUSIGN_BILLING__BASE_URL=sandbox.base_url,
            SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH="token",
            SOURCES__DOCUSIGN_BILLING__CREDENTIALS__ACCESS_TOKEN=ACCESS_TOKEN,
            # the console script must run this tree's code, even from a copy of the repo
            PYTHONPATH=os.pathsep.join(filter(None, [str(common.REPO), env.get("PYTHONPATH")])),
        )
        commands = {
            "python -c 'import dlt' (floor)": [sys.executable, "-c", "import dlt"],
            "python -c 'import pipelines.cli'": [sys.executable, "-c", "import pipelines.cli"],
            "docusign-billing run": [str(script), "run"],
            # the same run with only the resource this benchmark measured before the billing
            # history: what the four other resources' calls and tables add to a small run
            "docusign-billing run --resources past_due": [
                str(script),
                "run",
                "--resources",
                "past_due",
            ],
            "plain dlt pipeline, 12 merge tables": [sys.executable, "-c", PLAIN_DLT, "12"],
            "plain dlt pipeline, 3 merge tables": [sys.executable, "-c", PLAIN_DLT, "3"],
        }
        medians = {}
        for label, command in commands.items():
            times: list[float] = common.wall_times(command, runs + 1, cwd=tmp, env=env)[1:]
            medians[label] = (statistics.median(times), min(times), max(times))
    floor = medians["python -c 'import dlt' (floor)"][0]
    common.print_table(
        f"3. start-up: median of {runs} runs after one warm-up",
        ["command", "median s", "min s", "max s", "minus floor s"],
        [[label, med, low, high, med - floor] for label, (med, low, high) in medians.items()],
    )
    # Judged on the workload the target was set for (issue #12: a run loaded past-due only, 3
    # tables). A run of every resource loads 12 tables; a plain dlt pipeline of 12 merge tables
    # alone is +0.6-1.1 s over the floor on this machine, so it is shown beside its reference.
    judged = "docusign-billing run --resources past_due"
    ok = medians[judged][0] - floor <= TARGET_DELTA
    print(f"target `{judged}` within {TARGET_DELTA} s of the floor: {common.verdict(ok)}")
    for run, plain in (
        ("docusign-billing run", "plain dlt pipeline, 12 merge tables"),
        ("docusign-billing run --resources past_due", "plain dlt pipeline, 3 merge tables"),
    ):
        own = medians[run][0] - medians[plain][0]
        print(f"{run}: {own:+.2f} s beyond a plain dlt pipeline of its tables (shown, not judged)")
    return ok


if __name__ == "__main__":
    common.run_from_command_line(main, __doc__, runs=RUNS)
