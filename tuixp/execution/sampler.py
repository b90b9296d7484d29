"""System metrics while trials run: one sampling thread per owning process.

Every ``every`` seconds (``$TUIXP_SYSTEM_METRICS``, default 5; per experiment
``ex.system_metrics``) the thread reads the machine (``tuixp.capture.system``: CPU % and RSS of
this process and its descendants, each NVIDIA GPU's utilisation and memory) and records the
readings as metrics ``sys/NAME`` of every trial of this process that is running, epoch 0, 1, 2,
... per trial. Where that is, by scheduler: threads and sync run the steps in this process;
the process scheduler's workers are its children, so they are in the tree; a local cluster's
workers are descendants too; a remote cluster's workers are not sampled (the owner's process
is). A trial shorter than its interval gets no sample.

The thread touches no database: it appends to the trial's journal through its recorder, like a
step's ``save_metric``. It starts with the first watched trial, waits (no polling) while none
is, and never records a sample for a trial after ``unwatch`` returned.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from tuixp.capture.system import GpuReader, ProcessTree, readings
from tuixp.execution.seq import next_seq
from tuixp.store.metric_names import SYSTEM_PREFIX

logger = logging.getLogger("tuixp")

ENV = "TUIXP_SYSTEM_METRICS"
DEFAULT_EVERY = 5.0  # seconds between two samples
MIN_EVERY = 0.05  # a smaller interval is taken as this one
OFF = ("0", "off", "false", "no", "none")


class Recording(Protocol):
    """What the sampler needs of a trial's recorder (``TrialRecorder``)."""

    def on_metric(self, event: dict[str, Any]) -> None: ...


def interval(setting: Any = None) -> float | None:
    """Seconds between samples for an experiment's ``system_metrics`` setting, None for off.

    ``None`` defers to ``$TUIXP_SYSTEM_METRICS`` (seconds, or 0/off), else 5 s; ``False`` or 0
    is off; a number is seconds. A setting that is none of these raises ``ValueError``.
    """
    if setting is None:
        text = os.environ.get(ENV, "").strip().lower()
        if not text:
            return DEFAULT_EVERY
        if text in OFF:
            return None
        try:
            setting = float(text)
        except ValueError:
            logger.warning("%s=%r is not seconds or 'off': sampling every %gs", ENV, text, 5.0)
            return DEFAULT_EVERY
    if setting is False:
        return None
    if setting is True:
        return DEFAULT_EVERY
    if not isinstance(setting, (int, float)) or setting != setting or setting < 0:
        raise ValueError(
            f"system_metrics must be seconds between samples, or False/0 for none, not {setting!r}"
        )
    return max(float(setting), MIN_EVERY) if setting else None


@dataclass
class _Watch:
    recorder: Recording
    every: float
    due: float  # monotonic time of its next sample
    epoch: int = 0


class Sampler:
    """The process's sampling thread and the trials it samples for."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watched: dict[int, _Watch] = {}
        self._thread: threading.Thread | None = None
        self.tree = ProcessTree()
        self.gpus = GpuReader()

    def watch(self, recorder: Recording, every: float) -> None:
        """Sample for ``recorder``'s trial every ``every`` seconds from now until ``unwatch``."""
        with self._cond:
            self._watched[id(recorder)] = _Watch(recorder, every, time.monotonic() + every)
            if self._thread is None or not self._thread.is_alive():  # first, or one that died
                self._thread = threading.Thread(
                    target=self._run, name="tuixp-system-metrics", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def unwatch(self, recorder: Recording) -> None:
        """No more samples for ``recorder``'s trial (waits for one being written to end)."""
        with self._cond:
            self._watched.pop(id(recorder), None)

    def _forked(self) -> None:
        """In a forked child (a process scheduler's worker): the thread stayed in the parent."""
        self._cond = threading.Condition()
        self._watched = {}
        self._thread = None
        self.tree = ProcessTree()

    def _run(self) -> None:
        try:
            self.tree.read()  # the baseline of the first sample's CPU %
        except Exception as exc:  # noqa: BLE001 - the first sample then has no CPU %
            logger.debug("system metrics: first reading failed: %s", exc)
        while True:
            with self._cond:
                while not self._watched:
                    self._cond.wait()
                wait = min(w.due for w in self._watched.values()) - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            try:
                sample = readings(self.tree, self.gpus)
            except Exception as exc:  # noqa: BLE001 - a reading never ends the thread or a trial
                logger.debug("system metrics: reading failed: %s", exc)
                sample = {}
            self._record(sample, time.time())

    def _record(self, sample: dict[str, float], wall: float) -> None:
        with self._cond:  # held while writing, so that no sample follows an unwatch
            now = time.monotonic()
            for w in list(self._watched.values()):
                if w.due > now:
                    continue
                w.due = now + w.every
                for name, value in sample.items():
                    try:
                        w.recorder.on_metric(system_metric(name, w.epoch, value, wall))
                    except Exception as exc:  # noqa: BLE001 - a full disk fails the trial's
                        logger.debug("system metrics: not recorded: %s", exc)  # own writes
                w.epoch += 1


def system_metric(name: str, epoch: int, value: float, wall: float) -> dict[str, Any]:
    """The metric event of one reading, as a step's ``save_metric`` makes one."""
    return {
        "name": SYSTEM_PREFIX + name,
        "epoch": epoch,
        "value": float(value),
        "value_type": "float",
        "value_int": None,
        "recorded_at": wall,
        "seq": next_seq(),
        "step": None,
        "key": None,
    }


SAMPLER = Sampler()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SAMPLER._forked)
