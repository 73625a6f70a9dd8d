#!/usr/bin/env bash
# Sets up and runs the test suite (real HTTP against the sandbox, real DuckDB, real PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/install-postgres.sh   # the warehouse tests start a throwaway PostgreSQL server
.venv/bin/ruff check --quiet .          # lint (rules in pyproject.toml)
.venv/bin/ruff format --check --quiet . # formatting, line length 100
.venv/bin/mypy                          # types (settings in pyproject.toml)
.venv/bin/actionlint .github/workflows/*.yml  # the GitHub Actions example
exec .venv/bin/python -m pytest "$@"
