"""Ingest's staged batches: small ones through DuckDB list parameters (no pyarrow), big ones
through Arrow; both store the same rows, every column type and NULL included."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import tuixp
from tests.conftest import ROOT
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
    with pytest.raises(OverflowError), staging.staged(con, "_y", bad):
        pass


def test_arrow_columns_are_what_pa_array_makes_and_import_no_pandas() -> None:
    """Built from buffers: the same arrays as pyarrow's own conversion of the lists and of
    NumPy columns (checked in a child process, whose pandas import is then the test's to see),
    NULLs at every position of a bitmap's bytes, and pandas never imported."""
    code = textwrap.dedent(
        """
        import random, sys
        from tuixp.store import staging
        rnd = random.Random(7)
        def maybe(v):
            return None if rnd.random() < 0.3 else v
        cols = {}
        for n in (0, 1, 7, 8, 9, 64, 1001):
            cols[n] = {
                "s": ([maybe(rnd.choice(["", "a", "ü ✓", "x" * 300])) for _ in range(n)], "string"),
                "i32": ([maybe(rnd.randint(-2**31, 2**31 - 1)) for _ in range(n)], "int32"),
                "i64": ([maybe(rnd.randint(-2**63, 2**63 - 1)) for _ in range(n)], "int64"),
                "f": ([maybe(rnd.uniform(-1e300, 1e300)) for _ in range(n)], "float64"),
                "b": ([maybe(rnd.random() < 0.5) for _ in range(n)], "bool"),
                "dense": ([rnd.random() for _ in range(n)], "float64"),
            }
        tables = {n: staging.arrow_table(c) for n, c in cols.items()}
        import numpy as np
        floats = np.array([0.5, float("nan"), -1.0]).astype(">f8")  # the other byte order too
        numpy_arrays = [staging.numpy_array(np.arange(5)), staging.numpy_array(floats)]
        assert "pandas" not in sys.modules, "pandas imported"
        import pyarrow as pa
        for n, c in cols.items():
            for name, (values, typ) in c.items():
                ours = tables[n].column(name).combine_chunks()
                theirs = pa.array(values, type=getattr(pa, "bool_" if typ == "bool" else typ)())
                assert ours.equals(theirs), (n, name)
                assert ours.to_pylist() == values and ours.null_count == values.count(None)
        assert numpy_arrays[0].equals(pa.array(np.arange(5)))
        got = numpy_arrays[1].to_pylist()  # NaN kept as NaN (not NULL), as pa.array does
        assert numpy_arrays[1].type == pa.float64() and numpy_arrays[1].null_count == 0
        assert got[0] == 0.5 and got[1] != got[1] and got[2] == -1.0
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


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
