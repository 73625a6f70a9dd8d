"""Run every benchmark (or `--only` some) and end with one line per target: met or MISSED.

`python -m benchmarks` from the repository root; `bash benchmarks/run.sh` also sets up .venv.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable

from benchmarks import common, fanout, growth, history, startup, throughput

QUICK: dict[str, Callable[[], bool]] = {
    "throughput": lambda: throughput.main((1_000, 10_000)),
    "fanout": lambda: fanout.main(accounts=100),
    "startup": lambda: startup.main(runs=2),
    "growth": lambda: growth.main(runs=4, accounts=20),
    "history": lambda: history.main(accounts=50),
}
FULL: dict[str, Callable[[], bool]] = {
    "throughput": throughput.main,
    "fanout": fanout.main,
    "startup": startup.main,
    "growth": growth.main,
    "history": history.main,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", nargs="+", choices=list(FULL), help="run only these benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="small scales: a smoke test of the harness"
    )
    args = parser.parse_args()
    suite = QUICK if args.quick else FULL
    print("machine: " + ", ".join(f"{k} {v}" for k, v in common.machine().items()), flush=True)
    started = time.perf_counter()
    outcome: dict[str, str] = {}
    for name in args.only or list(suite):
        try:
            outcome[name] = common.verdict(suite[name]())
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            outcome[name] = "ERROR"
    print(
        f"\nsummary ({time.perf_counter() - started:.0f} s): "
        + ", ".join(f"{k} {v}" for k, v in outcome.items())
    )
    return 0 if all(v != "ERROR" for v in outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
