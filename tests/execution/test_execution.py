"""Execution on the local Dask schedulers: the event stream, per-call callbacks, the steps view,
scheduler choice and its errors, Ctrl-C. The cluster's side is in test_distributed.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import tuixp
from tests.conftest import env_with_path
from tuixp.execution.events import ProgressEvent
from tuixp.execution.schedulers import SchedulerError
from tuixp.store.store import Store

# What every trial of ``build`` reports, in this order, on every scheduler.
EXPECTED = [
    ("trial_started", None),
    ("task_started", "prep"),
    ("metrics", "prep"),  # the step's one point, in the batch sent before its end
    ("task_finished", "prep"),
    ("task_started", "feat"),
    ("task_finished", "feat"),
    ("task_started", "score"),
    ("task_finished", "score"),
    ("trial_finished", None),
]


def build(store: Path, name: str = "pipeline") -> tuple[tuixp.Experiment, Any]:
    """prep (saves a metric) -> feat (persisted) -> score (fails when a == 2).

    The steps are made inside a function so Dask ships them by value to other processes.
    """
    ex = tuixp.Experiment(name, store=store)
    a = ex.parameter("a")

    @ex
    def prep(a):
        ex.save_metric("seen", epoch=1, value=a * 10)
        return a + 1

    @ex.persist
    def feat(d):
        return {"d": d, "pid": os.getpid()}

    @ex.result
    def score(f):
        return 10 / (f["d"] - 3)

    return ex, score(feat(prep(a)))


def per_trial(events: list[ProgressEvent]) -> dict[int, list[ProgressEvent]]:
    out: dict[int, list[ProgressEvent]] = defaultdict(list)
    for ev in events:
        out[ev.trial_id].append(ev)
    return out


def check_stream(events: list[ProgressEvent], trial_ids: list[int]) -> dict[int, list[Any]]:
    """The stream's rules, whatever the scheduler; returns each trial's (kind, step) list."""
    trials = per_trial(events)
    assert sorted(trials) == sorted(trial_ids)
    shapes = {}
    for tid, evs in trials.items():
        assert evs[0].kind == "trial_started" and evs[-1].kind == "trial_finished"
        assert [e.kind for e in evs].count("trial_finished") == 1
        started: dict[str, ProgressEvent] = {}
        for ev in evs:
            assert ev.experiment and ev.time > 0
            if ev.kind == "task_started":
                assert ev.key and ev.step and ev.key not in started
                started[ev.key] = ev
            elif ev.kind in ("task_finished", "task_failed"):
                assert ev.key in started, f"{ev.key} ended before it started"
                assert ev.step == started[ev.key].step and ev.worker
                assert ev.status == ("succeeded" if ev.kind == "task_finished" else "failed")
                assert ev.data["started"] <= ev.time and ev.data["elapsed"] >= 0
            elif ev.kind == "metrics":
                assert ev.data["points"]["seen"]["epoch"] == [1]
        shapes[tid] = [(e.kind, e.step) for e in evs]
    # A round trip through the JSON lines of ``tuixp run --progress jsonl`` keeps every field.
    assert [ProgressEvent.from_json(e.to_json()) for e in events] == events
    return shapes


def query(store: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Store(store).connect() as con:
        return con.execute(sql, params or []).fetchall()


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_same_event_stream_on_every_local_scheduler(store_path: Path, scheduler: str) -> None:
    ex, s = build(store_path)
    events: list[ProgressEvent] = []
    outcomes = s.compute_grid(a=[1, 3], scheduler=scheduler, listeners=[events.append])
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    assert [o.result for o in outcomes] == [10 / (2 - 3), 10 / (4 - 3)]
    shapes = check_stream(events, [1, 2])
    assert shapes == {1: EXPECTED, 2: EXPECTED}
    workers = {e.worker for e in events if e.kind == "task_finished"}
    owner = f":{os.getpid()}/"
    if scheduler == "processes":
        assert all(owner not in w for w in workers), workers  # the steps ran in children
        # the owner learns each start when it hands the task over, before its worker is known
        assert all(e.worker is None for e in events if e.kind == "task_started")
    else:
        assert all(owner in w for w in workers), workers
    rows = query(store_path, "SELECT trial_id, name, value FROM metrics ORDER BY trial_id")
    assert rows == [(1, "seen", 10.0), (2, "seen", 30.0)]
    assert ex.get_persisted("feat", 2)["d"] == 4


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_a_failing_point_fails_only_its_trial(store_path: Path, scheduler: str) -> None:
    ex, s = build(store_path)
    events: list[ProgressEvent] = []
    outcomes = s.compute_grid(a=[1, 2, 3], scheduler=scheduler, listeners=[events.append])
    assert [o.status for o in outcomes] == ["succeeded", "failed", "succeeded"]
    assert isinstance(outcomes[1].error, ZeroDivisionError)
    shapes = check_stream(events, [1, 2, 3])
    assert shapes[2][-2:] == [("task_failed", "score"), ("trial_finished", None)]
    assert per_trial(events)[2][-1].status == "failed"
    rows = query(
        store_path, "SELECT trial_id, step, status, error FROM steps WHERE status <> 'succeeded'"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [(2, "score", "failed")]
    assert rows[0][3].startswith("ZeroDivisionError")
    # the metric of the step before the failing one is kept, even from another process
    assert query(store_path, "SELECT value FROM metrics WHERE trial_id = 2") == [(20.0,)]
    status = query(store_path, "SELECT trial_id, status, error FROM trials ORDER BY trial_id")
    assert [r[1] for r in status] == ["succeeded", "failed", "succeeded"]
    assert status[1][2].startswith("ZeroDivisionError")


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_two_concurrent_runs_see_only_their_own_tasks(store_path: Path, scheduler: str) -> None:
    from dask.callbacks import Callback

    active_seen: list[int] = []
    windows: dict[str, tuple[float, float]] = {}
    runs = {}
    for name in ("left", "right"):
        ex = tuixp.Experiment(name, store=store_path)
        x = ex.parameter("x")

        @ex
        def slow(x):
            active_seen.append(len(Callback.active))  # callbacks registered process-wide
            time.sleep(0.4)
            return x

        @ex.result
        def total(values):
            return sum(values)

        runs[name] = (ex, total([slow(x), slow(x)]))
    events: dict[str, list[ProgressEvent]] = {"left": [], "right": []}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            t0 = time.time()
            runs[name][1].compute_grid(
                x=[1, 2], scheduler=scheduler, listeners=[events[name].append]
            )
            windows[name] = (t0, time.time())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    (l0, l1), (r0, r1) = windows["left"], windows["right"]
    assert l0 < r1 and r0 < l1, "the two runs did not overlap; the test proves nothing"
    for name, evs in events.items():
        assert {e.experiment for e in evs} == {name}
        tasks = [e for e in evs if e.kind.startswith("task_")]
        assert len(tasks) == 2 * 2 * 3  # 2 trials x 3 tasks x started/finished
        assert all(e.key.startswith(("slow-", "total-")) for e in tasks)
        check_stream(evs, [1, 2])
    if scheduler == "threads":
        assert active_seen and set(active_seen) == {0}


def staggered(store: Path) -> Any:
    """A grid whose point n = 1 is quick and n = 2 slow."""
    ex = tuixp.Experiment("staggered", store=store)
    n = ex.parameter("n")

    @ex.result
    def nap(n):
        time.sleep(1.0 if n == 2 else 0)
        return n

    return nap(n)


def check_finished_one_by_one(events: list[ProgressEvent], quick: int = 1) -> None:
    """The quick trial was recorded while the slow one still ran, not at the end of the grid."""
    order = [(e.kind, e.trial_id) for e in events]
    assert order.index(("trial_finished", quick)) < order.index(("task_finished", quick + 1))


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_grid_trials_finish_one_by_one(store_path: Path, scheduler: str) -> None:
    events: list[ProgressEvent] = []
    node = staggered(store_path)
    # The first run of a step function in a process runs alone, seeded, while tuixp learns
    # whether it draws from the global random generators (docs/python-api.md, "Seeds").
    node.compute(n=0)
    outcomes = node.compute_grid(n=[1, 2], scheduler=scheduler, listeners=[events.append])
    assert [o.result for o in outcomes] == [1, 2]
    check_finished_one_by_one(events, quick=2)


def test_steps_view_says_which_step_is_slow(store_path: Path) -> None:
    ex = tuixp.Experiment("timing", store=store_path)
    n = ex.parameter("n")

    @ex
    def quick(n):
        return n

    @ex
    def slow(n):
        time.sleep(0.3)
        return n

    @ex.result
    def join(a, b):
        return a + b

    assert join(quick(n), slow(n)).compute(n=1) == 2
    rows = query(
        store_path,
        "SELECT step, status, worker, started_at <= finished_at, elapsed_s "
        "FROM steps ORDER BY elapsed_s DESC",
    )
    assert [r[0] for r in rows][0] == "slow" and {r[0] for r in rows} == {"quick", "slow", "join"}
    assert all(r[1] == "succeeded" and r[2] and r[3] for r in rows)
    assert rows[0][4] >= 0.3 > rows[1][4]


def test_scheduler_from_environment_and_argument(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex, s = build(store_path)
    monkeypatch.setenv("TUIXP_SCHEDULER", "sync")
    events: list[ProgressEvent] = []
    s.compute(a=1, listeners=[events.append])
    assert {e.worker for e in events if e.kind == "task_finished"} == {
        f"{os.uname().nodename}:{os.getpid()}/{threading.current_thread().name}"
    }
    s.compute(a=1, scheduler="threads")
    rows = query(store_path, "SELECT trial_id, scheduler FROM trials ORDER BY trial_id")
    assert rows == [(1, "sync"), (2, "threads")]


@pytest.mark.parametrize("name", ["thread", "tcp://", "http://127.0.0.1:8786", ""])
def test_unknown_scheduler_is_refused_before_any_trial(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    ex, s = build(store_path)
    if not name:  # an empty argument falls back to the environment
        monkeypatch.setenv("TUIXP_SCHEDULER", "gpu-cluster")
    with pytest.raises(SchedulerError, match="Unknown scheduler") as info:
        s.compute(a=1, scheduler=name or None)
    assert isinstance(info.value, ValueError)
    assert "tcp://127.0.0.1:8786" in str(info.value)  # says what would work
    assert ex.trial_id == 0


def test_unreachable_cluster_is_refused_before_any_trial(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TUIXP_CONNECT_TIMEOUT", "1")
    ex, s = build(store_path)
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(SchedulerError, match=f"Cannot reach the Dask scheduler at {address}"):
        s.compute(a=1, scheduler=address)
    assert ex.trial_id == 0
    assert not store_path.exists() or query(store_path, "SELECT count(*) FROM trials") == [(0,)]


def living_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still live (zombies, already dead, do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


INTERRUPTED_SCRIPT = """
import os, sys, threading, time
import tuixp

ex = tuixp.Experiment("long", store=sys.argv[1])
n = ex.parameter("n")

@ex
def quick(n):
    return n

@ex.result
def forever(q):
    time.sleep(120)
    return q


_out = threading.Lock()


def show(event):
    # Steps report from several threads: one whole line at a time (print is not atomic).
    with _out:
        sys.stdout.write(event.to_json() + "\\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        forever(quick(n)).compute_grid(n=[1, 2], scheduler=sys.argv[2], listeners=[show])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
"""


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_ctrl_c_marks_running_trials_interrupted(
    tmp_path: Path, store_path: Path, scheduler: str
) -> None:
    script = tmp_path / "long.py"
    # On threads the first run of a step function in a process runs alone while tuixp learns
    # whether it draws from the global random generators (docs/python-api.md, "Seeds"): a
    # first trial whose `forever` returns at once teaches it, so both grid trials run it.
    warm = "    forever(quick(n)).compute(n=0)\n    try:\n"
    text = textwrap.dedent(INTERRUPTED_SCRIPT).replace("time.sleep(120)", "time.sleep(120 * q)")
    script.write_text(text.replace("    try:\n", warm, 1))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path), scheduler],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
        start_new_session=True,
    )
    try:
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until both trials are inside their long step
            seen.append(line)
            if sum('"task_started"' in x and '"step":"forever"' in x for x in seen) == 2:
                break
        else:
            pytest.fail(f"the run ended early: {seen} {proc.stderr.read() if proc.stderr else ''}")
        # As a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in out.splitlines()
    assert "Traceback" not in err
    finished = [json.loads(x) for x in (seen + out.splitlines()) if '"trial_finished"' in x]
    assert sorted(e["trial_id"] for e in finished) == [2, 3]  # trial 1 taught `forever`
    assert {e["status"] for e in finished} == {"interrupted"}
    deadline = time.monotonic() + 10
    while living_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert living_in_group(proc.pid) == [], "a step process outlived the run"
    rows = query(store_path, "SELECT trial_id, status, error FROM trials ORDER BY trial_id")
    assert [(r[0], r[1]) for r in rows] == [
        (1, "succeeded"),
        (2, "interrupted"),
        (3, "interrupted"),
    ]
    assert all(r[2].startswith("KeyboardInterrupt") for r in rows[1:])
    steps = query(
        store_path,
        "SELECT trial_id, step, status FROM steps WHERE trial_id > 1 ORDER BY trial_id, step",
    )
    assert steps == [
        (2, "forever", "interrupted"),
        (2, "quick", "succeeded"),
        (3, "forever", "interrupted"),
        (3, "quick", "succeeded"),
    ]
