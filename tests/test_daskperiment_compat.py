"""A daskperiment 0.5.0 user switches by changing one import (issue 21).

Each test is a behaviour daskperiment's users rely on, checked against tuixp with real stores,
real Dask schedulers and real processes. The facts come from daskperiment 0.5.0's source and
its quickstart notebook (docs/daskperiment.md lists what still differs, and why).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import dask
import pytest

import tuixp
from tuixp import errors

from .conftest import env_with_path


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


# -- 5. get_history has daskperiment's columns exactly ----------------------------------------
HISTORY = ["Result", "Success", "Finished", "Process Time", "Description"]
VERBOSE = ["Seed", "Result", "Result Type", "Success", "Finished", "Process Time", "Description"]


def test_empty_history_has_daskperiments_columns(store_path: Path) -> None:
    ex, _ = quickstart(store_path)
    hist = ex.get_history()
    assert list(hist.columns) == HISTORY  # no parameter columns before a trial
    assert hist.index.name == "Trial ID" and len(hist) == 0
    assert list(ex.get_history(verbose=True).columns) == VERBOSE


def test_verbose_history_columns_and_failed_result_type(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    ex.set_parameters(a=1, b=1)
    s.compute(seed=3)
    ex.set_parameters(b=-1)
    with pytest.raises(ZeroDivisionError):
        s.compute(seed=4)
    verbose = ex.get_history(verbose=True)
    assert list(verbose.columns) == ["a", "b", *VERBOSE]
    assert verbose["Result Type"].tolist() == ["<class 'float'>", "None"]
    assert verbose["Seed"].tolist() == [3, 4]
    assert list(ex.get_history().columns) == ["a", "b", *HISTORY]
    # tuixp's own Status column, only when asked for.
    with_status = ex.get_history(verbose=True, status=True)
    assert list(with_status.columns) == ["a", "b", *VERBOSE, "Status"]
    assert with_status["Status"].tolist() == ["succeeded", "failed"]
    assert list(ex.get_history(status=True).columns) == ["a", "b", *HISTORY, "Status"]


# -- 6. metrics ---------------------------------------------------------------------------------
def test_metrics_keyword_names_dtypes_and_messages(store_path: Path) -> None:
    ex = tuixp.Experiment("m", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def score(a):
        for i in range(3):
            ex.save_metric(metric_key="count", epoch=i, value=i * a)
            ex.save_metric("ratio", epoch=i, value=i / 4)
            ex.save_metric(key="alias", epoch=i, value=1.5)
        return a

    s = score(a)
    ex.set_parameters(a=2)
    s.compute()
    ex.set_parameters(a=3)
    s.compute()
    count = ex.load_metric(metric_key="count", trial_id=[1, 2])
    assert count.index.name == "Epoch" and list(count.columns) == [1, 2]
    assert str(count[1].dtype) == "int64" and count[2].tolist() == [0, 3, 6]
    assert str(ex.load_metric("ratio", 1)[1].dtype) == "float64"
    assert ex.load_metric(key="alias", trial_id=2)[2].tolist() == [1.5, 1.5, 1.5]
    with pytest.raises(ValueError, match="Unable to find saved metric with specified key: nope"):
        ex.load_metric("nope", 1)
    with pytest.raises(ValueError, match=r"^Metric name must be str, given: 1<class 'int'>$"):
        ex.load_metric(1, 1)
    with pytest.raises(
        ValueError, match=r"^Metric name must be valid as python identifier: aa:aa$"
    ):
        ex.load_metric("aa:aa", 1)

    @ex.result
    def other(a):
        ex.save_metric("ratio", epoch=0, value=0.5)
        ex.save_metric("aa:aa", epoch=0, value=1)

    ex.set_parameters(a=1)
    with pytest.raises(ValueError, match="python identifier: aa:aa"):
        other(a).compute()

    @ex.result
    def quiet(a):
        return a

    quiet(a).compute()  # trial 4 saves no metric
    with pytest.raises(
        tuixp.TrialIDNotFoundError, match="^Current Trial ID only exists during a trial execution$"
    ):
        ex.save_metric("count", epoch=0, value=1)  # outside a step
    with pytest.raises(tuixp.TrialIDNotFoundError, match=r"^Unable to find trial id: 4$"):
        ex.load_metric("count", 4)


# -- 7. get_code ----------------------------------------------------------------------------------
def test_get_code_separates_steps_with_two_blank_lines(store_path: Path) -> None:
    ex, s = quickstart(store_path)
    expected = (
        "@ex\ndef prepare_data(a, b):\n    return a + b\n\n\n"
        "@ex.result\ndef calculate_score(s):\n    return 10 / s\n"
    )
    assert ex.get_code() == expected
    ex.set_parameters(a=1, b=1)
    s.compute()
    assert ex.get_code(1) == expected


# -- 8. get_environment is daskperiment's text -------------------------------------------------
SUMMARY_LABELS = [
    "Platform Information",
    "Device CPU Count",
    "Python Implementation",
    "Python Version",
    "Python Shell Mode",
    "Python venv",  # "Python venv Name: NAME" in a venv, "Python venv: False" outside one
    "tuixp Version",  # where daskperiment said "Daskperiment Version"
    "Git Repository",
    "Git Active Branch",
    "Git HEAD Commit",
]


def test_environment_summary_is_daskperiments_text(store_path: Path) -> None:
    import platform
    import sys

    ex, s = quickstart(store_path)
    ex.set_parameters(a=1, b=1)
    s.compute()
    for trial in (None, 1):
        text = ex.get_environment(trial)
        assert isinstance(text, str)
        lines = text.splitlines()
        labels = [line.split(":", 1)[0] for line in lines]
        assert [lab.replace(" Name", "") for lab in labels[:10]] == SUMMARY_LABELS
        assert lines[3] == f"Python Version: {platform.python_version()}"
        assert lines[1] == f"Device CPU Count: {__import__('os').cpu_count()}"
        assert labels[10:] == ["Device GPUs"]  # tuixp's extra facts come after
    assert "Python Shell Mode: Test" in ex.get_environment()  # this process: pytest
    venv = sys.prefix != sys.base_prefix
    assert ("Python venv Name: " if venv else "Python venv: False") in ex.get_environment(1)


def test_environment_categories_are_text(store_path: Path) -> None:
    import numpy as np
    import pandas as pd

    ex, s = quickstart(store_path)
    ex.set_parameters(a=1, b=1)
    s.compute()
    reqs = ex.get_environment(1, category="requirements")
    assert f"numpy=={np.__version__}" in reqs.splitlines()
    assert f"pandas=={pd.__version__}" in reqs.splitlines()
    assert ex.get_python_packages(1) == reqs
    assert ex.get_python_packages() == ex.get_environment(category="requirements")
    assert ex.get_environment(1, category="numpy") == f"NumPy Version: {np.__version__}"
    assert ex.get_environment(1, category="platform").splitlines()[1].startswith("Device CPU")
    cpu = ex.get_environment(1, category="cpu")
    assert "Count: " in cpu and "Hz Actual" not in cpu  # clock speed is noise: not recorded
    git = ex.get_environment(1, category="git").splitlines()
    assert git[0].startswith("Git Repository: ")
    python = ex.get_environment(1, category="Python").splitlines()  # case as daskperiment
    assert python[0] == "Python Implementation: CPython"
    with pytest.raises(ValueError, match="Category must be either platform, cpu"):
        ex.get_environment(1, category="nope")
    # tuixp's structured records stay available.
    assert ex.get_environment_record(1, category="python")["version"] == python[1].split(": ")[1]
    assert isinstance(ex.get_environment_record(1, category="packages"), dict)


# -- 9. logging -----------------------------------------------------------------------------------
def test_info_lines_on_creation_parameters_and_each_trial(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tuixp"):
        ex = tuixp.Experiment("logged", store=store_path)
        a = ex.parameter("a")

        @ex.persist
        def prepare(a):
            return a + 1

        @ex.result
        def score(x):
            return x * 2

        s = score(prepare(a))
        ex.set_parameters(a=1)
        s.compute()
        s.compute(seed=7)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos[0].startswith("Initialized new experiment: Experiment(id='logged'")
    assert "Updated parameters: a=1<class 'int'>" in infos
    first = infos.index("Started Experiment (trial id=1)")
    assert infos[first + 1] == "Parameters: a=1<class 'int'>"
    assert infos[first + 2].startswith(
        "Random seed is not provided, initialized with generated seed: "
    )
    generated = int(infos[first + 2].rsplit(" ", 1)[1])
    assert ex.get_history(verbose=True).loc[1, "Seed"] == generated
    assert "Saved the output of prepare (trial id=1)" in infos
    assert "Finished Experiment (trial id=1)" in infos
    assert "Random seed is initialized with given seed: 7" in infos
    assert "Finished Experiment (trial id=2)" in infos
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tuixp"):
        tuixp.Experiment("logged2", store=store_path)
        # The same object; daskperiment re-ran __init__, which logged the loaded history.
        assert tuixp.Experiment("logged", store=store_path) is ex
    assert [r.getMessage() for r in caplog.records] == [
        f"Initialized new experiment: Experiment(id='logged2', store='{store_path}')",
        f"Loaded existing experiment: Experiment(id='logged', store='{store_path}') (trial_id: 2)",
    ]


def test_code_change_is_warned_once(store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ex = tuixp.Experiment("changed", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def score(a):
        return a

    ex.set_parameters(a=1)
    score(a).compute()
    with caplog.at_level(logging.WARNING, logger="tuixp"):

        @ex.result
        def score(a):  # noqa: F811 - redefined, as a notebook cell run again
            return a + 1

        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1 and warned[0].startswith("Code context has been changed: score")
        assert "+    return a + 1" in warned[0]
        score(a).compute()  # the same change: not warned again
    code_warnings = [r for r in caplog.records if "Code context" in r.getMessage()]
    assert len(code_warnings) == 1
    # The trial still records the change (tuixp diff, the TUI show it).
    assert ex.get_history().loc[2, "Result"] == 2


# -- 10. daskperiment's scripts -----------------------------------------------------------------
DASKPERIMENT_SCRIPT = """\
import tuixp as daskperiment

ex = daskperiment.Experiment(id='simple_experiment_pj')

a = ex.parameter('a')
b = ex.parameter('b')


@ex
def prepare_data(a, b):
    return a + b


@ex.result
def calculate_score(s):
    return s + 1


d = prepare_data(a, b)
calculate_score(d)
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=120, env=env_with_path()
    )


@pytest.mark.slow
def test_tuixp_run_accepts_a_daskperiment_script(tmp_path: Path) -> None:
    script = tmp_path / "simple_experiment.py"
    script.write_text(DASKPERIMENT_SCRIPT)
    tuixp_cmd = [sys.executable, "-m", "tuixp"]
    done = _run([*tuixp_cmd, "run", "simple_experiment.py", "a=1", "b=2", "-f", "json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["result"] == 4
    again = _run([*tuixp_cmd, "run", "simple_experiment.py", "a=3", "b=2"], tmp_path)
    assert again.returncode == 0, again.stderr
    missing = _run([*tuixp_cmd, "run", "simple_experiment.py", "a=1"], tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "tuixp: no value for parameter(s) b of experiment simple_experiment_pj: give NAME=VALUE"
    ]
    ex = tuixp.Experiment("simple_experiment_pj", store=tmp_path / "tuixp.duckdb")
    assert ex.get_history()["Result"].tolist() == [4, 6]


def test_plain_python_on_a_daskperiment_script_runs_nothing_but_says_how(tmp_path: Path) -> None:
    script = tmp_path / "simple_experiment.py"
    script.write_text(DASKPERIMENT_SCRIPT)
    done = _run([sys.executable, "simple_experiment.py", "a=1", "b=2"], tmp_path)
    assert done.returncode == 0
    hint = done.stderr.strip().splitlines()
    assert len(hint) == 1, done.stderr
    assert "`tuixp run simple_experiment.py a=1 b=2`" in hint[0] and ".compute()" in hint[0]
    assert not (tmp_path / "tuixp.duckdb").exists()  # no trial, nothing written
    # A script that computes its result gets no hint.
    script.write_text(
        DASKPERIMENT_SCRIPT.replace("calculate_score(d)\n", "")
        + "ex.set_parameters(a=1, b=2)\nprint(calculate_score(d).compute())\n"
    )
    done = _run([sys.executable, "simple_experiment.py"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4" and "tuixp run" not in done.stderr


# -- 11. backend= -------------------------------------------------------------------------------
def test_backend_local_and_paths_map_to_a_duckdb_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    local = tuixp.Experiment("b", backend="local")
    assert local.store.path == tmp_path / "tuixp.duckdb"
    assert tuixp.Experiment("b") is local
    folder = tuixp.Experiment("b", backend=tmp_path / "cache")
    assert folder.store.path == tmp_path / "cache" / "tuixp.duckdb"
    assert tuixp.Experiment("b", backend=str(tmp_path / "cache")) is folder
    assert tuixp.Experiment("b", store=tmp_path / "cache" / "tuixp.duckdb") is folder
    assert tuixp.Experiment("b", "local") is local  # daskperiment's positional backend
    file = tuixp.Experiment("b", backend="elsewhere.duckdb")
    assert file.store.path == tmp_path / "elsewhere.duckdb"
    a = folder.parameter("a")

    @folder.result
    def score(a):
        return a * 2

    folder.set_parameters(a=2)
    assert score(a).compute() == 4
    assert folder.get_history()["Result"].tolist() == [4]
    assert (tmp_path / "cache" / "tuixp.duckdb").exists()
    assert local.trial_id == 0 and not (tmp_path / "tuixp.duckdb").exists()


@pytest.mark.parametrize("uri", ["redis://localhost:6379/0", "mongodb://localhost:27017/"])
def test_redis_and_mongodb_backends_say_what_to_use(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(tuixp.TuixpError) as info:
        tuixp.Experiment("b", backend=uri)
    message = str(info.value)
    assert "\n" not in message
    assert "one DuckDB store file" in message and "tuixp merge" in message
    assert uri.split(":")[0] in message
    assert list(tmp_path.iterdir()) == []  # nothing written
    with pytest.raises(tuixp.TuixpError, match="not both"):
        tuixp.Experiment("b", store=tmp_path / "s.duckdb", backend=tmp_path / "x")


# -- the quickstart notebook, in a real Jupyter kernel -----------------------------------------
QUICKSTART_CELLS = [
    "import numpy as np\nimport tuixp as daskperiment",
    "ex = daskperiment.Experiment(id='quickstart_pj')\nex",
    "a = ex.parameter('a')\nb = ex.parameter('b')\na",
    """\
@ex
def prepare_data(a, b):
    return a + b

@ex.result
def calculate_score(s):
    return 10 / s

d = prepare_data(a, b)
s = calculate_score(d)""",
    "VISUALIZE",
    "ex.set_parameters(a=1, b=2)\na.compute()",
    "s.compute()",
    "ex.set_parameters(b=3)\ns.compute()",
    "ex.get_history()",
    "ex.get_parameters(trial_id=1)",
    """\
ex.set_parameters(a=1, b=-1)
try:
    s.compute()
except ZeroDivisionError as e:
    print('{}({})'.format(e.__class__.__name__, e))""",
    """\
@ex.persist
def prepare_data(a, b):
    return a + b

d = prepare_data(a, b)
s = calculate_score(d)""",
    "ex.set_parameters(a=1, b=2)\ns.compute()",
    "ex.get_persisted('prepare_data', trial_id=4)",
    """\
@ex.result
def calculate_score(s):
    for i in range(100):
        ex.save_metric('dummy_score', epoch=i, value=100 - np.random.random() * i)
    return 10 / s

d = prepare_data(a, b)
s = calculate_score(d)""",
    "ex.set_parameters(a=1, b=2)\ns.compute()",
    "dummy_score = ex.load_metric('dummy_score', trial_id=5)\nprint(dummy_score.shape)",
    "ex.set_parameters(a=3, b=4)\nfirst = s.compute(seed=1)\nsecond = s.compute(seed=1)\n"
    "first == second",
    "print(list(ex.get_history(verbose=True).columns))",
    "ex_new = daskperiment.Experiment(id='quickstart_pj')\n"
    "(ex_new is ex, ex_new.trial_id, len(ex_new.get_history()))",
]


def _cell_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_in_a_jupyter_kernel(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    have_graphviz = importlib.util.find_spec("graphviz") is not None and shutil.which("dot")
    visualize = (
        "s.visualize()"
        if have_graphviz
        else "try:\n    s.visualize()\nexcept RuntimeError as e:\n    print('no graphviz:', e)"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(visualize if src == "VISUALIZE" else src)
        for src in QUICKSTART_CELLS
    ]
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    out = [_cell_text(c) for c in nb.cells]
    assert "Initialized new experiment" in out[1]  # INFO lines show in a notebook
    assert "Parameter(a: Undefined)" in out[2]
    if not have_graphviz:
        assert "no graphviz: No visualization engine detected" in out[4]
    assert "Updated parameters: a=1<class 'int'>, b=2<class 'int'>" in out[5]
    assert out[5].rstrip().endswith("\n1") or out[5].strip() == "1"
    assert "Started Experiment (trial id=1)" in out[6] and "3.3333333333333335" in out[6]
    assert "Finished Experiment (trial id=1)" in out[6]
    assert out[7].rstrip().endswith("2.5")
    history = out[8]
    for column in ("a", "b", "Result", "Success", "Finished", "Process Time", "Description"):
        assert column in history
    assert "{'a': 1, 'b': 2}" in out[9]
    assert "ZeroDivisionError(division by zero)" in out[10]
    assert out[11].count("Code context has been changed: prepare_data") == 1
    assert "Code context" not in out[12]  # warned once, at the redefinition
    assert out[13].strip() == "3"
    assert "(100, 1)" in out[16]
    assert out[17].rstrip().endswith("True")
    assert f"{['a', 'b', *VERBOSE]}" in out[18]
    assert out[19].rstrip().endswith("(True, 7, 7)")
    assert not [c for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]


def test_readme_example_runs_under_import_tuixp_as_daskperiment(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("## In Python\n\n```python\n", 1)[1].split("```", 1)[0]
    assert block.startswith("import tuixp\n")
    as_daskperiment = "import tuixp as daskperiment\n" + block[len("import tuixp\n") :].replace(
        "tuixp.", "daskperiment."
    )
    script = tmp_path / "readme_example.py"
    script.write_text(as_daskperiment + "\nprint(ex.get_history()['Result'].tolist())\n")
    done = _run([sys.executable, str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        [10 / 6] + [10 / ((a + b) * 2) for a in (1, 2, 3) for b in (0, 5)]
    )


def test_dashboard_says_what_to_use_instead(store_path: Path) -> None:
    ex = tuixp.Experiment("d", store=store_path)
    with pytest.raises(tuixp.TuixpError, match=r"no web dashboard: run `tuixp` in a terminal"):
        ex.start_dashboard()


# -- 12. tuixp import-daskperiment --------------------------------------------------------------
# daskperiment 0.5.0's local history, built from its documented layout with stand-ins for its
# classes (same module and class names, same attributes), so the test needs no daskperiment.
STAND_INS = {
    "daskperiment/__init__.py": "",
    "daskperiment/backend/__init__.py": "",
    "daskperiment/backend/local.py": "class LocalBackend:\n    pass\n",
    "daskperiment/core/__init__.py": "",
    "daskperiment/core/trial/__init__.py": "",
    "daskperiment/core/trial/local.py": "class LocalTrialManager:\n    pass\n",
    "daskperiment/core/metric/__init__.py": "",
    "daskperiment/core/metric/local.py": "class LocalMetricManager:\n    pass\n\n\n"
    "class Metric:\n    pass\n",
}
WRITE_HISTORY = """\
import json, pathlib, pickle, sys
import numpy as np
import pandas as pd
from daskperiment.backend.local import LocalBackend
from daskperiment.core.metric.local import LocalMetricManager, Metric
from daskperiment.core.trial.local import LocalTrialManager

exp, n_trials, claimed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = pathlib.Path("daskperiment_cache") / exp
for sub in ("code", "environment", "persist"):
    (cache / sub).mkdir(parents=True, exist_ok=True)
backend = LocalBackend()
backend.experiment_id, backend.cache_dir = exp, cache
trials, metrics = LocalTrialManager(), LocalMetricManager()
backend.trials, backend.metrics = trials, metrics
trials.backend = metrics.backend = backend
trials._trial_id = trials._current_trial_id = claimed
trials._parameters_history, trials._result_history, trials._hashes = {}, {}, {}
metric = Metric()
metric.metric_key, metric.values = "loss", {}
metrics.metrics = {"loss": metric}
t0 = pd.Timestamp("2019-04-24 06:18:59.932019")
for tid in range(1, n_trials + 1):
    ok = tid != 2
    trials._parameters_history[tid] = {"a": tid, "b": np.int64(2)}
    trials._result_history[tid] = {
        "Result": np.float64(10 / (tid + 2)) if ok else None,
        "Result Type": "<class 'numpy.float64'>" if ok else "None",
        "Success": ok,
        "Finished": t0 + pd.Timedelta(seconds=tid),
        "Process Time": pd.Timedelta(milliseconds=40 + tid),
        "Description": np.nan if ok else "ZeroDivisionError(division by zero)",
        "Seed": 1000 + tid,
    }
    metric.values[tid] = [
        {"Epoch": e, "Value": 100 - e * tid, "Timestamp": t0} for e in range(3)
    ]
    (cache / "code" / f"{exp}_{tid}.py").write_text(
        f"# Code output saved in trial_id={tid}\\n@ex.result\\ndef score(a, b):\\n"
        f"    return 10 / (a + b)\\n"
    )
    (cache / "environment" / f"requirements_{exp}_{tid}.txt").write_text(
        "numpy==1.16.2\\npandas==0.24.2"
    )
    (cache / "environment" / f"python_{exp}_{tid}.json").write_text(json.dumps(
        {"Python Implementation": "CPython", "Python Version": "3.6.8",
         "Python venv Flag": False}
    ))
    (cache / "environment" / f"platform_{exp}_{tid}.json").write_text(json.dumps(
        {"Platform Information": "Darwin-17.7.0-x86_64-i386-64bit", "Device CPU Count": 4}
    ))
    (cache / "environment" / f"git_{exp}_{tid}.json").write_text(json.dumps(
        {"Working Directory": "/w", "Git Repository": "/w", "Git Active Branch": "master",
         "Git HEAD Commit": "ac7a6ea4" * 5, "Git Dirty Flag": tid == 3}
    ))
    with open(cache / "persist" / f"{exp}_prepare_data_{tid}.pkl", "wb") as f:
        pickle.dump({"sum": tid + 2}, f)
with open(cache / f"{exp}.pkl", "wb") as f:
    pickle.dump(backend, f)
"""


def _daskperiment_history(
    where: Path, experiment: str = "quickstart_pj", trials: int = 3, claimed: int | None = None
) -> Path:
    fake = where / "stand_ins"
    for rel, text in STAND_INS.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    (where / "write_history.py").write_text(WRITE_HISTORY)
    env = env_with_path()
    env["PYTHONPATH"] = f"{fake}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "write_history.py", experiment, str(trials), str(claimed or trials)],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return where / "daskperiment_cache"


def _import(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "tuixp", "import-daskperiment", *args], where)


@pytest.mark.slow
def test_import_daskperiment_history(tmp_path: Path) -> None:
    cache = _daskperiment_history(tmp_path)
    store = tmp_path / "t.duckdb"
    done = _import(tmp_path, str(cache), "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert "quickstart_pj: imported 3 trial(s)" in done.stdout
    ex = tuixp.Experiment("quickstart_pj", store=store)
    hist = ex.get_history(verbose=True)
    assert list(hist.columns) == ["a", "b", *VERBOSE]
    assert hist.index.tolist() == [1, 2, 3]
    assert hist["a"].tolist() == [1, 2, 3] and hist["b"].tolist() == [2, 2, 2]
    assert hist["Seed"].tolist() == [1001, 1002, 1003]
    assert hist["Success"].tolist() == [True, False, True]
    assert hist.loc[2, "Description"] == "ZeroDivisionError(division by zero)"
    assert hist.loc[2, "Result Type"] == "None"
    assert hist.loc[1, "Result"] == pytest.approx(10 / 3)
    assert hist.loc[1, "Result Type"] == "<class 'numpy.float64'>"
    assert str(hist.loc[3, "Finished"]) == "2019-04-24 06:19:02.932019"  # the local time written
    assert hist.loc[3, "Process Time"] == __import__("pandas").Timedelta(milliseconds=43)
    loss = ex.load_metric("loss", [1, 3])
    assert loss[3].tolist() == [100, 97, 94] and str(loss[3].dtype) == "int64"
    assert ex.get_persisted("prepare_data", 3) == {"sum": 5}
    assert ex.get_code(1) == "@ex.result\ndef score(a, b):\n    return 10 / (a + b)\n"
    assert ex.get_python_packages(1) == "numpy==1.16.2\npandas==0.24.2"
    summary = ex.get_environment(3)
    assert "Platform Information: Darwin-17.7.0-x86_64-i386-64bit" in summary
    assert f"Git HEAD Commit: {'ac7a6ea4' * 5} (DIRTY)" in summary
    # Idempotent: again adds nothing; trials recorded later continue the ids.
    again = _import(tmp_path, str(cache / "quickstart_pj"), "--store", str(store))
    assert again.returncode == 0, again.stderr
    assert "imported 0 trial(s)" in again.stdout and "3 already in" in again.stdout
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.result
    def score(a, b):
        return 10 / (a + b)

    ex.set_parameters(a=1, b=1)
    score(a, b).compute()
    assert ex.get_history().index.tolist() == [1, 2, 3, 4]


def test_import_refuses_what_is_not_a_history(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    store = tmp_path / "t.duckdb"
    done = _import(tmp_path, str(tmp_path / "empty"), "--store", str(store))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"tuixp: {tmp_path / 'empty'} is not a daskperiment history: no "
        "EXPERIMENT/EXPERIMENT.pkl in it"
    ]
    assert not store.exists() and not list(tmp_path.glob("t.duckdb*"))


@pytest.mark.slow
def test_import_refuses_bad_and_partial_histories_and_imports_the_rest(tmp_path: Path) -> None:
    cache = _daskperiment_history(tmp_path, "good_pj")
    _daskperiment_history(tmp_path, "partial_pj", trials=2, claimed=3)
    _daskperiment_history(tmp_path, "cut_pj")
    cut = cache / "cut_pj" / "cut_pj.pkl"
    cut.write_bytes(cut.read_bytes()[:200])
    # A pickle that would run a command: refused before anything runs.
    evil = cache / "evil_pj"
    evil.mkdir()
    marker = tmp_path / "ran"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR."
    (evil / "evil_pj.pkl").write_bytes(payload.encode())
    store = tmp_path / "t.duckdb"
    done = _import(tmp_path, str(cache), "--store", str(store))
    assert done.returncode == 1
    assert "good_pj: imported 3 trial(s)" in done.stdout
    refused = [line for line in done.stderr.splitlines() if "not imported" in line]
    assert len(refused) == 3, done.stderr
    assert any(
        "cut_pj" in line and "not a readable daskperiment history" in line for line in refused
    )
    assert any("partial_pj" in line and "is partial" in line for line in refused)
    assert any("evil_pj" in line and "holds os.system" in line for line in refused)
    assert not marker.exists()
    with tuixp.Experiment("good_pj", store=store).store.connect() as con:
        names = con.execute("SELECT DISTINCT experiment FROM trial_record").fetchall()
    assert names == [("good_pj",)]  # nothing of the refused histories was written


REAL_DASKPERIMENT = os.environ.get("TUIXP_DASKPERIMENT_PYTHONPATH")


@pytest.mark.slow
@pytest.mark.skipif(
    not REAL_DASKPERIMENT,
    reason="set TUIXP_DASKPERIMENT_PYTHONPATH to a folder with daskperiment 0.5.0 (and "
    "gitpython, pyparsing, setuptools<81) installed with pip --target",
)
def test_import_a_history_written_by_daskperiment_itself(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import daskperiment
        ex = daskperiment.Experiment(id='real_pj')
        a = ex.parameter('a')
        ex.set_parameters(a=1)  # daskperiment runs a trial when a script builds its result
        @ex.persist
        def prepare_data(a):
            return a + 1
        @ex.result
        def score(d):
            ex.save_metric('m', epoch=0, value=1.5)
            return 10 / d
        s = score(prepare_data(a))
        ex.set_parameters(a=-1)
        try:
            s.compute()
        except ZeroDivisionError:
            pass
    """)
    (tmp_path / "real.py").write_text(script)
    env = env_with_path()
    env["PYTHONPATH"] = f"{REAL_DASKPERIMENT}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "real.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    store = tmp_path / "t.duckdb"
    imported = _import(tmp_path, "daskperiment_cache", "--store", str(store))
    assert imported.returncode == 0, imported.stderr
    ex = tuixp.Experiment("real_pj", store=store)
    hist = ex.get_history()
    assert hist["Success"].tolist() == [True, False]
    assert hist.loc[1, "Result"] == 5.0 and hist.loc[2, "Description"].startswith("ZeroDivision")
    assert ex.get_persisted("prepare_data", 1) == 2
    assert ex.load_metric("m", 1)[1].tolist() == [1.5]
