"""Trials launched from the TUI: a child ``tuixp run ... --progress jsonl`` and what it reports.

User code never runs in the UI process. Each launch is a child process in its own session (a
Ctrl-C or Ctrl-Z at the terminal does not reach it); its stdout carries one JSON event a line
(docs/events.md) and its stderr the script's prints and tuixp's own messages. Two reader threads
per child hand each line to ``deliver``; the model (`Launch.apply`) turns them into trials, tasks,
metrics and a stderr tail. The TUI's ``deliver`` posts a message so the model changes on the UI
thread only; without one, the reader threads apply the updates themselves. Nothing here imports
textual.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuixp.execution.events import ProgressEvent

STDERR_LINES = 200  # the stderr tail kept per launch
EXIT_STATES = {0: "succeeded", 1: "failed", 2: "refused", 130: "interrupted"}


@dataclass
class LaunchRequest:
    """What a person asked for: ``tuixp run SCRIPT NAME=VALUE ... --grid NAME=V1,V2 ...``.

    Values are kept as typed (the CLI parses them: one parser for the shell and the TUI).
    ``steps`` are the graph's steps in order, when an earlier trial recorded them, so tasks can
    show as waiting before they start.
    """

    script: str
    store: Path
    params: dict[str, str] = field(default_factory=dict)
    grid: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    scheduler: str = "threads"
    experiment: str | None = None
    steps: list[str] = field(default_factory=list)
    # ``tuixp repeat EXPERIMENT TRIAL`` instead: that trial again, its parameters and seed, each
    # step's output checked against it (the verdict arrives as a last ``repeat_finished`` event).
    repeat: int | None = None

    def argv(self) -> list[str]:
        if self.repeat is not None:
            return [
                sys.executable,
                "-m",
                "tuixp",
                "repeat",
                str(self.experiment),
                str(self.repeat),
                "--progress",
                "jsonl",
                "--store",
                str(self.store),
            ]
        args = [sys.executable, "-m", "tuixp", "run", self.script]
        args += [f"{name}={value}" for name, value in self.params.items()]
        for name, values in self.grid.items():
            args += ["--grid", f"{name}={values}"]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        if self.scheduler:
            args += ["--scheduler", self.scheduler]
        return args + ["--progress", "jsonl", "--store", str(self.store)]

    def describe(self) -> str:
        if self.repeat is not None:
            return f"repeat of trial #{self.repeat}: its parameters and seed, each step checked"
        parts = [f"{k}={v}" for k, v in self.params.items()]
        parts += [f"{k}∈{{{v}}}" for k, v in self.grid.items()]
        return " ".join(parts)


@dataclass
class TaskProgress:
    """One step of one trial: waiting, running, succeeded, failed or reused."""

    step: str
    status: str = "waiting"
    key: str | None = None
    started: float | None = None
    elapsed: float | None = None
    worker: str | None = None
    error: str | None = None
    reused_from: int | None = None

    def elapsed_at(self, now: float) -> float | None:
        if self.elapsed is not None:
            return self.elapsed
        if self.started is not None and self.status == "running":
            return max(0.0, now - self.started)
        return None


class LiveSeries:
    """One metric of one trial as its ``metrics`` events bring it: epochs and values in the
    order they arrived, as typed arrays (a million points take 16 MB, not a list of tuples'
    hundred). Iterates as ``(epoch, value)`` pairs."""

    def __init__(self) -> None:
        self.epoch = array("q")
        self.value = array("d")

    def extend(self, epochs: Any, values: Any) -> None:
        """Points of one batch, taken whole or not at all (TypeError, OverflowError)."""
        epoch, value = array("q", epochs), array("d", values)
        n = min(len(epoch), len(value))
        self.epoch.extend(epoch[:n])
        self.value.extend(value[:n])

    def __len__(self) -> int:
        return len(self.epoch)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.epoch, self.value)

    @property
    def last(self) -> tuple[int, float] | None:
        return (self.epoch[-1], self.value[-1]) if self.epoch else None


@dataclass
class TrialProgress:
    """One trial of a launch, as its events tell it: ``queued`` until its first step starts,
    and its time counted from then (``started``)."""

    trial_id: int
    experiment: str
    started: float
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    status: str = "queued"
    finished: float | None = None
    result: str | None = None
    error: str | None = None
    tasks: dict[str, TaskProgress] = field(default_factory=dict)  # by step name, graph order
    metrics: dict[str, LiveSeries] = field(default_factory=dict)  # in the order first seen

    def elapsed_at(self, now: float) -> float | None:
        if self.status == "queued":
            return None
        return max(0.0, (self.finished if self.finished is not None else now) - self.started)


# One update from a reader thread: ("event", line) | ("stderr", line) | ("exit", code)
Update = tuple[str, Any]
Deliver = Callable[["Launch", str, Any], None]


class Launch:
    """One child ``tuixp run``: its request, its process and the progress it reported."""

    def __init__(
        self, number: int, request: LaunchRequest, clock: Callable[[], float] = time.time
    ) -> None:
        self.number = number
        self.request = request
        self.clock = clock
        self.state = "starting"  # running, succeeded, failed, refused, interrupted, killed
        self.returncode: int | None = None
        self.message = ""  # why it was refused or ended badly (the CLI's one line)
        self.started = clock()
        self.finished: float | None = None
        self.trials: dict[int, TrialProgress] = {}
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.events = 0
        self.verdict: dict[str, Any] | None = None  # a repeat's (tuixp.repeat.verify)
        self.cancel_requested = False
        self.proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []

    # -- the model ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.returncode is not None

    def apply(self, kind: str, payload: Any) -> None:
        """Take one update (on whichever thread owns the model)."""
        if kind == "event":
            self._apply_line(payload)
        elif kind == "stderr":
            self.stderr.append(payload)
        elif kind == "exit":
            self._exited(payload)

    def _apply_line(self, line: str) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            self.stderr.append(f"(not an event) {line}")
            return
        if not isinstance(doc, dict):
            return
        self.events += 1
        if self.state == "starting":
            self.state = "running"
        if doc.get("kind") == "repeat_finished":
            self.verdict = doc
            return
        if doc.get("kind") == "run_finished":
            for t in doc.get("trials") or []:
                trial = self.trials.get(t.get("trial_id"))
                if trial is not None and trial.status in ("queued", "running"):
                    trial.status = t.get("status", trial.status)
            return
        self.apply_event(ProgressEvent.from_json(line))

    def apply_event(self, ev: ProgressEvent) -> None:
        trial = self.trials.get(ev.trial_id)
        if trial is None:
            trial = self.trials[ev.trial_id] = TrialProgress(ev.trial_id, ev.experiment, ev.time)
            for step in self.request.steps:
                trial.tasks[step] = TaskProgress(step)
        data = ev.data or {}
        if ev.kind == "trial_started":
            trial.started = ev.time
            trial.params = dict(data.get("params") or {})
            trial.seed = data.get("seed")
        elif ev.kind == "trial_finished":
            trial.status = ev.status or "failed"
            trial.finished = ev.time
            trial.result = data.get("result")
            if data.get("error"):
                trial.error = f"{data['error']}: {data.get('message') or ''}".rstrip(": ")
            if trial.status == "interrupted":
                for task in trial.tasks.values():
                    if task.status == "running":
                        task.status = "interrupted"
                        task.elapsed = max(0.0, ev.time - (task.started or ev.time))
        elif ev.kind in ("task_started", "task_finished", "task_failed") and ev.step:
            found = trial.tasks.get(ev.step)
            if found is None:
                found = trial.tasks[ev.step] = TaskProgress(ev.step)
            task = found
            task.key = ev.key or task.key
            task.worker = ev.worker or task.worker
            if ev.kind == "task_started":
                task.status, task.started, task.elapsed = "running", ev.time, None
                if trial.status == "queued":
                    trial.status, trial.started = "running", ev.time
            else:
                task.status = ev.status or ("failed" if ev.kind == "task_failed" else "succeeded")
                task.started = data.get("started", task.started)
                task.elapsed = data.get("elapsed", task.elapsed)
                task.error = data.get("error")
                if data.get("reused_from") is not None:
                    task.reused_from = int(data["reused_from"])
        elif ev.kind == "metrics":
            points = data.get("points")
            if not isinstance(points, dict):
                return
            for name, cols in points.items():
                series = trial.metrics.get(str(name)) or LiveSeries()
                try:
                    series.extend(cols["epoch"], cols["value"])
                except (KeyError, TypeError, ValueError, OverflowError):
                    continue  # a malformed batch is skipped, not half taken
                trial.metrics.setdefault(str(name), series)

    def _exited(self, code: int) -> None:
        self.returncode = code
        self.finished = self.clock()
        if code < 0:
            self.state = "killed"
            self.message = f"stopped by signal {-code}"
        elif self.verdict is not None and code in (0, 1):
            self.state = str(self.verdict.get("verdict", "failed")).replace("_", " ")
        else:
            self.state = EXIT_STATES.get(code, "failed")
        if code == 2 or (code != 0 and not self.trials):
            # The CLI refused the input before any trial started: its one line says why.
            lines = [line for line in self.stderr if line.strip()]
            self.message = lines[-1] if lines else f"tuixp run exited with {code}"
        elif code not in (0, 1, 130) and code > 0:
            lines = [line for line in self.stderr if line.strip()]
            self.message = lines[-1] if lines else f"tuixp run exited with {code}"
        for trial in self.trials.values():
            if trial.status in ("queued", "running"):
                # A child that died without a last word: the store will show it interrupted.
                trial.status = "interrupted"
                trial.finished = self.finished

    # -- the process -------------------------------------------------------------------------
    def start(
        self,
        deliver: Deliver | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        """Start the child and its two reader threads; updates go to ``deliver``."""
        send: Deliver = deliver or (lambda launch, kind, payload: launch.apply(kind, payload))
        environment = dict(os.environ if env is None else env)
        # The child imports the same tuixp as this process, and flushes its prints at once.
        root = str(Path(__file__).resolve().parents[2])
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, environment.get("PYTHONPATH", "")) if p
        )
        environment["PYTHONUNBUFFERED"] = "1"
        environment.pop("TUIXP_SCRIPT", None)
        try:
            self.proc = subprocess.Popen(
                self.request.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                env=environment,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            send(self, "stderr", f"cannot start tuixp run: {exc}")
            send(self, "exit", 2)
            return
        err = threading.Thread(
            target=self._read_stderr,
            args=(send,),
            daemon=True,
            name=f"tuixp-launch-{self.number}-stderr",
        )
        out = threading.Thread(
            target=self._read_stdout,
            args=(send, err),
            daemon=True,
            name=f"tuixp-launch-{self.number}-stdout",
        )
        self._threads = [err, out]
        err.start()
        out.start()

    def _read_stderr(self, send: Deliver) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            send(self, "stderr", line.rstrip("\n"))

    def _read_stdout(self, send: Deliver, err: threading.Thread) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                send(self, "event", line.rstrip("\n"))
        code = self.proc.wait()
        err.join(timeout=5)
        send(self, "exit", code)

    def cancel(self) -> bool:
        """Ask the child to stop (SIGINT, as Ctrl-C): its trials end ``interrupted``."""
        if self.proc is None or self.done or self.proc.poll() is not None:
            return False
        self.cancel_requested = True
        try:
            self.proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Stop the child now (the app is closing and the child ignored SIGINT)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child and its readers (for scripts and tests; the UI never waits)."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        for thread in self._threads:
            thread.join(timeout)
        return self.proc.returncode if self.proc is not None else self.returncode


class Launches:
    """The launches of one TUI session, newest last."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.items: list[Launch] = []

    def new(self, request: LaunchRequest) -> Launch:
        launch = Launch(len(self.items) + 1, request, self.clock)
        self.items.append(launch)
        return launch

    @property
    def running(self) -> list[Launch]:
        return [launch for launch in self.items if not launch.done]

    def shutdown(self, grace: float = 3.0) -> None:
        """On exit: SIGINT every running child, then kill the ones still running after ``grace``."""
        alive = [launch for launch in self.items if launch.cancel()]
        deadline = time.monotonic() + grace
        for launch in alive:
            if launch.proc is not None:
                try:
                    launch.proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    launch.kill()
