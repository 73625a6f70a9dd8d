#!/usr/bin/env bash
# Sets up and runs the test suite (real HTTP against the sandbox, real DuckDB, real PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/install-postgres.sh   # the warehouse tests start a throwaway PostgreSQL server
exec .venv/bin/python -m pytest "$@"
