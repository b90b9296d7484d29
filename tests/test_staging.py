"""Ingest's staged batches: small ones through DuckDB list parameters (no pyarrow), big ones
through Arrow; both store the same rows, every column type and NULL included."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest

import tuixp
from tuixp.store import staging
from tuixp.store.store import Store

COLUMNS = {
    "s": (["a", None, "ü ✓ 'quote'", ""], "string"),
    "i32": ([1, None, -(2**31), 2**31 - 1], "int32"),
    "i64": ([2**62, None, -1, 0], "int64"),
    "f": ([0.5, None, -1e300, 3], "float64"),
    "b": ([True, None, False, True], "bool"),
}


def _rows(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[object, ...]]:
    return con.execute(f'SELECT * FROM "{name}"').fetchall()


def test_small_and_big_batches_stage_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    con = duckdb.connect()
    with staging.staged(con, "_small", COLUMNS) as name:
        small = _rows(con, name)
        described = con.execute(f'DESCRIBE "{name}"').fetchall()
    assert [(r[0], r[1]) for r in described] == [
        ("s", "VARCHAR"),
        ("i32", "INTEGER"),
        ("i64", "BIGINT"),
        ("f", "DOUBLE"),
        ("b", "BOOLEAN"),
    ]
    monkeypatch.setattr(staging, "SMALL_BATCH", 1)  # the Arrow path for these four rows
    with staging.staged(con, "_big", COLUMNS) as name:
        big = _rows(con, name)
    assert small == big == list(zip(*(values for values, _ in COLUMNS.values())))
    # gone after the block, on both paths
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_small'"
    ).fetchone() == (0,)
    with pytest.raises(duckdb.CatalogException):
        con.execute("SELECT * FROM _big")


def test_an_int_too_big_for_its_column_fails_the_batch_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    con = duckdb.connect()
    bad = {"i32": ([2**31], "int32")}
    with pytest.raises(duckdb.ConversionException), staging.staged(con, "_x", bad):
        pass
    monkeypatch.setattr(staging, "SMALL_BATCH", 1)
    import pyarrow as pa

    with pytest.raises(pa.ArrowInvalid), staging.staged(con, "_y", bad):
        pass


def test_trials_ingested_in_small_and_big_batches_read_back_alike(tmp_path: Path) -> None:
    """One trial with a few metric points (list parameters), one with 3,000 (Arrow)."""
    store = tmp_path / "s.duckdb"
    ex = tuixp.Experiment("both", store=store)
    n = ex.parameter("n")

    @ex.result
    def score(n):
        for epoch in range(n):
            ex.save_metric("loss", epoch=epoch, value=1 / (epoch + 1))
            ex.save_metric("step", epoch=epoch, value=epoch)
            ex.save_metric("ok", epoch=epoch, value=epoch % 2 == 0)
        return n

    node = score(n)
    node.compute(n=3)
    ex.store.journal.close()
    with Store(store).connect():
        pass  # ingest the small trial alone
    node.compute(n=staging.SMALL_BATCH)
    ex.store.journal.close()
    with Store(store).connect() as con:  # ingests the big trial
        rows = con.execute(
            "SELECT trial_id, name, count(*), sum(value), max(value_int), "
            "count(*) FILTER (WHERE value_type = 'bool') FROM metric_record "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    big = staging.SMALL_BATCH
    assert rows[:3] == [
        (1, "loss", 3, pytest.approx(1 + 1 / 2 + 1 / 3), None, 0),
        (1, "ok", 3, 2.0, None, 3),
        (1, "step", 3, 3.0, 2, 0),
    ]
    assert rows[3][:2] == (2, "loss") and rows[3][2] == big
    assert math.isclose(rows[3][3], sum(1 / (e + 1) for e in range(big)))
    assert rows[4] == (2, "ok", big, big / 2, None, big)
    assert rows[5] == (2, "step", big, big * (big - 1) / 2, big - 1, 0)
