"""Airflow DAG: DocuSign billing into PostgreSQL, the accounts split over parallel tasks.

Uses dlt's Airflow helper (`PipelineTasksGroup`). Accounts are independent, so the configured
`account_ids` are split into `DOCUSIGN_BILLING_TASKS` groups and each group is one task with its
own dlt pipeline (`docusign_billing_<n>`) and its own staging dataset (`billing_staging_<n>`), all
loading into the one `billing` dataset. The first group runs first, alone: it creates the tables
(and a later one that meets a new API field adds the column before the others race to); the other
groups then run in parallel.

Why the history stays right with parallel tasks: each task's SCD2 merge retires only invoices of
the accounts that task extracted (the source's `destination_scope` lists them), the snapshots are
keyed by account, and the items of a package carry its own `_dlt_load_id`. Staging tables are the
one thing two merging tasks would share, hence one staging dataset per group.

PostgreSQL only: a DuckDB file takes one writer at a time, so parallel tasks cannot load into one
file (each would fail on DuckDB's file lock). For DuckDB, run the CLI from cron instead.

Configuration (Airflow workers' environment, or `.dlt/` next to the DAG as dlt reads it):
`SOURCES__DOCUSIGN_BILLING__ACCOUNT_IDS`, `SOURCES__DOCUSIGN_BILLING__CREDENTIALS__...` (README,
"Configuring real DocuSign"), `DESTINATION__POSTGRES__CREDENTIALS`. Without `account_ids` the DAG
has one task that loads every account the credentials reach.
"""

import os

import dlt
import pendulum
from airflow.decorators import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

from sources.docusign_billing import docusign_billing
from sources.docusign_billing.accounts import normalize_account_ids

TASKS = int(os.environ.get("DOCUSIGN_BILLING_TASKS", "4"))
"""Parallel groups of accounts (at most one per account)."""


def account_groups(account_ids: list[str], groups: int) -> list[list[str]]:
    """The accounts dealt round-robin into at most `groups` non-empty groups; [[]] without ids."""
    if not account_ids:
        return [[]]
    count = max(1, min(groups, len(account_ids)))
    return [account_ids[i::count] for i in range(count)]


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs of one pipeline never overlap
    default_args={"retries": 0},
    tags=["docusign", "dlt"],
)
def docusign_billing_dag() -> None:
    tasks = PipelineTasksGroup("docusign_billing", use_data_folder=False, wipe_local_data=True)
    configured = normalize_account_ids(dlt.config.get("sources.docusign_billing.account_ids"))
    runs = []
    for index, accounts in enumerate(account_groups(configured, TASKS)):
        # the pipeline first, then the source: the source checks the active pipeline's folder
        pipeline = dlt.pipeline(
            pipeline_name=f"docusign_billing_{index}",
            destination=dlt.destinations.postgres(
                staging_dataset_name_layout=f"%s_staging_{index}"
            ),
            dataset_name="billing",
        )
        source = docusign_billing(account_ids=accounts or None)
        runs += tasks.add_run(pipeline, source, decompose="none")
    first, *parallel = runs
    for task in parallel:
        first >> task


docusign_billing_dag()
