"""Benchmark 5: every billing resource over 1,000 accounts at 100 ms per call, with DocuSign's limits.

Two runs of the real pipeline over real HTTP, default settings, into one DuckDB file: the
three-year back-fill (first run), then the daily incremental run one day later. The sandbox
answers with DocuSign's per-account limits (3,000/hour, 200 per 30 s: `limit_accounts()`
defaults, headers on every answer, HTTP 400 when spent), and its own counters and request log
give the figures, so they cannot flatter the client:

- floor = requests served x latency / workers (the time the requests take at full concurrency);
  targets: wall <= 1.2 x floor, no throttled answer (400 or 429);
- daily run: at most one request per account and resource (nothing needs paging at the default
  page size), i.e. the windows already fetched are not fetched again beyond the look-back.
"""

from __future__ import annotations

import inspect
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.fanout import worker_count

ACCOUNTS, LATENCY = 1_000, 0.1
TARGET_RATIO = 1.2


def has_billing_resources() -> bool:
    """Whether the source takes `resources` (the billing endpoints beside past-due)."""
    from sources.docusign_billing import docusign_billing

    function: Any = getattr(docusign_billing, "__wrapped__", docusign_billing)
    return "resources" in inspect.signature(function).parameters


def measure(accounts: int, latency: float, workers: int) -> list[dict[str, Any]]:
    """The back-fill and the daily run over one sandbox whose clock moves on by a day between."""
    from sources.docusign_billing.sandbox import Sandbox

    today = datetime.now(UTC).date()
    figures = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-history-") as tmp,
        Sandbox(
            accounts=accounts, invoices_per_account=(1, 3), seed=43, today=today - timedelta(1)
        ) as sandbox,
    ):
        common.isolate(Path(tmp))
        sandbox.latency = latency
        sandbox.limit_accounts()
        args = common.token_source_args(sandbox.base_url, sandbox.account_ids)
        for label in ("back-fill (first run)", "daily (next day)"):
            sandbox.requests.clear()
            throttled_before = sandbox.throttled
            stages = common.Stages()
            seconds = common.run_pipeline(Path(tmp), stages, **args)
            per_resource = Counter((r["account_id"], r["resource"]) for r in sandbox.requests)
            served = len(sandbox.requests)
            figures.append(
                {
                    "run": label,
                    "seconds": seconds,
                    "fetch": stages.seconds().get("extracting", float("nan")),
                    "requests": served,
                    "resources": len({r for _, r in per_resource}),
                    "max_per_account_resource": max(per_resource.values(), default=0),
                    "throttled": sandbox.throttled - throttled_before,
                    "floor": served * latency / workers,
                }
            )
            sandbox.today = today
    return figures


def main(accounts: int = ACCOUNTS, latency: float = LATENCY) -> bool:
    workers, origin = worker_count()
    if not has_billing_resources():
        print(
            "5. billing history: the source has no `resources` argument yet (issue #10 part B):"
            " nothing to measure"
        )
        return False
    figures = measure(accounts, latency, workers)
    rows = [
        [
            f["run"],
            f["seconds"],
            f["fetch"],
            f["requests"],
            f["resources"],
            f["max_per_account_resource"],
            f["throttled"],
            f["floor"],
            f["seconds"] / f["floor"],
        ]
        for f in figures
    ]
    common.print_table(
        f"5. billing history: {accounts:,} accounts, every resource, {latency * 1000:.0f} ms"
        f" latency, {workers} workers ({origin}), DocuSign's per-account limits",
        [
            "run",
            "wall s",
            "extract (fetch) s",
            "requests",
            "resources",
            "max requests per account+resource",
            "throttled (400/429)",
            "floor requests*lat/workers s",
            "ratio wall/floor",
        ],
        rows,
    )
    backfill, daily = figures
    ok = (
        all(f["seconds"] <= TARGET_RATIO * f["floor"] and f["throttled"] == 0 for f in figures)
        and daily["max_per_account_resource"] <= 1
    )
    print(
        f"targets: wall <= {TARGET_RATIO} x floor and zero throttled answers in both runs"
        f" (back-fill {backfill['seconds'] / backfill['floor']:.2f}x, daily"
        f" {daily['seconds'] / daily['floor']:.2f}x), daily run at most one request per account"
        f" and resource ({daily['max_per_account_resource']}): {common.verdict(ok)}"
    )
    return ok


if __name__ == "__main__":
    common.run_from_command_line(main, __doc__, accounts=ACCOUNTS, latency=LATENCY)
