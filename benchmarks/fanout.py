"""Benchmark 2: fan-out over 1,000 accounts at 100 ms per call behind the sandbox's rate limiter.

The real pipeline runs with default settings over real HTTP; the figures are the sandbox's own
counters (requests served, 429s sent), so they cannot flatter the client.
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common

ACCOUNTS, LATENCY = 1_000, 0.1
RATE_LIMIT: tuple[int, float] = (100, 1.0)
"""Sliding window of the sandbox: 100 requests per second, so pacing matters at >10 workers."""
TARGET_SECONDS = 15.0


def worker_count() -> tuple[int, str]:
    """The source's default concurrency, wherever it is declared; 1 means sequential fetching."""
    from sources.docusign_billing import docusign_billing, settings

    function: Any = getattr(docusign_billing, "__wrapped__", docusign_billing)
    try:
        for name, parameter in inspect.signature(function).parameters.items():
            if ("worker" in name or "concurren" in name) and isinstance(parameter.default, int):
                return parameter.default, f"source argument {name}"
    except (TypeError, ValueError):
        pass
    for name in dir(settings):
        value = getattr(settings, name)
        if ("WORKER" in name or "CONCURREN" in name) and isinstance(value, int):
            return value, f"settings.{name}"
    return 1, "none found: sequential"


def fan_out(accounts: int, latency: float, limit: tuple[int, float] | None) -> dict[str, float]:
    """One full run over a fresh sandbox; the sandbox counts requests and 429s."""
    from sources.docusign_billing.sandbox import Sandbox

    stages = common.Stages()
    with (
        tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp,
        Sandbox(accounts=accounts, invoices_per_account=(1, 3), seed=41) as sandbox,
    ):
        common.isolate(Path(tmp))
        sandbox.latency = latency
        if limit:
            sandbox.rate_limit(*limit)
        seconds = common.run_pipeline(
            Path(tmp), stages, **common.token_source_args(sandbox.base_url, sandbox.account_ids)
        )
        return {
            "seconds": seconds,
            "fetch": stages.seconds().get("extracting", float("nan")),
            "requests": len(sandbox.requests),
            "throttled": sandbox.throttled,
        }


def main(
    accounts: int = ACCOUNTS, latency: float = LATENCY, limit: tuple[int, float] = RATE_LIMIT
) -> bool:
    """The limited run is the target; the unlimited one shows what concurrency alone reaches."""
    workers, origin = worker_count()
    ideal = accounts * latency / workers
    rows: list[list[Any]] = []
    for label, run_limit in (("none", None), (f"{limit[0]}/{limit[1]:g} s", limit)):
        r = fan_out(accounts, latency, run_limit)
        rate_floor = accounts * run_limit[1] / run_limit[0] if run_limit else 0.0
        rows.append(
            [
                label,
                r["seconds"],
                r["fetch"],
                r["requests"],
                r["throttled"],
                ideal,
                rate_floor,
                r["seconds"] / max(ideal, rate_floor),
            ]
        )
    common.print_table(
        f"2. fan-out: {accounts:,} accounts, {latency * 1000:.0f} ms latency, {workers} workers ({origin})",
        [
            "rate limit",
            "wall s",
            "extract (fetch) s",
            "requests",
            "429s",
            "ideal acc*lat/workers s",
            "rate-limit floor s",
            "ratio wall/max(ideal, floor)",
        ],
        rows,
    )
    seconds, throttled = rows[-1][1], rows[-1][4]
    ok = seconds < TARGET_SECONDS and throttled == 0
    print(
        f"target < {TARGET_SECONDS:.0f} s with zero 429s (rate-limited run): {common.verdict(ok)}"
    )
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--latency", type=float, default=LATENCY)
    main(**vars(parser.parse_args()))
