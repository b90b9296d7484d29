"""Live epochs outside the TUI: `tuixp run`'s text progress and `tuixp show` of a running trial,
with real `tuixp run` processes running a training-like loop that the test stops."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli_subprocess import TUIXP, run_on_a_terminal, tuixp
from tests.conftest import ROOT, env_with_path
from tuixp.cli.live import LiveSteps
from tuixp.execution.events import ProgressEvent

# A training loop: one epoch every PAUSE seconds until the file STOP exists (at most 600 epochs,
# so a test that dies does not leave it running for long).
TRAIN = """
import time
from pathlib import Path
import tuixp

ex = tuixp.Experiment("slowtrain")
pause = ex.parameter("pause", default=0.05)
stop = ex.parameter("stop", default="")
epochs = ex.parameter("epochs", default=600)

@ex
def prepare(epochs):
    return epochs

@ex.result
def train(epochs, pause, stop):
    loss = 1.0
    for epoch in range(epochs):
        loss *= 0.97
        ex.save_metric("loss", epoch=epoch, value=loss)
        ex.save_metric("acc", epoch=epoch, value=1 - loss)
        if stop and Path(stop).exists():
            break
        time.sleep(pause)
    return loss

result = train(prepare(epochs), pause, stop)
"""
LIVE = re.compile(r"epoch (\d+) · loss ([0-9.e-]+) · acc ([0-9.e-]+)")


def _train_script(folder: Path) -> Path:
    path = folder / "train.py"
    path.write_text(TRAIN)
    return path


def _start(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    exe = [str(TUIXP)] if TUIXP.exists() else [sys.executable, "-m", "tuixp"]
    return subprocess.Popen(
        [*exe, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**env_with_path(), **(env or {})},
    )


def _lines_until(
    proc: subprocess.Popen[str], wanted: re.Pattern[str], timeout: float
) -> tuple[list[str], re.Match[str]]:
    """stderr lines of ``proc`` up to the first that matches ``wanted``, waiting at most
    ``timeout`` seconds for it."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            continue
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        found = wanted.search(line)
        if found:
            return seen, found
    raise AssertionError(f"no line matching {wanted.pattern!r} in {timeout}s: {seen}")


def _wait_for(check: object, what: str, timeout: float = 30.0) -> object:
    """Call ``check()`` until it returns something true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout}s for {what}")


def test_text_progress_off_a_terminal_shows_the_running_epoch(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    stop = tmp_path / "stop"
    script = _train_script(tmp_path)
    proc = _start(
        "run",
        script,
        f"stop={stop}",
        "--progress",
        "text",
        "--store",
        store,
        env={"TUIXP_PROGRESS_EVERY": "0.3"},
    )
    try:
        first, found = _lines_until(proc, re.compile(r"^trial 1 · train · " + LIVE.pattern), 60)
        assert proc.poll() is None  # shown while the step runs, not after
        epoch = int(found.group(1))
        # the values are the latest saved: loss = 0.97 ** (epoch + 1) at that epoch or the next
        assert abs(float(found.group(2)) - 0.97 ** (epoch + 1)) < 0.03
        more, again = _lines_until(proc, re.compile(r"^trial 1 · train · " + LIVE.pattern), 60)
        assert int(again.group(1)) > epoch  # it moves on with the training
        stop.touch()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "trial 1 succeeded (1/1)" in err
    # no finished-step names in place of the live line: prepare never shows as progress
    assert not any("prepare" in line for line in first + more)


def test_on_a_terminal_the_bar_shows_the_running_epoch(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = _train_script(tmp_path)
    code, screen = run_on_a_terminal(
        "run", script, "epochs=30", "pause=0.05", "--store", store, "--progress", "text"
    )
    assert code == 0, screen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    found = LIVE.findall(plain)
    assert found, plain
    assert re.search(r"train · epoch \d+ · loss", plain)
    assert len({e for e, _, _ in found}) >= 2  # the note moved with the epochs


def test_show_of_a_running_trial_has_elapsed_step_and_latest_metrics(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    stop = tmp_path / "stop"
    script = _train_script(tmp_path)
    proc = _start("run", script, f"stop={stop}", "--progress", "none", "--store", store)

    def running_with_metrics() -> dict[str, object] | None:
        shown = tuixp("show", "slowtrain", "1", "--store", store, "--format", "json")
        if shown.returncode != 0:
            return None
        doc = json.loads(shown.stdout)
        now = doc.get("running")
        return doc if doc["status"] == "running" and now and now["epoch"] else None

    try:
        doc = _wait_for(running_with_metrics, "trial 1 running with metrics", 60)
        assert isinstance(doc, dict)
        now = doc["running"]
        assert [s["step"] for s in now["steps"]] == ["train"]
        assert now["steps"][0]["running_s"] > 0
        assert doc["elapsed_s"] >= now["steps"][0]["running_s"] - 1
        assert set(now["metrics"]) == {"loss", "acc"}
        assert abs(now["metrics"]["loss"] - 0.97 ** (now["epoch"] + 1)) < 1e-9
        text = tuixp("show", "slowtrain", "1", "--store", store)
        assert text.returncode == 0, text.stderr
        assert proc.poll() is None  # still training while shown
        out = text.stdout
        assert re.search(r"elapsed +\S+ \(running\)", out), out
        # every metric's latest value, by name
        running_line = (
            r"Running now\n-+\n  train  running for \S+ · epoch \d+ · acc \S+ · loss \S+\n"
        )
        assert re.search(running_line, out), out
        assert "Error" not in out  # a running trial has no error yet
        stop.touch()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    done = tuixp("show", "slowtrain", "1", "--store", store)
    assert "Running now" not in done.stdout and "(running)" not in done.stdout
    assert json.loads(tuixp("show", "slowtrain", "1", "--store", store, "-f", "json").stdout)[
        "status"
    ] == ("succeeded")


def _ev(kind: str, trial: int, key: str | None = None, step: str | None = None, **data: object):
    return ProgressEvent(kind, "x", trial, time.time(), key=key, step=step, data=dict(data))


def _metrics(trial: int, step: str | None, **series: tuple[list[int], list[float]]):
    """A batch of points, as ``tuixp.execution.metric_news`` sends them."""
    points = {name: {"epoch": e, "value": v} for name, (e, v) in series.items()}
    return ProgressEvent("metrics", "x", trial, time.time(), step=step, data={"points": points})


def test_live_steps_follows_the_step_with_the_latest_news() -> None:
    live = LiveSteps()
    assert live.line() == ""
    live(_ev("task_started", 1, "prep-1", "prep"))
    assert live.line() == "prep"
    live(_ev("task_finished", 1, "prep-1", "prep"))
    assert live.line() == ""
    live(_ev("task_started", 1, "train-1", "train"))
    live(_metrics(1, "train", loss=([0], [0.5]), **{"sys/cpu": ([0], [99.0])}))
    live(_metrics(1, "train", val_acc=([0], [0.25]), loss=([1], [0.3125])))
    # val_acc keeps its latest value though it was saved at an earlier epoch; sys/ is left out
    assert live.line() == "train · epoch 1 · loss 0.3125 · val_acc 0.25"
    assert live.line(with_trial=True) == "trial 1 · train · epoch 1 · loss 0.3125 · val_acc 0.25"
    # a second trial of a grid: lines say which trial, the latest news wins
    live(_ev("task_started", 2, "train-2", "train"))
    live(_metrics(2, "train", loss=([5, 6, 7], [5, 4, 3])))
    assert live.line() == "#2 train · epoch 7 · loss 3"
    live(_metrics(1, "train", loss=([2], [0.125])))
    assert live.line() == "#1 train · epoch 2 · loss 0.125 · val_acc 0.25"
    live(_ev("trial_finished", 1))
    assert live.line() == "train · epoch 7 · loss 3"


def test_a_bad_progress_interval_is_refused_before_anything_runs(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    script = _train_script(tmp_path)
    for raw in ("soon", "0", "-1"):
        done = subprocess.run(
            [sys.executable, "-m", "tuixp", "run", str(script), "epochs=1", "--store", str(store)]
            + ["--progress", "text"],
            capture_output=True,
            text=True,
            env={**env_with_path(), "TUIXP_PROGRESS_EVERY": raw},
            cwd=ROOT,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            next(line for line in done.stderr.splitlines() if "TUIXP_PROGRESS_EVERY" in line)
        ]
        assert not store.exists() and not os.path.exists(f"{store}.journal")
