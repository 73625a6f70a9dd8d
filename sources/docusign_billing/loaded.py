"""What the destination already holds, so that a run sends only what is new to it."""

import dlt
import pyarrow as pa
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .dlt_internals import state_versions

_CHUNK_ROWS = 100_000


def loaded_item_versions(pipeline: dlt.Pipeline | None, items_table: str) -> pa.Array | None:
    """Record versions whose items `items_table` holds; None outside a pipeline (send all).

    An item row depends on nothing but its record version (a content hash), so once a version's
    items are loaded they never change: runs send only the items of versions new to the
    destination. Read from the items table itself, not from the invoices, so that items a failed
    load never wrote are sent again. `load()` loads pending packages before it extracts, so
    whatever an earlier run extracted is already in the destination when this reads it.
    """
    if pipeline is None:
        return None
    chunks: list[pa.Array] = []
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(items_table)
            with client.execute_query(f"SELECT DISTINCT _dlt_parent_id FROM {table}") as cursor:
                # kept as Arrow chunk by chunk: ~40 bytes per version, not a Python tuple and str each
                for rows in cursor.iter_fetch(_CHUNK_ROWS):
                    chunks.append(pa.array([version for (version,) in rows], pa.string()))
    except DatabaseUndefinedRelation:
        pass  # nothing loaded yet
    return pa.concat_arrays([pa.array([], pa.string()), *chunks])


def holds_history(pipeline: dlt.Pipeline | None, table: str) -> bool:
    """Whether the destination holds `table` as of the pipeline's incremental windows; True
    outside a pipeline.

    The windows live in dlt's state, which stays with the pipeline folder: a new or deleted
    DuckDB file, another dataset or destination, or a file replaced by an older copy would
    otherwise get only the windows after the last run's end, never what lies before. dlt stores
    each changed state in the destination with the load that carries it (`_dlt_pipeline_state`),
    so a destination whose latest stored state version is older than the local one has not
    loaded every window the local state has passed. Either way the resource starts again from
    `history_start` (merges keep that free of duplicates). A destination without stored state
    (another pipeline's), or a pipeline that does not store it (`restore_from_destination` off:
    the rows an earlier run stored then stay behind for ever), is judged by the table alone.
    """
    if pipeline is None:
        return True
    try:
        with pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT 1 FROM {qualified} LIMIT 1"):
                pass
            if not pipeline.config.restore_from_destination:
                return True
            try:
                local, stored = state_versions(pipeline, client)
            except DatabaseUndefinedRelation:
                return True  # no stored state: the table is all there is to judge by
    except DatabaseUndefinedRelation:
        return False
    return stored is None or stored >= local
