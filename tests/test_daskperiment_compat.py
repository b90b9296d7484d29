"""A daskperiment 0.5.0 user switches by changing one import (issue 21).

Each test is a behaviour daskperiment's users rely on, checked against tuixp with real stores,
real Dask schedulers and real processes. The facts come from daskperiment 0.5.0's source and
its quickstart notebook (docs/daskperiment.md lists what still differs, and why).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import pickle
import shutil
import subprocess
import sys
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
        assert tuixp.Experiment("logged", store=store_path) is ex  # the same: not logged again
    assert [r.getMessage() for r in caplog.records] == [
        f"Initialized new experiment: Experiment(id='logged2', store='{store_path}')"
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
