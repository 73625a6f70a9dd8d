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
    ok = medians["docusign-billing run"][0] - floor <= TARGET_DELTA
    print(f"target run within {TARGET_DELTA} s of the floor: {common.verdict(ok)}")
    return ok


if __name__ == "__main__":
    common.run_from_command_line(main, __doc__, runs=RUNS)
