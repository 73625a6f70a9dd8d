"""The Airflow DAG (dags/docusign_billing_dag.py) in a throwaway Airflow environment, end to end.

Opt-in: Airflow is far too big for the test extra. Set AIRFLOW_PYTHON to the Python of a venv with
apache-airflow and this project's dependencies; `bash scripts/test-airflow.sh` builds one under
/tmp and runs this module. The DAG is imported with Airflow's DagBag, its tasks listed, and run
twice with `dag.test()` (Airflow's in-process runner: it runs the tasks one after the other, so the
parallel groups do not overlap here) against the sandbox and a throwaway PostgreSQL server.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from sources.docusign_billing.sandbox import ACCESS_TOKEN, Sandbox
from tests.conftest import REPO
from tests.postgres_server import PostgresServer

AIRFLOW_PYTHON = os.environ.get("AIRFLOW_PYTHON")
pytestmark = pytest.mark.skipif(
    not AIRFLOW_PYTHON, reason="Airflow DAG test is opt-in: bash scripts/test-airflow.sh"
)
GROUPS = 3


def _run_dag(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), str(REPO / "tests" / "airflow_dag_run.py"), str(REPO / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dag_splits_accounts_into_parallel_tasks_and_keeps_history_per_account(tmp_path: Path):
    airflow_home = tmp_path / "airflow"
    with (
        PostgresServer() as postgres,
        Sandbox(accounts=5, invoices_per_account=(2, 4), seed=3) as sandbox,
    ):
        url = postgres.create_database("airflow_billing")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "DLT_DATA_DIR": str(tmp_path / "dlt"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "PYTHONPATH": str(REPO),
            "SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS": ",".join(sandbox.account_ids),
            "SOURCES__DOCUSIGN_BILLING__BASE_URL": sandbox.base_url,
            "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__AUTH": "token",
            "SOURCES__DOCUSIGN_BILLING__CREDENTIALS__ACCESS_TOKEN": ACCESS_TOKEN,
            "DESTINATION__POSTGRES__CREDENTIALS": url,
            "DOCUSIGN_BILLING_TASKS": str(GROUPS),
        }
        airflow = Path(str(AIRFLOW_PYTHON)).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)

        first = _run_dag(env)
        assert first["run_state"] == "success", first
        assert set(first["task_states"].values()) == {"success"}
        tasks = first["tasks"]
        assert len(tasks) == GROUPS
        (head,) = [t for t in tasks if len(tasks[t]) == GROUPS - 1]  # then the others in parallel
        assert all(tasks[t] == [] for t in tasks if t != head)

        # the second run sees one invoice paid in an account of the last (parallel) group
        paid_account = sandbox.account_ids[GROUPS - 1]  # round-robin: group GROUPS-1
        paid = sandbox.response(paid_account)["billingInvoices"][0]["invoiceId"]
        sandbox.pay_invoice(paid_account, paid)
        second = _run_dag(env)
        assert second["run_state"] == "success", second

        connection = postgres.connect("airflow_billing")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT account_id, invoice_id FROM billing.past_due_invoices"
                " WHERE _dlt_valid_to IS NULL ORDER BY 1, 2"
            )
            current = cursor.fetchall()
            cursor.execute(
                "SELECT account_id, invoice_id FROM billing.past_due_invoices"
                " WHERE _dlt_valid_to IS NOT NULL"
            )
            retired = cursor.fetchall()
            cursor.execute(
                "SELECT account_id, count(*) FROM billing.past_due_snapshots GROUP BY 1 ORDER BY 1"
            )
            snapshots = cursor.fetchall()
            cursor.execute("SELECT DISTINCT pipeline_name FROM billing._dlt_pipeline_state")
            pipelines = sorted(name for (name,) in cursor.fetchall())
        connection.close()
    expected = sorted(
        (account_id, invoice["invoiceId"])
        for account_id in sandbox.account_ids
        for invoice in sandbox.response(account_id)["billingInvoices"]
    )
    assert current == expected  # every account loaded, the paid invoice no longer current
    assert retired == [(paid_account, paid)]  # retired in its own account only
    assert snapshots == sorted((a, 2) for a in sandbox.account_ids)
    assert pipelines == [f"docusign_billing_{i}" for i in range(GROUPS)]
