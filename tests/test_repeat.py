"""``tuixp repeat``: a recorded trial run again on today's code, checked step by step.

Everything runs as a person would: a real script in a real git repository in a temporary
folder, ``tuixp run`` and ``tuixp repeat`` as real processes on a real store. A template store
is recorded once per module (one seeded trial) and copied for each test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import env_with_path
from tests.test_cli_subprocess import tuixp
from tests.test_cli_units import store_snapshot
from tuixp import verdict
from tuixp.store import sql as store_sql

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tuixp

    ex = tuixp.Experiment("toy")
    n = ex.parameter("n", default=6)
    scale = ex.parameter("scale")

    @ex
    def load(n):
        return np.arange(n, dtype=float)

    @ex
    def noise(x, scale):
        return x + np.random.normal(size=len(x)) * scale

    @ex.result
    def score(y):
        return float(y.sum())

    s = score(noise(load(n), scale))
""")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=30,
    )


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repeat")
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    store = repo / "s.duckdb"
    ran = tuixp("run", repo / "train.py", "scale=0.5", "--seed", "3", "--store", store, cwd=repo)
    assert ran.returncode == 0, ran.stderr
    return repo


@pytest.fixture
def project(_template: Path, tmp_path: Path) -> Path:
    """A private copy of the git project and its store (one recorded trial, seed 3)."""
    dest = tmp_path / "proj"
    shutil.copytree(_template, dest, symlinks=True)
    # The trial recorded the template's script path: point it at this copy.
    with_store(dest, "UPDATE trial_record SET script = ?", [str(dest / "train.py")])
    return dest


def with_store(project: Path, sql: str, args: list[Any] | None = None) -> None:
    from tuixp.store.store import Store

    with Store(project / "s.duckdb").connect() as con:
        con.execute(sql, args or [])


def trial_count(store: Path) -> int:
    return int(store_sql.query(store, "SELECT count(*) FROM trials").rows[0][0])


def repeat(project: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return tuixp("repeat", *args, "--store", project / "s.duckdb", cwd=project)


def test_a_seeded_trial_repeats_bit_for_bit(project: Path) -> None:
    store = project / "s.duckdb"
    done = repeat(project, "toy", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "trial 1 of toy, repeated as trial 2: reproduced bit for bit (3 of 3 steps the same)"
    )
    assert [line.split()[0] for line in lines[3:6]] == ["load", "noise", "score"]
    assert trial_count(store) == 2
    rows = store_sql.query(
        store, "SELECT trial_id, seed, params, result, status FROM trials ORDER BY trial_id"
    ).rows
    # The new trial ran with the recorded seed and parameters, and is recorded as any other.
    assert rows[1][1:] == rows[0][1:] and rows[1][1] == 3
    assert json.loads(rows[1][2]) == {"n": 6, "scale": 0.5}
    # Every step ran again (none was reused) and each output hash is the original's.
    steps = store_sql.query(
        store,
        "SELECT trial_id, step, status, output_hash FROM steps ORDER BY step, trial_id",
    ).rows
    assert [(s[1], s[2]) for s in steps if s[0] == 2] == [
        ("load", "succeeded"),
        ("noise", "succeeded"),
        ("score", "succeeded"),
    ]
    by_step: dict[str, set[str]] = {}
    for _, step, _, h in steps:
        by_step.setdefault(step, set()).add(h)
    assert all(len(h) == 1 for h in by_step.values()), by_step


def test_an_edited_step_is_named_with_code_among_the_causes(project: Path) -> None:
    script = project / "train.py"
    script.write_text(script.read_text().replace("* scale", "* scale * 2"))
    done = repeat(project, "toy", "latest", "--format", "json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "differs" and doc["reproduced"] is False
    assert (doc["original"], doc["repeat"]) == (1, 2)
    assert [(s["step"], s["status"]) for s in doc["steps"]] == [
        ("load", "same"),
        ("noise", "differs"),
        ("score", "differs"),
    ]
    first = doc["first_difference"]
    assert first["step"] == "noise" and first["inputs_same"] is True
    assert first["reason"] == "its code changed"
    assert first["original"]["output_hash"] != first["repeat"]["output_hash"]
    kinds = [(c["kind"], c["name"]) for c in doc["causes"]]
    assert kinds[0] == ("code", "noise") and doc["causes"][0]["this_step"] is True
    assert ("uncommitted", "git diff") in kinds  # the edit is not committed
    assert "impurity" not in [k for k, _ in kinds]  # its code changed: not an impure step
    # The text for people says the same (the CLI's table prints this render of the document).
    text = verdict.render(doc)
    assert text.splitlines()[0] == (
        "trial 1 of toy, repeated as trial 2: differs, first at step noise (its code changed)"
    )
    assert "1. code changed in a step that ran: noise (+1 -1 lines)  (this step)" in text


def test_a_committed_edit_names_the_commit_too(project: Path) -> None:
    script = project / "train.py"
    script.write_text(script.read_text().replace("float(y.sum())", "float(y.sum()) + 1"))
    git(project, "commit", "-q", "-am", "score + 1")
    done = repeat(project, "toy", "1", "--format", "json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["first_difference"]["step"] == "score"
    assert [s["status"] for s in doc["steps"]] == ["same", "same", "differs"]
    kinds = [c["kind"] for c in doc["causes"]]
    assert kinds.index("code") < kinds.index("commit")
    assert doc["result"]["repeat"] == doc["result"]["original"] + 1


UNSEEDED = textwrap.dedent("""
    import os
    import tuixp

    ex = tuixp.Experiment("dice")
    sides = ex.parameter("sides", default=6)

    @ex
    def faces(sides):
        return list(range(1, sides + 1))

    @ex
    def roll(faces):
        # os.urandom is outside every seeded generator: a different number each run.
        return f"{faces[int.from_bytes(os.urandom(4), 'little') % len(faces)]}-{os.urandom(8).hex()}"

    @ex.result
    def report(value):
        return value

    r = report(roll(faces(sides)))
""")


def test_a_step_that_ignores_the_seed_is_named_impure(tmp_path: Path) -> None:
    (tmp_path / "dice.py").write_text(UNSEEDED)
    store = tmp_path / "d.duckdb"
    ran = tuixp("run", tmp_path / "dice.py", "--grid", "sides=6,8", "--seed", "1", "--store", store)
    assert ran.returncode == 0, ran.stderr
    done = tuixp("repeat", "dice", "1", "--store", store, "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["first_difference"]["step"] == "roll"
    assert doc["first_difference"]["reason"] == "same input and code"
    assert [c["kind"] for c in doc["causes"]][-1] == "impurity"
    assert doc["causes"][-1]["name"] == "roll"
    # The grid's other point ran in the same process at the same time: said, as a fact.
    assert doc["ran_beside"] == [2]
    assert doc["causes"][-1]["detail"].endswith("trial 1 ran beside trial(s) 2 in one process")


def test_a_failed_trial_repeats_its_failure_and_a_fix_is_the_first_difference(
    project: Path,
) -> None:
    store = project / "s.duckdb"
    ran = tuixp("run", project / "train.py", "scale=oops", "--seed", "4", "--store", store)
    assert ran.returncode == 1  # noise: a string times an array
    done = repeat(project, "toy", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "reproduced" and doc["status"]["repeat"] == "failed"
    assert [(s["step"], s["status"], s["reason"]) for s in doc["steps"]] == [
        ("load", "same", "same output hash"),
        ("noise", "same", "failed the same way in both"),
    ]
    assert "the same failure" in verdict.headline(doc)
    # Once the step copes with the value, the repeat goes further than the original did: the
    # step that failed is where they part, and the steps after it were never run by the original.
    script = project / "train.py"
    script.write_text(
        script.read_text().replace("* scale", "* (0 if isinstance(scale, str) else scale)")
    )
    fixed = json.loads(repeat(project, "toy", "2", "--format", "json").stdout)
    assert fixed["verdict"] == "differs"
    assert [(s["step"], s["status"], s["reason"]) for s in fixed["steps"]] == [
        ("load", "same", "same output hash"),
        ("noise", "differs", "failed, then succeeded"),
        ("score", "not_checked", "not run by the original (a step before it failed)"),
    ]


def test_an_output_whose_hash_is_not_checked_is_not_verified(project: Path) -> None:
    # What a hash known to be unstable leaves in the store (the purity rules): no hash.
    with_store(
        project,
        "UPDATE step_record SET output_hash = NULL WHERE trial_id = 1 AND step = 'noise'",
    )
    done = repeat(project, "toy", "1", "--format", "json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "not_verified" and doc["first_difference"] is None
    assert [(s["step"], s["status"]) for s in doc["steps"]] == [
        ("load", "same"),
        ("noise", "not_checked"),
        ("score", "same"),
    ]
    assert doc["counts"] == {"same": 2, "differs": 0, "not_checked": 1}
    text = verdict.render(doc)
    assert "not verified (1 of 3 steps could not be checked, none differs)" in text
    assert "noise  not checked  " in text
    assert "not checked: no trusted hash in the original" in text
    assert "Likely causes" not in text  # nothing differs: nothing to explain


def _refused(project: Path, *args: object) -> str:
    store = project / "s.duckdb"
    before, count = store_snapshot(store), trial_count(store)
    done = repeat(project, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuixp: "), done.stderr
    assert trial_count(store) == count
    assert store_snapshot(store) == before
    return lines[0]


def test_bad_input_is_one_line_exit_2_and_nothing_written(project: Path) -> None:
    assert "Unable to find trial id: 7" in _refused(project, "toy", "7")
    assert "Unable to find experiment: nope" in _refused(project, "nope", "1")
    assert "not a trial id" in _refused(project, "toy", "x")
    assert "Unknown scheduler: 'nope'" in _refused(project, "toy", "1", "--scheduler", "nope")
    (project / "train.py").unlink()
    assert "the script of trial 1 of toy is gone" in _refused(project, "toy", "1")
    nowhere = project / "none.duckdb"
    done = tuixp("repeat", "toy", "1", "--store", nowhere, cwd=project)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not nowhere.exists()


def test_a_parameter_the_script_no_longer_declares_is_refused(project: Path) -> None:
    script = project / "train.py"
    script.write_text(
        script.read_text()
        .replace('scale = ex.parameter("scale")\n', "")
        .replace("def noise(x, scale)", "def noise(x, scale=0.5)")
        .replace("noise(load(n), scale)", "noise(load(n))")
    )
    line = _refused(project, "toy", "1")
    assert "parameter scale, which train.py no longer declares" in line


def test_a_trial_recorded_without_a_script_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    code = textwrap.dedent(f"""
        import tuixp
        ex = tuixp.Experiment("nb", store={str(store)!r})
        a = ex.parameter("a")

        @ex.result
        def twice(a):
            return 2 * a

        twice(a).compute(a=2, seed=1)
    """)
    # `python -c` has no script file, like a notebook's kernel.
    env = env_with_path()
    env.pop("TUIXP_SCRIPT", None)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert "has no script to run again" in _refused(tmp_path, "nb", "1")


def test_progress_jsonl_streams_the_run_then_the_verdict(project: Path) -> None:
    done = repeat(project, "toy", "1", "--progress", "jsonl", "--scheduler", "sync")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "trial_started" and kinds[-1] == "repeat_finished"
    assert kinds.count("task_finished") == 3 and "trial_finished" in kinds
    assert events[-1]["verdict"] == "reproduced" and events[-1]["repeat"] == 2
    schedulers = store_sql.query(
        project / "s.duckdb", "SELECT scheduler FROM trials ORDER BY trial_id"
    ).rows
    assert schedulers == [("threads",), ("sync",)]  # the one asked for


# -- the comparison itself, on recorded rows ---------------------------------------------------
def _row(key: str, step: str, out: str | None, status: str = "succeeded", inp: str = "i") -> Any:
    return {
        "key": key,
        "step": step,
        "status": status,
        "input_hash": inp,
        "output_hash": out,
        "error": None,
        "reused_from": None,
    }


def test_a_step_called_twice_is_matched_call_by_call() -> None:
    old = [_row("prep-1-aa-4", "prep", "x"), _row("prep-1-aa-5", "prep", "y")]
    new = [_row("prep-2-bb-9", "prep", "x"), _row("prep-2-bb-10", "prep", "z")]
    steps = verdict.compare_steps(old, new, [("prep", 9), ("prep", 10)])
    assert [(s["step"], s["occurrence"], s["status"]) for s in steps] == [
        ("prep", 0, "same"),
        ("prep", 1, "differs"),
    ]


def test_steps_the_original_took_from_the_cache_are_not_checked() -> None:
    old = [_row("fit-1-reused", "fit", "f", status="reused"), _row("score-1-aa-3", "score", "s")]
    new = [
        _row("load-2-bb-1", "load", "l"),
        _row("fit-2-bb-2", "fit", "f"),
        _row("score-2-bb-3", "score", "s"),
    ]
    steps = verdict.compare_steps(old, new, [("load", 1), ("fit", 2), ("score", 3)])
    assert [(s["step"], s["status"]) for s in steps] == [
        ("load", "not_checked"),
        ("fit", "same"),
        ("score", "same"),
    ]


def test_steps_an_interrupted_original_never_ran_are_not_checked() -> None:
    old = [_row("load-1-aa-1", "load", "l")]
    new = [_row("load-2-bb-1", "load", "l"), _row("fit-2-bb-2", "fit", "f")]
    steps = verdict.compare_steps(old, new, [("load", 1), ("fit", 2)], (), "interrupted")
    assert [(s["step"], s["status"], s["reason"]) for s in steps] == [
        ("load", "same", "same output hash"),
        ("fit", "not_checked", "not run by the original (it was interrupted)"),
    ]
    # The same records from an original that succeeded: the repeat has a step it did not.
    steps = verdict.compare_steps(old, new, [("load", 1), ("fit", 2)])
    assert steps[1]["status"] == "differs" and steps[1]["reason"] == "only in the repeat"


def test_hashes_marked_not_checked_are_never_compared() -> None:
    for mark in (None, "", "not checked"):
        status, why = verdict.compare_step(_row("a-1-x-1", "a", mark), _row("a-2-y-1", "a", mark))
        assert status == "not_checked", (mark, why)
    status, _ = verdict.compare_step(_row("a-1-x-1", "a", "h"), _row("a-2-y-1", "a", "h"))
    assert status == "same"
    status, why = verdict.compare_step(
        _row("a-1-x-1", "a", "h"), _row("a-2-y-1", "a", None, status="failed")
    )
    assert status == "differs" and why == "succeeded, then failed"


TORCH = textwrap.dedent("""
    import torch
    import tuixp

    ex = tuixp.Experiment("mlp")
    hidden = ex.parameter("hidden", default=4)

    @ex
    def data():
        x = torch.randn(32, 3)
        return x, (x.sum(1, keepdim=True) > 0).float()

    @ex
    def fit(d, hidden):
        x, y = d
        model = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Linear(hidden, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            opt.step()
        return model

    @ex.result
    def score(model, d):
        with torch.no_grad():
            return float(((model(d[0]) > 0).float() == d[1]).float().mean())

    d = data()
    s = score(fit(d, hidden), d)
""")


@pytest.mark.slow
def test_a_seeded_torch_trial_repeats_bit_for_bit(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "mlp.py").write_text(TORCH)
    store = tmp_path / "m.duckdb"
    ran = tuixp("run", tmp_path / "mlp.py", "--seed", "1", "--store", store, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    done = tuixp("repeat", "mlp", "1", "--store", store, "--format", "json", cwd=tmp_path)
    doc = json.loads(done.stdout)
    assert doc["result"]["repeat"] == doc["result"]["original"]  # the same numbers, today too
    assert done.returncode == 0, [(s["step"], s["status"]) for s in doc["steps"]]


SKLEARN = textwrap.dedent("""
    import tuixp
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    ex = tuixp.Experiment("digits_rf")
    n_estimators = ex.parameter("n_estimators", default=10)
    max_depth = ex.parameter("max_depth", default=None)

    @ex
    def data():
        X, y = load_digits(return_X_y=True)
        return train_test_split(X, y, test_size=0.25, random_state=0)

    @ex
    def fit(split, n_estimators, max_depth):
        model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth)
        return model.fit(split[0], split[2])

    @ex.result
    def score(model, split):
        return float(model.score(split[1], split[3]))

    d = data()
    s = score(fit(d, n_estimators, max_depth), d)
""")


@pytest.mark.slow
def test_a_point_of_a_threaded_scikit_learn_grid_repeats_alone_bit_for_bit(
    tmp_path: Path,
) -> None:
    """The issue's case: a seeded grid on the default scheduler, one point repeated alone."""
    pytest.importorskip("sklearn")
    (tmp_path / "train.py").write_text(SKLEARN)
    store = tmp_path / "s.duckdb"
    ran = tuixp(
        "run", tmp_path / "train.py", "--grid", "n_estimators=5,20", "--grid", "max_depth=4,None",
        "--seed", "0", "--store", store, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    done = tuixp("repeat", "digits_rf", "4", "--store", store, "--format", "json", cwd=tmp_path)
    doc = json.loads(done.stdout)
    assert done.returncode == 0, [(s["step"], s["status"], s["reason"]) for s in doc["steps"]]
    assert doc["ran_beside"] == [1, 2, 3]
    assert [(s["step"], s["status"]) for s in doc["steps"]] == [
        ("data", "same"),
        ("fit", "same"),
        ("score", "same"),
    ]
