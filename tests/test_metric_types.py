"""A metric loads back with the type it was saved with (schema 4's ``metric_record.value_type``).

As in daskperiment 0.5.0, which kept the saved Python values and let pandas build each trial's
column: ints -> int64, floats (whole ones too) -> float64, bools -> bool; ints and floats mixed
-> float64, bools mixed with numbers -> object. Ints are kept exactly to 64 bits (``value_int``);
larger ones are refused. A schema 3 store is migrated with its rows, which load as they did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tuixp
from tests.conftest import env_with_path, python
from tests.test_store_keys import _raw
from tuixp.store import Store, schema

BIG = 2**53 + 1  # the first int a DOUBLE cannot hold

# name -> (values saved at epochs 0, 1, ..., the dtype they load as, the values they load as)
CASES: dict[str, tuple[list[Any], str, list[Any]]] = {
    "ints": ([1, 2, -3], "int64", [1, 2, -3]),
    "floats": ([0.5, 1.25, -2.0], "float64", [0.5, 1.25, -2.0]),
    "whole_floats": ([1.0, 2.0], "float64", [1.0, 2.0]),
    "bools": ([True, False, True], "bool", [True, False, True]),
    "np_int64": ([np.int64(7), np.int64(-8)], "int64", [7, -8]),
    "np_float32": ([np.float32(0.1), np.float32(2.0)], "float64", [float(np.float32(0.1)), 2.0]),
    "np_bools": ([np.bool_(True), np.bool_(False)], "bool", [True, False]),
    "big_ints": ([BIG, 2**63 - 1, -(2**63)], "int64", [BIG, 2**63 - 1, -(2**63)]),
    "ints_and_floats": ([1, 2.5], "float64", [1.0, 2.5]),
    "bools_and_ints": ([True, 2], "object", [True, 2]),
}


def _record_all(store_path: Path, scheduler: str = "threads") -> tuixp.Experiment:
    ex = tuixp.Experiment("types", store=store_path)
    cases = {name: values for name, (values, _, _) in CASES.items()}

    @ex.result
    def train():
        for name, values in cases.items():
            for epoch, value in enumerate(values):
                ex.save_metric(name, epoch=epoch, value=value)
        return 0

    train().compute(scheduler=scheduler)
    return ex


def _dtypes_and_values(ex: tuixp.Experiment, trial_id: int) -> dict[str, tuple[str, list[Any]]]:
    out = {}
    for name in CASES:
        column = ex.load_metric(name, trial_id)[trial_id]
        out[name] = (str(column.dtype), column.tolist())
    return out


EXPECTED = {name: (dtype, loaded) for name, (_, dtype, loaded) in CASES.items()}


def test_each_type_loads_back_as_saved(store_path: Path) -> None:
    ex = _record_all(store_path)
    got = _dtypes_and_values(ex, 1)
    assert got == EXPECTED
    # Exact, not merely equal as floats: 2**53 + 1 would read back as 2**53 from a DOUBLE.
    big = ex.load_metric("big_ints", 1)[1].tolist()
    assert big[0] == BIG and big[0] != 2**53 and all(type(v) is int for v in big)
    bools = ex.load_metric("bools_and_ints", 1)[1].tolist()
    assert type(bools[0]) is bool and type(bools[1]) is int
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT name, value_type, value_int, value FROM metrics WHERE epoch = 0 "
            "AND name IN ('ints', 'whole_floats', 'bools', 'big_ints') ORDER BY name"
        ).fetchall() == [
            ("big_ints", "int", BIG, float(BIG)),
            ("bools", "bool", None, 1.0),
            ("ints", "int", 1, 1.0),
            ("whole_floats", "float", None, 1.0),
        ]


def test_types_saved_in_worker_processes_reach_the_store(store_path: Path) -> None:
    # The metric events travel from the worker process to the recording one (pickled).
    ex = _record_all(store_path, scheduler="processes")
    with Store(store_path).connect() as con:
        (worker,) = con.execute("SELECT worker FROM steps").fetchone()
    assert f":{os.getpid()}/" not in worker  # the step ran in another process
    assert _dtypes_and_values(ex, 1) == EXPECTED


def test_a_second_process_reads_the_same_types(store_path: Path) -> None:
    _record_all(store_path)
    code = (
        "import json, sys, tuixp\n"
        f"ex = tuixp.Experiment('types', store={str(store_path)!r})\n"
        "out = {}\n"
        f"for name in {list(CASES)!r}:\n"
        "    col = ex.load_metric(name, 1)[1]\n"
        "    out[name] = [str(col.dtype), col.tolist()]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [python(), "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_with_path(),
    )
    assert done.returncode == 0, done.stderr
    got = {k: (d, v) for k, (d, v) in json.loads(done.stdout).items()}
    assert got == EXPECTED


def test_trials_with_different_epochs_align_as_pandas_does(store_path: Path) -> None:
    ex = tuixp.Experiment("gaps", store=store_path)
    n = ex.parameter("n")

    @ex.result
    def train(n):
        for epoch in range(n):
            ex.save_metric("count", epoch=epoch, value=epoch * 10)
            ex.save_metric("flag", epoch=epoch, value=epoch % 2 == 0)
        return n

    for value in (2, 3):
        ex.set_parameters(n=value)
        train(n).compute()
    count = ex.load_metric("count", [1, 2])
    assert list(count.index) == [0, 1, 2] and list(count.columns) == [1, 2]
    # Trial 2 has every epoch and keeps int64; trial 1 lacks epoch 2: NaN makes it float64.
    assert str(count[2].dtype) == "int64" and count[2].tolist() == [0, 10, 20]
    assert str(count[1].dtype) == "float64" and count[1].tolist()[:2] == [0.0, 10.0]
    flag = ex.load_metric("flag", [1, 2])
    assert str(flag[2].dtype) == "bool" and str(flag[1].dtype) == "object"
    # Alone, a trial's column has no gap.
    assert str(ex.load_metric("count", 1)[1].dtype) == "int64"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2**63, "an integer value must fit in 64 bits (int64), given: 9223372036854775808"),
        (-(2**63) - 1, "an integer value must fit in 64 bits"),
        ("high", "value must be a number, given: 'high'"),
        (np.array([1.0, 2.0]), "value must be a number, given: ndarray"),
    ],
)
def test_a_value_that_cannot_be_stored_is_refused(
    store_path: Path, value: Any, message: str
) -> None:
    ex = tuixp.Experiment("refused", store=store_path)

    @ex.result
    def train():
        ex.save_metric("ok", epoch=0, value=1)
        ex.save_metric("bad", epoch=0, value=value)
        return 0

    with pytest.raises(tuixp.TuixpError, match="^" + re.escape(f"Metric bad: {message}")):
        train().compute()
    with Store(store_path).connect() as con:
        # The trial failed; what it saved before the bad value is kept, nothing of the bad one.
        assert con.execute("SELECT name, value_type, value_int FROM metrics").fetchall() == [
            ("ok", "int", 1)
        ]
        assert con.execute("SELECT status FROM trials").fetchall() == [("failed",)]


def test_zero_dim_arrays_and_tensors_save_the_number_they_hold(store_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ex = tuixp.Experiment("held", store=store_path)

    @ex.result
    def train():
        ex.save_metric("a", epoch=0, value=np.array(3))
        ex.save_metric("b", epoch=0, value=torch.tensor(0.5))
        ex.save_metric("c", epoch=0, value=torch.tensor(4))
        return 0

    train().compute()
    assert [str(ex.load_metric(k, 1)[1].dtype) for k in "abc"] == ["int64", "float64", "int64"]
    assert [ex.load_metric(k, 1)[1].tolist() for k in "abc"] == [[3], [0.5], [4]]


def test_an_unknown_value_type_in_a_journal_is_a_bad_line_not_a_stored_row(
    store_path: Path,
) -> None:
    ex = _record_all(store_path)
    store = Store(store_path)
    with store.connect() as con:
        uuid = con.execute("SELECT uuid FROM trials").fetchone()[0]
    journal = Path(f"{store_path}.journal") / "by-hand.jsonl"
    journal.parent.mkdir(exist_ok=True)
    base = {"t": "metric", "trial_uuid": uuid, "experiment": "types", "trial_id": 1, "epoch": 0}
    lines = [
        {**base, "name": "odd", "value": 1.0, "value_type": "complex"},  # a newer tuixp's?
        {**base, "name": "fine", "value": 2.0, "value_type": "float"},  # the next line is read
    ]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with store.connect() as con:
        assert con.execute(
            "SELECT name, value_type FROM metrics WHERE name IN ('odd', 'fine')"
        ).fetchall() == [("fine", "float")]
    assert _dtypes_and_values(ex, 1) == EXPECTED


# -- schema 3 -> 4 ---------------------------------------------------------------------------
def _to_schema_3(store_path: Path) -> None:
    """Take schema 4's columns off ``metric_record`` and its view and mark the store version 3:
    the store a tuixp of schema 3 wrote (its rows as DOUBLE only)."""
    with _raw(store_path) as con:  # holds the store's guard: its background ingest keeps off
        con.execute(schema._DROP_VIEWS)
        for name, _ in schema.METRIC_TYPE_COLUMNS:
            con.execute(f"ALTER TABLE metric_record DROP COLUMN {name}")
        con.execute(schema.VIEWS.replace(", value_type, value_int\nFROM", " FROM"))
        con.execute("UPDATE tuixp_meta SET value = '3' WHERE key = 'schema_version'")
        assert [r[0] for r in con.execute("DESCRIBE SELECT * FROM metrics").fetchall()] == [
            "experiment",
            "trial_id",
            "name",
            "epoch",
            "value",
            "recorded_at",
        ]


def test_schema_3_store_is_migrated_with_its_rows_and_records_on(store_path: Path) -> None:
    ex = tuixp.Experiment("old", store=store_path)
    lr = ex.parameter("lr")

    @ex.result
    def fit(lr):
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=lr / (epoch + 1))
            ex.save_metric("steps", epoch=epoch, value=epoch * 100)
            ex.save_metric("whole", epoch=epoch, value=float(epoch))
        return lr * 2

    for value in (0.1, 0.2):
        ex.set_parameters(lr=value)
        fit(lr).compute()
    old_columns = "experiment, trial_id, name, epoch, value, recorded_at"
    with Store(store_path).connect() as con:
        before = con.execute(f"SELECT {old_columns} FROM metrics ORDER BY ALL").fetchall()
    _to_schema_3(store_path)
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT value FROM tuixp_meta WHERE key = 'schema_version'"
        ).fetchall() == [(str(schema.SCHEMA_VERSION),)]
        assert con.execute(f"SELECT {old_columns} FROM metrics ORDER BY ALL").fetchall() == before
        assert len(before) == 18
        # The old rows have no recorded type...
        assert con.execute(
            "SELECT count(*) FROM metrics WHERE value_type IS NULL AND value_int IS NULL"
        ).fetchone() == (18,)
    # ...and load as schema 3 read them: a trial's whole numbers as int64 (a whole float too:
    # schema 3 could not tell 1.0 from 1), others as float64.
    assert str(ex.load_metric("steps", 1)[1].dtype) == "int64"
    assert ex.load_metric("steps", [1, 2])[2].tolist() == [0, 100, 200]
    assert str(ex.load_metric("whole", 1)[1].dtype) == "int64"
    assert str(ex.load_metric("loss", 2)[2].dtype) == "float64"
    # The migrated store records on, with types.
    ex.set_parameters(lr=0.4)
    assert fit(lr).compute() == pytest.approx(0.8)
    assert str(ex.load_metric("whole", 3)[3].dtype) == "float64"
    assert ex.load_metric("steps", 3)[3].tolist() == [0, 100, 200]
    assert str(ex.load_metric("steps", 3)[3].dtype) == "int64"
    with Store(store_path).connect() as con:
        assert con.execute(
            "SELECT name, value_type, count(*) FROM metrics WHERE trial_id = 3 GROUP BY ALL "
            "ORDER BY name"
        ).fetchall() == [("loss", "float", 3), ("steps", "int", 3), ("whole", "float", 3)]


def test_journal_lines_with_odd_typed_values_load_as_stored(store_path: Path) -> None:
    # Lines no tuixp writes, but a person or another tool might: an 'int' without its exact
    # value, an 'int' or 'bool' whose value is NaN or missing. They load, as what is stored.
    ex = _record_all(store_path)
    store = Store(store_path)
    with store.connect() as con:
        uuid = con.execute("SELECT uuid FROM trials").fetchone()[0]
    journal = Path(f"{store_path}.journal") / "by-hand.jsonl"
    journal.parent.mkdir(exist_ok=True)
    base = {"t": "metric", "trial_uuid": uuid, "experiment": "types", "trial_id": 1}
    lines = [
        {**base, "name": "odd_int", "epoch": 0, "value": 3.0, "value_type": "int"},
        {**base, "name": "odd_int", "epoch": 1, "value": float("nan"), "value_type": "int"},
        {**base, "name": "odd_bool", "epoch": 0, "value": None, "value_type": "bool"},
        {**base, "name": "odd_bool", "epoch": 1, "value": 1.0, "value_type": "bool"},
    ]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    odd_int = ex.load_metric("odd_int", 1)[1].tolist()
    assert odd_int[0] == 3 and odd_int[1] != odd_int[1]  # 3, then NaN
    odd_bool = ex.load_metric("odd_bool", 1)[1].tolist()
    assert odd_bool[0] is None and odd_bool[1] is True
