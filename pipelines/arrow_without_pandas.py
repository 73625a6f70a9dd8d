"""Keeps pyarrow from importing pandas in a process that loads data (`run`, `demo`).

pyarrow asks whether pandas is installed the first time it converts any Python value (a list,
a scalar, a number passed to a compute function, a numpy array): to recognise pandas objects, it
imports pandas then, once per process. A run converts Python values in every batch
(`sources/docusign_billing/tables.py`, `parse.py`), yet never holds a pandas object: the import
only costs time, about a third of a second on a small run (`benchmarks/RESULTS.md`). Building
every array from buffers instead would avoid it, at the price of hand-written Arrow in ~60 places.

`pyarrow_without_pandas()` lets that first check find no pandas. pyarrow keeps the answer for its
implicit checks only: whatever asks for pandas explicitly (`Table.to_pandas()`,
`Table.from_pandas()`, dlt's pandas support) imports it as before, and from then on pyarrow knows
pandas again. `tests/test_startup.py` fails if pyarrow changes either behaviour.
"""

import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from typing import Any


class _NoPandas(MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname == "pandas":
            raise ModuleNotFoundError("pandas is not used by a load", name=fullname)
        return None


def pyarrow_without_pandas() -> None:
    """Makes pyarrow's first conversion find no pandas; nothing if pandas is imported already
    (then pyarrow uses it as usual)."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([])  # pyarrow's first conversion: it looks for pandas now, once
    finally:
        sys.meta_path.remove(blocker)
