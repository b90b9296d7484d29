"""Trials on a real dask.distributed cluster: a `dask scheduler` and two `dask worker`
processes started here, killed workers, metrics and persisted outputs from the workers.

The scheduler allows one failure a task (``allowed-failures: 1``): a task whose worker dies once
is retried, twice ends in ``KilledWorker``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest

import tuixp
from tests.conftest import ROOT, env_with_path
from tuixp.execution.events import ProgressEvent
from tuixp.execution.schedulers import SchedulerError, close_clients, distributed_client

from .test_execution import (
    EXPECTED,
    INTERRUPTED_SCRIPT,
    build,
    check_finished_one_by_one,
    check_stream,
    living_in_group,
    per_trial,
    query,
    staggered,
)

pytestmark = pytest.mark.slow
DASK = str(Path(sys.executable).with_name("dask"))


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def spawn(self, args: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.folder / log, "wb") as out:
            proc = subprocess.Popen(
                [DASK, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env_with_path(), **env},
                cwd=self.folder,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def start(self, workers: int = 2, allowed_failures: int = 1) -> None:
        info = self.folder / "scheduler.json"
        self.scheduler = self.spawn(
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
            "scheduler.log",
            DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=str(allowed_failures),
        )
        _wait_for(lambda: info.exists() and info.stat().st_size, 60, "the scheduler")
        self.address = _wait_for(
            lambda: json.loads(info.read_text()).get("address"), 10, "the scheduler's address"
        )
        self.workers = [
            self.spawn(
                [
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                    "--death-timeout",
                    "60",
                ],
                f"worker{i}.log",
            )
            for i in range(1, workers + 1)
        ]
        self.ready(workers)

    def ready(self, workers: int = 2) -> None:
        """The workers are up (a killed worker is restarted by its nanny)."""
        if workers:
            distributed_client(self.address).wait_for_workers(workers, timeout=90)

    def kill(self, procs: list[subprocess.Popen[bytes]]) -> None:
        """SIGKILL each process's group: a worker with its nanny, so nothing restarts it."""
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=30)

    def stop(self) -> None:
        close_clients()
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the nanny's worker too
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import dask

    scheduler_before = dask.config.get("scheduler", None)
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        # The clients tuixp made are closed, and dask's scheduler setting restored, so the
        # tests of other modules that run later in this process are never sent to a cluster
        # that is gone (tuixp's clients are not the default; a test could still set one).
        close_clients()
        c.stop()
        if scheduler_before is None:
            dask.config.config.pop("scheduler", None)
        else:
            dask.config.set(scheduler=scheduler_before)
    for proc in c.procs:
        assert living_in_group(proc.pid) == [], "a cluster process outlived the tests"


@pytest.fixture
def address(cluster: Cluster) -> str:
    cluster.ready()
    return cluster.address


def test_cluster_runs_trials_with_the_same_event_stream(store_path: Path, address: str) -> None:
    ex, s = build(store_path)
    events: list[ProgressEvent] = []
    outcomes = s.compute_grid(a=[1, 2, 3], scheduler=address, listeners=[events.append])
    assert [o.status for o in outcomes] == ["succeeded", "failed", "succeeded"]
    assert [outcomes[0].result, outcomes[2].result] == [-10.0, 10.0]
    assert isinstance(outcomes[1].error, ZeroDivisionError)
    shapes = check_stream(events, [1, 2, 3])
    assert shapes[1] == EXPECTED and shapes[3] == EXPECTED
    assert shapes[2] == [*EXPECTED[:-2], ("task_failed", "score"), ("trial_finished", None)]
    # the steps ran on the workers, and said so
    assert {e.worker for e in events if e.kind.startswith("task_")} <= set(
        distributed_client(address).scheduler_info()["workers"]
    )
    assert ex.get_persisted("feat", 3)["pid"] != os.getpid()
    # metrics saved on the workers reach the store, the failed trial's included
    rows = query(store_path, "SELECT trial_id, name, value FROM metrics ORDER BY trial_id")
    assert rows == [(1, "seen", 10.0), (2, "seen", 20.0), (3, "seen", 30.0)]
    steps = query(
        store_path,
        "SELECT trial_id, step, status, worker, input_hash, output_hash "
        "FROM steps ORDER BY trial_id, started_at",
    )
    assert len(steps) == 9
    assert all(r[3].startswith("tcp://127.0.0.1:") and r[4] for r in steps)
    assert [r[2] for r in steps if r[0] == 2] == ["succeeded", "succeeded", "failed"]
    trials = query(store_path, "SELECT trial_id, status, scheduler FROM trials ORDER BY 1")
    assert trials == [(1, "succeeded", address), (2, "failed", address), (3, "succeeded", address)]
    # tuixp's client is not the process's default: the user's own dask work stays local.
    assert dask.base.get_scheduler() is None
    assert dask.delayed(os.getpid)().compute() == os.getpid()


def test_a_cluster_worker_on_this_machine_logs_an_artifact(
    store_path: Path, address: str, tmp_path: Path
) -> None:
    """issue 20 item 5: the step runs in a worker process (not a descendant of this one); it
    stores the bytes beside the store and its record reaches the owner."""
    ex = tuixp.Experiment("cluster_artifact", store=store_path)
    out = tmp_path / "pred.txt"

    @ex.result
    def predict():
        import os

        out.write_text(f"made by {os.getpid()}")
        ex.log_artifact(out)
        return os.getpid()

    pid = predict().compute(scheduler=address)
    assert pid != os.getpid()
    assert ex.get_artifact("pred.txt").read_text() == f"made by {pid}"


def test_a_cluster_step_sends_its_points_in_chunks_and_live(
    store_path: Path, address: str, tmp_path: Path
) -> None:
    """A training loop on a worker: 2 x 20,000 points reach the store exactly, in the order
    saved, in a few messages on the event topic (not one a point); and a point saved before a
    long computation reaches the owner while the step still runs (the worker's ticker)."""
    ex = tuixp.Experiment("cluster_chunks", store=store_path)
    seen = tmp_path / "seen"
    n = ex.parameter("n", default=20_000)

    @ex
    def train(n):
        for i in range(n):
            ex.log_metrics({"loss": 1.0 / (i + 1), "step": i})  # an int: its exact value kept
        return n

    @ex.result
    def wait(n):
        ex.save_metric("alive", epoch=0, value=1.0)
        deadline = time.monotonic() + 30
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen.exists()

    def listener(event: ProgressEvent) -> None:
        if event.kind == "metrics" and event.step == "wait":
            seen.touch()

    node = wait(train(n))
    assert node.compute(scheduler=address, listeners=[listener]) is True
    loss = ex.metric_points("loss", 1)
    assert list(loss.epoch) == list(range(20_000))
    assert list(loss.value) == [1.0 / (i + 1) for i in range(20_000)]
    rows = query(
        store_path,
        "SELECT epoch, value_int FROM metric_record WHERE name = 'step' ORDER BY seq",
    )
    assert rows == [(i, i) for i in range(20_000)]
    client = distributed_client(address)
    sent = [m for _, m in client.get_events(f"tuixp-{client.id}") if m.get("kind") != "step"]
    ours = [
        m
        for m in sent
        if m.get("uuid") in {u for (u,) in query(store_path, "SELECT uuid FROM trial_record")}
    ]
    kinds = [m["kind"] for m in ours]
    assert "metric" not in kinds
    assert 2 <= kinds.count("metrics") <= 20, kinds.count("metrics")


def test_grid_trials_finish_one_by_one_on_the_cluster(store_path: Path, address: str) -> None:
    events: list[ProgressEvent] = []
    outcomes = staggered(store_path).compute_grid(
        n=[1, 2], scheduler=address, listeners=[events.append]
    )
    assert [o.result for o in outcomes] == [1, 2]
    check_finished_one_by_one(events)


def test_purity_is_checked_on_the_cluster(
    store_path: Path, address: str, caplog: pytest.LogCaptureFixture
) -> None:
    ex = tuixp.Experiment("purity", store=store_path)
    x = ex.parameter("x")

    @ex
    def pure(x):
        return x * 2

    @ex.result
    def stamped(y):
        return y + time.time_ns() % 1000 / 1e6

    node = stamped(pure(x))
    first = node.compute(x=1, scheduler=address)
    second = node.compute(x=1, scheduler=address)
    assert first != second
    impure = [r.getMessage() for r in caplog.records if "changed with the same input" in r.message]
    assert len(impure) == 1 and "step: stamped" in impure[0]
    rows = query(
        store_path,
        "SELECT step, trial_id, input_hash, output_hash FROM steps ORDER BY step, trial_id",
    )
    by_step: dict[str, list[tuple[Any, ...]]] = {}
    for step, _, ih, oh in rows:
        by_step.setdefault(step, []).append((ih, oh))
    assert by_step["pure"][0] == by_step["pure"][1]  # same input, same output, both hashed
    assert by_step["stamped"][0][0] == by_step["stamped"][1][0]
    assert by_step["stamped"][0][1] != by_step["stamped"][1][1]


def killer_experiment(store: Path, pids: Path) -> tuple[tuixp.Experiment, Any]:
    """``warm`` saves a metric, ``nap`` writes its pid (for the test to kill) and sleeps for
    n = 1 only; n = 2 is a grid point that must not be harmed."""
    ex = tuixp.Experiment("killer", store=store)
    n = ex.parameter("n")

    @ex
    def warm(n):
        ex.save_metric("warm", epoch=0, value=n)
        return n

    @ex.result
    def nap(n):
        if n == 1:
            (pids / f"{os.getpid()}-{time.time_ns()}").touch()
            time.sleep(3)
        return n * 100

    return ex, nap(warm(n))


def _run_in_thread(node: Any, **kw: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcomes"] = node.compute_grid(**kw)
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def _kill_nap(pids: Path, count: int) -> int:
    """Kill the worker process running ``nap`` the count-th time; return its pid."""
    found = _wait_for(
        lambda: len(list(pids.iterdir())) >= count and sorted(pids.iterdir()),
        90,
        f"nap to start (attempt {count})",
    )
    pid = int(sorted(found, key=lambda p: p.name.split("-")[1])[count - 1].name.split("-")[0])
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("kills", [1, 2])
def test_a_worker_killed_mid_trial(
    tmp_path: Path, store_path: Path, address: str, kills: int
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    ex, node = killer_experiment(store_path, pids)
    events: list[ProgressEvent] = []
    thread, box = _run_in_thread(node, n=[1, 2], scheduler=address, listeners=[events.append])
    killed = [_kill_nap(pids, i) for i in range(1, kills + 1)]
    thread.join(timeout=120)
    assert not thread.is_alive() and "error" not in box, box
    first, second = box["outcomes"]
    assert second.status == "succeeded" and second.result == 200  # the other point is unharmed
    trial = per_trial(events)[first.trial_id]
    naps = [e for e in trial if e.step == "nap"]
    rows = query(store_path, "SELECT trial_id, status, error FROM trials ORDER BY trial_id")
    if kills == 1:  # the scheduler retried the task on a live worker
        assert first.status == "succeeded" and first.result == 100
        assert [e.kind for e in naps] == ["task_started", "task_started", "task_finished"]
        assert naps[0].worker != naps[1].worker
        assert rows[0][1] == "succeeded"
        assert len(list(pids.iterdir())) == 2
    else:  # the second death was one too many: KilledWorker, with the reason
        assert first.status == "failed" and type(first.error).__name__ == "KilledWorker"
        assert [e.kind for e in naps] == ["task_started", "task_started", "task_failed"]
        assert trial[-1].kind == "trial_finished" and trial[-1].status == "failed"
        assert rows[0][1] == "failed" and rows[0][2].startswith("KilledWorker")
        step = query(
            store_path,
            "SELECT status, error FROM steps WHERE step = 'nap' AND trial_id = ?",
            [first.trial_id],
        )
        assert step[0][0] == "failed" and step[0][1].startswith("KilledWorker")
    assert rows[1][1] == "succeeded"
    # the metric of the step that finished before the deaths is kept either way
    metrics = query(store_path, "SELECT trial_id, value FROM metrics ORDER BY trial_id")
    assert metrics == [(first.trial_id, 1.0), (second.trial_id, 2.0)]
    assert len(set(killed)) == kills


def test_ctrl_c_during_a_cluster_run(tmp_path: Path, store_path: Path, address: str) -> None:
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent(INTERRUPTED_SCRIPT))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path), address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if sum('"task_started"' in x and '"step":"forever"' in x for x in seen) == 2:
                break
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    rows = query(store_path, "SELECT trial_id, status FROM trials ORDER BY trial_id")
    assert rows == [(1, "interrupted"), (2, "interrupted")]
    steps = query(store_path, "SELECT step, status FROM steps WHERE step = 'forever'")
    assert steps == [("forever", "interrupted")] * 2
    # A running task cannot be stopped on a worker: free them for the tests that follow.
    distributed_client(address).restart()


CLI_SCRIPT = """
import tuixp

ex = tuixp.Experiment("from_cli")
a = ex.parameter("a")


@ex
def prep(a):
    ex.save_metric("seen", epoch=1, value=a * 10)
    return a + 1


@ex.persist
def feat(d):
    return {"d": d}


@ex.result
def score(f):
    return 10 / (f["d"] - 3)


s = score(feat(prep(a)))
"""


def test_tuixp_run_on_the_cluster_streams_the_same_events(
    tmp_path: Path, store_path: Path, address: str
) -> None:
    """What the TUI launches: `tuixp run --grid --scheduler tcp://... --progress jsonl`."""
    script = tmp_path / "pipeline.py"
    script.write_text(CLI_SCRIPT)
    tuixp_cli = str(Path(sys.executable).with_name("tuixp"))
    done = subprocess.run(
        [
            tuixp_cli,
            "run",
            str(script),
            "--grid",
            "a=1,3",
            "--scheduler",
            address,
            "--progress",
            "jsonl",
            "--store",
            str(store_path),
        ],
        capture_output=True,
        text=True,
        env=env_with_path(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    from tuixp.execution.events import KINDS

    lines = [json.loads(x) for x in done.stdout.splitlines()]
    events = [ProgressEvent.from_json(json.dumps(x)) for x in lines if x["kind"] in KINDS]
    assert check_stream(events, [1, 2]) == {1: EXPECTED, 2: EXPECTED}
    assert all(e.worker.startswith("tcp://") for e in events if e.kind.startswith("task_"))
    assert query(store_path, "SELECT trial_id, value FROM metrics ORDER BY 1") == [
        (1, 10.0),
        (2, 30.0),
    ]


def test_distributed_starts_a_local_cluster(store_path: Path) -> None:
    ex, s = build(store_path)
    events: list[ProgressEvent] = []
    try:
        outcomes = s.compute_grid(a=[1, 3], scheduler="distributed", listeners=[events.append])
        workers = set(distributed_client("distributed").scheduler_info()["workers"])
    finally:
        close_clients()
    assert [o.result for o in outcomes] == [-10.0, 10.0]
    assert check_stream(events, [1, 2]) == {1: EXPECTED, 2: EXPECTED}
    assert {e.worker for e in events if e.kind == "task_finished"} <= workers
    assert query(store_path, "SELECT trial_id, scheduler FROM trials ORDER BY 1") == [
        (1, "distributed"),
        (2, "distributed"),
    ]


# -- a cluster that goes away: every worker, or the scheduler, killed for real ------------------
@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for one test to break: a scheduler and no workers yet (``start_workers``).
    Dask's default ``allowed-failures`` (3): losing two workers is not yet a ``KilledWorker``."""
    folder = tmp_path / "own-cluster"
    folder.mkdir()
    c = Cluster(folder)
    try:
        c.start(workers=0, allowed_failures=3)
        yield c
    finally:
        c.stop()
    # A process SIGKILLed a moment ago may still be on its way out (not yet a zombie).
    groups = [proc.pid for proc in c.procs]
    _wait_for(
        lambda: not any(living_in_group(g) for g in groups), 10, "the cluster's processes to end"
    )


def start_workers(cluster: Cluster, count: int) -> None:
    cluster.workers = [
        cluster.spawn(
            ["worker", cluster.address, "--nthreads", "1", "--no-dashboard", "--name", f"v{i}"],
            f"v{i}.log",
        )
        for i in range(count)
    ]
    cluster.ready(count)


NAPPER_SCRIPT = """
import os
import time
from pathlib import Path

import tuixp

PIDS = {pids!r}
ex = tuixp.Experiment("napper")
n = ex.parameter("n")


@ex.result
def nap(n):
    (Path(PIDS) / str(os.getpid())).touch()  # for the test: the nap runs on a worker
    time.sleep(60)  # killed long before
    return n


s = nap(n)
"""


@pytest.mark.timeout(240)
def test_losing_every_worker_ends_the_grid(
    tmp_path: Path, store_path: Path, own_cluster: Cluster
) -> None:
    """issue 14, item 3: with no worker left, Dask would wait forever and every trial would
    stay `running`; `tuixp run --worker-timeout 2` ends the grid, its trials failed, saying why."""
    start_workers(own_cluster, 2)
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "napper.py"
    script.write_text(NAPPER_SCRIPT.format(pids=str(pids)))
    tuixp_cli = str(Path(sys.executable).with_name("tuixp"))
    proc = subprocess.Popen(
        [
            tuixp_cli,
            "run",
            str(script),
            "--grid",
            "n=1,2",
            "--scheduler",
            own_cluster.address,
            "--worker-timeout",
            "2",
            "--progress",
            "jsonl",
            "--store",
            str(store_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
        start_new_session=True,
    )
    try:
        _wait_for(lambda: list(pids.iterdir()), 90, "a nap to start on a worker")
        own_cluster.kill(own_cluster.workers)  # every worker, nanny included: none comes back
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err
    gone = f"every worker of the cluster at {own_cluster.address} is gone"
    assert gone in err and "no worker for 2 s" in err, err
    # the wait was said when it began, once
    said = f"The cluster at {own_cluster.address} has no worker: its unfinished trials fail in 2 s"
    assert err.count(said) == 1, err
    rows = query(store_path, "SELECT trial_id, status, error FROM trials ORDER BY trial_id")
    assert [(r[0], r[1]) for r in rows] == [(1, "failed"), (2, "failed")]
    assert all(r[2].startswith("WorkersLost: " + gone) for r in rows), rows
    finished = [json.loads(x) for x in out.splitlines() if '"trial_finished"' in x]
    assert sorted((e["trial_id"], e["status"]) for e in finished) == [(1, "failed"), (2, "failed")]
    # no step is left without an end
    steps = query(store_path, "SELECT trial_id, status FROM steps ORDER BY trial_id")
    assert all(status == "failed" for _, status in steps), steps


@pytest.mark.timeout(120)
def test_a_cluster_without_workers_fails_after_worker_timeout(
    store_path: Path, own_cluster: Cluster
) -> None:
    """The Python API's bound: ``compute_grid(worker_timeout=...)`` on a cluster that has no
    worker at all (never had one) ends its trials failed instead of waiting forever."""
    ex = tuixp.Experiment("idle", store=store_path)
    n = ex.parameter("n")

    @ex.result
    def double(n):
        return n * 2

    outcomes = double(n).compute_grid(n=[1, 2], scheduler=own_cluster.address, worker_timeout=1)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all(type(o.error).__name__ == "WorkersLost" for o in outcomes)
    assert "no worker for 1 s" in str(outcomes[0].error)
    rows = query(store_path, "SELECT status, error FROM trials ORDER BY trial_id")
    assert [r[0] for r in rows] == ["failed", "failed"]
    assert all(own_cluster.address in r[1] for r in rows)


@pytest.mark.timeout(180)
def test_a_killed_scheduler_is_named(
    tmp_path: Path,
    store_path: Path,
    own_cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """issue 14, item 9: a scheduler killed mid-grid was reported as "the task was cancelled on
    the cluster"; the trials now fail saying the scheduler (its address) is gone."""
    start_workers(own_cluster, 1)
    pids = tmp_path / "pids"
    pids.mkdir()
    ex = tuixp.Experiment("napper", store=store_path)
    n = ex.parameter("n")

    @ex.result
    def nap(n):
        (pids / str(os.getpid())).touch()
        time.sleep(60)  # the scheduler is killed long before
        return n

    thread, box = _run_in_thread(nap(n), n=[1, 2], scheduler=own_cluster.address)
    _wait_for(lambda: list(pids.iterdir()), 90, "nap to start on the worker")
    own_cluster.kill([own_cluster.scheduler])
    thread.join(timeout=90)
    assert not thread.is_alive() and "error" not in box, box
    outcomes = box["outcomes"]
    assert [o.status for o in outcomes] == ["failed", "failed"]
    gone = f"the Dask scheduler at {own_cluster.address} is gone"
    for o in outcomes:
        assert type(o.error).__name__ == "SchedulerLost" and str(o.error).startswith(gone)
    rows = query(store_path, "SELECT status, error FROM trials ORDER BY trial_id")
    assert [r[0] for r in rows] == ["failed", "failed"]
    assert all(r[1].startswith("SchedulerLost: " + gone) for r in rows), rows
    assert not any("cancelled on the cluster" in r[1] for r in rows)
    # the client was closed with the run: closing the rest (as the process's exit does) logs
    # no traceback of a reconnection cut short below the trials' message
    with caplog.at_level(logging.ERROR, logger="distributed"):
        close_clients()
    assert not [r for r in caplog.records if r.name.startswith("distributed") and r.exc_info]
    # the dead client is not reused: the next run says the scheduler cannot be reached
    monkeypatch.setenv("TUIXP_CONNECT_TIMEOUT", "1")
    with pytest.raises(SchedulerError, match="Cannot reach the Dask scheduler at"):
        nap(n).compute(n=3, scheduler=own_cluster.address)
    assert ex.trial_id == 2


@pytest.mark.timeout(180)
def test_a_scheduler_that_stops_answering_ends_the_run(
    tmp_path: Path, store_path: Path, own_cluster: Cluster
) -> None:
    """A scheduler stopped (SIGSTOP) keeps its connections open, so the client sees nothing
    wrong; after the worker timeout without an answer the run ends, saying so."""
    start_workers(own_cluster, 1)
    pids = tmp_path / "pids"
    pids.mkdir()
    ex = tuixp.Experiment("napper", store=store_path)
    n = ex.parameter("n")

    @ex.result
    def nap(n):
        (pids / str(os.getpid())).touch()
        time.sleep(60)  # the run gives up long before
        return n

    thread, box = _run_in_thread(nap(n), n=[1, 2], scheduler=own_cluster.address, worker_timeout=2)
    try:
        _wait_for(lambda: list(pids.iterdir()), 90, "nap to start on the worker")
        os.killpg(own_cluster.scheduler.pid, signal.SIGSTOP)
        thread.join(timeout=90)
    finally:
        own_cluster.kill([own_cluster.scheduler])  # SIGKILL ends a stopped process too
    assert not thread.is_alive() and "error" not in box, box
    silent = f"the Dask scheduler at {own_cluster.address} is gone: it has not answered for 2 s"
    for o in box["outcomes"]:
        assert o.status == "failed" and type(o.error).__name__ == "SchedulerLost"
        assert str(o.error).startswith(silent)
    rows = query(store_path, "SELECT status, error FROM trials ORDER BY trial_id")
    assert [r[0] for r in rows] == ["failed", "failed"]
    assert all(r[1].startswith("SchedulerLost: " + silent) for r in rows), rows
