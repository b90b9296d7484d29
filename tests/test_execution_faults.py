"""Runs that meet a fault outside their steps (issue 14): a bad worker timeout, and Ctrl-C of
a run whose steps are inside torch.

The cluster faults themselves (every worker killed, the scheduler killed) are in
tests/test_distributed.py, beside the real cluster they need.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tuixp
from tuixp.execution.schedulers import SchedulerError
from tuixp.store.store import Store
from tuixp.tui.launcher import Launch, LaunchRequest

from .conftest import env_with_path
from .test_cli_units import invoke

TUIXP = Path(sys.executable).with_name("tuixp")

SCRIPT = """
import tuixp

ex = tuixp.Experiment("plain")
a = ex.parameter("a", default=1)


@ex.result
def double(a):
    return a * 2


s = double(a)
"""


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_bad_worker_timeout_is_refused_before_anything_is_written(
    tmp_path: Path, value: str
) -> None:
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT)
    store = tmp_path / "s.duckdb"
    done = invoke("run", script, "--worker-timeout", value, "--store", store)
    assert done.exit_code == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuixp: Invalid --worker-timeout: "), lines
    assert "a number above 0" in lines[0]
    assert list(tmp_path.iterdir()) == [script]  # no store, no journal, no ids file


def test_a_bad_worker_timeout_in_the_environment_is_refused(tmp_path: Path) -> None:
    """Checked before the cluster is reached (this address has none), for a cluster run."""
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT)
    store = tmp_path / "s.duckdb"
    done = invoke(
        "run",
        script,
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--store",
        store,
        env={"TUIXP_WORKER_TIMEOUT": "soon"},
    )
    assert done.exit_code == 2
    assert done.stderr.startswith("tuixp: Invalid $TUIXP_WORKER_TIMEOUT: 'soon'."), done.stderr
    assert list(tmp_path.iterdir()) == [script]


def test_a_bad_worker_timeout_in_python_uses_no_trial_id(store_path: Path) -> None:
    ex = tuixp.Experiment("plain", store=store_path)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return a * 2

    with pytest.raises(SchedulerError, match="Invalid worker_timeout: -5"):
        double(a).compute(a=1, worker_timeout=-5)
    assert double(a).compute(a=1, worker_timeout=30) == 2  # ignored off a cluster
    assert ex.trial_id == 1


# -- Ctrl-C of a run whose steps are inside torch ---------------------------------------------
TORCH_SCRIPT = """
import sys
import time

import tuixp

ex = tuixp.Experiment("torchy")
n = ex.parameter("n", default=200)


@ex.result
def train(n):
    import torch

    x = torch.randn(n, n)
    deadline = time.monotonic() + 60  # interrupted long before
    steps = 0
    while time.monotonic() < deadline:
        x = torch.tanh(x @ x.T / n)  # native code, the GIL released
        steps += 1
        if steps == 20:
            print(f"training {n}", file=sys.stderr, flush=True)
    return steps


s = train(n)
"""

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is in the dev extra"
)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")


def _statuses(store: Path) -> list[tuple[int, str]]:
    with Store(store).connect() as con:
        return con.execute("SELECT trial_id, status FROM trials ORDER BY trial_id").fetchall()


def _check_clean_exit(stderr: str) -> None:
    assert "terminate called" not in stderr, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert [x for x in stderr.splitlines() if x.strip()][-1] == "tuixp: interrupted", stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_torch
def test_ctrl_c_of_a_run_inside_torch_exits_130(tmp_path: Path) -> None:
    """issue 14, item 5: SIGINT while a step runs torch code aborted the process at shutdown
    ("terminate called without an active exception", exit 134), 6 times in 6 here."""
    script = tmp_path / "torchy.py"
    script.write_text(TORCH_SCRIPT)
    store = tmp_path / "s.duckdb"
    proc = subprocess.Popen(
        [str(TUIXP), "run", str(script), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
        start_new_session=True,
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        _wait_for(lambda: any("training" in x for x in lines), 90, "the step to train")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr
    _check_clean_exit(stderr)
    assert _statuses(store) == [(1, "interrupted")]


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_torch
def test_the_tuis_cancel_of_a_run_inside_torch(tmp_path: Path) -> None:
    """The TUI's cancel sends the child `tuixp run` SIGINT: the same exit, seen by the launch."""
    script = tmp_path / "torchy.py"
    script.write_text(TORCH_SCRIPT)
    store = tmp_path / "s.duckdb"
    launch = Launch(1, LaunchRequest(str(script), store, params={"n": "300"}))
    launch.start(env=env_with_path())
    try:
        _wait_for(
            lambda: any("training" in x for x in list(launch.stderr)), 90, "the step to train"
        )
        assert launch.cancel()
        assert launch.wait(timeout=60) == 130, list(launch.stderr)
    finally:
        launch.kill()
    _wait_for(lambda: launch.done, 10, "the launch to see its child's exit")
    assert launch.state == "interrupted" and launch.returncode == 130
    _check_clean_exit("\n".join(launch.stderr))
    assert [t.status for t in launch.trials.values()] == ["interrupted"]
    assert _statuses(store) == [(1, "interrupted")]
