"""daskperiment 0.5.0's own documentation, run as its users would under ``import tuixp``.

Each test is a difference found by running daskperiment 0.5.0 and tuixp side by side on the
examples of daskperiment's README, docs/source/*.rst and scripts/ (test_daskperiment_compat.py
covers issue 21 item by item; docs/daskperiment.md lists what is meant to differ).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tuixp as daskperiment

from .conftest import env_with_path


def _python(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env_with_path(),
    )


def test_get_persisted_with_nothing_persisted_raises_trial_id_not_found(store_path: Path) -> None:
    # quickstart.rst: get_persisted('prepare_data', trial_id=N); daskperiment raises its
    # TrialIDNotFoundError when the trial persisted nothing under that name.
    ex = daskperiment.Experiment("persist_pj", store=store_path)
    a = ex.parameter("a")

    @ex.persist
    def prepare_data(a):
        return a + 1

    @ex.result
    def calculate_score(d):
        return d * 2

    ex.set_parameters(a=1)
    assert calculate_score(prepare_data(a)).compute() == 4
    assert ex.get_persisted("prepare_data", trial_id=1) == 2
    for step, trial in (("calculate_score", 1), ("no_such_step", 1)):
        with pytest.raises(daskperiment.TrialIDNotFoundError, match=f"'{step}' in trial {trial}"):
            ex.get_persisted(step, trial_id=trial)
    with pytest.raises(daskperiment.TrialIDNotFoundError, match="Unable to find trial id: 9"):
        ex.get_persisted("prepare_data", trial_id=9)


SCRIPT = """\
import tuixp as daskperiment

ex = daskperiment.Experiment(id='crash_pj')
a = ex.parameter('a')


@ex.result
def calculate_score(a):
    return a + 1


calculate_score(a)
"""


def test_no_run_hint_after_a_script_that_crashed_or_came_on_stdin(tmp_path: Path) -> None:
    # A script that built its result and then failed: its traceback is the message, not a hint
    # to run it with `tuixp run` (it would fail there too).
    (tmp_path / "crash.py").write_text(SCRIPT + "raise RuntimeError('boom')\n")
    done = _python(["crash.py", "a=1"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith("RuntimeError: boom"), done.stderr
    assert "tuixp run" not in done.stderr
    # `python < script.py` has no file to name in `tuixp run FILE`.
    done = _python(["-", "a=1"], tmp_path, stdin=SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "tuixp run" not in done.stderr and "<stdin>" not in done.stderr
    # The same script from its file, finishing normally, still gets the hint.
    (tmp_path / "ok.py").write_text(SCRIPT)
    done = _python(["ok.py", "a=1"], tmp_path)
    assert done.returncode == 0
    assert "`tuixp run ok.py a=1`" in done.stderr


def test_git_category_outside_a_repository_ends_with_the_dirty_flag(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # daskperiment: Git Repository / Active Branch / HEAD Commit: Not Git Controlled, then
    # "Git Dirty Flag: False".
    outside = tmp_path / "not_a_repo"
    outside.mkdir()
    monkeypatch.chdir(outside)
    ex = daskperiment.Experiment("git_pj", store=store_path)
    assert ex.get_environment(category="git").splitlines() == [
        "Git Repository: Not Git Controlled",
        "Git Active Branch: Not Git Controlled",
        "Git HEAD Commit: Not Git Controlled",
        "Git Dirty Flag: False",
    ]


def test_run_hint_names_the_script_as_the_user_can_run_it(tmp_path: Path) -> None:
    # daskperiment's notebook runs `!python ../scripts/simple_experiment.py a=1 b=2` from
    # notebook/: the hint's `tuixp run` command must work from there, so it names that path.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "notebook").mkdir()
    (tmp_path / "scripts" / "simple experiment.py").write_text(SCRIPT)
    done = _python(["../scripts/simple experiment.py", "a=1"], tmp_path / "notebook")
    assert done.returncode == 0, done.stderr
    assert "`tuixp run '../scripts/simple experiment.py' a=1`" in done.stderr, done.stderr
    assert not (tmp_path / "notebook" / "tuixp.duckdb").exists()


def test_asking_again_for_an_experiment_logs_its_loaded_history(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # quickstart.rst, "Save Experiment Status": `ex_new = daskperiment.Experiment(id=...)` in the
    # same session logs "Loaded existing experiment" with the last trial id (same object here).
    ex = daskperiment.Experiment("again_pj", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def calculate_score(a):
        return a + 1

    ex.set_parameters(a=1)
    calculate_score(a).compute()
    caplog.clear()
    with caplog.at_level("INFO", logger="tuixp"):
        ex_new = daskperiment.Experiment(id="again_pj", store=store_path)
    assert ex_new is ex
    assert [r.getMessage() for r in caplog.records] == [
        f"Loaded existing experiment: {ex!r} (trial_id: 1)"
    ]


@pytest.mark.slow
def test_tuixp_run_store_holds_what_the_script_reads_while_it_loads(tmp_path: Path) -> None:
    # daskperiment's scripts/random_experiment.py prints ex.get_history() after its result
    # call; under `tuixp run --store S` that read (and any other) must be S's, and no store
    # may appear in the current folder.
    (tmp_path / "random_experiment.py").write_text(
        "import tuixp as daskperiment\n"
        "ex = daskperiment.Experiment(id='random_experiment_pj')\n"
        "assert daskperiment.Experiment(id='random_experiment_pj') is ex\n"
        "@ex.result\n"
        "def random_result():\n"
        "    return 1.5\n"
        "random_result()\n"
        "print('history before:', len(ex.get_history()))\n"
    )
    store = tmp_path / "kept" / "other.duckdb"
    store.parent.mkdir()
    for expected in (0, 1):
        done = _python(
            ["-m", "tuixp", "run", "--store", str(store), "random_experiment.py", "-f", "json"],
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert f"history before: {expected}" in done.stderr
    assert not (tmp_path / "tuixp.duckdb").exists()
    ex = daskperiment.Experiment("random_experiment_pj", store=store)
    assert ex.get_history()["Result"].tolist() == [1.5, 1.5]


def _class_from(module: str, name: str) -> type:
    return type(name, (), {"__module__": module})


@pytest.mark.parametrize(
    "backend, named",
    [
        ("rediss://localhost:6380/0", "rediss"),  # Redis over TLS
        ("unix:///tmp/redis.sock", "unix"),
        (_class_from("redis.connection", "ConnectionPool")(), "redis"),  # backend.rst
        (_class_from("pymongo.database", "Database")(), "mongodb"),  # backend.rst
    ],
)
def test_every_redis_and_mongodb_backend_form_says_what_to_use(
    backend: object, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # backend.rst: a Redis URI, a redis.ConnectionPool, a MongoDB URI or a pymongo Database.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(daskperiment.TuixpError) as info:
        daskperiment.Experiment("shared_pj", backend=backend)
    message = str(info.value)
    assert message.startswith(f"tuixp has no {named} backend: ") and "tuixp merge" in message
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder named after the URI


def test_a_backend_uri_is_never_taken_for_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(daskperiment.TuixpError, match=r"not a URI \(s3://bucket/cache\)"):
        daskperiment.Experiment("uri_pj", backend="s3://bucket/cache")
    assert list(tmp_path.iterdir()) == []


def test_tuixp_run_says_why_a_result_built_in_the_main_block_is_not_seen(tmp_path: Path) -> None:
    (tmp_path / "main_block.py").write_text(
        SCRIPT.replace(
            "calculate_score(a)\n", "if __name__ == '__main__':\n    calculate_score(a)\n"
        )
    )
    done = _python(["-m", "tuixp", "run", "main_block.py", "a=1"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tuixp: main_block.py defines experiment crash_pj but no result node at module level: "
        "call the result step there (score(...), assigned or not); tuixp run does not run the "
        'script\'s if __name__ == "__main__": block'
    ]


def test_a_parameter_declared_after_a_trial_is_nan_in_that_trials_row(store_path: Path) -> None:
    # daskperiment's history (a DataFrame of trial dicts): a trial that had no such parameter
    # shows NaN (tuixp showed None, which reads as a value the trial was given).
    ex = daskperiment.Experiment("late_pj", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def first(a):
        return a

    ex.set_parameters(a=1)
    first(a).compute()
    b = ex.parameter("b", default=None)

    @ex.result
    def second(a, b):
        return a

    second(a, b).compute()
    ex.set_parameters(b="x")
    second(a, b).compute()
    history = ex.get_history()
    assert list(history.columns[:2]) == ["a", "b"]
    missing = history.loc[1, "b"]
    assert isinstance(missing, float) and missing != missing  # NaN, as daskperiment's
    assert history.loc[3, "b"] == "x"


def test_run_hint_for_a_result_built_in_the_main_block_does_not_send_to_tuixp_run(
    tmp_path: Path,
) -> None:
    # `tuixp run` does not run the __main__ block, so it would refuse this script: the hint
    # says what works instead.
    (tmp_path / "main_block.py").write_text(
        SCRIPT.replace(
            "calculate_score(a)\n", "if __name__ == '__main__':\n    calculate_score(a)\n"
        )
    )
    done = _python(["main_block.py", "a=1"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [
        "tuixp: main_block.py built the result calculate_score(...) in its "
        'if __name__ == "__main__": block but ran no trial: call .compute() on the result node '
        "(calculate_score(...).compute()), or build it at module level and run "
        "`tuixp run main_block.py a=1`"
    ]
