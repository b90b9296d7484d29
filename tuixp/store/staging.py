"""Rows staged under a name for ``INSERT ... SELECT``: an Arrow table for big batches, a
temporary table filled from DuckDB list parameters for small ones.

A small batch (a trial or a few: what ``tuixp run`` of one trial ingests) never imports
pyarrow, whose import costs about 100 ms of a run that otherwise takes half a second. A big
batch (a grid, a long training run) goes through Arrow, whose bulk conversion is several times
faster per row than list parameters (about 2 us a row of four columns here).

The Arrow arrays are built from their buffers (``array.array`` of the values, a validity
bitmap), never with ``pa.array``: that asks pandas whether the values are one of its own, which
imports pandas (about 250 ms), in a process that may never use it (the first ``metric_points``
after a short training run).
"""

from __future__ import annotations

import contextlib
import itertools
from array import array
from collections.abc import Iterator
from typing import Any

import duckdb

SMALL_BATCH = 2_000  # rows: below this, list parameters; from it on, Arrow
SQL_TYPES = {
    "string": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
}


ARRAY_CODES = {"int32": "i", "int64": "q", "float64": "d"}


def _bits(flags: Any, n: int) -> bytes:
    """``n`` booleans (in order) as an Arrow bitmap: the first is the lowest bit of byte 0."""
    digits = "".join(["1" if f else "0" for f in flags][::-1])
    return int(digits or "0", 2).to_bytes((n + 7) // 8, "little")


def arrow_array(values: list[Any], typ: str) -> Any:
    """One column of Python values (None: NULL) as an Arrow array of ``typ``."""
    import pyarrow as pa

    n = len(values)
    nulls = values.count(None)
    validity = pa.py_buffer(_bits((v is not None for v in values), n)) if nulls else None
    if typ == "string":
        encoded = [b"" if v is None else v.encode() for v in values]
        offsets = array("i", [0])
        offsets.extend(itertools.accumulate(len(e) for e in encoded))  # OverflowError > 2 GiB
        buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        return pa.Array.from_buffers(pa.string(), n, buffers, null_count=nulls)
    if typ == "bool":
        data = pa.py_buffer(_bits(values, n))
        return pa.Array.from_buffers(pa.bool_(), n, [validity, data], null_count=nulls)
    plain = [0 if v is None else v for v in values] if nulls else values
    data = pa.py_buffer(array(ARRAY_CODES[typ], plain))  # OverflowError: out of its range
    return pa.Array.from_buffers(getattr(pa, typ)(), n, [validity, data], null_count=nulls)


def numpy_array(values: Any, typ: Any = None) -> Any:
    """A NumPy column (no NULLs) as an Arrow array of ``typ`` (its dtype's by default), sharing
    its buffer: ``pa.array`` of a NumPy array imports pandas too."""
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    typ = typ or pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(typ, len(values), [None, pa.py_buffer(values)])


def arrow_table(columns: dict[str, tuple[list[Any], str]]) -> Any:
    """An Arrow table of ``{name: (values, type name)}``; pyarrow is imported here only."""
    import pyarrow as pa

    arrays = [arrow_array(values, typ) for values, typ in columns.values()]
    return pa.Table.from_batches([pa.record_batch(arrays, names=list(columns))])


@contextlib.contextmanager
def staged(
    con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, tuple[list[Any], str]]
) -> Iterator[str]:
    """``columns`` (``{column: (values, type name)}``, all of one length) readable as the
    table ``name`` inside the block; gone after it."""
    rows = len(next(iter(columns.values()))[0]) if columns else 0
    if rows >= SMALL_BATCH:
        con.register(name, arrow_table(columns))
        try:
            yield name
        finally:
            con.unregister(name)
        return
    selects = ", ".join(
        f'unnest(?::{SQL_TYPES[typ]}[]) AS "{column}"' for column, (_, typ) in columns.items()
    )
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT {selects}',
        [values for values, _ in columns.values()],
    )
    try:
        yield name
    finally:
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
