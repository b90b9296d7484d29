"""``tuixp run`` in this process (typer's CliRunner): real scripts, real Dask, a real store."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.cli.test_cli_units import (
    ingest,
    invoke,
    one_error_line,
    store_snapshot,
    write_script,
)
from tuixp.store.store import Store


def trials(store: Path, experiment: str = "quick") -> list[tuple]:
    with Store(store).connect() as con:
        return con.execute(
            "SELECT trial_id, status, params::VARCHAR, result::VARCHAR, seed, script "
            "FROM trials WHERE experiment = ? ORDER BY trial_id",
            [experiment],
        ).fetchall()


def test_one_trial_with_parameters(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke("run", script, "a=3", "model=lasso", "--store", store)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows == [
        {
            "experiment": "quick",
            "trial_id": "1",
            "status": "succeeded",
            "a": "3",
            "b": "2",
            "model": "lasso",
            "result": "2.0",
            "error": "",
        }
    ]
    ((tid, status, params, res, _, recorded_script),) = trials(store)
    assert (tid, status, json.loads(params), json.loads(res)) == (
        1,
        "succeeded",
        {"a": 3, "b": 2, "model": "lasso"},
        2.0,
    )
    assert recorded_script == str(script.resolve())
    # imported as a module: the script's main block did not run
    assert not (tmp_path / "main-block-ran").exists()


def test_values_keep_their_python_types(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke(
        "run",
        script,
        "a=1.5",
        "b=-0.5",
        "model=[1, 'x', None]",
        "--store",
        store,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc[0]["params"] == {"a": 1.5, "b": -0.5, "model": [1, "x", None]}
    assert doc[0]["result"] == 10.0
    ((_, _, params, *_),) = trials(store)
    assert json.loads(params) == {"a": 1.5, "b": -0.5, "model": [1, "x", None]}


def test_a_grid_runs_one_trial_per_combination(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke(
        "run",
        script,
        "b=10",
        "--grid",
        "a=1,2",
        "--grid",
        "model=ridge,lasso",
        "--store",
        store,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    recorded = trials(store)
    assert [t[0] for t in recorded] == [1, 2, 3, 4] == [d["trial_id"] for d in shown]
    combos = {(p["a"], p["b"], p["model"]) for p in (json.loads(t[2]) for t in recorded)}
    assert combos == {(1, 10, "ridge"), (1, 10, "lasso"), (2, 10, "ridge"), (2, 10, "lasso")}
    for t in recorded:
        p = json.loads(t[2])
        assert json.loads(t[3]) == pytest.approx(10 / (p["a"] + 10))


def test_a_seed_is_recorded_and_passed_to_every_trial(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = tmp_path / "rand.py"
    script.write_text(
        "import random\nimport tuixp\nex = tuixp.Experiment('rand')\n"
        "n = ex.parameter('n', default=3)\n"
        "@ex.result\ndef draw(n):\n    return [random.random() for _ in range(n)]\n"
        "r = draw(n)\n"
    )
    first = invoke("run", script, "--seed", 5, "--store", store, "--format", "json")
    second = invoke("run", script, "--seed", 5, "--store", store, "--format", "json")
    other = invoke("run", script, "--seed", 6, "--store", store, "--format", "json")
    assert first.exit_code == second.exit_code == other.exit_code == 0
    a, b, c = (json.loads(r.stdout)[0]["result"] for r in (first, second, other))
    assert a == b != c
    assert [t[4] for t in trials(store, "rand")] == [5, 5, 6]


def test_a_failing_trial_is_recorded_and_exits_1(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke("run", script, "--grid", "a=-2,3", "--store", store, "--format", "csv")
    assert result.exit_code == 1
    rows = {r["a"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert rows["-2"]["status"] == "failed"
    assert rows["-2"]["error"] == "ZeroDivisionError: division by zero"
    assert rows["3"]["status"] == "succeeded"
    assert [t[1] for t in trials(store)] == ["failed", "succeeded"]


def test_jsonl_progress_owns_stdout(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke("run", script, "--grid", "a=1,2", "--progress", "jsonl", "--store", store)
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "run_finished"
    assert events[-1]["trials"] == [
        {"trial_id": 1, "status": "succeeded"},
        {"trial_id": 2, "status": "succeeded"},
    ]
    assert events[-1]["store"] == str(store.resolve())
    for trial_id in (1, 2):
        mine = [e for e in events if e.get("trial_id") == trial_id]
        assert mine[0]["kind"] == "trial_started" and mine[-1]["kind"] == "trial_finished"
        assert [e["kind"] for e in mine].count("task_started") == 2
        assert [e["kind"] for e in mine].count("task_finished") == 2
        batches = [e["data"]["points"] for e in mine if e["kind"] == "metrics"]
        assert [e for b in batches for e in b["loss"]["epoch"]] == [0, 1, 2]
        assert {e["step"] for e in mine if e["kind"] == "task_finished"} == {"prepare", "score"}
        assert all(e["experiment"] == "quick" for e in mine)
    # what the script printed went to stderr, not into the event stream
    assert result.stderr.count("prepare ran") == 2


def test_text_progress_off_a_terminal_prints_a_line_per_trial(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke("run", script, "--grid", "a=-2,5", "--progress", "text", "--store", store)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(
        line.startswith("trial 1 failed (") and "ZeroDivisionError" in line for line in lines
    ), result.stderr
    assert any(
        line.startswith("trial 2 succeeded (") and "result 1.42857" in line for line in lines
    ), result.stderr
    assert any("step score failed" in line for line in lines)


def test_store_option_beats_the_scripts_store(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.duckdb"
    mine = tmp_path / "mine.duckdb"
    script = write_script(tmp_path, store=theirs)
    assert invoke("run", script, "a=1", "--store", mine).exit_code == 0
    assert [t[0] for t in trials(mine)] == [1]
    assert not theirs.exists()
    # without --store, the script's store= is used, even with $TUIXP_STORE set
    env_store = tmp_path / "env.duckdb"
    result = invoke("run", script, "a=1", env={"TUIXP_STORE": str(env_store)})
    assert result.exit_code == 0, result.stderr
    assert [t[0] for t in trials(theirs)] == [1]
    assert not env_store.exists()


def test_tuixp_store_is_the_default(tmp_path: Path) -> None:
    env_store = tmp_path / "env.duckdb"
    script = write_script(tmp_path)
    result = invoke("run", script, "a=1", env={"TUIXP_STORE": str(env_store)})
    assert result.exit_code == 0, result.stderr
    assert [t[0] for t in trials(env_store)] == [1]


def test_top_level_store_option(tmp_path: Path) -> None:
    store = tmp_path / "top.duckdb"
    script = write_script(tmp_path)
    assert invoke("--store", store, "run", script, "a=1").exit_code == 0
    assert invoke(f"--store={store}", "run", script, "a=2").exit_code == 0
    assert [t[0] for t in trials(store)] == [1, 2]
    # the command's own --store wins over the top-level one
    other = tmp_path / "other.duckdb"
    assert invoke("--store", store, "run", script, "a=3", "--store", other).exit_code == 0
    assert [t[0] for t in trials(other)] == [1]
    missing = invoke("--store")
    assert missing.exit_code == 2 and "--store needs a PATH" in missing.stderr


SEVERAL = """
import tuixp
ex = tuixp.Experiment("several")
x = ex.parameter("x", default=2)

@ex
def double(x):
    return 2 * x

@ex.result
def plus_one(y):
    return y + 1

@ex.result
def squared(y):
    return y * y

small = plus_one(double(x))
big = squared(double(x))
"""


def test_result_picks_one_of_several_result_nodes(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = tmp_path / "several.py"
    script.write_text(SEVERAL)
    by_var = invoke("run", script, "--result", "big", "--store", store, "--format", "json")
    by_step = invoke("run", script, "--result", "plus_one", "--store", store, "-f", "json")
    assert by_var.exit_code == by_step.exit_code == 0
    assert json.loads(by_var.stdout)[0]["result"] == 16
    assert json.loads(by_step.stdout)[0]["result"] == 5
    ingest(store)
    before = store_snapshot(store)
    ambiguous = invoke("run", script, "--store", store)
    assert ambiguous.exit_code == 2
    assert "several result nodes (small, big): pick one with --result NAME" in one_error_line(
        ambiguous
    )
    unknown = invoke("run", script, "--result", "nope", "--store", store)
    assert unknown.exit_code == 2
    assert "has no result node 'nope' (it has: small, big)" in one_error_line(unknown)
    assert store_snapshot(store) == before


NO_EXPERIMENT = "x = 1\n"
NO_RESULT = """
import tuixp
ex = tuixp.Experiment("noresult")
a = ex.parameter("a")

@ex.result
def f(a):
    return a

def main():
    return f(a).compute()
"""
BROKEN = "import tuixp\nex = tuixp.Experiment('broken')\ndef f(:\n"
RAISES = "import tuixp\nex = tuixp.Experiment('raises')\nraise RuntimeError('no data here')\n"
EXITS = "import sys\nsys.exit(3)\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["{script}", "zz=1"],
            "unknown parameter zz for experiment quick (its parameters: a, b, model)",
        ),
        (["{script}", "a=1", "--grid", "zz=1,2"], "unknown parameter zz"),
        (["{script}", "a"], "malformed parameter 'a': expected NAME=VALUE"),
        (["{script}", "a=[1, 2"], "malformed value for a: [1, 2 is not a Python literal"),
        (["{script}", "2a=1"], "'2a' is not a parameter name"),
        (["{script}", "--grid", "a=1,,2"], "an empty value"),
        (["{script}"], "no value for parameter(s) a of experiment quick: give NAME=VALUE"),
        (["{script}", "a=1", "--scheduler", "gpu"], "Unknown scheduler: 'gpu'"),
        (["{script}", "a=1", "--progress", "bar"], "unknown progress mode 'bar'"),
        (["{script}", "a=1", "--format", "xml"], "unknown format 'xml'"),
        (["{script}", "a={{1, 2}}"], "Parameter a cannot be recorded"),
        (["{missing}", "a=1"], "script not found:"),
        (["{folder}", "a=1"], "not a script file:"),
        (["{no_experiment}"], "no_experiment.py defines no tuixp Experiment"),
        (["{no_result}", "a=1"], "defines experiment noresult but no result node at module level"),
        (["{broken}"], "broken.py, line 3: SyntaxError"),
        (["{raises}"], "raises.py failed while being loaded: line 3: RuntimeError: no data here"),
        (["{exits}"], "exits.py exited while being loaded (exit code 3)"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_the_store_unchanged(
    tmp_path: Path, args: list[str], message: str
) -> None:
    store = tmp_path / "s.duckdb"
    paths = {"script": write_script(tmp_path), "missing": tmp_path / "nope.py", "folder": tmp_path}
    for name, text in (
        ("no_experiment", NO_EXPERIMENT),
        ("no_result", NO_RESULT),
        ("broken", BROKEN),
        ("raises", RAISES),
        ("exits", EXITS),
    ):
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(text)
    assert invoke("run", paths["script"], "a=1", "--store", store).exit_code == 0
    ingest(store)
    before = store_snapshot(store)
    result = invoke("run", *[a.format(**paths) for a in args], "--store", store)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in one_error_line(result)
    assert result.stdout == ""
    assert store_snapshot(store) == before


def test_a_refused_run_creates_no_store(tmp_path: Path) -> None:
    store = tmp_path / "new" / "s.duckdb"
    script = write_script(tmp_path)
    result = invoke("run", script, "zz=1", "--store", store)
    assert result.exit_code == 2
    assert not store.parent.exists()


def test_a_script_imports_its_neighbours(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    (tmp_path / "helpers_for_exp.py").write_text("def triple(x):\n    return 3 * x\n")
    script = tmp_path / "uses_helper.py"
    script.write_text(
        "import tuixp\nfrom helpers_for_exp import triple\nex = tuixp.Experiment('nb')\n"
        "x = ex.parameter('x')\n@ex.result\ndef f(x):\n    return triple(x)\nr = f(x)\n"
    )
    result = invoke("run", script, "x=4", "--store", store, "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["result"] == 12


def test_parameters_named_like_compute_grid_keywords_can_be_gridded(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = tmp_path / "kw.py"
    script.write_text(
        "import tuixp\nex = tuixp.Experiment('kw')\n"
        "seed = ex.parameter('seed')\ncache = ex.parameter('cache', default=0)\n"
        "@ex.result\ndef total(seed, cache):\n    return seed * 10 + cache\n"
        "r = total(seed, cache)\n"
    )
    result = invoke(
        "run",
        script,
        "--grid",
        "seed=1,2",
        "--grid",
        "cache=3,4",
        "--seed",
        7,
        "--store",
        store,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(d["result"] for d in json.loads(result.stdout)) == [13, 14, 23, 24]
    assert {t[4] for t in trials(store, "kw")} == {7}  # --seed is the trials' seed, apart

    # The Python API takes them in a mapping; given twice is refused.
    import tuixp

    ex = tuixp.Experiment("kw_api", store=store)
    s, c = ex.parameter("seed"), ex.parameter("cache", default=0)

    @ex.result
    def add(seed, cache):
        return seed + cache

    outcomes = add(s, c).compute_grid({"seed": [1, 2], "cache": [10]}, seed=3)
    assert sorted(o.result for o in outcomes) == [11, 12]
    with pytest.raises(tuixp.errors.ParameterError, match="'lr' is given twice"):
        add(s, c).compute_grid({"lr": [1]}, lr=[2])


def test_a_helper_that_fails_to_import_is_named_with_its_line(tmp_path: Path) -> None:
    """The error names the helper module's file and line, not the script's (issue 15 item 12);
    --debug (and run -v) print the whole traceback; nothing is written."""
    from tests.cli.test_cli_subprocess import tuixp

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "helpers.py").write_text("x = 1\ny = 1 / 0\nthing = 2\n")
    script = tmp_path / "main.py"
    script.write_text(
        "import tuixp\nfrom lib.helpers import thing\nex = tuixp.Experiment('p12')\n\n\n"
        "@ex.result\ndef f():\n    return thing\n\n\ns = f()\n"
    )
    store = tmp_path / "s.duckdb"
    plain = tuixp("run", script, "--store", store)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        "tuixp: main.py failed while being loaded: lib/helpers.py, line 2: "
        "ZeroDivisionError: division by zero (--debug shows the traceback)"
    ]
    for args in (["--debug", "run", script], ["run", "-v", script], ["run", script, "--debug"]):
        loud = tuixp(*args, "--store", store)
        assert loud.returncode == 2
        lines = loud.stderr.splitlines()
        assert lines[0] == "Traceback (most recent call last):"
        assert f'  File "{script}", line 2, in <module>' in lines
        assert f'  File "{tmp_path / "lib" / "helpers.py"}", line 2, in <module>' in lines
        assert "    y = 1 / 0" in lines
        assert lines[-1] == (
            "tuixp: main.py failed while being loaded: lib/helpers.py, line 2: "
            "ZeroDivisionError: division by zero"
        )
    (tmp_path / "lib" / "helpers.py").write_text("x = (\n")
    broken = tuixp("run", script, "--store", store)
    assert "main.py failed while being loaded: lib/helpers.py, line 1: SyntaxError" in (
        broken.stderr
    )
    assert not store.exists()
