"""``schema.TABLE_COLUMNS`` is the one list of the store's columns: a new store has exactly its
tables and columns, a store migrated from an older schema ends with the same ones, and ingest
stages and checks every ingested column of it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tuixp.store import Store, schema


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for table, name, typ in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE NOT internal ORDER BY table_name, column_index"
    ).fetchall():
        found.setdefault(table, []).append((name, typ))
    return found


def _catalogue() -> dict[str, list[tuple[str, str]]]:
    """The catalogue's columns with their types as DuckDB names them."""
    names = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
    return {
        table: [(name, names.get(typ.split()[0], typ.split()[0])) for name, typ in columns]
        for table, columns in schema.TABLE_COLUMNS.items()
    }


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    views = {
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    return {t: cols for t, cols in _columns(con).items() if t not in views}


def test_a_new_store_has_exactly_the_catalogues_columns(store_path: Path) -> None:
    with Store(store_path).connect() as con:
        assert _tables(con) == _catalogue()


def test_a_store_migrated_from_schema_3_has_the_catalogues_columns(store_path: Path) -> None:
    store = Store(store_path)
    with store.connect():
        pass
    with store._guard:  # what a tuixp of schema 3 left: no metric value types
        con = duckdb.connect(str(store_path), config={"default_block_size": "16384"})
        try:
            con.execute(schema._DROP_VIEWS)
            for name, _ in schema.METRIC_TYPE_COLUMNS:
                con.execute(f"ALTER TABLE metric_record DROP COLUMN {name}")
            con.execute("UPDATE tuixp_meta SET value = '3' WHERE key = 'schema_version'")
            assert ("value_type", "VARCHAR") not in _tables(con)["metric_record"]
        finally:
            con.close()
    with store.connect() as con:
        assert _tables(con) == _catalogue()
        assert con.execute(
            "SELECT value FROM tuixp_meta WHERE key = 'schema_version'"
        ).fetchall() == [(str(schema.SCHEMA_VERSION),)]


def test_ingest_stages_every_column_of_every_table_it_fills() -> None:
    ingested = {t: [name for name, _, _ in cols] for t, cols in schema.COLUMNS.items()}
    expected = {
        t: [name for name, _ in cols]
        for t, cols in schema.TABLE_COLUMNS.items()
        if t not in schema._BOOKKEEPING  # filled by tuixp itself, not staged from journals
    }
    assert ingested == expected
    times = {(t, n) for t, cols in schema.COLUMNS.items() for n, _, expr in cols if expr}
    assert ("trial_record", "started_at") in times and ("metric_record", "recorded_at") in times
    assert ("metric_record", "value") not in times
