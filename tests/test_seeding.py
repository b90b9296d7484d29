"""Seeds that reproduce: a grid point equals the same point run alone with the same seed, and
itself across runs, on every scheduler; torch imported inside a step is seeded; a seed that
cannot reproduce is said so at run time (issue 15, items 1 and 2).

The steps draw from the process-wide generators (random, numpy's global RandomState, torch's
default generator) as scikit-learn estimators with ``random_state=None`` and torch models do,
and yield the GIL between draws, so parallel trials on threads interleave their draws.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tuixp
from tuixp.store.store import Store

from .conftest import env_with_path

TUIXP = str(Path(sys.executable).with_name("tuixp"))


def notes(store: Path, experiment: str) -> dict[int, list[str]]:
    with Store(store).connect() as con:
        rows = con.execute(
            "SELECT trial_id, notes FROM trial_record WHERE experiment = ? ORDER BY trial_id",
            [experiment],
        ).fetchall()
    return {tid: json.loads(n) if n else [] for tid, n in rows}


def seeded(store: Path, experiment: str) -> dict[int, list[str]]:
    """The notes that say which generators each step drew from (a trial has others, e.g. how
    long it was queued)."""
    return {
        t: [n for n in ns if n.startswith("seeded:")] for t, ns in notes(store, experiment).items()
    }


def drawing(store: Path) -> Any:
    ex = tuixp.Experiment("draws", store=store)
    n = ex.parameter("n")

    @ex
    def draw(n):
        total = 0.0
        for _ in range(60 + 10 * n):
            total += random.random() + float(np.random.rand())
            time.sleep(0.0005)  # the other trials' threads run between two draws
        return total

    @ex.result
    def score(total):
        return round(total, 12)

    return score(draw(n))


def check_grid_reproduces(node: Any, scheduler: str, points: int = 6) -> None:
    grid = [o.result for o in node.compute_grid(n=range(points), seed=0, scheduler=scheduler)]
    again = [o.result for o in node.compute_grid(n=range(points), seed=0, scheduler=scheduler)]
    alone = [node.compute(n=n, seed=0, scheduler="sync") for n in (0, points - 1)]
    assert None not in grid
    assert grid == again, f"the same grid and seed gave other results on {scheduler}"
    assert [grid[0], grid[-1]] == alone, f"a grid point on {scheduler} differs from it alone"


def test_a_grid_point_equals_itself_alone_on_threads(store_path: Path) -> None:
    check_grid_reproduces(drawing(store_path), "threads")


def test_a_grid_point_equals_itself_alone_on_sync(store_path: Path) -> None:
    check_grid_reproduces(drawing(store_path), "sync")


@pytest.mark.slow
def test_a_grid_point_equals_itself_alone_on_processes(store_path: Path) -> None:
    check_grid_reproduces(drawing(store_path), "processes", points=4)


def test_steps_that_draw_nothing_still_run_in_parallel(store_path: Path) -> None:
    """Only steps that draw are run one at a time: two sleeping trials overlap."""
    ex = tuixp.Experiment("sleepers", store=store_path)
    i = ex.parameter("i")
    spans: dict[int, tuple[float, float]] = {}

    @ex.result
    def nap(i):
        start = time.monotonic()
        time.sleep(0.3)
        spans[i] = (start, time.monotonic())
        return i

    nap(i).compute(i=-1, seed=0)  # the first run of a step function learns that it draws nothing
    with_dask_threads = 4
    import dask

    with dask.config.set(num_workers=with_dask_threads):
        outcomes = nap(i).compute_grid(i=range(4), seed=0)
    assert [o.result for o in outcomes] == [0, 1, 2, 3]
    starts = sorted(s for s, _ in (spans[k] for k in range(4)))
    ends = sorted(e for _, e in (spans[k] for k in range(4)))
    assert starts[-1] < ends[0], "steps that draw nothing were run one at a time"


def test_a_grid_inside_a_step_reproduces_and_does_not_wait_for_its_caller(
    store_path: Path,
) -> None:
    """A step that runs a grid of another experiment (a nested computation on threads): the
    inner steps do not wait for the generators their caller holds, and the caller's own draws
    after the inner grid are the same as without it running beside anything."""
    inner_ex = tuixp.Experiment("inner", store=store_path)
    b = inner_ex.parameter("b")

    @inner_ex.result
    def inner(b):
        time.sleep(0.01)
        return random.random() + b

    inner_node = inner(b)
    outer_ex = tuixp.Experiment("outer", store=store_path)
    a = outer_ex.parameter("a")

    @outer_ex.result
    def outer(a):
        before = random.random()
        ys = [o.result for o in inner_node.compute_grid(b=[1, 2, 3], seed=5)]
        return [before, ys, random.random() + a]

    node = outer(a)
    found: list[Any] = []
    worker = threading.Thread(
        target=lambda: found.extend(
            [
                [o.result for o in node.compute_grid(a=[1, 2], seed=0)],
                [o.result for o in node.compute_grid(a=[1, 2], seed=0)],
                node.compute(a=2, seed=0, scheduler="sync"),
            ]
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "a nested grid waited for its caller's generators"
    grid, again, alone = found
    assert grid == again and grid[1] == alone
    assert grid[0][1] == grid[1][1], "the inner grid's seeded results differ"


def test_after_ctrl_c_the_next_run_does_not_wait_for_abandoned_steps(store_path: Path) -> None:
    """Ctrl-C on threads abandons the running steps (they run on in daemon threads): the next
    run starts at once instead of waiting for the generators they hold, and its notes say that
    an abandoned step still runs beside it."""
    ex = tuixp.Experiment("abandon", store=store_path)
    a = ex.parameter("a")
    inside = threading.Event()
    release = threading.Event()

    @ex.result
    def stuck(a):
        random.random()
        if a == 1:
            inside.set()
            release.wait(60)  # bounded: the test releases it at its end
        return random.random() + a

    node = stuck(a)
    node.compute(a=0, seed=0)  # learnt: draws

    def interrupt() -> None:
        if inside.wait(30):
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            node.compute(a=1, seed=0)
        t = time.monotonic()
        node.compute(a=2, seed=0)
        waited = time.monotonic() - t
        alive = not release.is_set()
    finally:
        release.set()
    assert alive and waited < 30, "the next run waited for the abandoned step"
    ex.get_history()
    (note,) = [n for n in notes(store_path, "abandon")[3] if n.startswith("seed not")]
    assert "stuck of an interrupted run still run" in note


def test_the_notes_say_which_generators_each_step_drew_from(store_path: Path) -> None:
    ex = tuixp.Experiment("noted", store=store_path)
    a = ex.parameter("a")

    @ex
    def quiet(a):
        return a

    @ex
    def split(a):
        return random.random() + a

    @ex.result
    def fit(x, y):
        return float(np.random.rand()) + x + y

    fit(quiet(a), split(a)).compute(a=1, seed=3)
    ex.get_history()  # ingests the journal
    assert seeded(store_path, "noted") == {1: ["seeded: fit (numpy), split (random)"]}


def test_a_thread_a_step_leaves_drawing_is_named_at_run_time(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A step whose thread keeps drawing from the global generator after it returned: the
    seed cannot fix that thread's draws, so tuixp says which step started it."""
    ex = tuixp.Experiment("leaky", store=store_path)
    a = ex.parameter("a")
    stop = threading.Event()

    @ex
    def spawn(a):
        def churn() -> None:
            while not stop.wait(0.001):
                random.random()

        threading.Thread(target=churn, name="churner", daemon=True).start()
        return a

    @ex.result
    def use(a):
        time.sleep(0.05)
        return random.random() + a

    try:
        with caplog.at_level(logging.WARNING, logger="tuixp"):
            spawn(a).compute(a=1, seed=0, scheduler="sync")
            time.sleep(0.05)  # the churner draws while no step runs
            use(a).compute(a=1, seed=0, scheduler="sync")
    finally:
        stop.set()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "Seed may not reproduce step use" in w and "churner" in w and "spawn" in w for w in warnings
    ), warnings
    ex.get_history()
    (note,) = [n for n in notes(store_path, "leaky")[2] if n.startswith("seed not reproducible")]
    assert note.startswith("seed not reproducible: use: ") and "spawn" in note


def test_a_step_that_draws_only_for_some_inputs_is_said_so(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A step that drew nothing on its first run runs beside others unseeded; if it draws for
    a later input while another step runs, that run may not reproduce: a warning and a note
    say so, and from then on it runs alone, seeded."""
    ex = tuixp.Experiment("sometimes", store=store_path)
    a = ex.parameter("a")

    @ex
    def maybe(a):
        time.sleep(0.05)
        return random.random() if a else 0.0

    @ex
    def nap(a):
        time.sleep(0.3)
        return a

    @ex.result
    def both(x, y):
        return [x, y]

    node = both(maybe(a), nap(a))
    node.compute(a=0, seed=1)  # learnt: maybe and nap draw nothing
    with caplog.at_level(logging.WARNING, logger="tuixp"):
        node.compute(a=1, seed=1)  # maybe draws, unseeded, beside nap
        again = node.compute(a=1, seed=1)  # maybe is known to draw: alone and seeded
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    told = [w for w in warnings if "Seed may not reproduce step maybe of trial 2" in w]
    assert len(told) == 1 and "beside other steps (nap)" in told[0], warnings
    assert [w for w in warnings if "step nap of trial 2" in w and "(maybe)" in w], warnings
    assert not [w for w in warnings if "trial 3" in w and "Seed" in w], warnings
    assert again == node.compute(a=1, seed=1, scheduler="sync")
    ex.get_history()
    seed_notes = {
        t: [n for n in ns if n.startswith("seed")]
        for t, ns in notes(store_path, "sometimes").items()
    }
    assert seed_notes[1] == []
    # which of the two drew cannot be told: both are named, each with the other
    assert sorted(n.split(": ")[1] for n in seed_notes[2]) == ["maybe", "nap"]
    assert all("not reproducible" in n for n in seed_notes[2])
    assert seed_notes[3] == seed_notes[4] == ["seeded: maybe (random)"]


TORCH_TRAIN = """
import sys, json
import tuixp

ex = tuixp.Experiment("torch_inside", store=sys.argv[1])
lr = ex.parameter("lr")

@ex.result
def train(lr):
    import torch  # imported inside the step, not before the trial

    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x = torch.randn(64, 8)
    y = x.sum(dim=1, keepdim=True)
    for _ in range(20):
        idx = torch.randperm(64)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return round(float(loss), 10)

node = train(lr)
first = node.compute(lr=0.01, seed=int(sys.argv[2]))   # torch is not imported yet here
second = node.compute(lr=0.01, seed=int(sys.argv[2]))  # and now it is
print(json.dumps([first, second, ex.trial_id]))
"""


@pytest.mark.slow
def test_torch_imported_inside_a_step_is_seeded(tmp_path: Path) -> None:
    script = tmp_path / "train_torch.py"
    script.write_text(TORCH_TRAIN)

    def run(seed: int) -> list[Any]:
        out = subprocess.run(
            [sys.executable, str(script), str(tmp_path / f"s{seed}.duckdb"), str(seed)],
            capture_output=True,
            text=True,
            timeout=180,
            env=env_with_path(),
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    one, other = run(1), run(2)
    # the step's seed decides its draws, whether torch was imported before the step or in it
    assert one[0] == one[1], "torch imported inside the step drew from an unseeded generator"
    assert one[0] != other[0], "the trial's seed had no effect on torch"
    assert seeded(tmp_path / "s1.duckdb", "torch_inside")[1] == ["seeded: train (torch)"]


TRAIN_SKLEARN = """
import tuixp
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score

ex = tuixp.Experiment("digits_rf")
n_estimators = ex.parameter("n_estimators", default=10)
max_depth = ex.parameter("max_depth", default=None)

@ex
def data():
    return load_digits(return_X_y=True)

@ex.result
def fit(xy, n_estimators, max_depth):
    X, y = xy
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth)
    return round(float(cross_val_score(model, X[:600], y[:600], cv=3).mean()), 6)

score = fit(data(), n_estimators, max_depth)
"""


@pytest.mark.slow
def test_a_scikit_learn_grid_reproduces_from_the_command_line(tmp_path: Path) -> None:
    """The issue's case: a random forest with random_state=None (numpy's global generator),
    as a grid on the default threads scheduler, twice, and one point alone."""
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SKLEARN)
    store = tmp_path / "s.duckdb"

    def run(*args: str) -> None:
        out = subprocess.run(
            [TUIXP, "run", str(script), *args, "--seed", "0", "--store", str(store)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env_with_path(),
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr

    grid = ["--grid", "n_estimators=5,10,20", "--grid", "max_depth=4,None"]
    run(*grid)
    run(*grid)
    run("n_estimators=20", "max_depth=4")
    with Store(store).connect() as con:
        rows = con.execute(
            "SELECT trial_id, params::VARCHAR, result::VARCHAR FROM trials "
            "WHERE experiment = 'digits_rf' ORDER BY trial_id"
        ).fetchall()
    assert len(rows) == 13
    first = {p: r for _, p, r in rows[:6]}
    second = {p: r for _, p, r in rows[6:12]}
    assert first == second, "the same grid and seed gave other scores"
    alone_params, alone = rows[12][1], rows[12][2]
    assert first[alone_params] == alone, "a grid point differs from the same point alone"
    assert all(n == ["seeded: fit (numpy)"] for n in seeded(store, "digits_rf").values())


def torch_node(store: Path) -> Any:
    import torch

    ex = tuixp.Experiment("digits_mlp", store=store)
    hidden = ex.parameter("hidden")

    @ex
    def data():
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return torch.tensor(X[:400] / 16.0, dtype=torch.float32), torch.tensor(y[:400])

    @ex.result
    def train(xy, hidden):
        X, y = xy
        model = torch.nn.Sequential(
            torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(hidden, 10),
        )  # fmt: skip
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(8):
            for batch in torch.randperm(len(X)).split(50):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
                opt.step()
                time.sleep(0.0002)
        model.eval()
        return round(float((model(X).argmax(1) == y).float().mean()), 6)

    return train(data(), hidden)


@pytest.mark.slow
def test_a_torch_grid_reproduces_on_threads(store_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    node = torch_node(store_path)
    grid = [o.result for o in node.compute_grid(hidden=[8, 16, 24, 32], seed=0)]
    again = [o.result for o in node.compute_grid(hidden=[8, 16, 24, 32], seed=0)]
    alone = node.compute(hidden=24, seed=0, scheduler="sync")
    assert grid == again
    assert grid[2] == alone


@pytest.mark.slow
def test_a_grid_reproduces_on_a_cluster_worker_with_two_threads(store_path: Path) -> None:
    """A real scheduler and a worker process with two threads: its steps share the worker's
    generators as threads of one process do."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )
    try:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            node = drawing(store_path)
            grid = [
                o.result
                for o in node.compute_grid(n=range(4), seed=0, scheduler=cluster.scheduler_address)
            ]
            again = [
                o.result
                for o in node.compute_grid(n=range(4), seed=0, scheduler=cluster.scheduler_address)
            ]
            alone = node.compute(n=3, seed=0, scheduler="sync")
        assert grid == again
        assert grid[3] == alone
    finally:
        from tuixp.execution.schedulers import close_clients

        close_clients()
        cluster.close()
