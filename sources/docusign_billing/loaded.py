"""What the destination already holds, so that a run sends only what is new to it."""

from typing import Optional

import dlt
import pyarrow as pa
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from . import settings


def loaded_item_versions(pipeline: Optional[dlt.Pipeline]) -> Optional[pa.Array]:
    """Invoice versions whose items the destination holds; None outside a pipeline (send all).

    An item row depends on nothing but its invoice version (a content hash), so once a version's
    items are loaded they never change: runs append only the items of versions new to the
    destination. Read from the items table itself, not from the invoices, so that items a failed
    load never wrote are sent again. `load()` loads pending packages before it extracts, so
    whatever an earlier run extracted is already in the destination when this reads it.
    """
    if pipeline is None:
        return None
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(settings.ITEMS_TABLE)
            rows = client.execute_sql(f"SELECT DISTINCT _dlt_parent_id FROM {table}")
    except DatabaseUndefinedRelation:
        rows = []  # nothing loaded yet
    return pa.array([version for (version,) in rows], pa.string())
