"""Rows staged under a name for ``INSERT ... SELECT``: an Arrow table for big batches, a
temporary table filled from DuckDB list parameters for small ones.

A small batch (a trial or a few: what ``tuixp run`` of one trial ingests) never imports
pyarrow: ``pa.array`` of a Python list asks pandas whether the list is one of its own, which
imports pandas, and pyarrow, NumPy and pandas together cost about 350 ms of a run that otherwise
takes half a second. A big batch (a grid, a long training run) goes through Arrow, whose bulk
conversion is several times faster per row than list parameters (about 2 us a row of four
columns here).
"""

from __future__ import annotations

import contextlib
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


def arrow_table(columns: dict[str, tuple[list[Any], str]]) -> Any:
    """An Arrow table of ``{name: (values, type name)}``; pyarrow is imported here only."""
    import pyarrow as pa

    return pa.table(
        {
            name: pa.array(values, type=getattr(pa, "bool_" if typ == "bool" else typ)())
            for name, (values, typ) in columns.items()
        }
    )


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
