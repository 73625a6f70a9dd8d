"""History on the `filesystem` destination (Parquet files in a folder or bucket).

dlt merges only Delta and Iceberg tables on the filesystem, and has no SCD2 strategy for either
(dlt 1.31: `filesystem_merge_strategies_selector`); for plain Parquet it falls back to `append`
with a warning. So there each run appends the full list of invoices it saw, `_dlt_valid_from`
and `_dlt_valid_to` stay empty, and snapshots append one row per account and run.

That list of runs holds the same history, provided each row says which run wrote it: while a
filesystem pipeline extracts, dlt's `add_dlt_load_id` setting stamps every Parquet row with its
load id (the snapshots' rows too), and `HISTORY_FROM_RUNS` rebuilds the SCD2 validity from it,
so the reporting views give the same answers as on a database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dlt

from sources.docusign_billing import settings


def is_filesystem(pipeline: dlt.Pipeline) -> bool:
    return pipeline.destination.destination_name == "filesystem"


@contextmanager
def rows_stamped_with_their_run(pipeline: dlt.Pipeline) -> Iterator[None]:
    """On the filesystem destination, every Parquet row of this extract gets `_dlt_load_id`.

    Set as the pipeline's own configuration key for the extract only (it is read when dlt starts
    extracting), so other pipelines and destinations in the process are unaffected."""
    if not is_filesystem(pipeline):
        yield
        return
    key = f"{pipeline.pipeline_name.upper()}__NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"
    before = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before


HISTORY_FROM_RUNS = f"""
WITH seen AS (
    SELECT i.* EXCLUDE (_dlt_valid_from, _dlt_valid_to, _dlt_load_id), s.snapshot_at AS seen_at
    FROM __{settings.INVOICES_TABLE} AS i
    JOIN __{settings.SNAPSHOTS_TABLE} AS s
        ON s.account_id = i.account_id AND s._dlt_load_id = i._dlt_load_id
),
versions AS (
    SELECT
        *,
        min(seen_at) OVER version AS first_seen,
        max(seen_at) OVER version AS last_seen,
        row_number() OVER (version ORDER BY seen_at) AS appearance
    FROM seen
    WINDOW version AS (PARTITION BY account_id, _dlt_id)
)
SELECT
    v.* EXCLUDE (seen_at, first_seen, last_seen, appearance),
    v.first_seen AS _dlt_valid_from,
    (
        SELECT min(s.snapshot_at) FROM __{settings.SNAPSHOTS_TABLE} AS s
        WHERE s.account_id = v.account_id AND s.snapshot_at > v.last_seen
    ) AS _dlt_valid_to
FROM versions AS v
WHERE v.appearance = 1
"""
"""`past_due_invoices` as SCD2 from the runs' rows (DuckDB SQL: dlt reads the files with DuckDB).

A version is valid from the first run that saw it until the account's next run after the last
run that saw it, like dlt's SCD2 retiring it for that account only. (A version that comes back
after another one replaced it counts as valid over the whole span.)"""
