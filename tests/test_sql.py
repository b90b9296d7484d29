"""tuixp.store.sql: read-only SQL over a real store, each fence checked on its own."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.test_cli_units import ingest, store_snapshot
from tuixp.errors import ReadOnlyQuery, StoreError, TuixpError
from tuixp.store import sql
from tuixp.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    import tuixp

    path = tmp_path / "s.duckdb"
    ex = tuixp.Experiment("sqlx", store=path)
    n = ex.parameter("n")

    @ex.result
    def square(n):
        ex.save_metric("m", epoch=0, value=n)
        return n * n

    square(n).compute_grid(n=[1, 2, 3])
    ingest(path)
    return path


def test_a_query_returns_columns_types_and_rows(store: Path) -> None:
    result = sql.query(store, "SELECT trial_id, result_value FROM trials ORDER BY trial_id")
    assert result.columns == ["trial_id", "result_value"]
    assert result.types == ["INTEGER", "DOUBLE"]
    assert result.rows == [(1, 1.0), (2, 4.0), (3, 9.0)]
    assert not result.truncated
    capped = sql.query(store, "FROM metrics ORDER BY trial_id", max_rows=2)
    assert len(capped.rows) == 2 and capped.truncated


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1",
        "select 1;",
        "WITH t AS (SELECT 1) SELECT * FROM t",
        "FROM trials",
        "DESCRIBE trials",
        "SHOW TABLES",
        "SUMMARIZE trials",
        "EXPLAIN SELECT 1",
    ],
)
def test_queries_are_allowed(statement: str) -> None:
    assert sql.check_query(statement) == statement


@pytest.mark.parametrize(
    "statement, kind",
    [
        ("DROP VIEW trials", "DROP"),
        ("DELETE FROM trial_record", "DELETE"),
        ("INSERT INTO blob VALUES ('a', 'b')", "INSERT"),
        ("UPDATE blob SET text = ''", "UPDATE"),
        ("CREATE TEMP TABLE t AS SELECT 1", "CREATE"),
        ("ALTER TABLE blob ADD COLUMN x INT", "ALTER"),
        ("ATTACH 'other.duckdb'", "ATTACH"),
        ("COPY blob TO 'out.csv'", "COPY"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("SET threads = 1", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CHECKPOINT", "CALL"),
        ("EXPORT DATABASE 'x'", "EXPORT"),
    ],
)
def test_anything_but_a_query_is_refused_before_opening_the_store(
    store: Path, statement: str, kind: str
) -> None:
    before = store_snapshot(store)
    with pytest.raises(ReadOnlyQuery, match=f"{kind} statements are refused"):
        sql.query(store, statement)
    assert store_snapshot(store) == before


def test_several_statements_are_refused() -> None:
    with pytest.raises(ReadOnlyQuery, match="one statement at a time"):
        sql.check_query("SELECT 1; SELECT 2")
    with pytest.raises(ReadOnlyQuery, match="no SQL statement"):
        sql.check_query("  ;  ")


def test_a_syntax_error_is_a_tuixp_error() -> None:
    with pytest.raises(TuixpError, match="SQL error: Parser Error"):
        sql.check_query("SELEC 1")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM trial_record",
        "DROP VIEW trials",
        "CREATE TABLE t AS SELECT 1",
    ],
)
def test_the_connection_itself_is_read_only(store: Path, statement: str) -> None:
    """Behind the statement check, DuckDB refuses writes on its own."""
    before = store_snapshot(store)
    with sql.sandboxed(store) as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute(statement)
    assert store_snapshot(store) == before


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH '{dir}/other.duckdb' AS other",
        "COPY (SELECT 1) TO '{dir}/out.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "INSTALL httpfs",
        "LOAD httpfs",
    ],
)
def test_the_connection_cannot_reach_other_files(store: Path, statement: str) -> None:
    with sql.sandboxed(store) as con, pytest.raises(duckdb.Error, match="disabled|Permission"):
        con.execute(statement.format(dir=store.parent))
    assert not (store.parent / "out.csv").exists()
    assert not (store.parent / "other.duckdb").exists()


def test_the_sandbox_cannot_be_switched_off(store: Path) -> None:
    with sql.sandboxed(store) as con:
        for setting in ("SET enable_external_access = true", "SET threads = 1"):
            with pytest.raises(duckdb.Error):
                con.execute(setting)


def test_a_file_read_in_a_query_is_refused_with_a_clear_error(store: Path) -> None:
    with pytest.raises(ReadOnlyQuery, match="not allowed here"):
        sql.query(store, "SELECT * FROM read_csv('/etc/passwd')")


def test_journaled_trials_are_ingested_first(tmp_path: Path) -> None:
    import tuixp

    path = tmp_path / "j.duckdb"
    ex = tuixp.Experiment("late", store=path)
    x = ex.parameter("x")

    @ex.result
    def f(x):
        return x + 1

    f(x).compute(x=1)
    assert sql.query(path, "SELECT count(*) FROM trials").rows == [(1,)]
    f(x).compute(x=2)
    assert sql.query(path, "SELECT count(*) FROM trials", ingest_first=False).rows == [(1,)]
    assert sql.query(path, "SELECT count(*) FROM trials").rows == [(2,)]


def test_no_store_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="No tuixp store at"):
        sql.query(tmp_path / "none.duckdb", "SELECT 1")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="is a folder"):
        sql.query(tmp_path, "SELECT 1")


def test_store_connect_read_only(store: Path) -> None:
    """Store.connect(read_only=True) once failed setting an attribute on the connection."""
    before = store_snapshot(store)
    with Store(store).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM trials").fetchone() == (3,)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM trial_record")
    assert store_snapshot(store) == before
