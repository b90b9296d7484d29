"""A daskperiment 0.5.0 user switches by changing one import (issue 21).

Each test is a behaviour daskperiment's users rely on, checked against tuixp with real stores,
real Dask schedulers and real processes. The facts come from daskperiment 0.5.0's source and
its quickstart notebook (docs/daskperiment.md lists what still differs, and why).
"""

from __future__ import annotations

import importlib.util
import pickle
import shutil
from pathlib import Path

import cloudpickle
import dask
import pytest

import tuixp
from tuixp import errors


def quickstart(store: Path, name: str = "quickstart_pj") -> tuple[tuixp.Experiment, object]:
    ex = tuixp.Experiment(name, store=store)
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    d = prepare_data(a, b)
    return ex, calculate_score(d)


# -- 1. parameters and step outputs behave like dask.delayed objects --------------------------
def test_parameter_computes_to_its_default_then_its_value(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    a = ex.parameter("a", default=2)
    assert a.compute() == 2
    ex.set_parameters(a=5)
    assert a.compute() == 5
    b = ex.parameter("b")
    with pytest.raises(errors.ParameterUndefinedError, match="initialize: b"):
        b.compute()
    assert ex.trial_id == 0  # computing a parameter is no trial


def test_parameter_repr_is_daskperiments(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    a = ex.parameter("a")
    assert repr(a) == "Parameter(a: Undefined)"
    ex.set_parameters(a=1)
    assert repr(a) == "Parameter(a: 1<class 'int'>)"
    ex.set_parameters(a="x")
    assert repr(a) == "Parameter(a: x<class 'str'>)"


def test_operators_on_parameters_build_graph_nodes(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    a = ex.parameter("a")
    ex.set_parameters(a=3)
    assert (a + 1).compute() == 4
    assert (1 - a).compute() == -2
    assert (a * a).compute() == 9
    assert (a / 2).compute() == 1.5
    assert (a // 2).compute() == 1
    assert (a**2).compute() == 9
    assert (-a).compute() == -3
    assert (a > 2).compute() is True
    assert (a == 3).compute() is True
    ex.set_parameters(a=[1, 2, 3])
    assert a[1].compute() == 2
    ex.set_parameters(a="hello")
    assert a.upper().compute() == "HELLO"
    assert ex.trial_id == 0
    with pytest.raises(TypeError, match="not known until it is computed"):
        bool(a)


def test_undecorated_helper_and_operators_on_step_outputs_run_in_the_trial(
    store_path: Path,
) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    a = ex.parameter("a")
    b = ex.parameter("b")

    def helper(x):  # not a step: runs while the graph is built, on placeholders
        return x + 1

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    d = prepare_data(helper(a), b)
    s = calculate_score(d * 2)
    ex.set_parameters(a=1, b=3)
    assert s.compute() == 10 / ((1 + 1 + 3) * 2)
    assert ex.trial_id == 1
    assert (s + 1).compute() == 10 / 10 + 1  # an operator on a result: a trial of its own
    assert ex.trial_id == 2
    hist = ex.get_history()
    assert hist["Result"].tolist() == [1.0, 2.0]
    # Operators are part of the graph, not steps: the trial records only the two steps.
    assert "def prepare_data" in ex.get_code(1) and "operator" not in ex.get_code(1)


def test_failing_operator_fails_the_trial(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def score(x):
        return x

    s = score(1 / a)
    ex.set_parameters(a=0)
    with pytest.raises(ZeroDivisionError):
        s.compute()
    hist = ex.get_history()
    assert not hist.loc[1, "Success"]
    assert hist.loc[1, "Description"] == "ZeroDivisionError(division by zero)"


def test_dask_compute_of_a_result_node_records_a_trial(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    ex.set_parameters(a=1, b=4)
    assert dask.compute(s) == (2.0,)
    assert ex.trial_id == 1
    assert dask.compute(s, scheduler="sync") == (2.0,)
    assert ex.trial_id == 2
    # A node inside a plain dask graph: the trial runs when that graph is computed.
    doubled = dask.delayed(lambda x: x * 2)(s)
    assert ex.trial_id == 2
    assert doubled.compute() == 4.0
    assert ex.trial_id == 3
    assert ex.get_history()["Result"].tolist() == [2.0, 2.0, 2.0]
    assert dask.compute(ex.parameter("a"))[0] == 1  # a parameter: its value, no trial
    assert ex.trial_id == 3
    assert dask.base.is_dask_collection(s)
    assert dask.base.tokenize(s) == dask.base.tokenize(s)


def test_graph_exists_before_parameters_are_set(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    graph = dict(s._plain().dask)  # what visualize draws
    names = sorted(k.split("-")[0] for k in graph)
    assert names == ["a", "b", "calculate_score", "prepare_data"]
    have_graphviz = importlib.util.find_spec("graphviz") is not None and shutil.which("dot")
    if have_graphviz:
        s.visualize(filename=str(store_path.parent / "graph.png"))
        assert (store_path.parent / "graph.png").stat().st_size > 0
    else:
        # dask's own message, not a tuixp traceback: graphviz is what is missing.
        with pytest.raises(RuntimeError, match="install graphviz"):
            s.visualize(filename=str(store_path.parent / "graph.png"))
    assert ex.trial_id == 0


def test_nodes_still_pickle_and_hash(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    a = ex.parameter("a")
    assert {a: 1}[a] == 1  # hashable, even though == builds a node
    # What the processes scheduler and cluster workers do with an experiment and its nodes.
    ex2, s2 = pickle.loads(cloudpickle.dumps((ex, s)))
    assert ex2.id == ex.id and sorted(ex2._params) == ["a", "b"]
    assert s2.step.name == "calculate_score"


# -- 2. decorators with and without parentheses ------------------------------------------------
def test_decorators_with_parentheses(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    a = ex.parameter("a")

    @ex()
    def one(a):
        return a + 1

    @ex.persist()
    def two(x):
        return x * 2

    @ex.result()
    def three(x):
        return x - 1

    ex.set_parameters(a=1)
    assert three(two(one(a))).compute() == 3
    assert ex.get_persisted("two", 1) == 4
    assert sorted(ex._steps) == ["one", "three", "two"]


# -- 3. one object per id -----------------------------------------------------------------------
def test_one_object_per_id_and_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = tuixp.Experiment("same")
    assert tuixp.Experiment("same") is first
    assert tuixp.Experiment("same", store=tmp_path / "tuixp.duckdb") is first
    a = first.parameter("a")
    first.set_parameters(a=3)
    again = tuixp.Experiment("same")
    assert again.parameter("a") is a and a.compute() == 3  # state kept, not reset
    assert tuixp.Experiment("other") is not first
    assert tuixp.Experiment("same", store=tmp_path / "b.duckdb") is not first


# -- 4. trial ids and daskperiment's error classes ----------------------------------------------
def test_trial_id_inside_a_step_is_locked(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    seen = []

    @ex.result
    def score(x):
        seen.append(ex.current_trial_id)
        return ex.trial_id

    with pytest.raises(errors.LockedTrialError) as info:
        score(1).compute()
    assert str(info.value) == (
        "Unable to use TrialManager.trial_id during trial. Use .current_trial_id for safety."
    )
    assert seen == [1]
    assert ex.trial_id == 1
    assert ex.get_history().loc[1, "Description"].startswith("LockedTrialError(")


def test_current_trial_id_outside_a_trial(store_path: Path) -> None:
    ex = tuixp.Experiment("p", store=store_path)
    with pytest.raises(
        tuixp.TrialIDNotFoundError, match="Current Trial ID only exists during a trial execution"
    ):
        _ = ex.current_trial_id


def test_daskperiment_error_classes_are_exported(store_path: Path) -> None:
    for name in (
        "ParameterUndeclaredError",
        "ParameterUndefinedError",
        "TrialIDNotFoundError",
        "LockedTrialError",
    ):
        cls = getattr(tuixp, name)
        assert cls is getattr(errors, name)
        assert issubclass(cls, ValueError)
    ex, s = quickstart(store_path)
    with pytest.raises(tuixp.ParameterUndeclaredError, match="declare: c"):
        ex.set_parameters(c=1)
    with pytest.raises(tuixp.ParameterUndefinedError, match="initialize: a, b"):
        s.compute()
    with pytest.raises(tuixp.TrialIDNotFoundError, match="Unable to find trial id: 1"):
        ex.get_parameters(1)
    assert ex.trial_id == 0
