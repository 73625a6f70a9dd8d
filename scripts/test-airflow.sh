#!/usr/bin/env bash
# Opt-in test of the Airflow DAG (dags/docusign_billing_dag.py): builds a throwaway Airflow venv
# once (a few minutes; AIRFLOW_VENV, default /tmp/docusign-billing-airflow) and runs
# tests/test_airflow.py with it against the sandbox and a throwaway PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/install-postgres.sh
AIRFLOW_VENV="${AIRFLOW_VENV:-/tmp/docusign-billing-airflow}"
if [ ! -x "$AIRFLOW_VENV/bin/airflow" ]; then
  python3 -m venv "$AIRFLOW_VENV"
  # Airflow 2.10 (dlt's helper supports 2.x and 3.x); its published constraint files are not
  # reachable from every network, so pip resolves within Airflow's own pins
  "$AIRFLOW_VENV/bin/python" -m pip install --quiet "apache-airflow==2.10.5" \
    "dlt[duckdb,postgres]>=1.31.0,<1.32" "pyarrow>=16" "pandas>=2" "pyjwt[crypto]>=2.8"
fi
AIRFLOW_PYTHON="$AIRFLOW_VENV/bin/python" exec .venv/bin/python -m pytest tests/test_airflow.py "$@"
