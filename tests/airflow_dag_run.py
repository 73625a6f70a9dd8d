"""Run with an Airflow environment's Python (see tests/test_airflow.py): imports the DAG folder,
lists the tasks with their downstream tasks, runs the DAG once with `dag.test()` and prints one
JSON object with what happened. The environment configures the sandbox, PostgreSQL and Airflow."""

import json
import sys

from airflow.models import DagBag

bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
if bag.import_errors:
    sys.exit(f"DAG import errors: {bag.import_errors}")
dag = bag.get_dag("docusign_billing_dag")
tasks = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
run = dag.test()
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print(json.dumps({"tasks": tasks, "run_state": str(run.state), "task_states": states}))
