"""Odd input from users: hypothesis-made parameters, metrics and step results.

Whatever goes in, the call is either refused with a clear ``TuixpError`` before a trial id is
used, or the trial is recorded as well as it can be (saying what it could not keep), and the
store stays readable through every public view.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tuixp
from tuixp import errors
from tuixp.store import PUBLIC_VIEWS, Store

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any text, lone surrogates included (st.text() leaves them out by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
huge_ints = st.integers(min_value=-(10**400), max_value=10**400)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_ints | st.floats() | any_text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(any_text, kids, max_size=3),
    max_leaves=8,
)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


def _gen() -> Iterator[int]:
    yield 1


# (Hypothesis itself calls repr() on what it generates: Unprintable has its own test below.)
ODD = [
    lambda: None,
    threading.Lock(),
    object(),
    {1, 2},
    b"\x00bytes",
    complex(1, 2),
    Unpicklable(),
    _gen(),
    np.arange(3.0),
    np.float64("nan"),
    np.int64(7),
    pd.DataFrame({"a": [1, 2]}),
    (1, "two"),
    {"k": {1, 2}},
    [math.inf, -math.inf],
]
anything = json_like | st.sampled_from(ODD)
TEN_MB = "x" * 10_000_000


def expected(value: Any) -> Any:
    """A JSON value as the store gives it back: NaN/inf as strings, lone surrogates replaced."""
    if isinstance(value, np.ndarray):
        return expected(value.tolist())
    if isinstance(value, np.generic):
        return expected(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(float(value))
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, dict):
        return {expected(k): expected(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "store.duckdb"


# One experiment per test, shared by its examples; what a step does comes from ``inputs``.
@pytest.fixture(scope="module")
def params_experiment(store: Path) -> tuple[Path, Any, Any]:
    ex = tuixp.Experiment("fuzz_params", store=store)
    p = ex.parameter("p")

    @ex.result
    def constant(p):
        return 1

    return store, ex, constant(p)


@pytest.fixture(scope="module")
def metrics_experiment(store: Path) -> tuple[Path, Any, Any, dict[str, Any]]:
    ex = tuixp.Experiment("fuzz_metrics", store=store)
    a = ex.parameter("a", default=0)
    inputs: dict[str, Any] = {}

    @ex.result
    def step(a):
        ex.save_metric(inputs["name"], epoch=inputs["epoch"], value=inputs["value"])
        return a

    return store, ex, step(a), inputs


@pytest.fixture(scope="module")
def results_experiment(store: Path) -> tuple[Path, Any, Any, dict[str, Any]]:
    ex = tuixp.Experiment("fuzz_results", store=store)
    a = ex.parameter("a", default=0)
    inputs: dict[str, Any] = {}

    @ex.persist
    def keep(a):
        return inputs["value"]

    @ex.result
    def give(v):
        return v

    return store, ex, give(keep(a)), inputs


def read_back(store: Path, experiment: str, trial_id: int) -> dict[str, Any]:
    """The trial as stored, after reading every public view in full (their casts must hold)."""
    with Store(store).connect() as con:
        for view in PUBLIC_VIEWS:
            con.execute(f"SELECT * FROM {view}").fetchall()
        row = con.execute(
            "SELECT t.status, t.params, t.result, t.error, r.notes FROM trials t "
            "JOIN trial_record r USING (uuid) WHERE t.experiment = ? AND t.trial_id = ?",
            [experiment, trial_id],
        ).fetchone()
        metrics = con.execute(
            "SELECT name, epoch, value FROM metrics WHERE experiment = ? AND trial_id = ?",
            [experiment, trial_id],
        ).fetchall()
        running = con.execute("SELECT count(*) FROM trials WHERE status = 'running'").fetchone()
    assert row is not None, f"trial {trial_id} of {experiment} was not recorded"
    assert running[0] == 0, "no trial may be left running once compute() has returned"
    status, params, result, error, notes = row
    return {
        "status": status,
        "params": json.loads(params),
        "result_text": result,
        "result": json.loads(result) if result is not None else None,
        "error": error,
        "notes": json.loads(notes) if notes else [],
        "metrics": metrics,
    }


@pytest.mark.slow
@SETTINGS
@given(value=anything)
@example(value=TEN_MB)
@example(value=10**400)
@example(value=-(10**5000))
@example(value=float("nan"))
@example(value={"nested": [{"deep": [1, [2, [3, {"x": "\udc80"}]]]}]})
def test_any_parameter_value(params_experiment: tuple[Path, Any, Any], value: Any) -> None:
    store, ex, node = params_experiment
    before = ex.trial_id
    try:
        node.compute(scheduler="sync", p=value)
    except errors.ParameterError as exc:
        assert "cannot be recorded" in str(exc)
        assert ex.trial_id == before, "a refused call uses no trial id"
        return
    got = read_back(store, "fuzz_params", ex.trial_id)
    assert got["status"] == "succeeded"
    assert got["params"] == {"p": expected(value)}


@SETTINGS
@given(name=any_text)
@example(name="λ_ünïcode")
@example(name="class")
def test_any_parameter_name(store: Path, name: str) -> None:
    ex = tuixp.Experiment("fuzz_names", store=store)
    try:
        p = ex.parameter(name)
    except errors.ParameterError as exc:
        assert "identifier" in str(exc)
        return

    @ex.result
    def echo(v):
        return v

    before = ex.trial_id
    try:
        echo(p).compute(scheduler="sync", **{name: 3})
    except errors.TuixpError as exc:  # a keyword: refused before a trial id is used
        assert ex.trial_id == before, exc
        return
    got = read_back(store, "fuzz_names", ex.trial_id)
    assert got["params"] == {name: 3}
    assert got["result"] == 3


@pytest.mark.slow
@SETTINGS
@given(
    name=any_text | st.sampled_from(["loss", "acc_1"]),
    epoch=st.integers() | huge_ints | st.floats() | any_text | st.none(),
    value=st.floats() | st.integers() | huge_ints | any_text | st.none() | st.sampled_from(ODD),
)
@example(name="loss", epoch=2**63, value=1.0)
@example(name="loss", epoch=1, value=10**400)
@example(name="loss", epoch=1, value=np.float32(0.5))
def test_any_metric(
    metrics_experiment: tuple[Path, Any, Any, dict[str, Any]], name: str, epoch: Any, value: Any
) -> None:
    store, ex, node, inputs = metrics_experiment
    inputs.update(name=name, epoch=epoch, value=value)
    try:
        node.compute(scheduler="sync")
    except errors.TuixpError:
        got = read_back(store, "fuzz_metrics", ex.trial_id)
        assert got["status"] == "failed", "a refused metric fails its step, which is recorded"
        assert "Metric" in got["error"]
        return
    got = read_back(store, "fuzz_metrics", ex.trial_id)
    assert got["status"] == "succeeded"
    assert len(got["metrics"]) == 1, f"a metric that was accepted must be stored: {got}"
    stored_name, stored_epoch, stored_value = got["metrics"][0]
    assert (stored_name, stored_epoch) == (name, int(epoch))
    assert stored_value == float(value) or math.isnan(stored_value) and math.isnan(float(value))


@pytest.mark.slow
@SETTINGS
@given(value=anything)
@example(value=10**400)
@example(value=np.arange(10**5))
def test_any_step_result(
    results_experiment: tuple[Path, Any, Any, dict[str, Any]], value: Any
) -> None:
    check_step_result(results_experiment, value)


def test_a_result_whose_repr_fails(
    results_experiment: tuple[Path, Any, Any, dict[str, Any]],
) -> None:
    got = check_step_result(results_experiment, Unprintable())
    assert got["result"] == "<Unprintable object: its repr failed>"


def check_step_result(
    experiment: tuple[Path, Any, Any, dict[str, Any]], value: Any
) -> dict[str, Any]:
    store, ex, node, inputs = experiment
    inputs["value"] = value
    out = node.compute(scheduler="sync")
    assert out is value, "the caller always gets the very object back"
    got = read_back(store, "fuzz_results", ex.trial_id)
    assert got["status"] == "succeeded"
    assert got["result_text"] is not None
    # numpy scalars are kept as the number they hold
    plain_value = value.item() if isinstance(value, np.generic) else value
    try:
        plain = (
            not isinstance(plain_value, tuple)
            and json.loads(json.dumps(plain_value, allow_nan=False)) == plain_value
        )
    except (TypeError, ValueError):
        plain = False  # not strict JSON, or (numpy) no single truth value
    if plain:
        assert got["result"] == expected(plain_value)
    else:
        assert isinstance(got["result"], str), "kept as its text when it is not JSON"
    persisted = [n for n in got["notes"] if "could not persist" in n]
    try:
        back = ex.get_persisted("keep")
    except errors.TuixpError:
        assert persisted, "an output that was not persisted says so in the trial's notes"
    else:
        assert not persisted
        assert type(back) is type(value) or isinstance(value, (tuple, np.generic))
    return got
