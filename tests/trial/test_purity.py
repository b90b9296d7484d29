"""No false purity warnings: code edits, cache hits and unhashable outputs are not impurity.

Each case runs as a user would: a script in a real git repository, run by ``python -m tuixp run``
in its own process, twice or more; scikit-learn where the case needs it.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import env_with_path
from tuixp.capture.hashing import content_hash, content_hash_or_reason, describe
from tuixp.store import Store

IMPURE = "Experiment step result is changed with the same input"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=60,
    )


def project(tmp_path: Path, script: str) -> Path:
    """A git repository holding ``train.py``, committed; the store is ignored by git."""
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "train.py").write_text(textwrap.dedent(script))
    (repo / ".gitignore").write_text("store.duckdb*\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    return repo


def run(repo: Path, *args: str, exe: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [exe or sys.executable, "-m", "tuixp", "run", "train.py", "--store", "store.duckdb", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result


def query(repo: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store(repo / "store.duckdb").connect() as con:
        return con.execute(sql).fetchall()


def notes(repo: Path, trial_id: int) -> list[str]:
    (text,) = query(repo, f"SELECT notes FROM trial_record WHERE trial_id = {trial_id}")[0]
    return json.loads(text) if text else []


# -- item 3: a code edit is a code change, not impurity ----------------------------------------
FIT = """
import tuixp

ex = tuixp.Experiment("edit_pj")
x = ex.parameter("x", default=3)

@ex
def prepare(x):
    return [x, x + 1]

@ex.result
def fit(values):
    return sum(values) * 2
"""


def test_editing_a_step_is_reported_as_a_code_change_not_as_impurity(tmp_path: Path) -> None:
    repo = project(tmp_path, FIT + "\nresult = fit(prepare(x))\n")
    first = run(repo)
    assert IMPURE not in first.stderr
    script = repo / "train.py"
    script.write_text(script.read_text().replace("* 2", "* 3"))
    second = run(repo)
    assert "Code context has been changed: fit" in second.stderr
    assert IMPURE not in second.stderr
    assert not any(n.startswith("impure:") for n in notes(repo, 2))
    # Run again unchanged: same code, same input, same output; nothing to report.
    third = run(repo)
    assert IMPURE not in third.stderr and "Code context" not in third.stderr


def test_editing_a_step_in_a_notebook_is_not_impurity(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import tuixp

    ex = tuixp.Experiment("notebook_pj", store=store_path)
    x = ex.parameter("x", default=3)

    @ex.result
    def fit(x):
        return x * 2

    with caplog.at_level(logging.WARNING, logger="tuixp"):
        assert fit(x).compute() == 6

        @ex.result  # the cell edited and run again
        def fit(x):  # noqa: F811
            return x * 3

        assert fit(x).compute() == 9
    assert "Code context has been changed: fit" in caplog.text
    assert IMPURE not in caplog.text


def test_a_truly_impure_step_is_still_caught_across_processes(tmp_path: Path) -> None:
    script = FIT.replace("return sum(values) * 2", "import time\n    return time.time_ns()")
    repo = project(tmp_path, script + "\nresult = fit(prepare(x))\n")
    assert IMPURE not in run(repo).stderr
    second = run(repo)  # another process: the earlier output comes from the store
    warnings = [line for line in second.stderr.splitlines() if IMPURE in line]
    assert warnings == [f"{IMPURE}: (step: fit, args: ([3, 4],), kwargs: {{}}) (previous: trial 1)"]
    assert any(n.startswith("impure: fit (same input as trial 1") for n in notes(repo, 2))


def test_an_edit_to_a_helper_module_is_not_impurity(tmp_path: Path) -> None:
    script = FIT.replace("import tuixp\n", "import tuixp\nimport helpers\n").replace(
        "return sum(values) * 2", "return helpers.scale(sum(values))"
    )
    repo = tmp_path / "proj"
    repo.mkdir()
    (repo / "helpers.py").write_text("def scale(v):\n    return v * 2\n")
    repo = project_in(repo, script + "\nresult = fit(prepare(x))\n")
    run(repo)
    (repo / "helpers.py").write_text("def scale(v):\n    return v * 5\n")  # uncommitted edit
    second = run(repo)
    assert IMPURE not in second.stderr
    assert query(repo, "SELECT result FROM trials ORDER BY trial_id") == [("14",), ("35",)]


def project_in(repo: Path, script: str) -> Path:
    (repo / "train.py").write_text(textwrap.dedent(script))
    (repo / ".gitignore").write_text("store.duckdb*\n__pycache__/\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    return repo


# -- item 4: a cache hit against a cache miss ---------------------------------------------------
SKLEARN = """
import tuixp
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier

ex = tuixp.Experiment("digits_rf")
n = ex.parameter("n_estimators", default=10)

@ex.cached
def load(n):
    return load_digits(return_X_y=True)

@ex
def fit(data, n):
    X, y = data
    return RandomForestClassifier(n_estimators=n, random_state=0).fit(X, y)

@ex.result
def score(model, data):
    X, y = data
    return float(model.score(X, y))

data = load(n)
result = score(fit(data, n), data)
"""


@pytest.mark.slow
def test_a_model_fitted_on_a_reused_output_hashes_like_one_fitted_on_a_fresh_one(
    tmp_path: Path,
) -> None:
    repo = project(tmp_path, SKLEARN)
    first = run(repo)
    second = run(repo)
    assert IMPURE not in first.stderr + second.stderr
    rows = query(
        repo, "SELECT trial_id, step, status, output_hash FROM steps ORDER BY step, trial_id"
    )
    by_step: dict[str, list[tuple[int, str, str | None]]] = {}
    for tid, step, status, output in rows:
        by_step.setdefault(step, []).append((tid, status, output))
    assert [s for _, s, _ in by_step["load"]] == ["succeeded", "reused"]
    (_, _, fresh), (_, _, from_reused) = by_step["fit"]
    assert fresh is not None and fresh == from_reused
    assert not any(n.startswith("impure:") for n in notes(repo, 2))


def test_content_hash_survives_a_pickle_round_trip_and_shared_objects() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_digits(return_X_y=True)
    assert not X.flags.c_contiguous  # the case that made pickles differ
    X2, y2 = pickle.loads(pickle.dumps((X, y)))
    fresh = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    reused = RandomForestClassifier(n_estimators=5, random_state=0).fit(X2, y2)
    assert pickle.dumps(fresh) != pickle.dumps(reused)  # what dask's tokenize hashed
    assert (
        content_hash(fresh)
        == content_hash(reused)
        == content_hash(pickle.loads(pickle.dumps(fresh)))
    )
    other = RandomForestClassifier(n_estimators=5, random_state=1).fit(X, y)
    assert content_hash(other) != content_hash(fresh)
    assert content_hash(X) == content_hash(X2) == content_hash(np.ascontiguousarray(X))
    assert content_hash(X) != content_hash(X.astype(np.float32))
    assert content_hash(X) != content_hash(X.reshape(-1))
    word = "".join(["sh", "ared"])  # two equal strings, one object or two: the same hash
    assert content_hash([word, word]) == content_hash([word, "".join(["sha", "red"])])


TORCH = """
import pickle, torch
from tuixp.capture.hashing import content_hash

torch.manual_seed(0)
x = torch.randn(16, 3)
fresh, reused = x, pickle.loads(pickle.dumps(x))
models = []
for data in (fresh, reused):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(data).sum().backward()
        opt.step()
    models.append(model)
print([content_hash(v) for v in (x, x.t(), models[0], models[1], pickle.loads(pickle.dumps(models[0])))])
"""


@pytest.mark.slow
def test_torch_tensors_and_trained_modules_hash_by_content() -> None:
    pytest.importorskip("torch")
    seen = []
    for seed in ("1", "2"):
        seen.append(
            subprocess.run(
                [sys.executable, "-c", TORCH],
                capture_output=True,
                text=True,
                env={**env_with_path(), "PYTHONHASHSEED": seed},
                timeout=180,
                check=True,
            ).stdout
        )
    assert seen[0] == seen[1]  # the same in two processes
    x, xt, fresh, reused, round_trip = eval(seen[0])  # noqa: S307 - our own printed list
    assert None not in (x, xt, fresh) and x != xt
    assert fresh == reused == round_trip  # fitted on a reused input: the same model, the same hash


VALUES = """
import numpy as np, pandas as pd
values = {
    "set": {"alpha", "beta", "gamma", "delta"},
    "dict": {"b": 1, "a": [1.5, None, True], ("t", 1): b"x"},
    "array": np.arange(12, dtype="int32").reshape(3, 4)[:, ::2],
    "objects": np.array(["a", 1, None], dtype=object),
    "frame": pd.DataFrame({"x": [1.0, 2.0], "s": ["a", None], "c": pd.Categorical(["u", "v"])}),
    "series": pd.Series([1, 2], index=["i", "j"], name="n"),
    "scalars": [np.float64(1.5), np.int8(3), 1.5, 3, -0.0, complex(1, 2), float("nan")],
}
"""


def test_content_hash_is_the_same_in_every_process() -> None:
    code = VALUES + (
        "from tuixp.capture.hashing import content_hash\n"
        "print({k: content_hash(v) for k, v in values.items()})\n"
    )
    seen = []
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**env_with_path(), "PYTHONHASHSEED": seed},
            timeout=120,
            check=True,
        ).stdout
        seen.append(out)
    assert seen[0] == seen[1]
    hashes = eval(seen[0])  # noqa: S307 - our own printed dict
    assert all(isinstance(h, str) and len(h) == 32 for h in hashes.values()), hashes
    assert len(set(hashes.values())) == len(hashes)
    namespace: dict[str, Any] = {}
    exec(VALUES, namespace)  # noqa: S102 - the same values here
    for name, value in namespace["values"].items():
        assert content_hash(pickle.loads(pickle.dumps(value))) == hashes[name], name


class Addressed:
    """An object whose pickled state holds its own address: no stable hash."""

    def __init__(self) -> None:
        self.where = id(self)

    def __reduce__(self) -> Any:
        return (Addressed, (), {"where": id(self)})


def test_values_without_a_stable_hash_get_none_and_a_reason() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for value, reason in [
        (threading.Lock(), "cannot be pickled"),
        (cyclic, "cycle"),
        (Addressed(), "after a pickle round trip"),
        ((1, (x for x in range(3))), "cannot be pickled"),
    ]:
        digest, why = content_hash_or_reason(value)
        assert digest is None and why is not None and reason in why, (value, why)
    assert describe(threading.Lock()).endswith("#unstable")


UNSTABLE = """
import threading
import tuixp

ex = tuixp.Experiment("unstable_pj")
x = ex.parameter("x", default=1)

class Handle:
    def __init__(self, x):
        self.x = x
        self.lock = threading.Lock()

@ex
def open_handle(x):
    return Handle(x)

@ex.result
def use(h):
    return h.x

result = use(open_handle(x))
"""


def test_an_output_with_no_stable_hash_is_not_checked_and_says_so(tmp_path: Path) -> None:
    repo = project(tmp_path, UNSTABLE)
    run(repo)
    second = run(repo)
    assert IMPURE not in second.stderr
    assert "purity not checked: open_handle (its output has no stable content hash)" in notes(
        repo, 2
    )
    rows = query(repo, "SELECT output_hash FROM steps WHERE step = 'open_handle'")
    assert rows == [(None,), (None,)]
    # The step it feeds has no stable input hash either: not checked, not a false warning.
    assert "purity not checked: use (its input has no stable content hash)" in notes(repo, 2)


# -- item 5: a short warning, the full input kept in the trial's notes --------------------------
ARRAY = """
import time
import numpy as np
import tuixp

ex = tuixp.Experiment("array_pj")
n = ex.parameter("n", default=500)

@ex
def make(n):
    return np.arange(n * 8, dtype="float64").reshape(n, 8)

@ex.result
def noisy(X):
    return float(X.sum()) + time.time_ns() % 1000

result = noisy(make(n))
"""


def test_a_purity_warning_is_one_short_line_and_the_full_input_is_kept(tmp_path: Path) -> None:
    repo = project(tmp_path, ARRAY)
    run(repo)
    second = run(repo)
    lines = [line for line in second.stderr.splitlines() if IMPURE in line]
    assert len(lines) == 1, second.stderr
    (line,) = lines
    assert "ndarray float64 (500, 8) #" in line and len(line) < 200
    assert "array([" not in second.stderr  # no NumPy repr on the terminal
    found = notes(repo, 2)
    assert any(n.startswith("impure: noisy (same input as trial 1: args: (ndarray") for n in found)
    full = [n for n in found if n.startswith("input of noisy in full: ")]
    assert len(full) == 1 and "array([[0.000e+00" in full[0] and "shape=(500, 8)" in full[0]


def test_describe_is_short_and_bounded() -> None:
    big = np.zeros((1797, 64))
    assert describe(7) == "7" and describe("ridge") == "'ridge'"
    assert describe(big).startswith("ndarray float64 (1797, 64) #")
    assert describe((big, np.arange(3))).startswith(
        "(ndarray float64 (1797, 64), array([0, 1, 2])) #"
    )
    assert describe(pd.DataFrame({"a": range(100)})).startswith("DataFrame (100, 1) #")
    assert describe(list(range(10_000))).startswith("list[10000] #")
    assert len(describe({str(i): i for i in range(10_000)})) <= 100
    path = "/data/" + "x" * 200 + "/train.csv"
    assert describe(path).endswith("/train.csv' (str[216])") and len(describe(path)) < 80


def test_a_data_file_hashes_by_its_path(tmp_path: Path) -> None:
    # A DataFile is a str subclass, read through pickle's rules: its type and its path.
    from tuixp.cache import DataFile

    path = tmp_path / "d.csv"
    path.write_text("1\n")
    d = DataFile(path)
    assert content_hash(d) == content_hash(pickle.loads(pickle.dumps(d))) is not None
    assert content_hash(d) != content_hash(str(d))
    assert os.fspath(d) == str(path.resolve())
