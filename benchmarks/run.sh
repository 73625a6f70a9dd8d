#!/usr/bin/env bash
# One command from a clean clone: set up .venv (scripts/setup.sh), then run every benchmark.
# Extra arguments go to `python -m benchmarks`, e.g. `--only throughput` or `--quick`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
exec .venv/bin/python -m benchmarks "$@"
