"""Run the sandbox in the foreground so the pipeline can be pointed at it by hand."""

from __future__ import annotations

import argparse
import threading
from datetime import date

from .server import ACCESS_TOKEN, LEGACY_CREDENTIALS, Sandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sources.docusign_billing.sandbox", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--today", type=date.fromisoformat, default=None, help="the clock (ISO date)"
    )
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args(argv)
    with Sandbox(
        accounts=args.accounts,
        seed=args.seed,
        host=args.host,
        port=args.port,
        today=args.today,
        page_size=args.page_size,
    ) as sandbox:
        print(f"base_url: {sandbox.base_url}")
        print("account ids:")
        for account_id in sandbox.account_ids:
            print(f"  {account_id}")
        print("demo credentials (public, sandbox only):")
        for name, value in LEGACY_CREDENTIALS.items():
            print(f"  {name}: {value}")
        print(f"  access_token: {ACCESS_TOKEN}")
        print("Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
